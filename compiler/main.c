/* main.c — the `cnnc` command line. It parses the arguments, runs the
 * front end (front.c) and hands the typed graph to the command. The only
 * global state of the compiler is what this file parses. */
#include "ir.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef CNNC_VERSION
#define CNNC_VERSION "0.1.0"
#endif

static void usage(FILE *f) {
    fprintf(f,
"usage: cnnc COMMAND NET.cnn [options]\n"
"\n"
"cnnc is an ahead-of-time compiler for convolutional networks written in the\n"
".cnn language (dsl/LANGUAGE.md). It checks every shape, plans all memory\n"
"into one arena and writes one .c/.h pair that needs no library.\n"
"\n"
"commands:\n"
"  check NET.cnn      parse and shape-check; print diagnostics; exit 1 on error\n"
"  summary NET.cnn    per-layer table: output shape, learnable parameters,\n"
"                     multiply-accumulates and activation bytes; totals; arena\n"
"  dot NET.cnn        the network as a Graphviz drawing, on standard output\n"
"                     (render it with: cnnc dot NET.cnn | dot -Tpng -o net.png)\n"
"  graph NET.cnn      the typed graph as JSON: nodes, arguments, shapes and\n"
"                     the parameter tensors with their canonical offsets\n"
"  build NET.cnn -o DIR\n"
"                     write DIR/NAME.c and DIR/NAME.h (inference)\n"
"  run NET.cnn --weights P.f32 --input X.f32 [--input X2.f32 ...]\n"
"              --output Y.f32 [--output Y2.f32 ...]\n"
"                     compile the generated code with $CC (default cc) -O2,\n"
"                     run inference and write the outputs; the binary is\n"
"                     cached in $CNNC_CACHE (default ~/.cache/cnnc)\n"
"  grad NET.cnn --weights P.f32 --input X.f32 [...] --dout G.f32 [...]\n"
"               --output DP.f32\n"
"                     the gradient of sum(output * dout) with respect to the\n"
"                     canonical parameters, as training computes it (batch\n"
"                     statistics in bn, dropout off); --dout once per output;\n"
"                     --double computes it in double precision (the generated\n"
"                     C compiled with float defined as double), for checking\n"
"  tune NET.cnn -o NET.tune\n"
"                     time every register tile each direct convolution of\n"
"                     the network may take, one layer at a time on this\n"
"                     machine (each compiled with $CC -O2), and write the\n"
"                     fastest to NET.tune for build --tune; progress on\n"
"                     stderr (minutes for a large network)\n"
"  profile NET.cnn    time each kernel of one inference on this machine\n"
"                     (compiled with $CC -O2; one sample and one thread, or\n"
"                     --batch N samples and, with --openmp, OMP_NUM_THREADS\n"
"                     threads) and print a table: what it fuses, the\n"
"                     algorithm and tile it took, its time, GFLOP/s and share\n"
"                     of the whole; a chain of layers taken a sample at a\n"
"                     time (--batch over 1) is timed as a whole\n"
"  train NET.cnn [--data fashion-mnist] [--epochs N] [training options]\n"
"                     train the first output as logits (softmax cross-entropy\n"
"                     against integer labels); one line per epoch ending in\n"
"                     'test accuracy 0.XXXX'; a checkpoint after every epoch\n"
"\n"
"options:\n"
"  --network NAME     the network to compile when the file defines several\n"
"                     (default: the last one)\n"
"  -o DIR             build: where the generated pair goes; tune: the file\n"
"  --batch N          the most samples per call (NAME_BATCH); run: the batch\n"
"                     in the input files; profile: the samples a timed call\n"
"                     takes (default 1)\n"
"  --target T         avx2: x86-64 AVX2+FMA intrinsics (register-tiled\n"
"                     convolutions, dense layers); avx512: the same kernels\n"
"                     on AVX-512F's 16-float vectors; scalar: portable C99,\n"
"                     for any CPU and the reference; auto (default): the\n"
"                     widest of these this CPU runs\n"
"  --openmp           build: OpenMP pragmas in the kernels, the training ones\n"
"                     too with --train (compile the result with -fopenmp);\n"
"                     run, grad, train, profile: also compile with it (threads:\n"
"                     OMP_NUM_THREADS, default all cores)\n"
"  --tune FILE        build, run, grad, train, profile: the tiles cnnc tune\n"
"                     measured (convolutions it has no line for, and other\n"
"                     targets', keep the default tiles)\n"
"  --no-fuse          no fusion: every layer its own kernel\n"
"  --no-fuse=LIST     turn off some fusion passes, comma-separated: bn (batch\n"
"                     norm folded into conv/dense weights), add (residual sum\n"
"                     in the conv's epilogue), act (relu, relu6, leakyrelu\n"
"                     in the conv's or dense layer's epilogue), concat (a\n"
"                     conv writes its slice of a concat's output itself),\n"
"                     pool (a max pool taken by the conv before it: a 2x2\n"
"                     one in the Winograd or depthwise kernel's registers,\n"
"                     any other vector one by the direct, row-Winograd and\n"
"                     Winograd kernels after each chunk of their tiles),\n"
"                     chain (with\n"
"                     --batch over 1, runs of convolutions whose outputs\n"
"                     for the batch outgrow L2 take one sample at a time,\n"
"                     so what they pass each other stays in cache and the\n"
"                     arena holds one sample of it; with --openmp each\n"
"                     thread takes whole samples, in a slot of its own)\n"
"  --no-winograd      vector targets: direct kernels for 3x3 stride-1\n"
"                     convolutions too (by default the large ones use\n"
"                     Winograd's F(4x4,3x3) or F(2x2,3x3)) and for 7-wide\n"
"                     stride-2 ones (by default 1-D Winograd along rows)\n"
"  --weights P.f32    the canonical parameter vector (raw float32, DSL.md order)\n"
"  --embed            build: put the packed weights in the .c as a const array\n"
"  --train            build: also NAME_train_forward, NAME_backward and\n"
"                     NAME_param_table, for training with libcnnrt\n"
"  --input X.f32      run: one per network input, in declaration order;\n"
"                     batch x per-sample size floats, NCHW\n"
"  --output Y.f32     run: the outputs, in declaration order\n"
"\n"
"training options (cnnc train):\n"
"  --data D           fashion-mnist (default), mnist, or a directory holding\n"
"                     train-images-idx3-ubyte.gz and the other IDX files\n"
"  --train-images X.f32 --train-labels Y.i32 --test-images .. --test-labels ..\n"
"                     your own data: raw float32 samples (NCHW) and int32 labels\n"
"  --epochs N         passes over the training set (default 1)\n"
"  --batch B          samples per step (default 64); the code is built for it\n"
"  --optimizer O      sgd (default), adam or adamw\n"
"  --lr X             learning rate (default 0.01 for sgd, 0.001 for adam)\n"
"  --momentum M       sgd momentum (default 0.9); --nesterov for Nesterov's\n"
"  --weight-decay W   L2 penalty (sgd, adam) or decoupled decay (adamw)\n"
"  --schedule S       constant (default), step (--step-size N --gamma G) or\n"
"                     cosine, over the epochs\n"
"  --augment          random crops (padding 2) and horizontal flips\n"
"  --loss L           xent (default) or mse on one-hot labels\n"
"  --seed S           fixes initialisation, shuffling, augmentation, dropout\n"
"  --out W.f32        write the trained canonical weights here\n"
"  --checkpoint C     checkpoint after every epoch (default OUT.ckpt or\n"
"                     NAME.ckpt); Ctrl-C leaves the last one intact\n"
"  --resume C         continue exactly where checkpoint C left off\n"
"  --init W.f32       start from these weights (fine-tuning)\n"
"  --freeze L1,L2     keep these layers (names or block prefixes) fixed\n"
"  --log FILE.csv     one row per epoch: loss, accuracies, images/s, lr\n"
"  --limit N, --test-limit N   use only the first N samples\n"
"\n"
"  -h, --help         show this help\n"
"  --version          show the version\n"
"\n"
"layers:\n");
    for (int i = 0; i < layer_count(); i++) {
        const LayerInfo *li = layer_at(i);
        fprintf(f, "  %-14s %s\n", li->name, li->help);
    }
    fprintf(f, "\nexit status: 0 on success, 1 when the network or a file has an "
               "error, 2 on a usage error\n");
}

static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cnnc: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nrun 'cnnc --help' for usage\n");
    va_end(ap);
    return 2;
}

/* The options `cnnc train` hands to the trainer (runtime/trainer.c), and
 * whether each takes a value. */
static const struct {
    const char *name;
    bool value;
} train_options[] = {
    {"--data", true}, {"--train-images", true}, {"--train-labels", true},
    {"--test-images", true}, {"--test-labels", true}, {"--epochs", true},
    {"--lr", true}, {"--momentum", true}, {"--nesterov", false},
    {"--weight-decay", true}, {"--optimizer", true}, {"--schedule", true},
    {"--step-size", true}, {"--gamma", true}, {"--augment", false},
    {"--seed", true}, {"--resume", true}, {"--init", true}, {"--freeze", true},
    {"--out", true}, {"--checkpoint", true}, {"--log", true}, {"--loss", true},
    {"--limit", true}, {"--test-limit", true},
};

/* If argv[*i] is a training option, keeps it (and its value) for the
 * trainer; returns 1 if kept, 0 if not a training option, 2 on error. */
static int train_option(int argc, char **argv, int *i, CliOptions *o) {
    for (size_t k = 0; k < sizeof train_options / sizeof train_options[0]; k++) {
        if (strcmp(argv[*i], train_options[k].name))
            continue;
        if (o->ntrain_args + 2 > 64)
            return 2;
        o->train_args[o->ntrain_args++] = argv[*i];
        if (train_options[k].value) {
            if (*i + 1 >= argc)
                return 2;
            o->train_args[o->ntrain_args++] = argv[++*i];
        }
        return 1;
    }
    return 0;
}

/* "bn,act": the fusion passes to turn off. */
static bool parse_no_fuse(const char *list, FuseOptions *f) {
    char buf[64];
    /* an empty item (bn,,add or a trailing comma) is a typo, not a pass */
    if (strlen(list) >= sizeof buf || !*list || list[0] == ',' || strstr(list, ",,") ||
        list[strlen(list) - 1] == ',')
        return false;
    strcpy(buf, list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (!strcmp(tok, "bn"))
            f->no_bn = true;
        else if (!strcmp(tok, "add"))
            f->no_add = true;
        else if (!strcmp(tok, "act"))
            f->no_act = true;
        else if (!strcmp(tok, "concat"))
            f->no_concat = true;
        else if (!strcmp(tok, "pool"))
            f->no_pool = true;
        else if (!strcmp(tok, "chain"))
            f->no_chain = true;
        else
            return false;
    }
    return true;
}

/* The value of option argv[*i], which must exist. */
static const char *value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

static int parse_args(int argc, char **argv, CliOptions *o) {
    o->batch = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int rc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--version")) {
            printf("cnnc %s\n", CNNC_VERSION);
            exit(0);
        } else if (!strcmp(a, "--embed")) {
            o->embed = true;
        } else if (!strcmp(a, "--train")) {
            o->train = true;
        } else if (!strcmp(a, "--double")) {
            o->precision_double = true;
        } else if (!strcmp(a, "--openmp")) {
            o->openmp = true;
        } else if (!strcmp(a, "--no-fuse")) {
            o->fuse = (FuseOptions){.no_bn = true, .no_add = true, .no_act = true,
                                    .no_concat = true, .no_pool = true,
                                    .no_chain = true};
        } else if (!strcmp(a, "--no-winograd")) {
            o->no_winograd = true;
        } else if (!strncmp(a, "--no-fuse=", 10)) {
            if (!parse_no_fuse(a + 10, &o->fuse))
                return usage_error("--no-fuse= takes a comma-separated list of bn, "
                                   "add, act, concat, pool and chain, not '%s'", a + 10);
        } else if ((rc = train_option(argc, argv, &i, o)) != 0) {
            if (rc == 2)
                return usage_error("%s needs a value", a);
        } else if (!strcmp(a, "--network") || !strcmp(a, "-o") ||
                   !strcmp(a, "--batch") || !strcmp(a, "--target") ||
                   !strcmp(a, "--weights") || !strcmp(a, "--input") ||
                   !strcmp(a, "--output") || !strcmp(a, "--dout") ||
                   !strcmp(a, "--tune")) {
            if (!(v = value(argc, argv, &i)))
                return usage_error("%s needs a value", a);
            if (!strcmp(a, "--network")) {
                o->network = v;
            } else if (!strcmp(a, "-o")) {
                o->out_dir = v;
            } else if (!strcmp(a, "--batch")) {
                char *end;
                long b = strtol(v, &end, 10);
                if (*end || b < 1 || b > 1 << 20)
                    return usage_error("--batch needs a whole number from 1 to "
                                       "1048576, not '%s'", v);
                o->batch = (int)b;
                o->batch_given = true;
            } else if (!strcmp(a, "--target")) {
                if (strcmp(v, "auto") && strcmp(v, "scalar") && strcmp(v, "avx2") &&
                    strcmp(v, "avx512"))
                    return usage_error("target '%s' is not available; choose auto, "
                                       "scalar (portable C), avx2 or avx512", v);
                o->target = v;
            } else if (!strcmp(a, "--weights")) {
                o->weights = v;
            } else if (!strcmp(a, "--tune")) {
                o->tune_file = v;
            } else if (!strcmp(a, "--dout")) {
                if (o->ndouts == MAX_IO_FILES)
                    return usage_error("too many %s files (at most %d)", a, MAX_IO_FILES);
                o->douts[o->ndouts++] = v;
            } else if (!strcmp(a, "--input")) {
                if (o->ninputs == MAX_IO_FILES)
                    return usage_error("too many %s files (at most %d)", a, MAX_IO_FILES);
                o->inputs[o->ninputs++] = v;
            } else {
                if (o->noutputs == MAX_IO_FILES)
                    return usage_error("too many %s files (at most %d)", a, MAX_IO_FILES);
                o->outputs[o->noutputs++] = v;
            }
        } else if (!strncmp(a, "--network=", 10)) {
            o->network = a + 10;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option '%s'", a);
        } else if (!o->command) {
            o->command = a;
        } else if (!o->file) {
            o->file = a;
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
    }
    return 0;
}

/* "cnnc build net.cnn --batch 8" for the generated file's front matter.
 * Where the files went (-o DIR) is left out, so the same build gives the
 * same text wherever it is written. */
static const char *join_args(int argc, char **argv) {
    static char buf[1024];
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < argc && n < sizeof buf; i++) {
        if (!strcmp(argv[i], "-o")) {
            i++;
            continue;
        }
        const char *s = i == 0 ? "cnnc" : argv[i];
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? " " : "", s);
    }
    return buf;
}

int main(int argc, char **argv) {
    CliOptions o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    if (!o.command) {
        usage(stderr);
        return 2;
    }
    static const char *const commands[] = {"check", "summary", "dot", "graph",
                                           "build", "run", "grad", "train", "tune",
                                           "profile"};
    bool known = false;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        known |= !strcmp(o.command, commands[i]);
    if (!known)
        return usage_error("unknown command '%s'", o.command);
    if (!o.file)
        return usage_error("'%s' needs a .cnn file", o.command);
    if (o.ntrain_args && strcmp(o.command, "train"))
        return usage_error("%s is an option of 'cnnc train'", o.train_args[0]);
    o.command_line = join_args(argc, argv);

    Compilation c;
    rc = compile_front(&c, o.file, NULL, 0, o.network, stderr) ? 0 : 1;
    if (rc == 0) {
        if (!strcmp(o.command, "summary")) {
            print_summary(stdout, c.graph, c.plan, &c.arena);
        } else if (!strcmp(o.command, "dot")) {
            print_dot(stdout, c.graph, &c.arena);
        } else if (!strcmp(o.command, "graph")) {
            print_graph_json(stdout, c.graph, o.file);
        } else if (!strcmp(o.command, "build")) {
            rc = cmd_build(&c, &o);
        } else if (!strcmp(o.command, "run")) {
            rc = cmd_run(&c, &o);
        } else if (!strcmp(o.command, "grad")) {
            rc = cmd_grad(&c, &o);
        } else if (!strcmp(o.command, "train")) {
            rc = cmd_train(&c, &o);
        } else if (!strcmp(o.command, "tune")) {
            rc = cmd_tune(&c, &o);
        } else if (!strcmp(o.command, "profile")) {
            rc = cmd_profile(&c, &o);
        }
    }
    comp_free(&c);
    return rc;
}
