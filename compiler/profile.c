/* profile.c — `cnnc profile`: where the time of one inference goes.
 *
 * It builds the network as `cnnc build` would (same target, fusion, tune
 * file), with the hooks `cnnc tune` uses: NAME_forward calls cnn_tick
 * after each kernel. The harness (tune.c) compiles it with $CC -O2, calls
 * it with one sample until it has run at least eight times and 0.3 s, and
 * keeps each kernel's fastest time. The table names what each kernel
 * computes (the layers fused into it, the algorithm and tile it took), its
 * multiply-adds and its share of the sum; a reader sees at once which
 * layers to look at. By default the build is for one sample, timed on
 * one thread. With --batch N it is the build for N samples called with N
 * (GFLOP/s count them all) and with --openmp it is compiled with -fopenmp
 * and runs on OMP_NUM_THREADS threads: the tool for seeing which kernels
 * scale. A chain (chain.c) runs its members a sample at a time, on several
 * threads at once, so it ticks once after its loop: its members' lines say
 * "in chain" and a line of its own carries its time.
 */
#define _DEFAULT_SOURCE   /* sysconf(_SC_NPROCESSORS_ONLN) */
#include "emit.h"

#include <stdlib.h>
#include <unistd.h>

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

/* The threads an OpenMP build will use: OMP_NUM_THREADS, else the CPUs. */
static int omp_threads(void) {
    const char *s = getenv("OMP_NUM_THREADS");
    if (s && atoi(s) > 0)
        return atoi(s);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? (int)cpus : 1;
}

/* The multiply-adds of one sample that node n's kernel takes: its own and
 * those of the layers fused into it. */
static int64_t kernel_macs(const Graph *g, const Node *n) {
    int64_t m = n->macs;
    for (int j = 0; j < g->nodes.len; j++) {
        const Node *f = g->nodes.items[j];
        if (f->fused_into == n || f == n->pool)
            m += f->macs;
    }
    return m;
}

static void print_row(const char *name, const char *what, const char *shape, int64_t macs,
                      int batch, double sec, double total, const char *kernel) {
    char ms[32] = "in chain", gf[32] = "", share[32] = "";
    if (sec >= 0) {
        snprintf(ms, sizeof ms, "%.4f", sec * 1e3);
        snprintf(share, sizeof share, "%.1f%%", total > 0 ? 100.0 * sec / total : 0.0);
        if (macs && sec > 0)
            snprintf(gf, sizeof gf, "%.1f", 2.0 * (double)macs * batch / sec * 1e-9);
    }
    printf("%-28s %-40s %-14s %9.2f %9s %8s %6s  %s\n", name, what, shape,
           (double)macs * 1e-6, ms, gf, share, kernel);
}

int cmd_profile(Compilation *c, const CliOptions *o) {
    int batch = o->batch_given ? o->batch : 1;
    Target t = resolve_target(o->target);
    if (!check_target_runs_here(t, "profile"))
        return 2;
    Arena *a = &c->arena;
    BuildOptions base = {.batch = batch, .target = t, .fuse = o->fuse, .openmp = o->openmp,
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
    int nt = omp_threads();
    const char *threads = o->openmp ? arena_printf(a, "%d thread%s (OpenMP)", nt,
                                                   nt == 1 ? "" : "s")
                                    : "one thread";
    fprintf(stderr, "cnnc profile: %s, target %s, batch %d, %s: compiling with %s -O2%s and "
            "timing each kernel (its fastest of at least 8 calls)\n", g->name, target_name(t),
            batch, threads, cc, o->openmp ? " -fopenmp" : "");
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
    int64_t chain_macs = 0;   /* of the chain being listed, one sample */
    int chain_kernels = 0;
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        /* a chain's kernels run inside its loop over the samples, so only
         * the chain as a whole is timed (chain.c) */
        bool in_chain = n->chain && chain_member(n);
        if (sec[i] < 0 && !in_chain)
            continue;
        const Node *shown = n->pool ? n->pool : n;
        int64_t m = kernel_macs(g, n);
        print_row(n->name, what_of(g, n, a), shape_str(a, shown->shape), m, batch,
                  in_chain ? -1.0 : sec[i], total, kernel_of(t, n, a));
        if (!in_chain)
            continue;
        chain_macs += m;
        chain_kernels++;
        if (sec[i] >= 0) {   /* the chain's last member holds its time */
            print_row(arena_printf(a, "chain %d", n->chain),
                      arena_printf(a, "the %d kernels above, a sample at a time",
                                   chain_kernels),
                      "", chain_macs, batch, sec[i], total, "");
            chain_macs = 0;
            chain_kernels = 0;
        }
    }
    printf("total: %.4f ms for %d x %.1f MMAC (%.1f GFLOP/s), %s, the sum of each kernel's "
           "fastest call\n", total * 1e3, batch, (double)macs * 1e-6,
           total > 0 ? 2.0 * (double)macs * batch / total * 1e-9 : 0.0, threads);
    return 0;
}
