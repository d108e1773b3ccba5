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
    cr_expect_eq(cnnc(err, sizeof err, "build examples/resnet18.cnn --no-fuse=bn,add,act,concat,pool,chain "
                      "--target avx2 -o build/cli/nf"), 0, "got: %s", err);
}
