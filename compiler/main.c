/* main.c — the `cnnc` command line. It parses the arguments, runs the
 * front end (front.c) and hands the typed graph to the command. The only
 * global state of the compiler is what this file parses. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

#ifndef CNNC_VERSION
#define CNNC_VERSION "0.1.0"
#endif

typedef struct Options {
    const char *command;
    const char *file;
    const char *network;
} Options;

static void usage(FILE *f) {
    fprintf(f,
"usage: cnnc COMMAND NET.cnn [options]\n"
"\n"
"cnnc is an ahead-of-time compiler for convolutional networks written in the\n"
".cnn language (see dsl/LANGUAGE.md).\n"
"\n"
"commands:\n"
"  check NET.cnn      parse and shape-check; print diagnostics; exit 1 on error\n"
"  summary NET.cnn    per-layer table: output shape, learnable parameters,\n"
"                     multiply-accumulates and activation bytes, with totals\n"
"  dot NET.cnn        the network as a Graphviz drawing, on standard output\n"
"                     (render it with: cnnc dot NET.cnn | dot -Tpng -o net.png)\n"
"\n"
"options:\n"
"  --network NAME     the network to compile when the file defines several\n"
"                     (default: the last one)\n"
"  -h, --help         show this help\n"
"  --version          show the version\n"
"\n"
"layers:\n");
    for (int i = 0; i < layer_count(); i++) {
        const LayerInfo *li = layer_at(i);
        fprintf(f, "  %-14s %s\n", li->name, li->help);
    }
    fprintf(f, "\nexit status: 0 on success, 1 when the network has errors, "
               "2 on a usage error\n");
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "cnnc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nrun 'cnnc --help' for usage\n");
    return 2;
}

static int parse_args(int argc, char **argv, Options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--version")) {
            printf("cnnc %s\n", CNNC_VERSION);
            exit(0);
        } else if (!strcmp(a, "--network")) {
            if (++i == argc)
                return usage_error("%s needs a value", a);
            o->network = argv[i];
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

int main(int argc, char **argv) {
    Options o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    if (!o.command) {
        usage(stderr);
        return 2;
    }
    bool check = !strcmp(o.command, "check");
    bool summary = !strcmp(o.command, "summary");
    bool dot = !strcmp(o.command, "dot");
    if (!check && !summary && !dot)
        return usage_error("unknown command '%s'", o.command);
    if (!o.file)
        return usage_error("'%s' needs a .cnn file", o.command);

    Compilation c;
    bool ok = compile_front(&c, o.file, NULL, 0, o.network, stderr);
    if (ok && summary)
        print_summary(stdout, c.graph, &c.arena);
    if (ok && dot)
        print_dot(stdout, c.graph, &c.arena);
    comp_free(&c);
    return ok ? 0 : 1;
}
