/* profile.c — `cnnc profile`: where the time of one inference goes.
 *
 * It builds the network as `cnnc build` would (same target, fusion, tune
 * file), with the hooks `cnnc tune` uses: NAME_forward calls cnn_tick
 * after each kernel. The harness (tune.c) compiles it with $CC -O2, calls
 * it with one sample until it has run at least eight times and 0.3 s, and
 * keeps each kernel's fastest time. The table names what each kernel
 * computes (the layers fused into it, the algorithm and tile it took), its
 * multiply-adds and its share of the sum; a reader sees at once which
 * layers to look at. Times are one core's, batch 1.
 */
#include "emit.h"

#include <stdlib.h>

/* The algorithm a convolution's kernel takes on target t, as its comment
 * in the generated code names it; "" for other layers. */
static const char *kernel_of(Target t, const Node *n, Arena *a) {
    if (n->op != OP_CONV)
        return "";
    if (!simd_target(t))
        return "scalar loops";
    if (n->winograd)
        return arena_printf(a, "Winograd F(%dx%d,3x3)", n->winograd, n->winograd);
    if (n->rows_wino)
        return "1-D Winograd rows";
    if (dw_suits(t, n))
        return "depthwise";
    if (!simd_direct_conv(t, n))
        return "";
    return arena_printf(a, "direct %s",
                        tile_str(n->tile.mr ? n->tile : simd_default_tile(t, n), t, a));
}

/* "conv 3x3/1 p1 64 +bn +relu +add +maxpool": the layer and what its
 * kernel also does. */
static const char *what_of(const Graph *g, const Node *n, Arena *a) {
    const char *s = layer_describe(a, n);
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *m = g->nodes.items[i];
        if (m->fused_into == n)
            s = arena_printf(a, "%s +%s", s, m->op == OP_ADD ? "add" : m->layer->name);
    }
    if (n->pool)
        s = arena_printf(a, "%s +%s", s, layer_describe(a, n->pool));
    return s;
}

int cmd_profile(Compilation *c, const CliOptions *o) {
    if (o->openmp) {
        fprintf(stderr, "cnnc profile: times one thread; --openmp is not taken\n");
        return 2;
    }
    if (o->batch_given && o->batch != 1) {
        fprintf(stderr, "cnnc profile: times one sample a call; --batch is not taken\n");
        return 2;
    }
    Target t = resolve_target(o->target);
    if (!check_target_runs_here(t, "profile"))
        return 2;
    Arena *a = &c->arena;
    BuildOptions base = {.batch = 1, .target = t, .fuse = o->fuse,
                         .no_winograd = o->no_winograd, .source_name = c->filename};
    if (o->tune_file && !(base.tune = tune_read(o->tune_file, a)))
        return 1;
    /* the passes mark, in this graph, what each kernel fuses and takes */
    if (!emit_c(c->graph, &base, a, &c->diags))
        return 1;
    Graph *g = c->graph;
    const char *dir = timing_dir("profile", a);
    if (!dir)
        return 1;
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    fprintf(stderr, "cnnc profile: %s, target %s: compiling with %s -O2 and timing each "
            "kernel (its fastest of at least 8 calls)\n", g->name, target_name(t), cc);
    double *sec = arena_alloc(a, sizeof(double) * (size_t)(g->nodes.len + 1));
    bool ok = time_kernels(c, o->network, &base, dir, sec, a);
    timing_dir_remove(dir, g, a);
    if (!ok) {
        fprintf(stderr, "cnnc profile: the timed build failed (see the messages above)\n");
        return 1;
    }
    double total = 0.0;
    int64_t macs = 0;
    for (int i = 0; i < g->nodes.len; i++) {
        if (sec[i] >= 0)
            total += sec[i];
        macs += ((const Node *)g->nodes.items[i])->macs;
    }
    printf("%-28s %-40s %-14s %9s %9s %8s %6s  %s\n", "layer", "what the kernel computes",
           "output", "MMAC", "ms", "GFLOP/s", "share", "kernel");
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        if (sec[i] < 0)
            continue;
        /* the MACs of the layers whose work this kernel took */
        int64_t m = n->macs;
        for (int j = 0; j < g->nodes.len; j++) {
            const Node *f = g->nodes.items[j];
            if (f->fused_into == n || f == n->pool)
                m += f->macs;
        }
        const Node *shown = n->pool ? n->pool : n;
        char gf[32] = "";
        if (m && sec[i] > 0)
            snprintf(gf, sizeof gf, "%.1f", 2.0 * (double)m / sec[i] * 1e-9);
        printf("%-28s %-40s %-14s %9.2f %9.4f %8s %5.1f%%  %s\n", n->name, what_of(g, n, a),
               shape_str(a, shown->shape), (double)m * 1e-6, sec[i] * 1e3, gf,
               total > 0 ? 100.0 * sec[i] / total : 0.0, kernel_of(t, n, a));
    }
    printf("total: %.4f ms for %.1f MMAC (%.1f GFLOP/s), the sum of each kernel's fastest "
           "call\n", total * 1e3, (double)macs * 1e-6,
           total > 0 ? 2.0 * (double)macs / total * 1e-9 : 0.0);
    return 0;
}
