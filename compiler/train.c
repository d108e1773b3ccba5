/* train.c — `cnnc train`: builds the network with its training code at the
 * chosen batch, writes a few lines that describe it to the runtime's
 * trainer (runtime/trainer.c), compiles the two with libcnnrt's sources for
 * this CPU, and runs it. The binary is cached like `cnnc run`'s. */
#include "ir.h"

#include <string.h>

/* The shim: CnnrtNetwork for this network, and main(). A network with
 * several outputs trains the first; the others get a zero gradient. */
static const char *shim_text(const Graph *g, Arena *a) {
    const char *N = g->name;
    const Node *in = g->inputs.items[0];
    Shape s = in->shape;
    const char *t = arena_printf(a,
"/* The training program of network %s: cnnc train's description of it for\n"
" * runtime/trainer.c. */\n"
"#include \"%s.h\"\n#include \"cnnrt_train.h\"\n\n", N, N);
    for (int i = 1; i < g->outputs.len; i++) {
        const char *o = g->output_names.items[i];
        t = arena_printf(a, "%sstatic float out_%s[%s_BATCH * %s_OUT_%s_SIZE];\n"
                            "static const float zero_%s[%s_BATCH * %s_OUT_%s_SIZE];\n",
                         t, o, N, N, o, o, N, N, o);
    }
    const char *extra_out = "", *extra_zero = "";
    for (int i = 1; i < g->outputs.len; i++) {
        const char *o = g->output_names.items[i];
        extra_out = arena_printf(a, "%sout_%s, ", extra_out, o);
        extra_zero = arena_printf(a, "%szero_%s, ", extra_zero, o);
    }
    return arena_printf(a, "%s\n"
"static int train_forward(float *params, const float *x, float *y, int batch,\n"
"                         void *arena, unsigned long long seed, int dropout) {\n"
"    return %s_train_forward(params, x, y, %sbatch, arena, seed, dropout);\n"
"}\n\n"
"static int backward(const float *params, const float *x, const float *dy,\n"
"                    float *grads, int batch, void *arena) {\n"
"    return %s_backward(params, x, dy, %sgrads, batch, arena);\n"
"}\n\n"
"static int forward(const float *packed, const float *x, float *y, int batch,\n"
"                   void *arena) {\n"
"    return %s_forward(packed, x, y, %sbatch, arena);\n"
"}\n\n"
"int main(int argc, char **argv) {\n"
"    static const CnnrtNetwork net = {\n"
"        \"%s\", %s_BATCH, %s_PARAM_COUNT, %s_PACKED_COUNT,\n"
"        %s_param_table, %s_PARAM_TENSORS,\n"
"        %s_TRAIN_ARENA_BYTES, %s_ARENA_BYTES,\n"
"        %lld, %lld, %lld, %s_OUTPUT_SIZE,\n"
"        train_forward, backward, %s_pack, forward,\n"
"    };\n"
"    return cnnrt_train_main(&net, argc, argv);\n"
"}\n", t, N, extra_out, N, extra_zero, N, extra_out, N, N, N, N, N, N, N, N,
        (long long)s.d[0], (long long)(s.rank == 3 ? s.d[1] : 1),
        (long long)(s.rank == 3 ? s.d[2] : 1), N, N);
}

int cmd_train(Compilation *c, const CliOptions *o) {
    Graph *g = c->graph;
    if (g->inputs.len != 1) {
        fprintf(stderr, "cnnc train: network '%s' has %d inputs; training takes "
                "networks with one input\n", g->name, g->inputs.len);
        return 1;
    }
    /* The network is built for the training batch (default 64). */
    int batch = o->batch_given ? o->batch : 64;
    BuildOptions b = {.batch = batch, .target = resolve_target(o->target),
                      .source_name = c->filename, .train = true, .openmp = o->openmp};
    if (!check_target_runs_here(b.target, "train"))
        return 2;
    if (o->tune_file && !(b.tune = tune_read(o->tune_file, &c->arena)))
        return 1;
    Generated *gen = emit_c(g, &b, &c->arena, &c->diags);
    if (!gen)
        return 1;
    HostProgram prog = {
        /* the trainer runs where it is built: tune for this CPU */
        .flags = {"-O3", "-march=native", "-std=c11", NULL, NULL},
        .link = {"-lz", "-lm", NULL},
    };
    if (o->openmp)   /* threads: OMP_NUM_THREADS, as the program runs */
        prog.flags[3] = "-fopenmp";
    add_file(&prog, arena_printf(&c->arena, "%s.c", g->name), gen->c_text);
    add_file(&prog, arena_printf(&c->arena, "%s.h", g->name), gen->h_text);
    add_file(&prog, "main.c", shim_text(g, &c->arena));
    add_runtime(&prog, true);
    fprintf(stderr, "cnnc train: compiling network '%s' with its training code "
            "(batch %d%s)\n", g->name, batch, o->openmp ? ", OpenMP" : "");
    const char *bin = build_cached(c, &prog);
    if (!bin)
        return 1;
    char **argv = arena_alloc(&c->arena, sizeof(char *) * (size_t)(o->ntrain_args + 4));
    int n = 0;
    argv[n++] = (char *)bin;
    argv[n++] = "--batch";
    argv[n++] = arena_printf(&c->arena, "%d", batch);
    for (int i = 0; i < o->ntrain_args; i++)
        argv[n++] = (char *)o->train_args[i];
    argv[n] = NULL;
    int rc = run_process(argv);
    if (rc < 0)
        fprintf(stderr, "cnnc train: the training program '%s' died\n", bin);
    return rc < 0 ? 1 : rc;
}
