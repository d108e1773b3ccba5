/* tune.c — `cnnc tune`, and the tune file `build --tune` reads.
 *
 * The default tile of a direct convolution comes from a model of the
 * target (kernels_simd.c: registers, loads, wasted lanes), the same on
 * every machine. CPUs of one ISA still differ: an EPYC runs a 512-bit FMA
 * at half a Xeon's rate, and the model cannot know which it will meet. So
 * `cnnc tune` builds the network once for each candidate tile (build r
 * gives every convolution size its r-th candidate), compiles it with $CC,
 * times every kernel where it runs, and writes each size's fastest tile to
 * a tune file. `cnnc build --tune FILE` then gives every convolution of
 * those sizes that tile.
 *
 * A tune file is text, one line per convolution size and target:
 *
 *   avx512  64 56 56  256  1 1  1 1  1 1  0 0 0 0  1   P 6 4 0   # note
 *
 * target, input channels and plane, filters, kernel, stride, dilation,
 * padding (top, bottom, left, right), groups; then the tile: P (vectors of
 * positions: MR output channels x NV vectors) or C (vectors of channels:
 * MP positions x NV vectors, MR channels a block), MR, NV, MP. Blank lines
 * and everything after '#' are ignored. Lines for other sizes, other
 * targets or tiles the target lacks change nothing.
 */
#define _POSIX_C_SOURCE 200809L   /* mkdtemp, popen */
#include "emit.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

enum { GEO = 15, MAX_TILES = 32, SAMPLES = 9, CONFIRM = 2 };

/* A tile replaces the default only when it is this much faster, in the
 * screening builds and again in CONFIRM pairs of builds that alternate the
 * chosen tiles with the defaults. Picking the fastest of 18 noisy timings
 * favours whichever was lucky: without the second look, ResNet-50's tuned
 * build ran 6% slower than its default one. */
#define MARGIN 0.03

const char *target_name(Target t) {
    return t == TARGET_AVX512 ? "avx512" : t == TARGET_AVX2 ? "avx2" : "scalar";
}

/* The sizes that pick a direct convolution's tile. */
static void tune_geometry(const Node *n, int64_t geo[GEO]) {
    Shape in = in_shape_of(n, 0);
    const Attrs *a = &n->a;
    const int64_t v[GEO] = {in.d[0], in.d[1], in.d[2], a->units, a->kernel[0], a->kernel[1],
                            a->stride[0], a->stride[1], a->dilation[0], a->dilation[1],
                            a->pad_lo[0], a->pad_hi[0], a->pad_lo[1], a->pad_hi[1],
                            a->groups};
    memcpy(geo, v, sizeof v);
}

/* ---- the file ------------------------------------------------------------ */

/* One line, its comment already cut off. */
static bool parse_line(char *line, TuneEntry *e) {
    char *tok = strtok(line, " \t\r\n");
    if (!tok)
        return false;
    if (!strcmp(tok, "avx2"))
        e->target = TARGET_AVX2;
    else if (!strcmp(tok, "avx512"))
        e->target = TARGET_AVX512;
    else
        return false;
    int64_t v[GEO + 3];
    char form = 0;
    for (int i = 0; i < GEO + 4; i++) {
        if (!(tok = strtok(NULL, " \t\r\n")))
            return false;
        if (i == GEO) {
            if (strcmp(tok, "P") && strcmp(tok, "C"))
                return false;
            form = tok[0];
            continue;
        }
        char *end;
        errno = 0;
        long long x = strtoll(tok, &end, 10);
        if (*end || errno || x < 0 || x > (1LL << 30))
            return false;
        v[i < GEO ? i : i - 1] = x;
    }
    if (strtok(NULL, " \t\r\n"))
        return false;
    memcpy(e->geo, v, sizeof e->geo);
    e->tile = (TileChoice){.bpos = form == 'C', .mr = (int)v[GEO], .nv = (int)v[GEO + 1],
                           .mp = form == 'C' ? (int)v[GEO + 2] : 0};
    return e->tile.mr > 0 && e->tile.nv > 0 && (!e->tile.bpos || e->tile.mp > 0);
}

TuneFile *tune_read(const char *path, Arena *a) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cnnc: cannot read the tune file '%s': %s\n", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "cnnc: the tune file '%s' is a directory, not a file\n", path);
        fclose(f);
        return NULL;
    }
    TuneFile *tf = arena_alloc(a, sizeof *tf);
    *tf = (TuneFile){.path = path};
    int number = 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        number++;
        if (!strchr(line, '\n') && !feof(f)) {
            fprintf(stderr, "cnnc: %s:%d: line too long for a tune file\n", path, number);
            fclose(f);
            return NULL;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        TuneEntry *e = arena_alloc(a, sizeof *e);
        if (!parse_line(line, e)) {
            fprintf(stderr, "cnnc: %s:%d: expected 'TARGET CIN H W FILTERS KH KW SH SW DH DW "
                    "TOP BOTTOM LEFT RIGHT GROUPS P|C MR NV MP' (TARGET avx2 or avx512; "
                    "'cnnc tune' writes such files)\n", path, number);
            fclose(f);
            return NULL;
        }
        vec_push(a, &tf->entries, e);
    }
    fclose(f);
    return tf;
}

void tune_apply(Graph *g, const TuneFile *f, Target t) {
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        n->tile = (TileChoice){0};
        if (!f || !simd_direct_conv(t, n))
            continue;
        int64_t geo[GEO];
        tune_geometry(n, geo);
        for (int k = 0; k < f->entries.len; k++) {   /* the last line for a size wins */
            const TuneEntry *e = f->entries.items[k];
            if (e->target == t && !memcmp(e->geo, geo, sizeof geo))
                n->tile = e->tile;
        }
    }
}

/* ---- cnnc tune ------------------------------------------------------------- */

/* The harness: calls NAME_forward until it has run at least eight times
 * and 0.3 s, and prints each kernel's fastest time ("ID SECONDS"), taken
 * between the cnn_tick calls the profile build makes after each kernel.
 * A layer is timed where it runs, after the layers before it: alone, the
 * same tiles ranked differently (ResNet-50's 1x1 layers at 56x56 ran 20%
 * slower in the network with the tile that won by 1% alone). */
static const char *harness_text(const Graph *g, int batch, Arena *a) {
    const char *N = g->name;
    const char *s = arena_printf(a,
        "#define _POSIX_C_SOURCE 200809L\n"
        "#include \"%s.h\"\n"
        "#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <time.h>\n"
        "enum { NODES = %d };\n"
        "static double last, best[NODES];\n"
        "static double now(void) {\n"
        "    struct timespec t;\n"
        "    clock_gettime(CLOCK_MONOTONIC, &t);\n"
        "    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;\n"
        "}\n"
        "void cnn_tick(int node) {\n"
        "    double t = now();\n"
        "    if (t - last < best[node])\n"
        "        best[node] = t - last;\n"
        "    last = now();\n"
        "}\n"
        "static float *floats(long n, uint32_t *s, float scale) {\n"
        "    void *p = NULL;\n"
        "    if (posix_memalign(&p, 64, sizeof(float) * (size_t)(n > 16 ? n : 16)))\n"
        "        exit(1);\n"
        "    float *f = p;\n"
        "    for (long i = 0; i < n; i++) {\n"
        "        *s = *s * 1664525u + 1013904223u;\n"
        "        f[i] = ((float)(*s >> 8) / 16777216.0f - 0.5f) * scale;\n"
        "    }\n"
        "    return f;\n"
        "}\n"
        "int main(void) {\n"
        "    uint32_t s = 1;\n"
        "    float *params = floats(%s_PARAM_COUNT, &s, 0.1f);\n"
        "    float *packed = floats(%s_PACKED_COUNT, &s, 0.0f);\n"
        "    void *arena = floats(%s_ARENA_BYTES / 4 + 1, &s, 0.0f);\n",
        N, g->nodes.len, N, N, N);
    for (int i = 0; i < g->inputs.len; i++)
        s = arena_printf(a, "%s    float *in%d = floats(%d * %s_IN_%s_SIZE, &s, 2.0f);\n", s, i,
                         batch, N, ((const Node *)g->inputs.items[i])->name);
    for (int i = 0; i < g->outputs.len; i++)
        s = arena_printf(a, "%s    float *out%d = floats(%d * %s_OUT_%s_SIZE, &s, 0.0f);\n", s,
                         i, batch, N, (const char *)g->output_names.items[i]);
    const char *call = arena_printf(a, "%s_forward(packed", N);
    for (int i = 0; i < g->inputs.len; i++)
        call = arena_printf(a, "%s, in%d", call, i);
    for (int i = 0; i < g->outputs.len; i++)
        call = arena_printf(a, "%s, out%d", call, i);
    call = arena_printf(a, "%s, %d, arena)", call, batch);
    return arena_printf(a,
        "%s"
        "    %s_pack(params, packed);\n"
        "    for (int i = 0; i < NODES; i++)\n"
        "        best[i] = 1e30;\n"
        "    last = now();\n"
        "    if (%s)\n"
        "        return 2;\n"
        "    double start = now();\n"
        "    for (int r = 0; r < 100000 && (r < 8 || now() - start < 0.3); r++) {\n"
        "        last = now();\n"
        "        %s;\n"
        "    }\n"
        "    for (int i = 0; i < NODES; i++)\n"
        "        if (best[i] < 1e30)\n"
        "            printf(\"%%d %%.9e\\n\", i, best[i]);\n"
        "    return 0;\n"
        "}\n", s, N, call, call);
}

static bool write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    bool ok = f && fputs(text, f) >= 0;
    if (f)
        ok = fclose(f) == 0 && ok;
    return ok;
}

const char *timing_dir(const char *command, Arena *a) {
    const char *tmpdir = getenv("TMPDIR");
    char *dir = arena_printf(a, "%s/cnnc-%s-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp",
                             command);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "cnnc %s: cannot make a working directory: %s\n", command,
                strerror(errno));
        return NULL;
    }
    return dir;
}

void timing_dir_remove(const char *dir, const Graph *g, Arena *a) {
    const char *files[] = {"main.c", "net", arena_printf(a, "%s.c", g->name),
                           arena_printf(a, "%s.h", g->name)};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        remove(arena_printf(a, "%s/%s", dir, files[i]));
    rmdir(dir);
}

/* Builds the network as `base` says, with the profile hooks, in dir;
 * compiles and runs it; fills seconds[node id] (negative: not timed).
 * cnnc tune and cnnc profile (profile.c) both time through it. */
bool time_kernels(const Compilation *c, const char *network, const BuildOptions *base,
                  const char *dir, double *seconds, Arena *a) {
    Compilation rc;
    if (!compile_front(&rc, c->filename, c->src, c->src_len, network, stderr)) {
        comp_free(&rc);
        return false;
    }
    BuildOptions b = *base;
    b.profile = true;
    Generated *gen = emit_c(rc.graph, &b, &rc.arena, &rc.diags);
    /* the names go into `a`: rc's arena is freed before they are used */
    const char *net_c = arena_printf(a, "%s/%s.c", dir, rc.graph->name);
    bool ok = gen && write_text(net_c, gen->c_text) &&
              write_text(arena_printf(a, "%s/%s.h", dir, rc.graph->name), gen->h_text) &&
              write_text(arena_printf(a, "%s/main.c", dir), harness_text(rc.graph, b.batch, a));
    int nodes = rc.graph->nodes.len;
    comp_free(&rc);
    if (!ok)
        return false;
    const char *cc = getenv("CC");
    const char *exe = arena_printf(a, "%s/net", dir);
    /* -fopenmp last: the list ends at the NULL where a serial build has it */
    const char *rest[] = {"-O2", "-o", exe, arena_printf(a, "%s/main.c", dir), net_c,
                          b.openmp ? "-fopenmp" : NULL, NULL};
    if (run_process(compiler_argv(cc && *cc ? cc : "cc", rest, a)) != 0)
        return false;
    for (int i = 0; i < nodes; i++)
        seconds[i] = -1.0;
    FILE *p = popen(exe, "r");
    if (!p)
        return false;
    int id;
    double t;
    while (fscanf(p, "%d %lf", &id, &t) == 2)
        if (id >= 0 && id < nodes)
            seconds[id] = t;
    return pclose(p) == 0;
}

const char *tile_str(TileChoice t, Target target, Arena *a) {
    int w = simd_width(target);
    if (t.bpos)
        return arena_printf(a, "C MP=%d x MR=%d", t.mp, t.nv * w);
    return arena_printf(a, "P MR=%d x NR=%d", t.mr, t.nv * w);
}

/* One convolution size of the network: its layers and candidate tiles. */
typedef struct Size {
    int64_t geo[GEO];
    const Node *first;
    int layers;
    TileChoice tiles[MAX_TILES], dflt;
    int count;
    double seconds[MAX_TILES];   /* its layers' sum, each tile; < 0: not timed */
    int best, at_default;        /* indices in tiles of the fastest and the default */
    TileChoice chosen;           /* the fastest, if it beat the default by the margin */
    double confirm[2];           /* the second look: chosen, default */
} Size;

static void set_entry(TuneEntry *e, Target t, const Size *z, TileChoice tile) {
    *e = (TuneEntry){.target = t, .tile = tile};
    memcpy(e->geo, z->geo, sizeof e->geo);
}

/* One build with these entries; sums[k]: the seconds of size k's layers
 * (negative when one was not timed). */
static bool time_sizes(const Compilation *c, const char *network, const BuildOptions *base,
                       const TuneFile *tf, int distinct, const int *size_of, const char *dir,
                       double *seconds, double *sums, Arena *a) {
    BuildOptions b = *base;
    b.tune = tf;
    if (!time_kernels(c, network, &b, dir, seconds, a))
        return false;
    for (int k = 0; k < distinct; k++)
        sums[k] = 0.0;
    for (int i = 0; i < c->graph->nodes.len; i++) {
        int k = size_of[i];
        if (k >= 0 && sums[k] >= 0.0)
            sums[k] = seconds[i] < 0 ? -1.0 : sums[k] + seconds[i];
    }
    return true;
}

int cmd_tune(Compilation *c, const CliOptions *o) {
    if (!o->out_dir) {
        fprintf(stderr, "cnnc: tune needs -o NET.tune, the file it writes\n");
        return 2;
    }
    Target t = resolve_target(o->target);
    if (!simd_target(t)) {
        fprintf(stderr, "cnnc tune: --target %s has no tiles to choose; tune avx2 or avx512 "
                "code on a CPU that runs it\n", target_name(t));
        return 2;
    }
    if (!check_target_runs_here(t, "tune"))
        return 2;
    Arena *a = &c->arena;
    BuildOptions base = {.batch = 1, .target = t, .fuse = o->fuse,
                         .no_winograd = o->no_winograd, .source_name = c->filename};
    /* the passes decide which convolutions run the direct kernel */
    if (!emit_c(c->graph, &base, a, &c->diags))
        return 1;
    Graph *g = c->graph;
    Size *sizes = arena_alloc(a, sizeof *sizes * (size_t)(g->nodes.len + 1));
    int *size_of = arena_alloc(a, sizeof(int) * (size_t)(g->nodes.len + 1));
    int distinct = 0, layers = 0, rounds = 0;
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        size_of[i] = -1;
        if (!simd_direct_conv(t, n))
            continue;
        layers++;
        int64_t geo[GEO];
        tune_geometry(n, geo);
        int k = 0;
        while (k < distinct && memcmp(sizes[k].geo, geo, sizeof geo))
            k++;
        if (k == distinct) {
            Size *z = &sizes[distinct++];
            memset(z, 0, sizeof *z);
            memcpy(z->geo, geo, sizeof geo);
            z->first = n;
            z->count = simd_tile_candidates(t, n, z->tiles, MAX_TILES);
            z->dflt = simd_default_tile(t, n);
            for (int j = 0; j < z->count; j++)
                z->seconds[j] = -1.0;
            rounds = z->count > rounds ? z->count : rounds;
        }
        sizes[k].layers++;
        size_of[i] = k;
    }
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    fprintf(stderr, "cnnc tune: %s, target %s: %d direct convolution%s of %d size%s, up to "
            "%d tiles each; %d builds of the network, compiled with %s -O2, each layer timed "
            "where it runs (its fastest of at least 8 calls)\n", g->name, target_name(t),
            layers, layers == 1 ? "" : "s", distinct, distinct == 1 ? "" : "s", rounds,
            rounds, cc);
    if (!distinct) {
        fprintf(stderr, "cnnc tune: nothing to time: the other kernels have no tile to "
                "choose; the tune file says so\n");
    }
    const char *dir = NULL;
    if (distinct && !(dir = timing_dir("tune", a)))
        return 1;
    double *seconds = arena_alloc(a, sizeof(double) * (size_t)(g->nodes.len + 1));
    TuneEntry *entries = arena_alloc(a, sizeof *entries * (size_t)(distinct + 1));
    double *sums = arena_alloc(a, sizeof(double) * (size_t)(distinct + 1));
    TuneFile tf = {.path = "(cnnc tune)"};   /* each build's tiles, set in entries */
    for (int k = 0; k < distinct; k++)
        vec_push(a, &tf.entries, &entries[k]);
    int failed_rounds = 0;
    int builds = rounds + (rounds ? 2 * CONFIRM : 0);
    for (int r = 0; r < rounds; r++) {
        /* round r: every size its r-th candidate, the sizes that have
         * fewer their default */
        for (int k = 0; k < distinct; k++)
            set_entry(&entries[k], t, &sizes[k],
                      r < sizes[k].count ? sizes[k].tiles[r] : sizes[k].dflt);
        bool ok = time_sizes(c, o->network, &base, &tf, distinct, size_of, dir, seconds, sums, a);
        failed_rounds += !ok;
        for (int k = 0; ok && k < distinct; k++)
            if (r < sizes[k].count)
                sizes[k].seconds[r] = sums[k];
        fprintf(stderr, "cnnc tune: build %d/%d %s\n", r + 1, builds,
                ok ? "timed" : "failed (its tiles are left out)");
    }
    /* each size's fastest tile, when it beats the default by the margin */
    for (int k = 0; k < distinct; k++) {
        Size *z = &sizes[k];
        z->best = z->at_default = -1;
        for (int j = 0; j < z->count; j++) {
            if (z->seconds[j] < 0)
                continue;
            if (z->best < 0 || z->seconds[j] < z->seconds[z->best])
                z->best = j;
            if (same_tile(z->tiles[j], z->dflt))
                z->at_default = j;
        }
        z->chosen = z->dflt;
        if (z->best >= 0 && z->at_default >= 0 &&
            z->seconds[z->best] < (1.0 - MARGIN) * z->seconds[z->at_default])
            z->chosen = z->tiles[z->best];
        z->confirm[0] = z->confirm[1] = -1.0;
    }
    /* the second look: chosen tiles and defaults in alternate builds */
    for (int r = 0; rounds && r < 2 * CONFIRM; r++) {
        int side = r % 2;   /* 0: the chosen tiles, 1: the defaults */
        for (int k = 0; k < distinct; k++)
            set_entry(&entries[k], t, &sizes[k], side ? sizes[k].dflt : sizes[k].chosen);
        bool ok = time_sizes(c, o->network, &base, &tf, distinct, size_of, dir, seconds, sums, a);
        for (int k = 0; ok && k < distinct; k++) {
            double *m = &sizes[k].confirm[side];
            if (sums[k] >= 0 && (*m < 0 || sums[k] < *m))
                *m = sums[k];
        }
        fprintf(stderr, "cnnc tune: build %d/%d %s (%s)\n", rounds + r + 1, builds,
                ok ? "timed" : "failed", side ? "the defaults again" : "the chosen tiles again");
    }
    const char *out = arena_printf(a,
        "# cnnc tune file: the fastest register tile of each direct convolution of %s,\n"
        "# each layer timed where it runs in the network on this machine (cnnc tune,\n"
        "# target %s); a tile other than the default only where it was %.0f%% faster\n"
        "# twice. Read by: cnnc build --tune FILE.\n"
        "# target cin h w filters kh kw sh sw dh dw top bottom left right groups "
        "P|C mr nv mp\n%s", g->name, target_name(t), MARGIN * 100,
        distinct ? "" : "# (no direct convolutions here: the kernels these convolutions run "
                        "(Winograd, depthwise) have no tile to choose)\n");
    int written = 0, changed = 0;
    for (int k = 0; k < distinct; k++) {
        Size *z = &sizes[k];
        Shape in = in_shape_of(z->first, 0);
        const char *what = arena_printf(a, "%s%s: %lldx%lldx%lld -> %lld, %lldx%lld/%lld",
            z->first->name, z->layers > 1 ? arena_printf(a, " and %d more", z->layers - 1) : "",
            (long long)in.d[0], (long long)in.d[1], (long long)in.d[2],
            (long long)z->first->a.units, (long long)z->first->a.kernel[0],
            (long long)z->first->a.kernel[1], (long long)z->first->a.stride[0]);
        if (z->best < 0 || z->at_default < 0) {
            fprintf(stderr, "cnnc tune: %s: not timed (left to the default)\n", what);
            continue;
        }
        TileChoice b = z->chosen;
        bool kept = !same_tile(b, z->dflt) && z->confirm[0] >= 0 && z->confirm[1] >= 0 &&
                    z->confirm[0] < (1.0 - MARGIN) * z->confirm[1];
        const char *why;
        if (same_tile(b, z->dflt))
            why = arena_printf(a, "default %s %.4g ms; fastest %s %.4g ms, within %.0f%%",
                               tile_str(z->dflt, t, a), z->seconds[z->at_default] * 1e3,
                               tile_str(z->tiles[z->best], t, a), z->seconds[z->best] * 1e3,
                               MARGIN * 100);
        else
            why = arena_printf(a, "%s %.4g ms against the default %s %.4g ms; again %.4g "
                               "against %.4g ms", tile_str(b, t, a), z->seconds[z->best] * 1e3,
                               tile_str(z->dflt, t, a), z->seconds[z->at_default] * 1e3,
                               z->confirm[0] * 1e3, z->confirm[1] * 1e3);
        if (!kept)
            b = z->dflt;
        fprintf(stderr, "cnnc tune: %s: %s: %s\n", what, why,
                kept ? "takes it" : same_tile(z->chosen, z->dflt) ? "keeps the default"
                                                                    : "not confirmed, keeps the default");
        out = arena_printf(a, "%s%s", out, target_name(t));
        for (int i = 0; i < GEO; i++)
            out = arena_printf(a, "%s %lld", out, (long long)z->geo[i]);
        out = arena_printf(a, "%s %c %d %d %d   # %s; %s\n", out, b.bpos ? 'C' : 'P', b.mr,
                           b.nv, b.bpos ? b.mp : 0, what, why);
        written++;
        changed += kept;
    }
    if (distinct)
        timing_dir_remove(dir, g, a);
    if (distinct && !written) {
        fprintf(stderr, "cnnc tune: no build could be timed%s; no tune file written\n",
                failed_rounds ? " (see the compiler's messages above)" : "");
        return 1;
    }
    const char *paths[] = {o->out_dir};
    const char *texts[] = {out};
    if (!write_files_atomically(1, paths, texts, a))
        return 1;
    fprintf(stderr, "cnnc tune: wrote %s (%d line%s, %d tile%s other than the default); use "
            "it with 'cnnc build --tune %s'\n", o->out_dir, written, written == 1 ? "" : "s",
            changed, changed == 1 ? "" : "s", o->out_dir);
    return 0;
}
