/* test_cli.c — the commands that write and run code, on bad input: each
 * ends with one clear message and the documented exit status (1 for a bad
 * network or file, 2 for a bad command line), and writes nothing. */
#include "helpers.h"

#include <math.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs `cnnc ARGS` with stderr captured; returns the exit status. */
static int cnnc(char *err, size_t cap, const char *args) {
    char cmd[2048], path[64];
    snprintf(path, sizeof path, "build/cli/err.%ld.txt", (long)getpid());
    snprintf(cmd, sizeof cmd, "./cnnc %s 2>%s >/dev/null", args, path);
    int rc = system(cmd);
    size_t len = 0;
    char *text = slurp(path, &len);
    snprintf(err, cap, "%s", text ? text : "");
    free(text);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void write_floats(const char *path, int count) {
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    for (int i = 0; i < count; i++) {
        float v = (float)(i % 13) * 0.01f;
        fwrite(&v, 4, 1, f);
    }
    fclose(f);
}

/* Every test runs in its own process, two at a time: each writes its own
 * files (named after its process), so none reads another's half-written. */
static char W[64], X[64];

static void setup(void) {
    cr_assert_eq(system("mkdir -p build/cli"), 0);
    snprintf(W, sizeof W, "build/cli/w.%ld.f32", (long)getpid());
    snprintf(X, sizeof X, "build/cli/x.%ld.f32", (long)getpid());
    write_floats(W, 61706);
    write_floats(X, 1024);
}

TestSuite(cli, .init = setup, .timeout = 120);

Test(cli, run_refuses_weights_of_the_wrong_size) {
    char err[4096];
    char args[512];
    write_floats("build/cli/short.f32", 100);
    snprintf(args, sizeof args, "run examples/lenet5.cnn --weights build/cli/short.f32 "
             "--input %s --output build/cli/y.f32", X);
    int rc = cnnc(err, sizeof err, args);
    cr_expect_eq(rc, 1);
    cr_expect(strstr(err, "has 61706 parameters"), "got: %s", err);
    struct stat st;
    cr_expect_neq(stat("build/cli/y.f32", &st), 0, "an output was written");
}

/* A directory where a file belongs is named as such, not read as a file
 * of 4096 bytes (--weights) or of no lines (--tune, which then built with
 * no word of it). */
Test(cli, a_directory_is_not_a_weights_or_tune_file) {
    char err[4096];
    int rc = cnnc(err, sizeof err, "build examples/lenet5.cnn -o build/cli/dir --embed "
                  "--weights build/cli");
    cr_expect_eq(rc, 1);
    cr_expect(strstr(err, "weights file 'build/cli' is a directory"), "got: %s", err);
    rc = cnnc(err, sizeof err, "build examples/lenet5.cnn -o build/cli/dir --target avx2 "
              "--tune build/cli");
    cr_expect_eq(rc, 1);
    cr_expect(strstr(err, "the tune file 'build/cli' is a directory"), "got: %s", err);
}

/* What the language allows but int-indexed C cannot take is refused by
 * build at the layer, never written out as loops past int (a pool window
 * of 2^31 compiled to `for (int i = 0; i < 2147483648; i++)`). */
Test(cli, build_refuses_what_int_cannot_index) {
    const char *nets[] = {
        "x -> maxpool(2147483648, pad=1073741824)", "its padded input is 2147483660 rows",
        "x -> conv(4, 3, stride=(1, 2147483648), pad=1)", "its stride is 2147483648 columns",
    };
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen("build/cli/big.cnn", "w");
        cr_assert(f);
        fprintf(f, "network n {\n    input x: [8, 12, 12]\n    y = %s\n    output y\n}\n",
                nets[2 * i]);
        fclose(f);
        char err[4096];
        cr_expect_eq(cnnc(err, sizeof err, "check build/cli/big.cnn"), 0, "%s", err);
        int rc = cnnc(err, sizeof err, "build build/cli/big.cnn -o build/cli/big --target scalar");
        cr_expect_eq(rc, 1);
        cr_expect(strstr(err, "big.cnn:3:14: error: ") && strstr(err, nets[2 * i + 1]),
                  "got: %s", err);
    }
}

Test(cli, run_refuses_an_input_of_the_wrong_size) {
    char err[4096];
    char args[512];
    write_floats("build/cli/x3.f32", 1000);
    snprintf(args, sizeof args, "run examples/lenet5.cnn --weights %s "
             "--input build/cli/x3.f32 --output build/cli/y3.f32", W);
    int rc = cnnc(err, sizeof err, args);
    cr_expect_eq(rc, 1);
    cr_expect(strstr(err, "input 'img' of shape [1,32,32]"), "got: %s", err);
}

Test(cli, run_needs_one_input_file_per_input) {
    char err[4096];
    char args[512];
    snprintf(args, sizeof args, "run examples/lenet5.cnn --weights %s --output build/cli/y.f32", W);
    int rc = cnnc(err, sizeof err, args);
    cr_expect_eq(rc, 1);
    cr_expect(strstr(err, "has 1 input"), "got: %s", err);
}

Test(cli, build_needs_an_output_directory) {
    char err[4096];
    cr_expect_eq(cnnc(err, sizeof err, "build examples/lenet5.cnn"), 2);
    cr_expect(strstr(err, "-o DIR"), "got: %s", err);
}

Test(cli, embed_needs_weights) {
    char err[4096];
    cr_expect_eq(cnnc(err, sizeof err, "build examples/lenet5.cnn --embed -o build/cli/e"), 1);
    cr_expect(strstr(err, "--embed needs --weights"), "got: %s", err);
}

/* A NaN in the weights has no C spelling: --embed says which layer, and
 * writes nothing. */
Test(cli, embed_refuses_weights_that_are_not_finite) {
    char err[4096];
    FILE *f = fopen("build/cli/nan.f32", "wb");
    cr_assert(f);
    for (int i = 0; i < 61706; i++) {
        float v = i == 100 ? NAN : 0.01f;
        fwrite(&v, 4, 1, f);
    }
    fclose(f);
    cr_expect_eq(cnnc(err, sizeof err, "build examples/lenet5.cnn --weights build/cli/nan.f32 "
                      "--embed -o build/cli/nan"), 1);
    cr_expect(strstr(err, "the weights of 'conv1' are not all finite"), "got: %s", err);
    cr_expect_neq(access("build/cli/nan/lenet5.c", F_OK), 0);
}

Test(cli, build_into_an_unwritable_place_writes_nothing) {
    char err[4096];
    cr_expect_eq(cnnc(err, sizeof err, "build examples/lenet5.cnn -o /proc/no/such/dir"), 1);
    cr_expect(strstr(err, "cannot create"), "got: %s", err);
}

Test(cli, a_bad_network_writes_nothing) {
    char err[4096];
    FILE *f = fopen("build/cli/bad.cnn", "w");
    cr_assert(f);
    fputs("network bad {\n    input x: [3]\n    y = x -> conv(4, 3)\n    output y\n}\n", f);
    fclose(f);
    cr_assert_eq(system("rm -rf build/cli/badout"), 0);
    cr_expect_eq(cnnc(err, sizeof err, "build build/cli/bad.cnn -o build/cli/badout"), 1);
    cr_expect(strstr(err, "conv expects input [C,H,W]"), "got: %s", err);
    struct stat st;
    cr_expect_neq(stat("build/cli/badout/bad.c", &st), 0);
}

Test(cli, grad_needs_a_dout_per_output) {
    char err[4096];
    char args[512];
    snprintf(args, sizeof args, "grad examples/lenet5.cnn --weights %s --input %s "
             "--output build/cli/g.f32", W, X);
    int rc = cnnc(err, sizeof err, args);
    cr_expect_eq(rc, 2);
    cr_expect(strstr(err, "--dout once for each"), "got: %s", err);
}

Test(cli, train_checks_the_images_fit_the_network) {
    char err[4096];
    int rc = cnnc(err, sizeof err, "train examples/lenet5.cnn --data fashion-mnist --epochs 1");
    cr_expect_eq(rc, 1);
    cr_expect(strstr(err, "the images are [1,28,28] but network 'lenet5' takes [1,32,32]"),
              "got: %s", err);
}

Test(cli, training_options_belong_to_train) {
    char err[4096];
    cr_expect_eq(cnnc(err, sizeof err, "build examples/lenet5.cnn --epochs 3 -o build/cli/t"), 2);
    cr_expect(strstr(err, "--epochs is an option of 'cnnc train'"), "got: %s", err);
}

Test(cli, an_unknown_target_is_refused) {
    char err[4096];
    cr_expect_eq(cnnc(err, sizeof err, "build examples/lenet5.cnn --target neon -o build/cli/t"), 2);
    cr_expect(strstr(err, "target 'neon' is not available"), "got: %s", err);
    cr_expect(strstr(err, "avx512"), "the message lists the targets there are; got: %s", err);
}

/* The training program is built with OpenMP and runs (to the trainer's
 * first check of the data, which this network fails). */
Test(cli, train_builds_with_openmp) {
    char err[4096];
    int rc = cnnc(err, sizeof err, "train examples/lenet5.cnn --openmp --data fashion-mnist "
                  "--epochs 1");
    cr_expect_eq(rc, 1);
    cr_expect(strstr(err, "(batch 64, OpenMP)"), "got: %s", err);
    cr_expect(strstr(err, "network 'lenet5' takes [1,32,32]"), "got: %s", err);
}

Test(cli, no_fuse_takes_only_known_passes) {
    char err[4096];
    cr_expect_eq(cnnc(err, sizeof err, "build examples/lenet5.cnn --no-fuse=bn,relu -o build/cli/t"), 2);
    cr_expect(strstr(err, "bn, add, act, concat, pool and chain"), "got: %s", err);
    /* an empty item is a typo, not a pass */
    cr_expect_eq(cnnc(err, sizeof err, "build examples/lenet5.cnn --no-fuse=bn,,add -o build/cli/t"), 2);
    cr_expect_eq(cnnc(err, sizeof err, "build examples/lenet5.cnn --no-fuse=bn, -o build/cli/t"), 2);
    cr_expect_eq(cnnc(err, sizeof err, "build examples/resnet18.cnn --no-fuse=bn,add,act,concat,pool,chain "
                      "--target avx2 -o build/cli/nf"), 0, "got: %s", err);
}

/* ---- cnnc tune and --tune ------------------------------------------------ */

static int count_lines_starting(const char *path, const char *prefix) {
    size_t len;
    char *text = slurp(path, &len);
    cr_assert(text, "cannot read %s", path);
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        n += !strncmp(line, prefix, strlen(prefix));
    free(text);
    return n;
}

static int count_text(const char *path, const char *needle) {
    size_t len;
    char *text = slurp(path, &len);
    cr_assert(text, "cannot read %s", path);
    int n = 0;
    for (char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    free(text);
    return n;
}

Test(cli, tune_needs_an_output_file_and_a_vector_target) {
    char err[4096];
    cr_expect_eq(cnnc(err, sizeof err, "tune tests/api/tune.cnn"), 2);
    cr_expect(strstr(err, "tune needs -o NET.tune"), "got: %s", err);
    cr_expect_eq(cnnc(err, sizeof err, "tune tests/api/tune.cnn --target scalar -o build/cli/s.tune"), 2);
    cr_expect(strstr(err, "has no tiles to choose"), "got: %s", err);
    struct stat st;
    cr_expect_neq(stat("build/cli/s.tune", &st), 0, "a tune file was written");
}

/* A tune file that is missing or malformed stops the build with the file
 * and line, and nothing is written. */
Test(cli, a_bad_tune_file_names_its_line) {
    char err[4096], args[512], path[64];
    snprintf(path, sizeof path, "build/cli/bad.%ld.tune", (long)getpid());
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("# a comment\n"
          "avx2 6 14 14 16 5 5 1 1 1 1 0 0 0 0 1 C 16 2 6   # fine\n"
          "avx2 6 14 14 16 5 5 1 1 1 1 0 0 0 0 1 Q 16 2 6\n", f);
    fclose(f);
    snprintf(args, sizeof args, "build examples/lenet5.cnn --target avx2 --tune %s "
             "-o build/cli/badtune", path);
    cr_expect_eq(cnnc(err, sizeof err, args), 1);
    char where[96];
    snprintf(where, sizeof where, "%s:3: expected", path);
    cr_expect(strstr(err, where), "got: %s", err);
    struct stat st;
    cr_expect_neq(stat("build/cli/badtune", &st), 0, "something was written");
    cr_expect_eq(cnnc(err, sizeof err, "build examples/lenet5.cnn --tune build/cli/none.tune "
                      "-o build/cli/badtune"), 1);
    cr_expect(strstr(err, "cannot read the tune file 'build/cli/none.tune'"), "got: %s", err);
}

/* A tile from a tune file reaches the kernel (its comment says so) and
 * changes no output beyond rounding: LeNet-5's second convolution forced
 * to a P-form tile the default model does not pick (it takes the C form).
 * A line for another target changes nothing. */
Test(cli, a_tune_file_sets_the_tile_and_keeps_the_outputs) {
    char err[4096], args[512];
    FILE *f = fopen("build/cli/force.tune", "w");
    cr_assert(f);
    fputs("avx2 6 14 14 16 5 5 1 1 1 1 0 0 0 0 1 P 6 2 0\n"
          "avx512 6 14 14 16 5 5 1 1 1 1 0 0 0 0 1 P 4 2 0\n", f);
    fclose(f);
    cr_assert_eq(cnnc(err, sizeof err, "build examples/lenet5.cnn --target avx2 "
                      "--tune build/cli/force.tune -o build/cli/forced"), 0, "%s", err);
    cr_expect_eq(count_text("build/cli/forced/lenet5.c", "avx2: tile MR=6 output channels x "
                            "NR=16 positions (from the tune file)"), 1);
    cr_assert_eq(cnnc(err, sizeof err, "build examples/lenet5.cnn --target avx2 "
                      "-o build/cli/unforced"), 0, "%s", err);
    cr_expect_eq(count_text("build/cli/unforced/lenet5.c", "MR=6 output channels x NR=16"), 0,
                 "the default already takes the forced tile: pick another");
    char y1[64], y2[64];
    snprintf(y1, sizeof y1, "build/cli/y1.%ld.f32", (long)getpid());
    snprintf(y2, sizeof y2, "build/cli/y2.%ld.f32", (long)getpid());
    snprintf(args, sizeof args, "run examples/lenet5.cnn --target avx2 --weights %s --input %s "
             "--output %s", W, X, y1);
    cr_assert_eq(cnnc(err, sizeof err, args), 0, "%s", err);
    snprintf(args, sizeof args, "run examples/lenet5.cnn --target avx2 --tune build/cli/force.tune "
             "--weights %s --input %s --output %s", W, X, y2);
    cr_assert_eq(cnnc(err, sizeof err, args), 0, "%s", err);
    size_t n1, n2;
    float *a = (float *)slurp(y1, &n1), *b = (float *)slurp(y2, &n2);
    cr_assert(a && b && n1 == 40 && n2 == 40);
    /* the same sums in another order: float rounding, relative to the largest */
    float big = 0.0f, diff = 0.0f;
    for (int i = 0; i < 10; i++) {
        big = fmaxf(big, fabsf(a[i]));
        diff = fmaxf(diff, fabsf(a[i] - b[i]));
    }
    cr_expect_leq(diff, 1e-5f * big, "outputs differ by %g (largest %g)", diff, big);
    free(a);
    free(b);
}

/* cnnc tune times the candidates of each size and writes a line per size,
 * which build --tune then applies to every convolution of that size. */
Test(cli, tune_writes_a_line_per_size_that_build_applies, .timeout = 300) {
    char err[8192];
    cr_assert_eq(cnnc(err, sizeof err, "tune tests/api/tune.cnn --target avx2 "
                      "-o build/cli/tune.tune"), 0, "%s", err);
    cr_expect(strstr(err, "3 direct convolutions of 2 sizes"), "got: %s", err);
    cr_expect(strstr(err, "conv1 and 1 more: 16x12x12 -> 16, 1x1/1: "), "got: %s", err);
    cr_expect(strstr(err, "wrote build/cli/tune.tune (2 lines, "), "got: %s", err);
    cr_expect_eq(count_lines_starting("build/cli/tune.tune", "avx2 16 12 12 16 1 1 1 1 1 1 "
                                      "0 0 0 0 1 "), 1);
    cr_expect_eq(count_lines_starting("build/cli/tune.tune", "avx2 16 12 12 24 3 3 2 2 1 1 "
                                      "1 1 1 1 1 "), 1);
    cr_expect_eq(count_lines_starting("build/cli/tune.tune", "avx"), 2);
    cr_assert_eq(cnnc(err, sizeof err, "build tests/api/tune.cnn --target avx2 "
                      "--tune build/cli/tune.tune -o build/cli/tuned"), 0, "%s", err);
    cr_expect_eq(count_text("build/cli/tuned/tune.c", "(from the tune file)"), 3);
}

/* ---- cnnc profile -------------------------------------------------------- */

/* A line a kernel: its layer, what it fused, the algorithm it took on the
 * vector target, a positive time; the shares add up to the whole (each
 * share is printed to 0.1%, so three lines round off at most 0.15%). */
Test(cli, profile_times_each_kernel_once, .timeout = 300) {
    char cmd[512], out[64];
    snprintf(out, sizeof out, "build/cli/profile.%ld.txt", (long)getpid());
    /* the sanitized compiler: it frees one compilation while it times */
    snprintf(cmd, sizeof cmd, "build/cnnc-san profile tests/api/tune.cnn --target avx2 "
             ">%s 2>/dev/null", out);
    cr_assert_eq(system(cmd), 0);
    cr_expect_eq(count_lines_starting(out, "conv1 "), 1);
    cr_expect_eq(count_lines_starting(out, "conv3 "), 1);
    cr_expect_eq(count_lines_starting(out, "relu"), 0, "a fused relu has a line of its own");
    cr_expect_eq(count_text(out, "conv 1x1 16 +relu "), 2);
    cr_expect_eq(count_text(out, "direct P MR="), 2);
    cr_expect_eq(count_text(out, "direct C MP="), 1, "conv3, 3x3/2 on 6x6, takes the C form");
    cr_expect_eq(count_lines_starting(out, "total: "), 1);
    size_t len;
    char *text = slurp(out, &len);
    cr_assert(text);
    double share = 0.0;
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "conv", 4))
            continue;
        char *pct = strchr(line, '%');
        cr_assert(pct, "no share on: %s", line);
        char *p = pct;
        while (p > line && p[-1] != ' ')
            p--;
        share += strtod(p, NULL);
        double ms = 0.0;
        cr_expect_eq(sscanf(strchr(line, ']') + 1, "%*f %lf", &ms), 1, "%s", line);
        cr_expect_gt(ms, 0.0, "%s", line);
        lines++;
    }
    free(text);
    cr_expect_eq(lines, 3);
    cr_expect(fabs(share - 100.0) < 0.2, "shares add up to %g%%", share);
}

/* --batch and --openmp: the build of `cnnc build --batch 8 --openmp`,
 * called with 8 samples on two threads. chain.c runs chainpool's three
 * convolutions a sample at a time (their outputs for 8 samples outgrow
 * L2), so they have one time together, on a line of the chain's own; the
 * kernels outside the chain (the dense layer) keep theirs. */
Test(cli, profile_times_a_batch_on_threads, .timeout = 300) {
    char cmd[512], out[64];
    snprintf(out, sizeof out, "build/cli/profile_batch.%ld.txt", (long)getpid());
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 build/cnnc-san profile tests/api/chainpool.cnn "
             "--target avx2 --batch 8 --openmp >%s 2>/dev/null", out);
    cr_assert_eq(system(cmd), 0);
    cr_expect_eq(count_text(out, " in chain "), 3, "conv1, conv2 and conv3 take no time alone");
    cr_expect_eq(count_lines_starting(out, "chain 1 "), 1);
    cr_expect_eq(count_text(out, "the 3 kernels above, a sample at a time"), 1);
    cr_expect_eq(count_lines_starting(out, "dense1 "), 1);
    cr_expect_eq(count_text(out, "total: "), 1);
    cr_expect_eq(count_text(out, "for 8 x "), 1, "the total counts 8 samples' work");
    cr_expect_eq(count_text(out, "2 threads (OpenMP)"), 1);
}
