/* test_codegen.c — the code generator: generated/ is current, the emitted C
 * is clean under gcc and clang with -std=c99 -pedantic -Werror, inference
 * is freestanding, the C API works from a host program, and the memory
 * plan never overlaps two live tensors (examples and random graphs). */
#include "helpers.h"
#include "emit.h"

#include <dirent.h>
#include <sys/wait.h>
#include <sys/stat.h>

/* Runs a shell command; returns its exit status. */
static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The example names: the file stems of the .cnn files in examples/. */
static int example_names(char names[][64], int max) {
    DIR *d = opendir("examples");
    cr_assert(d, "run the tests from the repository root");
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) && n < max) {
        size_t len = strlen(ent->d_name);
        if (len > 4 && !strcmp(ent->d_name + len - 4, ".cnn") && len - 4 < 64) {
            memcpy(names[n], ent->d_name, len - 4);
            names[n][len - 4] = 0;
            n++;
        }
    }
    closedir(d);
    cr_assert_gt(n, 10, "expected the seed networks in examples/");
    return n;
}

static bool same_file(const char *a, const char *b) {
    size_t la, lb;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    bool same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

/* Builds examples/NAME.cnn with `target` into build/regen/DIR and expects
 * every file to equal generated/DIR's (the commands of `make regen`). */
static void expect_current(const char *nm, const char *target, const char *dir) {
    cr_assert_eq(sh("./cnnc build examples/%s.cnn --target %s -o build/regen/%s", nm,
                    target, dir), 0);
    /* the network inside may be named differently from the file */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls build/regen/%s", dir);
    FILE *p = popen(cmd, "r");
    char file[256];
    int files = 0;
    while (fscanf(p, "%255s", file) == 1) {
        char fresh[512], kept[512];
        snprintf(fresh, sizeof fresh, "build/regen/%s/%s", dir, file);
        snprintf(kept, sizeof kept, "generated/%s/%s", dir, file);
        cr_expect(same_file(fresh, kept),
                  "%s differs from what the compiler writes now; run 'make regen'", kept);
        files++;
    }
    pclose(p);
    cr_expect_eq(files, 2, "build/regen/%s should hold NAME.c and NAME.h", dir);
}

Test(codegen, generated_dir_is_current, .timeout = 120) {
    char names[64][64];
    int n = example_names(names, 64);
    for (int i = 0; i < n; i++)
        expect_current(names[i], "avx2", names[i]);
    expect_current("lenet5", "scalar", "scalar/lenet5");
    expect_current("resnet18", "scalar", "scalar/resnet18");
    expect_current("resnet18", "avx2 --batch 8", "batch8/resnet18");   /* chain.c's loop */
}

Test(codegen, emitted_c_is_clean_with_gcc_and_clang, .timeout = 300) {
    char names[64][64];
    int n = example_names(names, 64);
    const char *compilers[] = {"gcc", "clang"};
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < n; i++)
            cr_expect_eq(sh("cd generated/%s && %s -std=c99 -Wall -Wextra -Werror "
                            "-pedantic -O1 -c *.c -o /dev/null", names[i], compilers[c]),
                         0, "%s rejects or warns about generated/%s", compilers[c],
                         names[i]);
}

/* generated/ shows the avx2 inference code; the avx512 kernels (other
 * shuffles, Winograd's four-row tiles) and the training code with OpenMP
 * must be as clean. A few examples that reach every kernel form. */
Test(codegen, avx512_and_training_code_is_clean, .timeout = 300) {
    const char *names[] = {"resnet18", "googlenet", "mobilenetv2", "mnist"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(sh("./cnnc build examples/%s.cnn --target avx512 --train --openmp "
                        "-o build/clean512/%s", names[i], names[i]), 0);
        cr_expect_eq(sh("cd build/clean512/%s && gcc -fopenmp -std=c99 -Wall -Wextra -Werror "
                        "-pedantic -O1 -I../../../runtime -c *.c -o /dev/null", names[i]),
                     0, "gcc rejects or warns about the avx512 training code of %s", names[i]);
    }
}

/* Small networks at the edges of what the emitter meets, each of which
 * once made C that gcc refused or warned about. Names the user chooses
 * become C identifiers: an input that is also an output gets a copy
 * kernel, and the network's name prefixes the API; they clashed with the
 * arena parameter, the cnn_exp helper, NAME_forward itself, and (network
 * conv1) the training kernel conv1_backward with the API's. Networks with
 * no weights or no layers left training's `grads` or `A` unused; so did an
 * input no layer reads (in_z), and batch norm on an input its `count`. A
 * concat whose first input a convolution wrote in place was passed the
 * output twice, to two restrict parameters. A 1x1 max pool left the vector
 * max helper unused. */
Test(codegen, unusual_networks_give_clean_c, .timeout = 300) {
    const char *nets[] = {
        "network n {\n input arena: [3]\n output arena\n}\n",
        "network n {\n input cnn_exp: [3]\n y = cnn_exp -> sigmoid\n output y, cnn_exp\n}\n",
        "network n {\n input n_forward: [3]\n output n_forward\n}\n",
        "network conv1 {\n input x: [3, 8, 8]\n y = x -> conv(4, 3, pad=1) -> dense(3)\n"
        " output y\n}\n",
        "network relu1 {\n input x: [4]\n y = x -> relu -> dense(2) -> relu\n output y\n}\n",
        "network n {\n input x: [3]\n output x\n}\n",
        "network n {\n input x: [3]\n input z: [3]\n y = x -> dense(2)\n output y\n}\n",
        "network n {\n input x: [3, 4, 4]\n y = x -> bn -> dense(2)\n output y\n}\n",
        "network n {\n input x: [3, 16, 16]\n a = x -> conv(4, 1)\n y = concat(a, x)\n"
        " output y\n}\n",
        "network n {\n input x: [3, 4, 4]\n y = x -> maxpool(1)\n output y\n}\n",
    };
    const char *flags[] = {"--target scalar", "--target avx2", "--target avx512 --openmp"};
    sh("mkdir -p build/names");
    for (int i = 0; i < (int)(sizeof nets / sizeof nets[0]); i++) {
        char path[64];
        snprintf(path, sizeof path, "build/names/net%d.cnn", i);
        FILE *f = fopen(path, "w");
        cr_assert(f);
        fputs(nets[i], f);
        fclose(f);
        for (int k = 0; k < 3; k++) {
            cr_assert_eq(sh("rm -rf build/names/out && ./cnnc build %s %s --train "
                            "-o build/names/out", path, flags[k]), 0, "%s", nets[i]);
            cr_expect_eq(sh("cd build/names/out && gcc -fopenmp -std=c99 -Wall -Wextra -Werror "
                            "-pedantic -O1 -I../../../runtime -c *.c -o /dev/null"),
                         0, "gcc rejects the code of (%s):\n%s", flags[k], nets[i]);
        }
    }
}

/* A path may hold any byte: in the generated C it sits in comments (where
 * a star-slash would end one early and a slash-star warns), in `cnnc graph`
 * inside JSON strings (where a quote or backslash must be escaped). */
Test(codegen, odd_paths_stay_inside_comments_and_strings, .timeout = 60) {
    cr_assert_eq(sh("rm -rf 'build/paths' && mkdir -p 'build/paths/a*/b/*c/q\"r\\s' && "
                    "printf 'network n {\\n input x: [3, 8, 8]\\n y = x -> conv(4, 3) -> "
                    "dense(5)\\n output y\\n}\\n' > 'build/paths/a*/b/*c/q\"r\\s/t.cnn'"), 0);
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(sh("./cnnc build 'build/paths/a*/b/*c/q\"r\\s/t.cnn' -o build/paths/out "
                        "--target %s", k ? "avx2" : "scalar"), 0);
        cr_expect_eq(sh("gcc -std=c99 -Wall -Wextra -Werror -pedantic -O1 -c build/paths/out/n.c "
                        "-o /dev/null"), 0, "the path broke a comment (target %s)",
                     k ? "avx2" : "scalar");
    }
    cr_assert_eq(sh("./cnnc graph 'build/paths/a*/b/*c/q\"r\\s/t.cnn' > build/paths/g.json"), 0);
    /* the path read back from the JSON names the file */
    cr_expect_eq(sh("/usr/bin/python3 -c 'import json, os; "
                    "d = json.load(open(\"build/paths/g.json\")); "
                    "assert os.path.isfile(d[\"nodes\"][1][\"loc\"].rsplit(\":\", 2)[0])'"),
                 0, "cnnc graph's JSON is not valid or loses the path");
}

/* How many times `needle` occurs in file `path`. */
static int count_in(const char *path, const char *needle) {
    size_t len;
    char *text = slurp(path, &len);
    cr_assert(text, "cannot read %s", path);
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    free(text);
    return n;
}

/* The conformance cases written for a kernel get that kernel (writing the
 * code needs no AVX-512 CPU): on AVX-512 7x7 outputs of 1x1 layers take the
 * MP=7 x MR=48 tile, and depthwise rows of 20 and 24 outputs, which 8-wide
 * vectors cover with fewer lanes, take AVX2's vectors, and an even channel
 * multiplier takes tiles of two output channels, and a 1x1 layer on a 14x14
 * plane takes vectors of positions, as does a 1x1 stride-2 layer whose
 * outputs fill them (both targets); on AVX2 7x7 outputs take the MP=5 x
 * MR=16 tile. */
Test(codegen, cases_get_their_kernels, .timeout = 60) {
    struct { const char *target, *shape, *layer, *needle; } cases[] = {
        {"avx512", "256, 7, 7", "conv(96, 1, bias=false) -> relu", "tile MP=7 positions x MR=48"},
        {"avx512", "64, 14, 14", "conv(48, 1, stride=2)", "tile MP=7 positions x MR=48"},
        {"avx512", "8, 6, 20", "conv(8, 3, pad=1, groups=8, bias=false) -> relu6", "8-wide vectors"},
        {"avx512", "8, 7, 48", "conv(8, 3, stride=2, pad=1, groups=8)", "8-wide vectors"},
        {"avx512", "144, 4, 32", "conv(144, 3, pad=1, groups=144)", "avx512: depthwise"},
        {"avx512", "2, 12, 28", "conv(8, 3, pad=1, groups=2) -> relu -> maxpool(2)",
         "two output channels"},
        {"avx512", "3, 11, 40", "conv(6, 3, stride=2, pad=1, groups=3) -> relu6",
         "two output channels"},
        {"avx512", "512, 14, 14", "conv(128, 1) -> relu", "tile MR=12 output channels x NR=32"},
        {"avx512", "96, 28, 28", "conv(128, 1, stride=2) -> relu",
         "tile MR=12 output channels x NR=32"},
        {"avx2", "96, 28, 28", "conv(128, 1, stride=2) -> relu",
         "tile MR=6 output channels x NR=16"},
        {"avx2", "256, 7, 7", "conv(96, 1, bias=false) -> relu", "tile MP=5 positions x MR=16"},
        {"avx2", "64, 14, 14", "conv(48, 1, stride=2)", "tile MP=5 positions x MR=16"},
        {"avx2", "32, 14, 14", "conv(40, 3, stride=2, pad=1)", "tile MP=5 positions x MR=16"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        FILE *f = fopen("build/case_kernel.cnn", "w");
        cr_assert(f);
        fprintf(f, "network t {\n    input x: [%s]\n    y = x -> %s\n    output y\n}\n",
                cases[i].shape, cases[i].layer);
        fclose(f);
        cr_assert_eq(sh("./cnnc build build/case_kernel.cnn --target %s -o build/case_kernel",
                        cases[i].target), 0);
        cr_expect_eq(count_in("build/case_kernel/t.c", cases[i].needle), 1,
                     "%s: [%s] -> %s: no \"%s\"", cases[i].target, cases[i].shape,
                     cases[i].layer, cases[i].needle);
    }
}

/* Each fusion pass removes the kernels of what it fuses, and says so in the
 * comment of the kernel that took the work; turned off, they come back. */
Test(codegen, each_fusion_pass_moves_its_layers_into_the_conv, .timeout = 60) {
    const char *f = "build/fuse/resnet18.c";
    cr_assert_eq(sh("./cnnc build examples/resnet18.cnn --target avx2 -o build/fuse"), 0);
    cr_expect_eq(count_in(f, "void basic1_bn1("), 0, "bn1 should be folded");
    cr_expect_eq(count_in(f, "void basic1_add1("), 0, "add1 should be in conv2's epilogue");
    cr_expect_eq(count_in(f, "void basic1_relu2("), 0, "relu2 should be in conv2's epilogue");
    cr_expect_eq(count_in(f, "basic1.bn2 folded into the weights; then + maxpool1 "
                             "(basic1.add1); then basic1.relu2"), 1);
    /* conv2 -> bn2 -> + -> relu2: an unfused batch norm between them keeps
     * the sum and the activation out of the convolution as well, and an
     * unfused sum keeps the activation after it out */
    const char *passes[] = {"bn", "add", "act"};
    const char *kernels[] = {"void basic1_bn1(", "void basic1_add1(", "void basic1_relu2("};
    const int present[3][3] = {{1, 1, 1}, {0, 1, 1}, {0, 0, 1}};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(sh("./cnnc build examples/resnet18.cnn --target avx2 --no-fuse=%s "
                        "-o build/fuse", passes[i]), 0);
        for (int k = 0; k < 3; k++)
            cr_expect_eq(count_in(f, kernels[k]), present[i][k], "--no-fuse=%s: %s",
                         passes[i], kernels[k]);
    }
}

/* fuse_concat.c: each of GoogLeNet's nine inception modules ends in four
 * convolutions that store into their slices of the concat's output, so the
 * concat has no kernel; --no-fuse=concat brings the copies back. */
Test(codegen, concat_slices_are_written_by_their_convolutions, .timeout = 60) {
    const char *f = "build/concat/googlenet.c";
    cr_assert_eq(sh("./cnnc build examples/googlenet.cnn --target avx2 -o build/concat"), 0);
    cr_expect_eq(count_in(f, "_concat1("), 0, "no concat kernel is left");
    cr_expect_eq(count_in(f, "which copies nothing"), 36);
    cr_expect_eq(count_in(f, "stores into channels 64..191 of inception1.concat1"), 1);
    cr_assert_eq(sh("./cnnc build examples/googlenet.cnn --target avx2 --no-fuse=concat "
                    "-o build/concat"), 0);
    cr_expect_eq(count_in(f, "_concat1("), 18, "nine kernels and nine calls");
    cr_expect_eq(count_in(f, "which copies nothing"), 0);
}

/* NAME_ARENA_BYTES from a generated header. */
static long long arena_bytes(const char *header, const char *name) {
    size_t len;
    char *text = slurp(header, &len);
    cr_assert(text, "cannot read %s", header);
    char key[128];
    snprintf(key, sizeof key, "#define %s_ARENA_BYTES ", name);
    const char *at = strstr(text, key);
    cr_assert(at, "%s has no %s", header, key);
    long long v = atoll(at + strlen(key));
    free(text);
    return v;
}

/* chain.c: at batch 8, ResNet-18's convolutions and first pool take a
 * sample at a time, in one loop, and the arena holds one sample of what
 * they pass each other; at batch 1, with --no-fuse=chain, and for LeNet-5,
 * whose layers' outputs for 64 samples fit in L2, there is no such loop.
 * With OpenMP the loop's samples go to the threads, each in its own slot. */
Test(codegen, chains_take_a_sample_at_a_time, .timeout = 60) {
    const char *f = "build/chain/resnet18.c", *h = "build/chain/resnet18.h";
    const char *loop = "a sample at a time (chain.c)";
    cr_assert_eq(sh("./cnnc build examples/resnet18.cnn --target avx2 --batch 8 -o build/chain"), 0);
    cr_expect_eq(count_in(f, loop), 1);
    cr_expect_eq(count_in(f, "        conv1(in_img + (ptrdiff_t)b * 150528, "), 1,
                 "the first convolution reads sample b of the input");
    cr_expect_eq(count_in(f, "slot"), 0, "one slot without OpenMP");
    cr_expect_eq(sh("gcc -std=c99 -Wall -Wextra -Werror -pedantic -O1 -c %s -o /dev/null", f), 0);
    long long chained = arena_bytes(h, "resnet18");
    cr_assert_eq(sh("./cnnc build examples/resnet18.cnn --target avx2 --batch 8 "
                    "--no-fuse=chain -o build/chain"), 0);
    cr_expect_eq(count_in(f, loop), 0);
    long long layered = arena_bytes(h, "resnet18");
    cr_expect_lt(chained * 4, layered, "arena %lld with chains, %lld without", chained, layered);
    cr_assert_eq(sh("./cnnc build examples/resnet18.cnn --target avx2 -o build/chain"), 0);
    cr_expect_eq(count_in(f, loop), 0, "nothing to chain at batch 1");
    cr_assert_eq(sh("./cnnc build examples/lenet5.cnn --target avx2 --batch 64 -o build/chain"),
                 0);
    cr_expect_eq(count_in("build/chain/lenet5.c", loop), 0, "LeNet-5 fits in L2 layer by layer");
    cr_assert_eq(sh("./cnnc build examples/resnet18.cnn --target avx2 --openmp --batch 8 "
                    "-o build/chain"), 0);
    cr_expect_eq(count_in(f, loop), 1);
    cr_expect_eq(count_in(f, "    const int slot = omp_get_thread_num();"), 1);
    cr_expect_eq(count_in(f, "        conv1(in_img + (ptrdiff_t)b * 150528, "), 2,
                 "the chain's calls are written twice: one sample, several");
    cr_expect_gt(count_in(f, "(ptrdiff_t)slot * "), 40, "the chain's buffers in the thread's slot");
    cr_expect_eq(sh("gcc -std=c99 -Wall -Wextra -Werror -pedantic -fopenmp -O1 -c %s "
                    "-o /dev/null", f), 0);
}

/* OpenMP pragmas appear with --openmp and only then. */
Test(codegen, openmp_pragmas_only_when_asked, .timeout = 60) {
    cr_assert_eq(sh("./cnnc build examples/lenet5.cnn --target avx2 -o build/omp"), 0);
    cr_expect_eq(count_in("build/omp/lenet5.c", "#pragma omp"), 0);
    cr_assert_eq(sh("./cnnc build examples/lenet5.cnn --target avx2 --openmp -o build/omp"), 0);
    cr_expect_gt(count_in("build/omp/lenet5.c", "#pragma omp parallel for"), 2);
}

/* The number of OpenMP parallel regions in a C file that open inside
 * another one's text. libgomp starts fresh threads for such a region at
 * every call, even when the outer one is inactive (160 us a region on this
 * machine against 2.5 us), so the emitter never writes one. A region is
 * the statement after its pragma: a braced block or loop ends where the
 * brace depth comes back, a one-line loop at its first semicolon. */
static int nested_parallel_regions(const char *path) {
    size_t len;
    char *text = slurp(path, &len);
    cr_assert(text, "cannot read %s", path);
    int depth = 0, nested = 0, region = -1;   /* region: its depth, -1 outside */
    bool pending = false, in_comment = false, entered = false;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *t = line + strspn(line, " ");
        if (!strncmp(t, "#pragma omp parallel", 20)) {
            if (region >= 0 || pending)
                nested++;
            else
                pending = true;
            continue;
        }
        if (*t == '#')
            continue;
        char last = 0;
        for (char *c = t; *c; c++) {
            if (in_comment) {
                if (c[0] == '*' && c[1] == '/')
                    in_comment = false, c++;
                continue;
            }
            if (c[0] == '/' && c[1] == '*') {
                in_comment = true;
                c++;
                continue;
            }
            if (*c == '{')
                depth++;
            if (*c == '}')
                depth--;
            if (*c != ' ')
                last = *c;
        }
        if (pending && last) {
            pending = false;
            region = depth - (last == '{');
            entered = depth > region;
            if (!entered && last == ';')
                region = -1;   /* a one-line statement */
            continue;
        }
        if (region >= 0) {
            entered |= depth > region;
            if ((entered && depth <= region) || (!entered && last == ';'))
                region = -1;
        }
    }
    free(text);
    return nested;
}

/* No parallel region inside another, in any example at any batch, on any
 * target (scalar, avx2, avx512), inference and training. The scanner finds
 * the nesting the emitter wrote before (a kernel's own loops inside the
 * loop over samples). */
Test(codegen, openmp_regions_never_nest, .timeout = 300) {
    char names[64][64];
    int n = example_names(names, 64);
    const char *targets[] = {"scalar", "avx2", "avx512"};
    const char *extra[] = {"", "--batch 4", "--batch 4 --train"};
    for (int i = 0; i < n; i++)
        for (int t = 0; t < 3; t++) {
            const char *flags = extra[(i + t) % 3];
            cr_assert_eq(sh("./cnnc build examples/%s.cnn --target %s --openmp %s "
                            "-o build/nest/%s >/dev/null", names[i], targets[t], flags,
                            names[i]), 0);
            char cmd[256], path[512], file[256];
            snprintf(cmd, sizeof cmd, "ls build/nest/%s/*.c", names[i]);
            FILE *p = popen(cmd, "r");
            cr_assert(fscanf(p, "%255s", file) == 1);
            pclose(p);
            snprintf(path, sizeof path, "%s", file);
            cr_expect_eq(nested_parallel_regions(path), 0, "%s --target %s %s", names[i],
                         targets[t], flags);
            cr_assert_eq(sh("rm -r build/nest/%s", names[i]), 0);
        }
    /* the scanner sees nesting where there is some */
    FILE *f = fopen("build/nest.c", "w");
    fputs("void k(float *y, int batch) {\n"
          "    #pragma omp parallel for if(batch > 1)\n"
          "    for (int b = 0; b < batch; b++) {\n"
          "        #pragma omp parallel for\n"
          "        for (int i = 0; i < 9; i++)\n"
          "            y[i] += 1.0f;\n"
          "    }\n"
          "    #pragma omp parallel for\n"
          "    for (int i = 0; i < 9; i++)\n"
          "        y[i] += 1.0f;\n"
          "    #pragma omp parallel\n"
          "    {\n"
          "        y[0] = 0.0f;\n"
          "    }\n"
          "}\n", f);
    fclose(f);
    cr_expect_eq(nested_parallel_regions("build/nest.c"), 1);
}

/* clang cannot compile vector kernels inside OpenMP regions unless the
 * whole file has the instruction set: the generated file says so in one
 * line instead of a page of ABI errors, and compiles with the flags it
 * names. */
Test(codegen, clang_openmp_asks_for_the_isa_flags, .timeout = 120) {
    cr_assert_eq(sh("./cnnc build examples/mnist.cnn --target avx2 --openmp -o build/clomp"), 0);
    cr_expect_neq(sh("clang -std=c99 -fopenmp -c build/clomp/mnist.c -o /dev/null "
                     "2>build/clomp/err.txt"), 0);
    cr_expect_eq(count_in("build/clomp/err.txt", "error: \"with clang and -fopenmp"), 1);
    cr_expect_eq(count_in("build/clomp/err.txt", "changes the ABI"), 0);
    cr_expect_eq(sh("clang -std=c99 -Wall -Wextra -Werror -pedantic -fopenmp -mavx2 -mfma "
                    "-c build/clomp/mnist.c -o /dev/null"), 0);
    cr_expect_eq(sh("gcc -std=c99 -Wall -Wextra -Werror -pedantic -fopenmp "
                    "-c build/clomp/mnist.c -o /dev/null"), 0);
}

/* The LeNet-5 inference code needs nothing: built freestanding without any
 * library, its only undefined symbols may be memcpy and memset. */
Test(codegen, lenet5_is_freestanding, .timeout = 60) {
    cr_assert_eq(sh("mkdir -p build/free && gcc -std=c99 -O2 -ffreestanding -nostdlib "
                    "-c generated/lenet5/lenet5.c -o build/free/lenet5.o"), 0);
    FILE *p = popen("nm -u build/free/lenet5.o", "r");
    char line[256];
    int others = 0;
    while (fgets(line, sizeof line, p)) {
        char kind[8], sym[200];
        if (sscanf(line, "%7s %199s", kind, sym) == 2 && strcmp(sym, "memcpy") &&
            strcmp(sym, "memset")) {
            cr_log_error("undefined symbol %s", sym);
            others++;
        }
    }
    cr_expect_eq(pclose(p), 0);
    cr_expect_eq(others, 0);
}

/* A host program uses the API of a network with two inputs and outputs. */
Test(codegen, c_api_with_two_inputs_and_outputs, .timeout = 60) {
    cr_assert_eq(sh("./cnnc build tests/api/two.cnn --batch 2 -o build/api"), 0);
    cr_assert_eq(sh("cc -std=c99 -Wall -Wextra -Werror -pedantic -Ibuild/api "
                    "tests/api/two_main.c build/api/two.c -o build/api/two_main"), 0);
    cr_expect_eq(sh("./build/api/two_main"), 0);
}

/* --embed: forward(NULL) uses the embedded weights, which must equal what
 * NAME_pack makes of the same file: the same outputs to the bit. */
static void expect_embedded_equal_packed(const char *cnn, const char *nm, const char *target,
                                         int params) {
    cr_assert_eq(sh("mkdir -p build/embed"), 0);
    FILE *f = fopen("build/embed/w.f32", "wb");
    unsigned s = 12345;
    for (int i = 0; i < params; i++) {
        s = s * 1103515245u + 12345u;
        /* positive, so that a batch norm's variance is too */
        float v = (float)(s >> 8) / 16777216.0f * 0.4f + 0.05f;
        fwrite(&v, 4, 1, f);
    }
    fclose(f);
    cr_assert_eq(sh("./cnnc build %s --target %s --weights build/embed/w.f32 --embed "
                    "-o build/embed", cnn, target), 0);
    f = fopen("build/embed/main.c", "w");
    fprintf(f, "#include <stdio.h>\n#include <stdlib.h>\n#include \"%s.h\"\n"
            "#define N(x) %s_##x\n"
            "int main(void) {\n"
            "    static float params[N(PARAM_COUNT)], packed[N(PACKED_COUNT)];\n"
            "    static float x[N(INPUT_SIZE)], y1[N(OUTPUT_SIZE)], y2[N(OUTPUT_SIZE)];\n"
            "    static _Alignas(64) unsigned char arena[N(ARENA_BYTES)];\n"
            "    FILE *f = fopen(\"build/embed/w.f32\", \"rb\");\n"
            "    if (fread(params, 4, N(PARAM_COUNT), f) != N(PARAM_COUNT)) return 3;\n"
            "    fclose(f);\n"
            "    for (int i = 0; i < N(INPUT_SIZE); i++) x[i] = (float)(i %% 7) - 3.0f;\n"
            "    N(pack)(params, packed);\n"
            "    if (N(forward)(packed, x, y1, 1, arena)) return 4;\n"
            "    if (N(forward)(NULL, x, y2, 1, arena)) return 5;\n"
            "    for (int i = 0; i < N(OUTPUT_SIZE); i++) if (y1[i] != y2[i]) return 6;\n"
            "    return 0;\n}\n", nm, nm);
    fclose(f);
    cr_assert_eq(sh("cc -std=c11 -O1 -Ibuild/embed build/embed/main.c build/embed/%s.c "
                    "-o build/embed/main", nm), 0);
    cr_expect_eq(sh("./build/embed/main"), 0, "%s, --target %s", cnn, target);
}

Test(codegen, embedded_weights_equal_packed_ones, .timeout = 60) {
    expect_embedded_equal_packed("examples/lenet5.cnn", "lenet5", "scalar", 61706);
    expect_embedded_equal_packed("examples/lenet5.cnn", "lenet5", "avx2", 61706);
    /* Winograd's transformed weights, a batch norm folded in first */
    expect_embedded_equal_packed("tests/api/wino.cnn", "wino", "avx2", 3456 + 96 + 2170);
}

/* Winograd computes the large 3x3 stride-1 layers on the vector targets,
 * none with --no-winograd; with --train their training forward pass too
 * (packed at each step) and the input gradients whose shape suits it. */
Test(codegen, winograd_where_it_pays_and_only_then, .timeout = 60) {
    const char *f = "build/wino/resnet18.c";
    cr_assert_eq(sh("./cnnc build examples/resnet18.cnn --target avx2 -o build/wino"), 0);
    int wino = count_in(f, "Winograd F(2x2,3x3)"), wino4 = count_in(f, "Winograd F(4x4,3x3)");
    cr_expect_gt(wino + wino4, 10, "the 3x3 stride-1 layers of resnet18");
    cr_expect_eq(count_in(f, "cnn_pack_wino(params"), wino);
    cr_expect_eq(count_in(f, "cnn_pack_wino4(params"), wino4);
    cr_expect_eq(count_in(f, "Winograd F(4x4,3x3), 14x14 tiles of 4x4 outputs"), 4,
                 "the four 64-channel 56x56 layers");
    cr_expect_eq(count_in(f, "Winograd F(2x2,3x3), 4x4 tiles of 2x2 outputs"), 3,
                 "the three 512-channel 7x7 layers");
    cr_assert_eq(sh("./cnnc build examples/resnet18.cnn --target avx2 --train -o build/wino"), 0);
    cr_expect_eq(count_in(f, "cnn_pack_wino(params"), 2 * wino,
                 "inference's packing and the training forward pass's");
    cr_expect_eq(count_in(f, "cnn_pack_wino4(params"), 2 * wino4);
    cr_expect_eq(count_in(f, "cnn_pack_wino4(s + "), wino4,
                 "the input gradients of the F(4x4) layers (full 3x3 convolutions of dy)");
    cr_expect_eq(count_in(f, "cnn_pack_wino(s + "), 0,
                 "the 7x7 layers' input gradients (9x9) stay direct");
    cr_assert_eq(sh("./cnnc build examples/resnet18.cnn --target avx2 --no-winograd --train "
                    "-o build/wino"), 0);
    cr_expect_eq(count_in(f, "Winograd"), 0);
    cr_expect_eq(count_in(f, "cnn_pack_wino"), 0);
    cr_assert_eq(sh("./cnnc build examples/resnet18.cnn --target scalar -o build/wino"), 0);
    cr_expect_eq(count_in(f, "Winograd"), 0);
}

/* A dense layer whose weights outgrow L2 walks its rows the other way at
 * every call, by a flag it keeps in the arena: the outputs must not change
 * with the direction, nor with whatever the arena held before. With OpenMP
 * each thread owns the same rows at every call (its L2 keeps them); two and
 * three threads, uneven shares, must give the same bits as one. */
Test(codegen, dense_direction_never_changes_results, .timeout = 120) {
    cr_assert_eq(sh("./cnnc build examples/mnist.cnn --target avx2 -o build/turn"), 0);
    cr_assert_eq(count_in("build/turn/mnist.c", "float *restrict state"), 1);
    cr_assert_eq(sh("./cnnc build examples/mnist.cnn --target avx2 --openmp -o build/turn/omp"), 0);
    /* main.c apart from both builds: #include "mnist.h" looks beside it first */
    cr_assert_eq(sh("mkdir -p build/turn/run"), 0);
    FILE *f = fopen("build/turn/run/main.c", "w");
    fputs("#include <stdio.h>\n#include <string.h>\n#include \"mnist.h\"\n"
          "static float params[mnist_PARAM_COUNT], packed[mnist_PACKED_COUNT];\n"
          "static _Alignas(64) unsigned char arena[mnist_ARENA_BYTES];\n"
          "int main(int argc, char **argv) {\n"
          "    float x[mnist_INPUT_SIZE], first[10], y[10];\n"
          "    unsigned s = 7;\n"
          "    if (argc != 2)\n"
          "        return 1;\n"
          "    for (int i = 0; i < mnist_PARAM_COUNT; i++) {\n"
          "        s = s * 1103515245u + 12345u;\n"
          "        params[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.1f;\n"
          "    }\n"
          "    for (int i = 0; i < mnist_INPUT_SIZE; i++) x[i] = (float)(i % 11) / 11.0f;\n"
          "    mnist_pack(params, packed);\n"
          "    if (mnist_forward(packed, x, first, 1, arena)) return 2;\n"
          "    for (int call = 0; call < 4; call++) {\n"
          "        if (call == 2) memset(arena, 0xff, sizeof arena); /* NaNs */\n"
          "        if (mnist_forward(packed, x, y, 1, arena)) return 3;\n"
          "        if (memcmp(first, y, sizeof y)) return 4;\n"
          "    }\n"
          "    FILE *out = fopen(argv[1], \"wb\");\n"
          "    return out && fwrite(first, sizeof first, 1, out) == 1 && !fclose(out) ? 0 : 5;\n"
          "}\n", f);
    fclose(f);
    cr_assert_eq(sh("cc -std=c11 -O1 -Ibuild/turn build/turn/run/main.c build/turn/mnist.c "
                    "-o build/turn/main"), 0);
    cr_assert_eq(sh("cc -std=c11 -O1 -fopenmp -Ibuild/turn/omp build/turn/run/main.c "
                    "build/turn/omp/mnist.c -o build/turn/main_omp"), 0);
    cr_expect_eq(sh("./build/turn/main build/turn/y1"), 0);
    cr_expect_eq(sh("OMP_NUM_THREADS=2 ./build/turn/main_omp build/turn/y2"), 0);
    cr_expect_eq(sh("OMP_NUM_THREADS=3 ./build/turn/main_omp build/turn/y3"), 0);
    cr_expect_eq(sh("cmp -s build/turn/y1 build/turn/y2 && cmp -s build/turn/y1 build/turn/y3"), 0,
                 "one, two and three threads disagree");
}

/* The vector dense kernels take whole tiles of samples (6 on AVX2, 8 on
 * AVX-512) against a panel of units, and the samples left over one at a
 * time against four panels; each output's sum is taken in the same order
 * either way, so a sample's outputs must have the same bits alone and in a
 * batch of 9 (a tile and leftovers on both targets), on each vector target
 * this CPU runs. */
Test(codegen, dense_sample_alone_or_in_a_tile_gives_the_same_bits, .timeout = 120) {
    const char *targets[] = {"avx2", "avx512"};
    const bool runs[] = {__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"),
                         __builtin_cpu_supports("avx512f")};
    cr_assert(runs[0], "this suite needs a CPU with AVX2 and FMA");
    cr_assert_eq(sh("mkdir -p build/rows/run"), 0);
    FILE *f = fopen("build/rows/run/main.c", "w");
    cr_assert(f);
    fputs("#include <string.h>\n#include \"mnist.h\"\n"
          "static float params[mnist_PARAM_COUNT], packed[mnist_PACKED_COUNT];\n"
          "static _Alignas(64) unsigned char arena[mnist_ARENA_BYTES];\n"
          "static float x[9 * mnist_INPUT_SIZE], one[10], nine[90];\n"
          "int main(void) {\n"
          "    unsigned s = 11;\n"
          "    for (int i = 0; i < mnist_PARAM_COUNT; i++) {\n"
          "        s = s * 1103515245u + 12345u;\n"
          "        params[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.1f;\n"
          "    }\n"
          "    for (int i = 0; i < 9 * mnist_INPUT_SIZE; i++) x[i] = (float)(i % 13) / 13.0f;\n"
          "    mnist_pack(params, packed);\n"
          "    if (mnist_forward(packed, x, nine, 9, arena)) return 2;\n"
          "    for (int b = 0; b < 9; b++) {\n"
          "        if (mnist_forward(packed, x + b * mnist_INPUT_SIZE, one, 1, arena)) return 3;\n"
          "        if (memcmp(one, nine + 10 * b, sizeof one)) return 4 + b;\n"
          "    }\n"
          "    return 0;\n"
          "}\n", f);
    fclose(f);
    for (int i = 0; i < 2; i++) {
        if (!runs[i]) {
            cr_log_warn("--target %s left out: this CPU lacks it", targets[i]);
            continue;
        }
        cr_assert_eq(sh("./cnnc build examples/mnist.cnn --target %s --batch 9 -o build/rows/%s",
                        targets[i], targets[i]), 0);
        char code[64];
        snprintf(code, sizeof code, "build/rows/%s/mnist.c", targets[i]);
        cr_assert_eq(count_in(code, "G panels at once for one sample"), 2);   /* both layers */
        cr_assert_eq(sh("cc -std=c11 -O1 -Ibuild/rows/%s build/rows/run/main.c "
                        "build/rows/%s/mnist.c -o build/rows/%s/main", targets[i], targets[i],
                        targets[i]), 0);
        cr_expect_eq(sh("./build/rows/%s/main", targets[i]), 0,
                     "%s: a sample alone and in a batch of 9 disagree", targets[i]);
    }
}

/* chain.c with OpenMP: each thread takes whole samples through the chain
 * in a slot of its own. A slot shared by two threads, or a sample's
 * buffers read from the wrong slot, would change outputs; so one, two and
 * three threads (uneven shares, dynamic order) must give the bits of the
 * build without OpenMP, for 48 different samples, twice in a row. */
Test(codegen, openmp_chains_give_the_serial_bits, .timeout = 120) {
    const char *loop = "a sample at a time (chain.c)";
    cr_assert_eq(sh("./cnnc build examples/mnist.cnn --target avx2 --batch 48 -o build/slots"), 0);
    cr_assert_eq(sh("./cnnc build examples/mnist.cnn --target avx2 --batch 48 --openmp "
                    "-o build/slots/omp"), 0);
    cr_expect_eq(count_in("build/slots/mnist.c", loop), 1);
    cr_expect_eq(count_in("build/slots/omp/mnist.c", loop), 1);
    /* main.c apart from both builds: #include "mnist.h" looks beside it first */
    cr_assert_eq(sh("mkdir -p build/slots/run"), 0);
    FILE *f = fopen("build/slots/run/main.c", "w");
    cr_assert(f);
    fputs("#include <stdio.h>\n#include <string.h>\n#include \"mnist.h\"\n"
          "enum { B = 48 };\n"
          "static float params[mnist_PARAM_COUNT], packed[mnist_PACKED_COUNT];\n"
          "static float x[B * mnist_INPUT_SIZE], first[B * 10], y[B * 10];\n"
          "static _Alignas(64) unsigned char arena[mnist_ARENA_BYTES];\n"
          "int main(int argc, char **argv) {\n"
          "    unsigned s = 11;\n"
          "    if (argc != 2)\n"
          "        return 1;\n"
          "    for (int i = 0; i < mnist_PARAM_COUNT; i++) {\n"
          "        s = s * 1103515245u + 12345u;\n"
          "        params[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.1f;\n"
          "    }\n"
          "    for (int i = 0; i < B * mnist_INPUT_SIZE; i++) {\n"
          "        s = s * 1103515245u + 12345u;\n"
          "        x[i] = (float)(s >> 8) / 16777216.0f;\n"
          "    }\n"
          "    mnist_pack(params, packed);\n"
          "    if (mnist_forward(packed, x, first, B, arena)) return 2;\n"
          "    if (mnist_forward(packed, x, y, B, arena)) return 3;\n"
          "    if (memcmp(first, y, sizeof y)) return 4;\n"
          "    FILE *out = fopen(argv[1], \"wb\");\n"
          "    return out && fwrite(first, sizeof first, 1, out) == 1 && !fclose(out) ? 0 : 5;\n"
          "}\n", f);
    fclose(f);
    cr_assert_eq(sh("cc -std=c11 -O1 -Ibuild/slots build/slots/run/main.c build/slots/mnist.c "
                    "-o build/slots/run/serial"), 0);
    cr_assert_eq(sh("cc -std=c11 -O1 -fopenmp -Ibuild/slots/omp build/slots/run/main.c "
                    "build/slots/omp/mnist.c -o build/slots/main_omp"), 0);
    cr_expect_eq(sh("./build/slots/run/serial build/slots/y0"), 0);
    for (int t = 1; t <= 3; t++) {
        cr_expect_eq(sh("OMP_NUM_THREADS=%d ./build/slots/main_omp build/slots/y%d", t, t), 0);
        cr_expect_eq(sh("cmp -s build/slots/y0 build/slots/y%d", t), 0,
                     "%d threads disagree with the serial build", t);
    }
}

/* The two pool tests' steps. Whether this CPU runs vector target i of
 * {"avx2", "avx512"} (AVX2 it must have). */
static const char *const POOL_TARGETS[] = {"avx2", "avx512"};
static bool pool_target_runs(int i) {
    bool runs = i == 0 ? __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                       : __builtin_cpu_supports("avx512f");
    cr_assert(runs || i > 0, "this suite needs a CPU with AVX2 and FMA");
    if (!runs)
        cr_log_warn("--target %s left out: this CPU lacks it", POOL_TARGETS[i]);
    return runs;
}

/* tests/api/NAME.cnn built for target i, its pools fused or not, into
 * build/NAME/TARGET[-apart]/ (the .c's path into `code`). */
static void build_pool_case(const char *name, int i, bool fused, char *code, size_t size) {
    snprintf(code, size, "build/%s/%s%s/%s.c", name, POOL_TARGETS[i], fused ? "" : "-apart",
             name);
    cr_assert_eq(sh("./cnnc build tests/api/%s.cnn --target %s %s -o build/%s/%s%s", name,
                    POOL_TARGETS[i], fused ? "" : "--no-fuse=pool", name, POOL_TARGETS[i],
                    fused ? "" : "-apart"), 0);
}

/* Compiles that build with tests/api/NAME_main.c (and `cflags`), runs it
 * into build/NAME/TARGET[-apart].bin; after both, the two must match. */
static void run_pool_case(const char *name, int i, bool fused, const char *cflags) {
    const char *t = POOL_TARGETS[i], *apart = fused ? "" : "-apart";
    cr_assert_eq(sh("cc -std=c11 -O1 %s -Ibuild/%s/%s%s tests/api/%s_main.c "
                    "build/%s/%s%s/%s.c -o build/%s/%s%s/main && "
                    "./build/%s/%s%s/main > build/%s/%s%s.bin", cflags, name, t, apart, name,
                    name, t, apart, name, name, t, apart, name, t, apart, name, t, apart), 0);
    if (fused)
        cr_expect_eq(sh("cmp build/%s/%s.bin build/%s/%s-apart.bin", name, t, name, t), 0,
                     "%s: fused and apart differ", t);
}

/* fuse_pool.c: a max pool taken in the convolution's registers (depthwise
 * and Winograd F(2x2) and F(4x4) kernels) gives the bits of the two layers
 * apart (the convolution's sums are the same; the maxima follow the
 * pooling kernel's rule for ties, signed zeros and NaN payloads), on each
 * vector target this CPU runs. */
Test(codegen, pool_in_conv_matches_the_two_layers_bit_for_bit, .timeout = 120) {
    for (int i = 0; i < 2; i++) {
        if (!pool_target_runs(i))
            continue;
        for (int fused = 0; fused < 2; fused++) {
            char code[96];
            build_pool_case("poolconv", i, fused, code, sizeof code);
            cr_expect_eq(count_in(code, "then the 2x2 max pool"), fused ? 4 : 0);
            cr_expect_eq(count_in(code, ": Winograd F(2x2,3x3)"), 1, "v is not on F(2x2)");
            cr_expect_eq(count_in(code, ": Winograd F(4x4,3x3)"), 1, "w is not on F(4x4)");
            run_pool_case("poolconv", i, fused, "");
        }
    }
}

/* pool_bands.c: a max pool that a direct kernel, the row Winograd or
 * Winograd takes after each chunk of its tiles (positions or channel
 * blocks outermost, bands of tile rows, a residual sum in the epilogue)
 * gives the bits of the two layers apart, on each vector target this CPU
 * runs; the fused build runs under AddressSanitizer and UBSan, the chunks'
 * buffers being smaller than the convolutions' outputs. */
Test(codegen, pool_in_bands_matches_the_two_layers_bit_for_bit, .timeout = 180) {
    for (int i = 0; i < 2; i++) {
        if (!pool_target_runs(i))
            continue;
        for (int fused = 0; fused < 2; fused++) {
            char code[96];
            build_pool_case("poolbands", i, fused, code, sizeof code);
            cr_expect_eq(count_in(code, ", taken by conv"), fused ? 7 : 0);
            cr_expect_eq(count_in(code, "rows of each channel at a time"), fused ? 4 : 0,
                         "a, b, d and f do not keep a chunk's rows");
            cr_expect_eq(count_in(code, "band ch of BR tile rows is chunk ch"), fused ? 2 : 0,
                         "f and g do not pool after each Winograd band");
            cr_expect_eq(count_in(code, "then the 2x2 max pool"), 0,
                         "g's pool went into Winograd's registers despite its residual sum");
            cr_expect_eq(count_in(code, " channels at a time"), fused ? 1 : 0,
                         "c does not keep a chunk's channels");
            cr_expect_eq(count_in(code, "static const int span[3]"), fused ? 2 : 0,
                         "a and d are not in three chunks");
            cr_expect_eq(count_in(code, ": 1-D Winograd along rows"), 1, "d left the rows");
            cr_expect_eq(count_in(code, ": Winograd F(4x4,3x3)"), 2, "f or g left Winograd");
            run_pool_case("poolbands", i, fused,
                          fused ? "-fsanitize=address,undefined -fno-sanitize-recover=all" : "");
        }
    }
}

/* pool_bands.c inside chain.c's runs (tests/api/chainpool.cnn): built for 8
 * samples with --openmp, called with 8 and then with one sample (whose
 * layers share their loops among the threads, the pools' padded rows
 * included: one buffer a sample in a chain, so Winograd's pool after each
 * band stays on one thread), at one to three threads, the bits of the
 * serial build. */
Test(codegen, pools_in_bands_in_chains_give_the_serial_bits, .timeout = 180) {
    for (int i = 0; i < 2; i++) {
        if (!pool_target_runs(i))
            continue;
        const char *t = POOL_TARGETS[i];
        cr_assert_eq(sh("./cnnc build tests/api/chainpool.cnn --target %s --batch 8 "
                        "-o build/chainpool/%s && ./cnnc build tests/api/chainpool.cnn "
                        "--target %s --batch 8 --openmp -o build/chainpool/%s-omp", t, t, t, t),
                     0);
        char code[64];
        snprintf(code, sizeof code, "build/chainpool/%s-omp/chainpool.c", t);
        cr_expect_eq(count_in(code, "a sample at a time (chain.c)"), 1);
        cr_expect_eq(count_in(code, ", taken by conv"), 3, "conv1, conv2 and conv3 take their pools");
        /* twice: the kernel's body for a lone sample and for whole samples */
        cr_expect_eq(count_in(code, "band ch of BR tile rows is chunk ch"), 2,
                     "conv2 (Winograd) does not take its pool after each band");
        cr_assert_eq(sh("cc -std=c11 -O1 -Ibuild/chainpool/%s tests/api/chainpool_main.c "
                        "build/chainpool/%s/chainpool.c -o build/chainpool/%s/main && "
                        "./build/chainpool/%s/main build/chainpool/%s.bin", t, t, t, t, t), 0);
        cr_assert_eq(sh("cc -std=c11 -O1 -fopenmp -Ibuild/chainpool/%s-omp "
                        "tests/api/chainpool_main.c build/chainpool/%s-omp/chainpool.c "
                        "-o build/chainpool/%s-omp/main", t, t, t), 0);
        for (int threads = 1; threads <= 3; threads++) {
            cr_expect_eq(sh("OMP_NUM_THREADS=%d ./build/chainpool/%s-omp/main "
                            "build/chainpool/%s-omp.bin && cmp -s build/chainpool/%s.bin "
                            "build/chainpool/%s-omp.bin", threads, t, t, t, t), 0,
                         "%s: %d threads disagree with the serial build", t, threads);
        }
    }
}

/* The vector max pooling kernels take the scalar kernel's steps in its
 * order: the same bits on ties, signed zeros and NaN payloads, in every
 * form (tests/api/pools.cnn). Targets this CPU lacks are left out. */
Test(codegen, vector_max_pooling_matches_scalar_bit_for_bit, .timeout = 120) {
    const char *targets[] = {"scalar", "avx2", "avx512"};
    const bool runs[] = {true, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"),
                         __builtin_cpu_supports("avx512f")};
    for (int i = 0; i < 3; i++) {
        if (!runs[i]) {
            cr_log_warn("--target %s left out: this CPU lacks it", targets[i]);
            continue;
        }
        cr_assert_eq(sh("./cnnc build tests/api/pools.cnn --target %s -o build/pools/%s "
                        "2>/dev/null", targets[i], targets[i]), 0);
        cr_assert_eq(sh("cc -std=c11 -O1 -Ibuild/pools/%s tests/api/pools_main.c "
                        "build/pools/%s/pools.c -o build/pools/%s/main && "
                        "./build/pools/%s/main > build/pools/%s.bin", targets[i], targets[i],
                        targets[i], targets[i], targets[i]), 0);
        if (i > 0)
            cr_expect_eq(sh("cmp build/pools/scalar.bin build/pools/%s.bin", targets[i]), 0,
                         "%s differs from scalar", targets[i]);
    }
}

/* ---- the memory plan ------------------------------------------------------ */

/* chain.c: a buffer of one sample is only a chain's, and a buffer of the
 * whole batch that a chain writes or reads is live through all of it
 * (every sample's pass). */
static void expect_sound_chains(const Graph *g, const Plan *p, const char *what) {
    for (int first = 0; first < g->nodes.len; first++) {
        int c = ((const Node *)g->nodes.items[first])->chain, last = first;
        if (!c || (first > 0 && ((const Node *)g->nodes.items[first - 1])->chain == c))
            continue;
        while (last + 1 < g->nodes.len && ((const Node *)g->nodes.items[last + 1])->chain == c)
            last++;
        for (int k = 0; k < p->buffers.len; k++) {
            const Buffer *b = p->buffers.items[k];
            if (b->first > last || b->last < first)
                continue;
            if (b->one_sample)
                cr_expect(b->first >= first && b->last <= last, "%s: the buffer of %s holds "
                          "one sample but outlives chain %d", what, b->owner->name, c);
            else
                cr_expect(b->first <= first && b->last >= last, "%s: the buffer of %s is "
                          "not live through chain %d", what, b->owner->name, c);
        }
    }
    for (int k = 0; k < p->buffers.len; k++) {
        const Buffer *b = p->buffers.items[k];
        cr_expect(!b->one_sample || b->owner->chain, "%s: %s holds one sample outside "
                  "any chain", what, b->owner->name);
    }
}

static void expect_sound_plan_once(Graph *g, Arena *a, int batch, const char *what) {
    Diags d;
    FILE *null = fopen("/dev/null", "w");
    diags_init(&d, a, "t.cnn", NULL, 0, null);
    Plan *p = plan_memory(g, batch, scalar_scratch, a, &d);
    fclose(null);
    cr_assert(p, "%s: no plan", what);
    const char *bad = plan_verify(g, p, a);
    cr_expect(bad == NULL, "%s at batch %d: %s", what, batch, bad ? bad : "");
    cr_expect_geq(p->arena_bytes, p->lower_bound, "%s: arena below the lower bound", what);
    cr_expect_leq(p->arena_bytes, p->no_reuse_bytes, "%s: arena above no reuse", what);
    expect_sound_chains(g, p, what);
    /* every node that writes memory has a home that is a buffer, an input or
     * an output of the network */
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        cr_expect(n->home != NULL, "%s: %s has no home", what, n->name);
        cr_expect(n->buf || n->home->op == OP_INPUT || n->home->is_output,
                  "%s: %s has no storage", what, n->name);
        /* a slice of a concat (fuse_concat.c) lives in the concat's bytes,
         * which are live from its write on */
        if (n->slice_of) {
            cr_expect(n->home == n->slice_of && n->buf == n->slice_of->buf,
                      "%s: %s is not in its concat", what, n->name);
            cr_expect(!n->buf || (n->buf->first <= n->id && n->buf->last >= n->slice_of->id),
                      "%s: %s is written while its concat's bytes are free", what, n->name);
            cr_expect(n->home_at + shape_elems(n->shape) <= shape_elems(n->slice_of->shape),
                      "%s: %s reaches past its concat", what, n->name);
        }
    }
}

/* The plan before fusion (as `cnnc check` and `summary` make it) and after
 * every pass (as `cnnc build` makes it). */
static void expect_sound_plan(Graph *g, Arena *a, int batch, const char *what) {
    expect_sound_plan_once(g, a, batch, what);
    fuse_graph(g, &(FuseOptions){0}, a);
    expect_sound_plan_once(g, a, batch, what);
    chain_samples(g, &(BuildOptions){.batch = batch, .target = TARGET_AVX2});
    expect_sound_plan_once(g, a, batch, what);
    fuse_graph(g, &(FuseOptions){.no_bn = true, .no_add = true, .no_act = true,
                                 .no_concat = true}, a);
}

Test(plan, examples_never_overlap_live_tensors, .timeout = 60) {
    char names[64][64];
    int n = example_names(names, 64);
    for (int i = 0; i < n; i++) {
        char path[128];
        snprintf(path, sizeof path, "examples/%s.cnn", names[i]);
        size_t len;
        char *src = slurp(path, &len);
        FrontResult r = {0};
        front_run(&r, path, src, len, NULL);
        cr_assert(r.ok, "%s: %s", path, r.diags);
        expect_sound_plan(r.c.graph, &r.c.arena, 1, path);
        expect_sound_plan(r.c.graph, &r.c.arena, 3, path);
        front_done(&r);
        free(src);
    }
}

/* A random network: same-size feature maps, so any two tensors of equal
 * channels can be added and any two concatenated. Every value is used:
 * what nothing else reads becomes an output. */
static char *random_network(unsigned *seed) {
    enum { MAXT = 40 };
    int channels[MAXT], used[MAXT] = {0}, nt = 1;
    size_t cap = 1 << 15, len = 0;
    char *s = malloc(cap);
#define OUT(...) (len += (size_t)snprintf(s + len, cap - len, __VA_ARGS__))
#define RAND(k) ((int)((*seed = *seed * 1103515245u + 12345u) >> 16) % (k))
    channels[0] = 1 + RAND(4);
    OUT("network r {\n    input t0: [%d, 6, 6]\n", channels[0]);
    int steps = 3 + RAND(25);
    for (int i = 0; i < steps && nt < MAXT; i++) {
        int a = RAND(nt), b = RAND(nt);
        switch (RAND(6)) {
        case 0: {
            int c = 1 + RAND(6);
            OUT("    t%d = t%d -> conv(%d, 3, pad=1)\n", nt, a, c);
            channels[nt] = c;
            break;
        }
        case 1:
            OUT("    t%d = t%d -> relu\n", nt, a);
            channels[nt] = channels[a];
            break;
        case 2:
            if (channels[a] != channels[b])
                continue;
            OUT("    t%d = t%d + t%d\n", nt, a, b);
            used[b] = 1;
            channels[nt] = channels[a];
            break;
        case 3:
            OUT("    t%d = concat(t%d, t%d)\n", nt, a, b);
            used[b] = 1;
            channels[nt] = channels[a] + channels[b];
            break;
        case 4:
            OUT("    t%d = t%d -> maxpool(3, stride=1, pad=1) -> bn\n", nt, a);
            channels[nt] = channels[a];
            break;
        default:
            OUT("    t%d = t%d -> sigmoid -> dropout(0.1)\n", nt, a);
            channels[nt] = channels[a];
            break;
        }
        used[a] = 1;
        nt++;
    }
    OUT("    output");
    int outs = 0;
    for (int i = 0; i < nt; i++)
        if (!used[i] || i == nt - 1) {
            if (i == 0 && nt > 1 && used[0])
                continue;
            OUT("%s t%d", outs++ ? "," : "", i);
        }
    OUT("\n}\n");
#undef OUT
#undef RAND
    return s;
}

Test(plan, random_graphs_never_overlap_live_tensors, .timeout = 120) {
    unsigned seed = 2026;
    for (int i = 0; i < 300; i++) {
        char *src = random_network(&seed);
        FrontResult r = {0};
        front_run(&r, "random.cnn", src, strlen(src), NULL);
        cr_assert(r.ok, "random network %d does not compile:\n%s\n%s", i, src, r.diags);
        expect_sound_plan(r.c.graph, &r.c.arena, 1 + i % 3, src);
        front_done(&r);
        free(src);
    }
}

/* Training on the vector targets: a convolution's weight gradient runs in
 * vectors of output channels where it has enough input rows (the MNIST
 * network's conv2: 288), dot products where it has few (conv1: 9), and the
 * max pools that inference fuses into conv1 and conv2 run as the vector
 * pool kernel in training's forward pass. */
Test(codegen, training_takes_the_vector_paths, .timeout = 60) {
    const char *f = "build/trainvec/mnist.c";
    for (int t = 0; t < 2; t++) {
        cr_assert_eq(sh("./cnnc build examples/mnist.cnn --train --target %s -o build/trainvec",
                        t ? "avx2" : "avx512"), 0);
        cr_expect_eq(count_in(f, "weight gradient in vectors of output channels"), 1,
                     "conv2 only (%s)", t ? "avx2" : "avx512");
        cr_expect_eq(count_in(f, "cnn_dot4x3("), 2, "conv1's dot products and the helper");
        cr_expect_eq(count_in(f, "scalar loops, unfused, canonical weights"), 3,
                     "the three relus only: no scalar pool in the training forward pass");
    }
}
