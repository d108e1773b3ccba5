/* kernels_simd.c — AVX2 and AVX-512 kernels for convolutions, dense layers
 * and LRN.
 *
 * A convolution is a matrix product, Y[k][p] = sum over (c, i, j) of
 * W[k][c,i,j] * X[c,i,j][p]: output channel k, output position p. The
 * kernel keeps a tile of MR output channels by NR = 8 * NV positions in
 * MR * NV ymm accumulators. At each (c, i, j) it loads NV vectors of eight
 * consecutive positions of X, broadcasts MR weights (NAME_pack stored them
 * MR at a time in exactly this order, pack.c) and issues MR * NV FMAs.
 *
 * Where row (c, i, j) of X comes from:
 *   - stride 1: straight out of the (padded) input. Output (oh, ow) reads
 *     input (oh + i*dh, ow + j*dw), so with the output rows laid end to end
 *     at the input's row pitch Wp, position p reads input element
 *     p + i*dh*Wp + j*dw of channel c: every row of X is a contiguous run of
 *     the input, no copy at all. The Wp - Wo columns between rows are
 *     computed and dropped.
 *   - other strides: rows gathered into scratch first (im2col).
 * The last tile of a row of X is shifted back to end at the last position,
 * so no load runs past the data; the overlap is computed twice and stored
 * twice with the same value.
 *
 * The epilogue adds the bias (with any batch norm folded in by NAME_pack),
 * a fused residual summand and a fused activation, then stores. Everything
 * the kernels do not cover falls back to the scalar kernels, which the
 * function attribute lets the C compiler vectorise for AVX2.
 */
#include "emit.h"

#include <string.h>

static long long ll(int64_t v) { return (long long)v; }

/* A target's description: its vector width and register file, from which
 * the default schedule is derived, and the typical cache sizes (per core).
 * The kernels are written once, in AVX2's words; AVX-512 names the same
 * operations with 512 for 256 (loadu, storeu, set1, setzero, fmadd, add,
 * mul, max, min, sqrt, div), so its kernels are the same text with the
 * words swapped as they are written (emit_c.c, emit_text), the widths taken
 * from here, and leaky ReLU, the one operation named differently, spelled
 * out for each. */
typedef struct Isa {
    const char *name;
    int width;           /* floats in a vector */
    int registers;       /* vector registers */
    const char *attribute;
    /* the C form's speed against the P form's on the same shapes, measured
     * on bench/layers.py: with 16 registers its extra broadcasts cost, with
     * 32 it holds 64 channels a tile and needs fewer loads per FMA */
    double bpos_cost;
} Isa;

static const Isa AVX2 = {"avx2", 8, 16, "avx2,fma", 0.9};
static const Isa AVX512 = {"avx512", 16, 32, "avx512f,avx2,fma", 1.0};

static const Isa *isa_of(Target t) {
    return t == TARGET_AVX512 ? &AVX512 : &AVX2;
}

int simd_width(Target t) {
    return isa_of(t)->width;
}

void simd_need_unzip(Emit *e) {
    if (e->wide)
        e->need_unzip512 = true;
    else
        e->need_unzip = true;
}

void simd_need_vmax(Emit *e) {
    if (e->wide)
        e->need_pool512 = true;
    else
        e->need_pool = true;
}

bool simd_target(Target t) {
    return t == TARGET_AVX2 || t == TARGET_AVX512;
}

const char *simd_attribute(Target t) {
    return isa_of(t)->attribute;
}

enum { L1_BYTES = 32 << 10, UNROLL_TAPS = 9 };

/* Relative speed measured on the layers of bench/layers.py: the P form on
 * strides above 1 must copy its input first (im2col). A 1x1 layer's copy
 * is 1/K of its work, not kh*kw/K: at 0.8 for those whose positions fill
 * 90% of their vectors, ResNet-50's first 1x1/2 projection (256->512, 28x28
 * out) took MR=12 x NR=32 and ran 10% faster on AVX-512 than with MP=6 x
 * MR=64 (2.27 -> 2.05 ms), ResNet-18's 1x1/2 downsamples 4-9% (EPYC, Zen
 * 4; cnnc tune had found the P form). 7x7 outputs keep the C form, whose
 * MP=7 (AVX-512) and MP=5 (AVX2) tiles waste no lanes there. */
#define GATHER_COST 0.6
#define GATHER_COST_1X1 0.8
/* AVX2 the same, from cnnc tune on the same EPYC: its 1x1/2 projections
 * with outputs filling vectors ran 10-18% faster in the P form (MR=6 x
 * NR=16) than in the C form 0.8 still chose (ResNet-50's 256->512 at 28x28
 * out, 2.42 -> 2.15 ms; ResNet-18's 128->256 at 14x14 0.19 -> 0.16 ms). */
#define GATHER_COST_1X1_AVX2 0.9
/* Cycles to store one output of a C-form tile through its epilogue. */
#define STORE_CYCLES 1.5

/* Everything a convolution kernel needs to know about its sizes. */
typedef struct ConvGeo {
    int64_t cin, cin_g, k, kg, groups;
    int64_t kh, kw, dh, dw, sh, sw;
    int64_t hp, wp;            /* the padded input plane */
    int64_t ho, wo;
    bool pads, flat;           /* flat: stride 1, X read from the input */
    int64_t len;               /* positions computed per channel */
    int64_t pitch;             /* positions per output row in that run */
    int64_t cs, is, js;        /* X row (c, i, j) starts at c*cs + i*is + j*js */
    int64_t per;               /* weights per output channel: cin_g * kh * kw */
    TileChoice tuned;          /* the node's tile from a tune file (mr 0: none) */
} ConvGeo;

static ConvGeo conv_geo(const Node *n) {
    const Attrs *a = &n->a;
    Shape in = in_shape_of(n, 0);
    ConvGeo g = {
        .cin = in.d[0], .groups = a->groups, .k = a->units,
        .kh = a->kernel[0], .kw = a->kernel[1], .dh = a->dilation[0],
        .dw = a->dilation[1], .sh = a->stride[0], .sw = a->stride[1],
        .hp = in.d[1] + a->pad_lo[0] + a->pad_hi[0],
        .wp = in.d[2] + a->pad_lo[1] + a->pad_hi[1],
        .ho = n->shape.d[1], .wo = n->shape.d[2],
        .pads = a->pad_lo[0] || a->pad_lo[1] || a->pad_hi[0] || a->pad_hi[1],
        .tuned = n->tile,
    };
    g.cin_g = g.cin / g.groups;
    g.kg = g.k / g.groups;
    g.per = g.cin_g * g.kh * g.kw;
    g.flat = g.sh == 1 && g.sw == 1;
    if (g.flat) {
        g.len = (g.ho - 1) * g.wp + g.wo;
        g.pitch = g.wp;
        g.cs = g.hp * g.wp;
        g.is = g.dh * g.wp;
        g.js = g.dw;
    } else {
        g.len = g.ho * g.wo;
        g.pitch = g.wo;
        g.cs = g.kh * g.kw * g.len;
        g.is = g.kw * g.len;
        g.js = g.len;
    }
    return g;
}

/* The register tile: MR output channels x NV vectors of positions. The
 * default comes from the register file alone (16 ymm: MR*NV accumulators,
 * NV loaded vectors and one broadcast must fit, and about ten independent
 * accumulators hide the FMA latency on two ports) and the layer's sizes
 * (the fewest wasted lanes on ragged channel counts and row ends), never
 * from the machine cnnc runs on, so the same command writes the same code
 * everywhere. */
typedef struct Tile {
    int w;       /* floats in a vector */
    bool bpos;   /* broadcast positions: vectors hold output channels */
    int mr;      /* output channels per block (the packed weights' blocks) */
    int nv;      /* vectors per tile row */
    int mp;      /* bpos: positions per tile */
} Tile;

/* Two forms of the same microkernel:
 *   vectors of positions (P): MR channels x NV*8 positions, weights
 *     broadcast; rows of X must be contiguous, so stride 1 reads the input
 *     directly (with the dropped columns between rows) and other strides
 *     gather first;
 *   vectors of channels (C): MP positions x NV*8 channels, input values
 *     broadcast from wherever each position's window starts, so any stride
 *     and no dropped columns, but it needs at least eight channels.
 * The score is the fraction of FMA lanes doing useful work. */
static bool pos_panel(const ConvGeo *g, Tile t);

static double tile_score(const ConvGeo *g, Tile t, const Isa *v) {
    int64_t positions = g->ho * g->wo;
    /* about ten independent accumulators hide the FMA latency on two
     * ports; with twice the registers, more of them also spare loads */
    double enough = v->registers >= 32 ? 20.0 : 10.0;
    double acc = (double)(t.bpos ? t.mp : t.mr) * t.nv;
    double latency = acc >= enough ? 1.0 : acc / enough;
    /* two loads and two FMAs a cycle: a tap loads NV vectors (an unaligned
     * load of a whole cache line splits in two) and broadcasts MR or MP
     * scalars for its acc FMAs */
    double split = v->width == 16 ? 2.0 : 1.5;
    /* a 1x1 layer's panel (pos_panel) starts on a cache line and its rows
     * are whole lines: AVX-512's loads from it never split. On an EPYC (Zen
     * 4) that makes MR=24 x NV=1 the tile of ResNet-50's 256->1024 layers
     * at 14x14 (208 lanes for 196 positions instead of 224), 5-8% faster
     * than MR=12 x NV=2. (AVX2's 7x7 layers took P-form tiles with the same
     * rule and ran 10% slower than the C form, so AVX2 keeps its 1.5.) */
    if (v->width == 16 && pos_panel(g, t))
        split = 1.0;
    double loads = split * t.nv + (t.bpos ? t.mp : t.mr);
    if (loads > acc)
        latency *= acc / loads;
    int64_t blocks = (g->kg + t.mr - 1) / t.mr;
    double channels = (double)g->kg / (double)(blocks * t.mr);
    /* whether vectors of positions would fill 90% of their lanes */
    int64_t lanes = (positions + v->width - 1) / v->width * v->width;
    bool filled = (double)positions >= 0.9 * (double)lanes;
    if (t.bpos) {
        /* the tile leaves through scalar stores, one per output: a cost
         * against the per * MP * NV / 2 cycles of its FMAs */
        int64_t tiles = (positions + t.mp - 1) / t.mp;
        double fma = (double)g->per * t.mp * t.nv / 2.0, store = t.mp * t.mr * STORE_CYCLES;
        /* a block's weights are read once per tile: more than L1 holds and
         * they stream from L2 every time. That costs AVX2 (on the 1x1
         * 512->2048 7x7 layer MR=32 x MP=3, 64 KB a block, ran 0.8x as fast
         * as MR=16 x MP=6); AVX-512's tiles reuse each weight load across
         * more positions and run fastest with their 128 KB blocks. Where
         * even 8 channels' weights outgrow L1 every tile streams them, and
         * none pays more for it: ResNet-50's 2048->512 7x7 layers ran 19%
         * faster with MP=5 x MR=16 (128 KB a block) than with the P form's
         * MR=12 x NR=8 this rule used to pick, AlexNet's 5x5 64->192 layer
         * 12% faster with MP=3 x MR=32 than with MR=4 x NR=24 (cnnc profile
         * and cnnc tune on an EPYC, Zen 4). */
        double spill = v->registers < 32 && t.mr * g->per * 4 > L1_BYTES &&
                       8 * g->per * 4 <= L1_BYTES ? 0.8 : 1.0;
        /* AVX-512's 1x1 layers ran 7-27% faster in vectors of positions
         * where those fill 90% of their lanes or more, though this score
         * had put the C form 5-25% ahead: ResNet-50's 1024->256 14x14 layers
         * (MR=24 x NR=16 instead of MP=6 x MR=64), MobileNetV2's 14x14 and
         * GoogLeNet's 28x28 and 14x14 ones (EPYC, Zen 4; cnnc tune found the
         * same). On 7x7 planes, 49 positions in 64 lanes, the two forms were
         * even or the C form faster, and 3x3 and 5x5 layers ran 11% slower
         * in the P form: those keep the score as it was. */
        double one_by_one = v->width == 16 && g->kh * g->kw == 1 && filled ? 0.88 : 1.0;
        return channels * (double)positions / (double)(tiles * t.mp) * latency *
               fma / (fma + store) * v->bpos_cost * spill * one_by_one;
    }
    int64_t nr = (int64_t)t.nv * t.w;
    int64_t tiles = g->len >= nr ? (g->len + nr - 1) / nr : 1;
    double gather = g->flat ? 1.0
                    : g->kh * g->kw == 1 && filled
                        ? (v->width == 16 ? GATHER_COST_1X1 : GATHER_COST_1X1_AVX2)
                        : GATHER_COST;
    return channels * (double)positions / (double)(tiles * nr) * latency * gather;
}

/* Candidate tiles {w, C form?, MR, NV, MP}, in order of preference on a
 * tie: all keep accumulators, loaded vectors and a broadcast within the
 * register file. AVX2's MP=5 x MR=16 C-form tile (10 accumulators) covers
 * a 7x7 plane in 10 tiles, 50 positions for 49, where MP=6 computes 54 and
 * MP=3 x MR=32 51 with twice the weights a block. On an EPYC (Zen 4)
 * ResNet-50's 7x7 layers ran 5% (1x1) to 40% (the 3x3/2 and 1x1/2 of its
 * last projection, which had MP=3 x MR=32) faster with it, the network 4%. */
static const Tile AVX2_TILES[] = {
    {8, false, 4, 3, 0}, {8, false, 6, 2, 0}, {8, false, 3, 4, 0}, {8, false, 2, 6, 0},
    {8, false, 12, 1, 0}, {8, false, 8, 1, 0}, {8, false, 4, 2, 0}, {8, false, 4, 1, 0},
    {8, true, 16, 2, 6}, {8, true, 24, 3, 4}, {8, true, 32, 4, 3}, {8, true, 8, 1, 12},
    {8, true, 16, 2, 4}, {8, true, 8, 1, 8}, {8, true, 16, 2, 5},
};
static const Tile AVX2_DEPTHWISE[] = {
    {8, false, 1, 8, 0}, {8, false, 1, 6, 0}, {8, false, 1, 4, 0}, {8, false, 1, 2, 0},
    {8, false, 1, 1, 0},
};
/* AVX-512's MP=7 x MR=48 C-form tile takes 7x7 planes in 7 tiles with none
 * left over: ResNet-50's last stage ran 7-12% faster with it than with
 * MP=6 x MR=64, whose 9 tiles compute 54 positions for 49 (EPYC, Zen 4).
 * MP=7 x MR=64 (28 accumulators) ran 2-6% slower than either. */
static const Tile AVX512_TILES[] = {
    {16, false, 8, 3, 0}, {16, false, 6, 4, 0}, {16, false, 4, 6, 0}, {16, false, 12, 2, 0},
    {16, false, 3, 8, 0}, {16, false, 24, 1, 0}, {16, false, 16, 1, 0}, {16, false, 8, 2, 0},
    {16, false, 4, 4, 0}, {16, false, 8, 1, 0}, {16, false, 4, 2, 0},
    {16, true, 64, 4, 6}, {16, true, 32, 2, 12}, {16, true, 48, 3, 8}, {16, true, 16, 1, 24},
    {16, true, 32, 2, 8}, {16, true, 16, 1, 16}, {16, true, 16, 1, 8}, {16, true, 48, 3, 7},
};
static const Tile AVX512_DEPTHWISE[] = {
    {16, false, 1, 8, 0}, {16, false, 1, 6, 0}, {16, false, 1, 4, 0}, {16, false, 1, 2, 0},
    {16, false, 1, 1, 0},
};

/* The candidate tiles for a layer's sizes on ISA v. */
static const Tile *tile_candidates(const ConvGeo *g, const Isa *v, int *count) {
    bool wide = v->width == 16, single = g->kg == 1;
    const Tile *c = wide ? (single ? AVX512_DEPTHWISE : AVX512_TILES)
                         : (single ? AVX2_DEPTHWISE : AVX2_TILES);
    *count = wide ? (single ? (int)(sizeof AVX512_DEPTHWISE / sizeof *c)
                            : (int)(sizeof AVX512_TILES / sizeof *c))
                  : (single ? (int)(sizeof AVX2_DEPTHWISE / sizeof *c)
                            : (int)(sizeof AVX2_TILES / sizeof *c));
    return c;
}

static TileChoice choice_of(Tile t) {
    return (TileChoice){.bpos = t.bpos, .mr = t.mr, .nv = t.nv, .mp = t.bpos ? t.mp : 0};
}

/* C-form tiles much wider than the layer's channels are mostly empty vectors. */
static bool tile_fits(const ConvGeo *g, Tile t) {
    return !(t.bpos && g->kg < t.mr / 2);
}

/* The tile a tune file gave the layer (when it is one of the candidates:
 * a file tuned for another target names none), else the best score. */
static Tile conv_tile(const ConvGeo *g, const Isa *v) {
    int count;
    const Tile *c = tile_candidates(g, v, &count);
    for (int i = 0; g->tuned.mr && i < count; i++)
        if (same_tile(choice_of(c[i]), g->tuned))
            return c[i];
    Tile best = c[0];
    double best_score = -1.0;
    for (int i = 0; i < count; i++) {
        if (!tile_fits(g, c[i]))
            continue;
        double s = tile_score(g, c[i], v);
        if (s > best_score + 1e-9) {
            best = c[i];
            best_score = s;
        }
    }
    return best;
}

static bool simd_conv(const Node *n) {
    return n->op == OP_CONV && n->shape.rank == 3;
}

bool simd_direct_conv(Target t, const Node *n) {
    return simd_target(t) && simd_conv(n) && !n->winograd && !dw_suits(t, n) && !n->rows_wino;
}

int simd_tile_candidates(Target t, const Node *n, TileChoice *out, int max) {
    ConvGeo g = conv_geo(n);
    int count, k = 0;
    const Tile *c = tile_candidates(&g, isa_of(t), &count);
    for (int i = 0; i < count && k < max; i++)
        if (tile_fits(&g, c[i]))
            out[k++] = choice_of(c[i]);
    return k;
}

TileChoice simd_default_tile(Target t, const Node *n) {
    ConvGeo g = conv_geo(n);
    g.tuned = (TileChoice){0};
    return choice_of(conv_tile(&g, isa_of(t)));
}

/* A dense layer's panels of units and tile of samples (emit_dense_panels,
 * where the choice is explained). */
enum { DENSE_PANELS_AT_ONCE = 4 };

static int dense_nr(Target t) {
    return 2 * isa_of(t)->width;
}

/* Samples a tile: accumulators MR x 2 with two weight vectors and a
 * broadcast beside them in the register file. */
static int dense_mr(Target t) {
    return isa_of(t)->width == 16 ? 8 : 6;
}

/* Training's forward pass: units a tile, and vectors of samples
 * (emit_dense_train). */
enum { DENSE_TRAIN_UNITS = 6 };

static int dense_train_vectors(Target t) {
    return isa_of(t)->width == 16 ? 4 : 2;
}

int simd_pack_mr(Target t, const Node *n) {
    if (n->op == OP_DENSE)
        return dense_nr(t);   /* panels of units (emit_dense_panels) */
    if (!simd_conv(n))
        return 0;
    if (n->winograd)
        return wino_mr(t, n);
    return simd_conv_mr(t, n);
}

/* A C-form 1x1 layer reads each tile's MP input values from every channel
 * plane, a cache line and often a page apart; copied first into a panel,
 * channel after channel, they stream from L1 instead. */
static bool bpos_panel(const ConvGeo *g) {
    return g->kh * g->kw == 1 && g->groups == 1 && !g->pads;
}

/* The padded copy of the input (when the layer pads, or its run of
 * positions is shorter than a tile), then the gathered rows (other strides),
 * each followed by a tile's worth of zeros that the last tile may read. */
static int64_t conv_copy_floats(const ConvGeo *g, Tile t) {
    int64_t nr = (int64_t)t.nv * t.w;
    if (t.bpos && bpos_panel(g))
        return (g->ho * g->wo + t.mp - 1) / t.mp * t.mp * g->cin;
    if (t.bpos)
        return g->pads ? g->cin * g->hp * g->wp : 0;
    bool copy = g->pads || (g->flat && g->len < nr);
    return copy ? g->cin * g->hp * g->wp + nr : 0;
}

/* A P-form 1x1 layer read straight from its input gets a panel too: each
 * tile's NR positions of every channel, so a tile reads one block of
 * memory instead of a row from every channel plane (pages apart on large
 * planes). */
static bool pos_panel(const ConvGeo *g, Tile t) {
    return !t.bpos && g->kh * g->kw == 1 && g->groups == 1 && g->flat && !g->pads &&
           g->len >= (int64_t)t.nv * t.w;
}

static int64_t conv_col_floats(const ConvGeo *g, Tile t) {
    int64_t nr = (int64_t)t.nv * t.w;
    if (pos_panel(g, t))
        return (g->len + nr - 1) / nr * nr * g->cin;
    if (g->flat || t.bpos)
        return 0;
    return g->cin * g->kh * g->kw * g->len + (int64_t)t.nv * t.w;
}

static int pool_width(Target t, const Node *n);
static int64_t pool_scratch(Target t, const Node *n, int batch);

int64_t simd_scratch(Target target, const Node *n, int batch) {
    if (n->op == OP_MAXPOOL && pool_width(target, n))
        return pool_scratch(target, n, batch);
    if (!simd_conv(n))
        return scalar_scratch(n, batch);
    if (dw_suits(target, n))
        return dw_scratch(target, n, batch);
    if (n->rows_wino)
        return rows_scratch(target, n, batch);
    ConvGeo g = conv_geo(n);
    Tile t = conv_tile(&g, isa_of(target));
    /* one for each sample, so that OpenMP can give samples to threads */
    return (int64_t)batch * (conv_copy_floats(&g, t) + conv_col_floats(&g, t));
}

/* The scratch of a kernel of the inference: with a pool taken in chunks
 * (pool_bands.c), a sample's output and the pool's rows too. */
static int64_t inference_scratch(Target t, const Node *n, int batch) {
    return simd_kernel_scratch(t, n, batch) +
           (pool_in_bands(t, n) ? (int64_t)batch * bands_scratch(t, n) : 0);
}

bool simd_packs_for_training(const Node *n) {
    return simd_conv(n);
}

bool simd_vector_pool(Target t, const Node *n) {
    return pool_width(t, n) > 0;
}

/* The scratch of the kernel that computes n: Winograd's where n takes it. */
int64_t simd_kernel_scratch(Target t, const Node *n, int batch) {
    return n->winograd ? wino_scratch(t, n, batch) : simd_scratch(t, n, batch);
}

/* Floats of a convolution's weights as training packs them at each step,
 * for the kernel that computes it. */
int64_t simd_train_packed(Target t, const Node *n) {
    ConvGeo g = conv_geo(n);
    if (n->winograd)
        return pack_wino_floats(g.k, g.cin, wino_mr(t, n), n->winograd);
    int mr = n->rows_wino ? rows_mr(t, n) : conv_tile(&g, isa_of(t)).mr;
    return pack_conv_floats(g.k, g.per, g.groups, mr);
}

static int64_t dense_train_scratch(Target t, const Node *n, int batch);

/* The scratch of the kernel training's forward pass calls for n. */
int64_t simd_train_kernel_scratch(Target t, const Node *n, int batch) {
    return n->op == OP_DENSE ? dense_train_scratch(t, n, batch) : simd_kernel_scratch(t, n, batch);
}

int64_t simd_train_fscratch(Target t, const Node *n, int batch) {
    if (n->op == OP_DENSE)
        return dense_train_scratch(t, n, batch);
    if (!simd_conv(n))
        return simd_scratch(t, n, batch);
    return simd_kernel_scratch(t, n, batch) + simd_train_packed(t, n);
}

/* The input gradient of a stride-1 convolution is itself a convolution:
 * of the output gradient, padded by the kernel's extent less one, with the
 * kernels flipped and input and output channels swapped. It yields the
 * gradient of the padded input, which cnn_unpad folds back. This is that
 * convolution as a node of its own, so the forward kernels serve it. */
Node *simd_backward_data_node(const Node *n, Arena *a) {
    if (!simd_conv(n) || n->a.stride[0] != 1 || n->a.stride[1] != 1)
        return NULL;
    Shape in = in_shape_of(n, 0);
    Node *dy = arena_alloc(a, sizeof *dy);
    dy->op = OP_INPUT;
    dy->name = "dy";
    dy->shape = n->shape;
    Node *bx = arena_alloc(a, sizeof *bx);
    *bx = (Node){.op = OP_CONV, .layer = n->layer, .loc = n->loc, .site = n->site,
                 .a = n->a, .bad = false};
    bx->name = arena_printf(a, "%s (input gradient)", n->name);
    vec_push(a, &bx->inputs, dy);
    bx->a.units = in.d[0];
    bx->a.bias = false;
    bx->a.pad_same = false;
    bx->a.pad_mode = PAD_ZEROS;
    for (int d = 0; d < 2; d++) {
        bx->a.pad[d] = bx->a.pad_lo[d] = bx->a.pad_hi[d] = (n->a.kernel[d] - 1) * n->a.dilation[d];
        bx->a.stride[d] = 1;
    }
    bx->shape = (Shape){3, {in.d[0], in.d[1] + n->a.pad_lo[0] + n->a.pad_hi[0],
                            in.d[2] + n->a.pad_lo[1] + n->a.pad_hi[1]}};
    bx->macs = n->layer->macs(bx);   /* omp_split weighs it */
    return bx;
}

/* The input gradient of a 3x3 stride-1 layer is a 3x3 stride-1
 * convolution too, and runs as Winograd where the forward layer's shape
 * would (its weights transformed at each step, like the direct kernel's
 * packing): on the MNIST network's conv2, 70 -> 30 us a sample. */
Node *simd_dx_node(const Emit *e, const Node *n) {
    Node *bx = simd_backward_data_node(n, e->a);
    if (bx && !e->opt->no_winograd)
        bx->winograd = wino_pick(e->opt->target, bx);
    return bx;
}

/* The scalar backward's scratch, then for the input-gradient convolution
 * its packed weights and its own scratch: one lane's worth, the larger of
 * the direct and the Winograd kernel's (--no-winograd is not known here). */
int64_t simd_train_bscratch_lane(Target t, const Node *n) {
    int64_t base = train_bscratch_lane(n);
    Arena a;
    arena_init(&a);
    Node *bx = n->op == OP_CONV && n->train && ((Node *)n->inputs.items[0])->train->grad
             ? simd_backward_data_node(n, &a) : NULL;
    int64_t extra = 0;
    if (bx) {
        extra = simd_train_packed(t, bx) + simd_kernel_scratch(t, bx, 1);
        bx->winograd = wino_pick(t, bx);
        int64_t wino = bx->winograd ? simd_train_packed(t, bx) + simd_kernel_scratch(t, bx, 1)
                                    : 0;
        extra = wino > extra ? wino : extra;
    }
    arena_free(&a);
    return base + extra + train_dw_floats(t, n);
}

int64_t simd_train_bscratch(Target t, const Node *n, int batch) {
    (void)batch;
    return train_lane_total(n, simd_train_bscratch_lane(t, n));
}

int simd_conv_mr(Target t, const Node *n) {
    if (dw_suits(t, n))
        return 1;   /* depthwise.c reads the canonical order */
    if (n->rows_wino)
        return rows_mr(t, n);
    ConvGeo g = conv_geo(n);
    return conv_tile(&g, isa_of(t)).mr;
}

/* The planner's and the packer's callbacks, one set per target. */
static int64_t avx2_scratch(const Node *n, int b) { return inference_scratch(TARGET_AVX2, n, b); }
static int64_t avx512_scratch(const Node *n, int b) {
    return inference_scratch(TARGET_AVX512, n, b);
}
static int64_t avx2_fscratch(const Node *n, int b) { return simd_train_fscratch(TARGET_AVX2, n, b); }
static int64_t avx512_fscratch(const Node *n, int b) {
    return simd_train_fscratch(TARGET_AVX512, n, b);
}
static int64_t avx2_bscratch(const Node *n, int b) { return simd_train_bscratch(TARGET_AVX2, n, b); }
static int64_t avx512_bscratch(const Node *n, int b) {
    return simd_train_bscratch(TARGET_AVX512, n, b);
}
static int avx2_mr(const Node *n) { return simd_pack_mr(TARGET_AVX2, n); }
static int avx512_mr(const Node *n) { return simd_pack_mr(TARGET_AVX512, n); }

ScratchFn simd_scratch_fn(Target t) { return t == TARGET_AVX512 ? avx512_scratch : avx2_scratch; }
ScratchFn simd_fscratch_fn(Target t) {
    return t == TARGET_AVX512 ? avx512_fscratch : avx2_fscratch;
}
ScratchFn simd_bscratch_fn(Target t) {
    return t == TARGET_AVX512 ? avx512_bscratch : avx2_bscratch;
}
PackMrFn simd_mr_fn(Target t) { return t == TARGET_AVX512 ? avx512_mr : avx2_mr; }

const char *simd_schedule(Emit *e, const Node *n) {
    const Isa *v = isa_of(e->opt->target);
    const char *reg = v->width == 16 ? "zmm" : "ymm";
    if (n->op == OP_LRN && n->a.beta == 0.75 && n->shape.rank == 3)
        return arena_printf(e->a, "%s: %d positions a vector; base^0.75 by two vector square "
                            "roots", v->name, v->width);
    int pool = pool_width(e->opt->target, n);
    if (pool)
        return arena_printf(e->a, "%s: %s%s%s", v->name, n->shape.d[2] < pool
                                ? "one ymm vector a row, loads and store masked to it"
                                : arena_printf(e->a, "%d outputs of a row a vector (%s)", pool,
                                               pool == 16 ? "zmm" : "ymm"),
                            n->a.stride[1] == 2 ? ", even and odd input columns split by "
                                                  "shuffles" : "",
                            pool_scratch(e->opt->target, n, 1) ? "; each channel padded with -infinity into "
                                               "scratch first" : "");
    if (n->op == OP_DENSE && e->plain)
        return arena_printf(e->a, "%s: the batch transposed into scratch; a tile of UR=%d "
                            "units x SV=%d %s vectors of samples (%d accumulators), each "
                            "weight broadcast from its canonical row", v->name,
                            DENSE_TRAIN_UNITS, dense_train_vectors(e->opt->target), reg,
                            DENSE_TRAIN_UNITS * dense_train_vectors(e->opt->target));
    if (n->op == OP_DENSE)
        return arena_printf(e->a, "%s: panels of NR=%d units; a tile of MR=%d samples x 2 %s "
                            "vectors of units (%d accumulators), each input broadcast; the "
                            "samples left over one at a time, G=%d panels at once%s",
                            v->name, 2 * v->width, dense_mr(e->opt->target), reg,
                            2 * dense_mr(e->opt->target), DENSE_PANELS_AT_ONCE,
                            has_state(e, n) ? "; panels walked forwards and backwards on "
                                              "alternate calls" : "");
    if (!simd_conv(n))
        return NULL;
    if (n->winograd)
        return wino_schedule(e, n);
    if (dw_suits(e->opt->target, n))
        return dw_schedule(e, n);
    if (n->rows_wino)
        return rows_schedule(e, n);
    ConvGeo g = conv_geo(n);
    Tile t = conv_tile(&g, v);
    const char *tuned = g.tuned.mr && same_tile(choice_of(t), g.tuned) ? " (from the tune file)"
                                                                        : "";
    if (t.bpos)
        return arena_printf(e->a,
            "%s: tile MP=%d positions x MR=%d output channels%s (%d %s accumulators); "
            "input values broadcast from the %s, weights in vectors", v->name, t.mp, t.mr,
            tuned, t.mp * t.nv, reg,
            bpos_panel(&g) ? "tile's MP positions of every channel, copied into a panel in "
                             "scratch first"
            : g.pads ? "padded input" : "input");
    return arena_printf(e->a,
        "%s: tile MR=%d output channels x NR=%d positions%s (%d %s accumulators); %s", v->name,
        t.mr, t.nv * t.w, tuned, t.mr * t.nv, reg,
        pos_panel(&g, t) ? "each tile's NR positions of every channel copied into a panel "
                           "in scratch first"
        : g.flat ? arena_printf(e->a, "positions read straight from the %sinput, rows %lld "
                                "apart (%lld kept)", g.pads ? "padded " : "",
                                ll(g.pitch), ll(g.wo))
               : arena_printf(e->a, "stride %lldx%lld: input rows gathered (im2col) "
                              "into scratch", ll(g.sh), ll(g.sw)));
}

/* ---- the epilogue ----------------------------------------------------------- */

/* The fused steps on vector `x` holding eight outputs from sample index
 * `idx` on. */
void simd_epilogue_vector(Emit *e, const Node *n, const char *in, const char *idx) {
    const Epilogue *epi = epilogue_of(e, n);
    int r = 0;
    for (int i = 0; epi && i < epi->n; i++) {
        const struct EpiStep *st = &epi->step[i];
        switch (st->kind) {
        case EPI_ADD:
            P(e, "%sx = _mm256_add_ps(x, _mm256_loadu_ps(rb%d + %s));\n", in, r++, idx);
            break;
        /* max(0, x): NaN is the second operand's, so it passes as in C */
        case EPI_RELU:
            P(e, "%sx = _mm256_max_ps(_mm256_setzero_ps(), x);\n", in);
            break;
        case EPI_RELU6:
            P(e, "%sx = _mm256_min_ps(_mm256_set1_ps(6.0f), "
                 "_mm256_max_ps(_mm256_setzero_ps(), x));\n", in);
            break;
        case EPI_LEAKY:
            if (e->wide)
                P(e, "%sx = _mm512_mask_mul_ps(x, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), "
                     "_CMP_LT_OQ), x, _mm512_set1_ps(%s));\n", in, float_lit(e->a, st->alpha));
            else
                P(e, "%sx = _mm256_blendv_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(%s)), "
                     "_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));\n", in,
                  float_lit(e->a, st->alpha));
            break;
        }
    }
}

/* Stores vector `vec` at yb + `at` through the epilogue. */
void simd_store_vector(Emit *e, const Node *n, const char *in, const char *vec, const char *at) {
    P(e, "%s__m256 x = %s;\n", in, vec);
    simd_epilogue_vector(e, n, in, at);
    P(e, "%s_mm256_storeu_ps(yb + %s, x);\n", in, at);
}

/* Stores lanes `first` .. `first` + `count` of vector `vec` at yb + `at` on,
 * one by one through the epilogue: a row's end shorter than a vector. */
void simd_store_lanes(Emit *e, const Node *n, const char *in, const char *vec,
                      const char *first, const char *count, const char *at) {
    P(e, "%sfloat lane[W];\n", in);
    P(e, "%s_mm256_storeu_ps(lane, %s);\n", in, vec);
    P(e, "%sfor (int l = 0; l < %s; l++) {\n", in, count);
    P(e, "%s    float v = lane[%s + l];\n", in, first);
    emit_epilogue_scalar(e, n, arena_printf(e->a, "%s    ", in), arena_printf(e->a, "%s + l", at));
    P(e, "%s    yb[%s + l] = v;\n", in, at);
    P(e, "%s}\n", in);
}

/* ---- convolution ------------------------------------------------------------ */

static void emit_gather(Emit *e, const ConvGeo *g, const char *col) {
    P(e, "        for (int c = 0; c < %lld; c++)\n", ll(g->cin));
    P(e, "            for (int i = 0; i < %lld; i++)\n", ll(g->kh));
    P(e, "                for (int j = 0; j < %lld; j++) {\n", ll(g->kw));
    P(e, "                    float *row = %s + ((c * %lld + i) * %lld + j) * %lld;\n", col,
      ll(g->kh), ll(g->kw), ll(g->len));
    P(e, "                    const float *src = in + c * %lld + i * %lld + j * %lld;\n",
      ll(g->hp * g->wp), ll(g->dh * g->wp), ll(g->dw));
    P(e, "                    for (int oh = 0; oh < %lld; oh++)\n", ll(g->ho));
    P(e, "                        for (int ow = 0; ow < %lld; ow++)\n", ll(g->wo));
    P(e, "                            row[oh * %lld + ow] = src[oh * %lld + ow * %lld];\n",
      ll(g->wo), ll(g->sh * g->wp), ll(g->sw));
    P(e, "                }\n");
}

/* `const float *in`: this sample's input, padded into sb (its scratch)
 * when `copy`, else the input itself. */
static void input_of_sample(Emit *e, const Node *n, const ConvGeo *g, bool copy) {
    if (!copy) {
        P(e, "        const float *in = xb0;\n");
        return;
    }
    const Attrs *a = &n->a;
    Shape in = in_shape_of(n, 0);
    e->need_pad = true;
    P(e, "        cnn_pad(xb0, sb, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %d);\n",
      ll(g->cin), ll(in.d[1]), ll(in.d[2]), ll(a->pad_lo[0]), ll(a->pad_lo[1]), ll(g->hp),
      ll(g->wp), (int)a->pad_mode);
    P(e, "        const float *in = sb;\n");
}

/* Stores the tile t[MR][NR] of output channels oc0.. at positions p.. */
static void emit_conv_store(Emit *e, const Node *n, const ConvGeo *g, Tile t) {
    int64_t plane = g->ho * g->wo;
    P(e, "                for (int i = 0; i < MR; i++) {\n");
    if (g->kg % t.mr)
        P(e, "                    if (ob * MR + i >= %lld)\n"
             "                        break;\n", ll(g->kg));
    if (bands_here(e, n))   /* pool_bands.c's buffer */
        P(e, "                    const int at = (oc0 + i) * %lld - sub;\n",
          ll(bands_plane(e->opt->target, n)));
    else
        P(e, "                    const int at = (oc0 + i) * %lld;\n", ll(plane));
    P(e, "                    for (int vi = 0; vi < NV; vi++) {\n");
    P(e, "                        const int q = p + vi * W;\n");
    if (g->pitch == g->wo) {
        /* the run of positions is the output plane itself */
        P(e, "                        __m256 x = _mm256_loadu_ps(t[i] + vi * W);\n");
        if (g->len < (int64_t)t.nv * t.w) {
            P(e, "                        if (q + W > %lld) {\n", ll(g->len));
            P(e, "                            for (int l = 0; l < W && q + l < %lld; l++) {\n",
              ll(g->len));
            P(e, "                                float v = t[i][vi * W + l];\n");
            emit_epilogue_scalar(e, n, "                                ", "at + q + l");
            P(e, "                                yb[at + q + l] = v;\n");
            P(e, "                            }\n");
            P(e, "                            continue;\n");
            P(e, "                        }\n");
        }
        simd_epilogue_vector(e, n, "                        ", "at + q");
        P(e, "                        _mm256_storeu_ps(yb + at + q, x);\n");
    } else {
        P(e, "                        const int oh = q / %lld, ow = q - oh * %lld;\n",
          ll(g->pitch), ll(g->pitch));
        P(e, "                        if (ow + W <= %lld && q + W <= %lld) {\n", ll(g->wo),
          ll(g->len));
        simd_store_vector(e, n, "                            ", "_mm256_loadu_ps(t[i] + vi * W)",
                          arena_printf(e->a, "at + oh * %lld + ow", ll(g->wo)));
        P(e, "                            continue;\n");
        P(e, "                        }\n");
        P(e, "                        for (int l = 0; l < W; l++) {\n");
        P(e, "                            const int h = (q + l) / %lld, c = q + l - h * %lld;\n",
          ll(g->pitch), ll(g->pitch));
        P(e, "                            if (c >= %lld || q + l >= %lld)\n", ll(g->wo), ll(g->len));
        P(e, "                                continue;\n");
        P(e, "                            float v = t[i][vi * W + l];\n");
        emit_epilogue_scalar(e, n, "                            ",
                             arena_printf(e->a, "at + h * %lld + c", ll(g->wo)));
        P(e, "                            yb[at + h * %lld + c] = v;\n", ll(g->wo));
        P(e, "                        }\n");
    }
    P(e, "                    }\n");
    P(e, "                }\n");
}

/* Input channels per trip of the channel loop when the taps are written
 * out: enough that a trip has about UNROLL_TAPS of them (a 1x1 layer does
 * eight channels a trip), a power of two dividing the channel count. */
static int64_t channel_unroll(const ConvGeo *g) {
    int64_t u = 1, taps = g->kh * g->kw;
    while (u * 2 * taps <= UNROLL_TAPS && g->cin_g % (u * 2) == 0)
        u *= 2;
    return u;
}

/* One kernel tap: NV vectors of X at xp + off, MR weights at wp + woff. */
static void emit_tap(Emit *e, Tile t, const char *in, const char *off, const char *woff) {
    P(e, "%s{\n", in);
    for (int v = 0; v < t.nv; v++)
        P(e, "%s    const __m256 xv%d = _mm256_loadu_ps(xp + %s + %d);\n", in, v, off,
          v * t.w);
    for (int i = 0; i < t.mr; i++) {
        P(e, "%s    %swv = _mm256_set1_ps(wp[%s + %d]);\n", in, i == 0 ? "__m256 " : "",
          woff, i);
        for (int v = 0; v < t.nv; v++)
            P(e, "%s    c%d%d = _mm256_fmadd_ps(wv, xv%d, c%d%d);\n", in, i, v, v, i, v);
    }
    P(e, "%s}\n", in);
}

/* One kernel tap in the C form: NV vectors of weights at wp + woff, each
 * of MP input values at xp + o<i> + off broadcast against them. */
static void emit_tap_bpos(Emit *e, Tile t, const char *in, const char *off, const char *woff) {
    P(e, "%s{\n", in);
    for (int v = 0; v < t.nv; v++)
        P(e, "%s    const __m256 wv%d = _mm256_loadu_ps(wp + %s + %d);\n", in, v, woff,
          v * t.w);
    for (int i = 0; i < t.mp; i++) {
        P(e, "%s    %sxb = _mm256_set1_ps(xp[o%d + %s]);\n", in, i == 0 ? "__m256 " : "",
          i, off);
        for (int v = 0; v < t.nv; v++)
            P(e, "%s    c%d%d = _mm256_fmadd_ps(xb, wv%d, c%d%d);\n", in, i, v, v, i, v);
    }
    P(e, "%s}\n", in);
}

/* The order of the flat loop over (tile, block) pairs shared by both
 * forms. With the weights small enough to stay in L2, position tiles
 * outermost, so the input a tile reads stays in L1 while every block of
 * output channels passes over it; otherwise channel blocks outermost, so
 * each block's weights stay in cache while the tiles pass. */
typedef struct TileLoop {
    int64_t tiles, blocks, all_blocks;
    bool tiles_outer;
    int64_t band;   /* tiles outermost: tiles a band */
} TileLoop;

static TileLoop tile_loop(const ConvGeo *g, Tile t, int64_t tiles) {
    TileLoop l = {.tiles = tiles, .blocks = (g->kg + t.mr - 1) / t.mr};
    l.all_blocks = g->groups * l.blocks;
    l.tiles_outer = g->k * g->per * 4 <= L2_BYTES / 2;
    /* Tiles outermost, each block writes only a tile's positions of its
     * rows before the next block's rows: hundreds of short runs at once,
     * which no prefetcher follows. Bands of tiles whose inputs together
     * stay in L2 make the runs a band long (a 1x1 64->256 conv at 56x56
     * with its residual add: 1.60 -> 1.40 ms on AVX2). */
    int64_t tile_bytes = g->per * (t.bpos ? t.mp : t.nv * t.w) * 4;
    int64_t band = tile_bytes > 0 ? L2_BYTES / 8 / tile_bytes : 1;
    l.band = band < 1 ? 1 : band > tiles ? tiles : band;
    return l;
}

/* Tiles of a sample in either form. */
static int64_t tiles_of(const ConvGeo *g, Tile t) {
    if (t.bpos)
        return (g->ho * g->wo + t.mp - 1) / t.mp;
    int64_t nr = (int64_t)t.nv * t.w;
    return g->len >= nr ? (g->len + nr - 1) / nr : 1;
}

TripOrder trip_order(Target target, const Node *n) {
    if (n->rows_wino)
        return rows_trip_order(target, n);
    if (n->winograd)
        return wino_trip_order(target, n);
    ConvGeo g = conv_geo(n);
    Tile t = conv_tile(&g, isa_of(target));
    TileLoop l = tile_loop(&g, t, tiles_of(&g, t));
    TripOrder o = {.trips = l.tiles * l.all_blocks, .by_channels = !l.tiles_outer,
                   .per_block = l.tiles, .mr = t.mr, .kg = g.kg, .blocks = l.blocks};
    int64_t band = l.band > 1 ? l.band : 1;
    o.unit = band * l.all_blocks;
    o.unit_pos = band * (t.bpos ? t.mp : t.nv * t.w);
    o.pitch = t.bpos ? g.wo : g.pitch;
    /* the P form's last tile is shifted back to end at the run's end */
    o.last_start = t.bpos ? (l.tiles - 1) * t.mp
                 : g.len >= t.nv * t.w ? g.len - t.nv * t.w : 0;
    return o;
}

/* The loop header: "for (int it = 0; it < trips; it++)" with the tile and
 * block of each trip; OpenMP splits the one loop evenly. With a pool taken
 * in chunks (pool_bands.c), the loop runs from it0 to it1. */
static void open_tile_loop(Emit *e, const Node *n, const ConvGeo *g, Tile t, int64_t tiles) {
    TileLoop l = tile_loop(g, t, tiles);
    int64_t blocks = l.blocks, all_blocks = l.all_blocks, band = l.band;
    bool tiles_outer = l.tiles_outer;
    bool bands = bands_here(e, n);
    if (bands)
        bands_open(e, n);
    if (e->split)
        P(e, "        #pragma omp parallel for schedule(static)\n");
    if (bands)
        P(e, "        for (int it = it0; it < it1; it++) {\n");
    else
        P(e, "        for (int it = 0; it < %lld; it++) {\n", ll(tiles * all_blocks));
    if (tiles_outer && band > 1) {
        P(e, "            /* bands of %lld tiles, every block of output channels on a band */\n",
          ll(band));
        P(e, "            const int band = it / %lld, rest = it - band * %lld;\n",
          ll(band * all_blocks), ll(band * all_blocks));
        P(e, "            const int in_band = %lld - band * %lld < %lld ? %lld - band * %lld : %lld;\n",
          ll(tiles), ll(band), ll(band), ll(tiles), ll(band), ll(band));
        P(e, "            const int gb = rest / in_band, tile = band * %lld + rest - gb * in_band;\n",
          ll(band));
    } else if (tiles_outer)
        P(e, "            const int tile = it / %lld, gb = it - tile * %lld;\n",
          ll(all_blocks), ll(all_blocks));
    else
        P(e, "            const int gb = it / %lld, tile = it - gb * %lld;\n", ll(tiles),
          ll(tiles));
    if (g->groups > 1)
        P(e, "            const int grp = gb / %lld, ob = gb - grp * %lld;\n", ll(blocks),
          ll(blocks));
    else
        P(e, "            const int grp = 0, ob = gb;\n");
    P(e, "            const int oc0 = grp * %lld + ob * MR;\n", ll(g->kg));
    P(e, "            (void)grp;\n");
}

/* The end of the tile loop, then the pool's chunk (pool_bands.c). */
static void close_tile_loop(Emit *e, const Node *n) {
    P(e, "        }\n");
    if (bands_here(e, n))
        bands_close(e, n);
}

/* The C form: vectors of output channels, input values broadcast. Each
 * tile's MP positions are clamped to the last one, so a short last tile
 * recomputes that position instead of reading past the input. */
static void emit_conv_bpos(Emit *e, const Node *n, const ConvGeo *g, Tile t) {
    int64_t positions = g->ho * g->wo;
    int64_t blocks = (g->kg + t.mr - 1) / t.mr;
    int64_t tiles = (positions + t.mp - 1) / t.mp;
    P(e, "    enum { MP = %d, NV = %d, MR = %d, W = %d }; /* the register tile; W floats a vector */\n",
      t.mp, t.nv, t.mr, t.w);
    P(e, "    const float *bias = w + %lld;\n", ll(g->groups * blocks * t.mr * g->per));
    e->scratch_per_sample = true;
    open_batch(e, n);
    e->scratch_per_sample = false;
    bool panel = bpos_panel(g);
    bool bands = bands_here(e, n);
    /* the distance between a position's values in consecutive channels */
    int64_t cstep = panel ? t.mp : g->hp * g->wp;
    int64_t own = conv_copy_floats(g, t);
    if (g->pads || panel || bands)
        P(e, "        float *sb = s + (ptrdiff_t)b * %lld; /* this sample's scratch */\n",
          ll(own + (bands ? bands_scratch(e->opt->target, n) : 0)));
    if (bands)
        bands_pointers(e, n, arena_printf(e->a, "sb + %lld", ll(own)));
    input_of_sample(e, n, g, g->pads);
    if (panel) {
        P(e, "        for (int tile = 0; tile < %lld; tile++)\n", ll(tiles));
        P(e, "            for (int i = 0; i < MP; i++) {\n");
        P(e, "                const int q = tile * MP + i < %lld ? tile * MP + i : %lld;\n",
          ll(positions), ll(positions - 1));
        P(e, "                const float *src = in + q / %lld * %lld + q %% %lld * %lld;\n",
          ll(g->wo), ll(g->sh * g->wp), ll(g->wo), ll(g->sw));
        P(e, "                float *dst = sb + tile * %lld + i;\n", ll(g->cin * t.mp));
        P(e, "                for (int c = 0; c < %lld; c++)\n", ll(g->cin));
        P(e, "                    dst[c * MP] = src[c * %lld];\n", ll(g->hp * g->wp));
        P(e, "            }\n");
    }
    open_tile_loop(e, n, g, t, tiles);
    P(e, "            const float *wp = w + (ptrdiff_t)gb * %lld;\n", ll(t.mr * g->per));
    if (panel)
        P(e, "            const float *xp = sb + tile * %lld;\n", ll(g->cin * t.mp));
    else
        P(e, "            const float *xp = in + grp * %lld;\n", ll(g->cin_g * g->hp * g->wp));
    P(e, "            int q[MP];\n");
    P(e, "            float t[MP][MR];\n");
    for (int i = 0; i < t.mp; i++) {
        P(e, "            q[%d] = tile * MP + %d < %lld ? tile * MP + %d : %lld;\n", i, i,
          ll(positions), i, ll(positions - 1));
        if (panel)
            P(e, "            const int o%d = %d;\n", i, i);
        else
            P(e, "            const int o%d = q[%d] / %lld * %lld + q[%d] %% %lld * %lld;\n", i,
              i, ll(g->wo), ll(g->sh * g->wp), i, ll(g->wo), ll(g->sw));
    }
    for (int i = 0; i < t.mp; i++)
        for (int v = 0; v < t.nv; v++)
            P(e, "            __m256 c%d%d = _mm256_loadu_ps(bias + gb * MR + %d);\n", i, v,
              v * t.w);
    int64_t taps = g->kh * g->kw;
    if (taps <= UNROLL_TAPS) {
        int64_t u = channel_unroll(g);
        P(e, "            for (int c = 0; c < %lld; c += %lld, xp += %lld, wp += %lld) {\n",
          ll(g->cin_g), ll(u), ll(u * cstep), ll(u * taps * t.mr));
        for (int64_t k = 0; k < u * taps; k++) {
            int64_t tap = k % taps;
            emit_tap_bpos(e, t, "                ",
                          arena_printf(e->a, "%lld", ll(k / taps * cstep +
                                                       tap / g->kw * g->dh * g->wp +
                                                       tap % g->kw * g->dw)),
                          arena_printf(e->a, "%lld", ll(k * t.mr)));
        }
        P(e, "            }\n");
    } else if (g->kw <= UNROLL_TAPS) {
        /* a kernel row's taps written out: a 7x7 kernel pays the loop and
         * the index arithmetic once per row, not once per tap */
        P(e, "            for (int c = 0; c < %lld; c++, xp += %lld)\n", ll(g->cin_g),
          ll(g->hp * g->wp));
        P(e, "                for (int i = 0; i < %lld; i++, wp += %lld) {\n", ll(g->kh),
          ll(g->kw * t.mr));
        P(e, "                    const int r = i * %lld;\n", ll(g->dh * g->wp));
        for (int64_t j = 0; j < g->kw; j++)
            emit_tap_bpos(e, t, "                    ",
                          arena_printf(e->a, "r + %lld", ll(j * g->dw)),
                          arena_printf(e->a, "%lld", ll(j * t.mr)));
        P(e, "                }\n");
    } else {
        P(e, "            for (int c = 0; c < %lld; c++, xp += %lld)\n", ll(g->cin_g),
          ll(g->hp * g->wp));
        P(e, "                for (int i = 0; i < %lld; i++)\n", ll(g->kh));
        P(e, "                    for (int j = 0; j < %lld; j++, wp += MR)\n", ll(g->kw));
        emit_tap_bpos(e, t, "                        ",
                      arena_printf(e->a, "i * %lld + j * %lld", ll(g->dh * g->wp), ll(g->dw)),
                      "0");
    }
    for (int i = 0; i < t.mp; i++)
        for (int v = 0; v < t.nv; v++)
            P(e, "            _mm256_storeu_ps(t[%d] + %d, c%d%d);\n", i, v * t.w, i, v);
    P(e, "            for (int k = 0; k < MR; k++) {\n");
    if (g->kg % t.mr)
        P(e, "                if (ob * MR + k >= %lld)\n"
             "                    break;\n", ll(g->kg));
    if (bands_here(e, n))   /* pool_bands.c's buffer */
        P(e, "                const int at = (oc0 + k) * %lld - sub;\n",
          ll(bands_plane(e->opt->target, n)));
    else
        P(e, "                const int at = (oc0 + k) * %lld;\n", ll(positions));
    P(e, "                for (int i = 0; i < MP; i++) {\n");
    P(e, "                    float v = t[i][k];\n");
    emit_epilogue_scalar(e, n, "                    ", "at + q[i]");
    P(e, "                    yb[at + q[i]] = v;\n");
    P(e, "                }\n");
    P(e, "            }\n");
    close_tile_loop(e, n);
    close_batch(e);
}

static void emit_conv(Emit *e, const Node *n) {
    ConvGeo g = conv_geo(n);
    Tile t = conv_tile(&g, isa_of(e->opt->target));
    if (t.bpos) {
        emit_conv_bpos(e, n, &g, t);
        return;
    }
    int64_t nr = (int64_t)t.nv * t.w;
    int64_t blocks = (g.kg + t.mr - 1) / t.mr;
    int64_t copy = conv_copy_floats(&g, t);
    P(e, "    enum { MR = %d, NV = %d, NR = %lld, W = %d }; /* the register tile; W floats a "
         "vector */\n", t.mr, t.nv, ll(nr), t.w);
    P(e, "    const float *bias = w + %lld;\n", ll(g.groups * blocks * t.mr * g.per));
    int64_t per_sample = copy + conv_col_floats(&g, t);
    bool bands = bands_here(e, n);
    e->scratch_per_sample = true;
    open_batch(e, n);
    e->scratch_per_sample = false;
    if (per_sample || bands)
        P(e, "        float *sb = s + (ptrdiff_t)b * %lld; /* this sample's scratch */\n",
          ll(per_sample + (bands ? bands_scratch(e->opt->target, n) : 0)));
    if (bands)
        bands_pointers(e, n, arena_printf(e->a, "sb + %lld", ll(per_sample)));
    input_of_sample(e, n, &g, copy > 0);
    if (copy) {
        P(e, "        for (int i = %lld; i < %lld; i++)\n", ll(copy - nr), ll(copy));
        P(e, "            sb[i] = 0.0f; /* what the last tile may read past the end */\n");
    }
    const char *x = "in";
    if (!g.flat) {
        int64_t col = conv_col_floats(&g, t);
        P(e, "        float *col = sb + %lld;\n", ll(copy));
        emit_gather(e, &g, "col");
        P(e, "        for (int i = %lld; i < %lld; i++)\n", ll(col - nr), ll(col));
        P(e, "            col[i] = 0.0f;\n");
        x = "col";
    }
    int64_t tiles = g.len >= nr ? (g.len + nr - 1) / nr : 1;
    bool panel = pos_panel(&g, t);
    /* the distance between a position's values in consecutive channels */
    int64_t cstep = panel ? nr : g.cs;
    if (panel) {
        P(e, "        for (int tile = 0; tile < %lld; tile++) {\n", ll(tiles));
        P(e, "            const int p = tile < %lld ? tile * NR : %lld;\n", ll(tiles - 1),
          ll(g.len - nr));
        P(e, "            for (int c = 0; c < %lld; c++)\n", ll(g.cin));
        P(e, "                for (int l = 0; l < NR; l++)\n");
        P(e, "                    sb[(tile * %lld + c) * NR + l] = in[c * %lld + p + l];\n",
          ll(g.cin), ll(g.cs));
        P(e, "        }\n");
    }
    open_tile_loop(e, n, &g, t, tiles);
    P(e, "            const float *wb = w + (ptrdiff_t)gb * %lld;\n", ll(t.mr * g.per));
    P(e, "            const float *xg = %s + grp * %lld;\n", panel ? "sb" : x,
      ll(g.cin_g * g.cs));
    P(e, "            float t[MR][NR];\n");
    P(e, "            {\n");
    if (g.len >= nr)
        P(e, "                const int p = tile < %lld ? tile * NR : %lld;\n", ll(tiles - 1),
          ll(g.len - nr));
    else
        P(e, "                const int p = 0;\n                (void)tile;\n");
    for (int i = 0; i < t.mr; i++)
        for (int v = 0; v < t.nv; v++)
            P(e, "                __m256 c%d%d = _mm256_set1_ps(bias[gb * MR + %d]);\n",
              i, v, i);
    P(e, "                const float *xp = xg + %s;\n", panel ? arena_printf(e->a,
      "tile * %lld", ll(g.cin * nr)) : "p");
    P(e, "                const float *wp = wb;\n");
    /* Up to UNROLL_TAPS kernel taps are written out one after another
     * with constant offsets, so loop overhead is paid once per input
     * channel rather than once per tap. */
    if (g.kh * g.kw <= UNROLL_TAPS) {
        int64_t taps = g.kh * g.kw, u = channel_unroll(&g);
        P(e, "                for (int c = 0; c < %lld; c += %lld, xp += %lld, wp += %lld) {\n",
          ll(g.cin_g), ll(u), ll(u * cstep), ll(u * taps * t.mr));
        for (int64_t k = 0; k < u * taps; k++) {
            int64_t tap = k % taps;
            emit_tap(e, t, "                    ",
                     arena_printf(e->a, "%lld", ll(k / taps * cstep + tap / g.kw * g.is +
                                                  tap % g.kw * g.js)),
                     arena_printf(e->a, "%lld", ll(k * t.mr)));
        }
        P(e, "                }\n");
    } else {
        P(e, "                for (int c = 0; c < %lld; c++)\n", ll(g.cin_g));
        P(e, "                    for (int i = 0; i < %lld; i++)\n", ll(g.kh));
        P(e, "                        for (int j = 0; j < %lld; j++, wp += MR) {\n", ll(g.kw));
        emit_tap(e, t, "                            ",
                 arena_printf(e->a, "c * %lld + i * %lld + j * %lld", ll(g.cs), ll(g.is),
                              ll(g.js)), "0");
        P(e, "                        }\n");
    }
    for (int i = 0; i < t.mr; i++)
        for (int v = 0; v < t.nv; v++)
            P(e, "                _mm256_storeu_ps(t[%d] + %d, c%d%d);\n", i, v * t.w, i, v);
    emit_conv_store(e, n, &g, t);
    P(e, "            }\n");
    close_tile_loop(e, n);
    close_batch(e);
}

/* ---- dense ------------------------------------------------------------------ */

/* Weights too big to stay in L2 between calls: at batch 1 reading them is
 * the whole cost of the layer. Walked in the same order at every call, an
 * LRU cache keeps none of them (each line is evicted just before it is read
 * again); walked alternately forwards and backwards, each call starts on the
 * rows the last one read most recently, which are still in L2 (on the MNIST
 * network's 3 MB layer, 101 us a call became 62). */
static bool dense_turns(const Node *n) {
    return n->op == OP_DENSE && n->a.units * in_elems(n, 0) * 4 > L2_BYTES / 2;
}

int64_t simd_state_floats(const Node *n, int batch) {
    (void)batch;
    return dense_turns(n) ? 1 : 0;   /* the direction of the last call */
}

/* A register tile of `rows` x `nv` accumulators a<r><v>, zeroed. */
static void emit_tile_zero(Emit *e, const char *in, int rows, int nv) {
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++)
            P(e, "%s__m256 a%d%d = _mm256_setzero_ps();\n", in, r, v);
}

/* One step of such a tile, the shape every dense kernel shares: nv vectors
 * v<v> loaded from `base` + v * W, then each row's value bcast[r]
 * broadcast and multiplied into the row's accumulators. */
static void emit_tile_step(Emit *e, const char *in, int rows, int nv, const char *base,
                           const char *const *bcast) {
    for (int v = 0; v < nv; v++)
        P(e, "%sconst __m256 v%d = _mm256_loadu_ps(%s + %d * W);\n", in, v, base, v);
    P(e, "%s__m256 bv;\n", in);
    for (int r = 0; r < rows; r++) {
        P(e, "%sbv = _mm256_set1_ps(%s);\n", in, bcast[r]);
        for (int v = 0; v < nv; v++)
            P(e, "%sa%d%d = _mm256_fmadd_ps(bv, v%d, a%d%d);\n", in, r, v, v, r, v);
    }
}

/* Training's forward pass reads the canonical weights [units][inputs], not
 * the panels inference packs. It transposes the batch into scratch first,
 * xt [group][input][SW], SW = SV vectors of samples a group (zeros past the
 * last sample), then takes tiles of UR units x SV vectors of samples: each
 * weight broadcast from its row against the group's samples. Each output
 * is again one accumulator lane summed over the inputs in order, then
 * given its bias: the bits of the inference kernel. Dot products of four
 * rows against a sample, as before, took the MNIST network's 1568 -> 500
 * layer at batch 64 in 2.0 ms (50 GFLOP/s in the training step). */

/* Floats of xt: whole groups of samples for `batch`. */
static int64_t dense_train_scratch(Target t, const Node *n, int batch) {
    int64_t sw = dense_train_vectors(t) * isa_of(t)->width;
    return (batch + sw - 1) / sw * sw * in_elems(n, 0);
}

static void emit_dense_train(Emit *e, const Node *n) {
    Target t = e->opt->target;
    int w = isa_of(t)->width, sv = dense_train_vectors(t), ur = DENSE_TRAIN_UNITS;
    int64_t units = n->a.units, in = in_elems(n, 0);
    bool omp = e->opt->openmp;
    P(e, "    enum { W = %d, UR = %d, SV = %d, SW = %d }; /* W floats a vector; UR units by SV "
         "vectors of samples a tile; SW samples a group */\n", w, ur, sv, sv * w);
    P(e, "    const int groups = (batch + SW - 1) / SW;\n");
    P(e, "    float *xt = s; /* [group][input][SW] */\n");
    if (omp) {
        P(e, "    #pragma omp parallel if(batch * %lldLL >= %d)\n", ll(omp_work(n)), OMP_SPLIT_WORK);
        P(e, "    {\n");
        P(e, "    #pragma omp for schedule(static)\n");
    } else {
        P(e, "    {\n");
    }
    /* a sample (or a lane of zeros) a trip: the threads share a group */
    P(e, "    for (int b = 0; b < groups * SW; b++) {\n");
    P(e, "        float *col = xt + (ptrdiff_t)(b / SW) * %lld + b %% SW;\n", ll(in * sv * w));
    P(e, "        if (b < batch) {\n");
    P(e, "            const float *x = x0 + (ptrdiff_t)b * %lld;\n", ll(in));
    P(e, "            for (int i = 0; i < %lld; i++)\n", ll(in));
    P(e, "                col[(ptrdiff_t)i * SW] = x[i];\n");
    P(e, "        } else {\n");
    P(e, "            for (int i = 0; i < %lld; i++)\n", ll(in));
    P(e, "                col[(ptrdiff_t)i * SW] = 0.0f;\n");
    P(e, "        }\n");
    P(e, "    }\n");
    if (omp)
        P(e, "    #pragma omp for schedule(static)\n");
    P(e, "    for (int u0 = 0; u0 < %lld; u0 += UR)\n", ll(units));
    P(e, "        for (int g = 0; g < groups; g++) {\n");
    P(e, "            const int rows = u0 + UR <= %lld ? UR : %lld - u0;\n", ll(units), ll(units));
    P(e, "            const float *w0 = w + (ptrdiff_t)u0 * %lld;\n", ll(in));
    for (int r = 1; r < ur; r++)   /* rows past the last read the first again */
        P(e, "            const float *w%d = w0 + (%d < rows ? %lld : 0);\n", r, r, ll(r * in));
    P(e, "            const float *xg = xt + (ptrdiff_t)g * %lld;\n", ll(in * sv * w));
    emit_tile_zero(e, "            ", ur, sv);
    P(e, "            for (int i = 0; i < %lld; i++, xg += SW) {\n", ll(in));
    const char *weight[DENSE_TRAIN_UNITS];
    for (int r = 0; r < ur; r++)
        weight[r] = arena_printf(e->a, "w%d[i]", r);
    emit_tile_step(e, "                ", ur, sv, "xg", weight);
    P(e, "            }\n");
    P(e, "            float lane[SW];\n");
    for (int r = 0; r < ur; r++) {
        P(e, "            if (%d < rows) {\n", r);
        for (int v = 0; v < sv; v++)
            P(e, "                _mm256_storeu_ps(lane + %d, a%d%d);\n", v * w, r, v);
        P(e, "                for (int l = 0; l < SW && g * SW + l < batch; l++)\n");
        P(e, "                    y[(ptrdiff_t)(g * SW + l) * %lld + u0 + %d] = lane[l]%s;\n",
          ll(units), r,
          has_bias(e, n) ? arena_printf(e->a, " + w[%lld + u0 + %d]", ll(units * in), r) : "");
        P(e, "            }\n");
    }
    P(e, "        }\n");
    P(e, "    }\n");
}

/* ---- dense: inference ----------------------------------------------------- */

/* Inference reads a dense layer's weights packed in panels of NR = 2W
 * units, [panel][input][NR] with zeros past the last unit, then a bias for
 * each padded unit (PACK_CONV with mr = NR), and computes y = W x + b as a
 * matrix product: a register tile of MR samples x one panel, each input of
 * each sample broadcast against the panel's two vectors. Every output is
 * one accumulator lane, summed over the inputs in order and then given its
 * bias, so the samples left over after whole tiles (all of them at batch 1)
 * get the same bits from a one-sample loop, which keeps G = 4 panels going
 * at once: eight chains of FMAs to cover their latency. The dot products
 * that ran before (four rows against one sample, ten loads for eight FMAs,
 * the rows' 25 KB sharing L1 with the sample) reached
 * 66-80 GFLOP/s on the MNIST network's 1568 -> 500 layer at batch 64; this
 * tile, 113-117, near the FMA peak (Zen 4, one core). At batch 1 the one
 * loop streams the weights as fast as the rows one by one did (33 us from
 * L3, alternating directions as before). */

/* Stores `vec`, units u .. u + W - 1 of sample `s`, plus their biases,
 * through the epilogue, cut at the last unit. */
static void dense_store(Emit *e, const Node *n, const char *in, const char *s, const char *vec,
                        const char *u) {
    int64_t units = n->a.units;
    int w = isa_of(e->opt->target)->width;
    P(e, "%s{\n", in);
    P(e, "%s    float *yb = y + (ptrdiff_t)(%s) * %lld;\n", in, s, ll(units));
    for (int k = 0; k < epilogue_operands(e, n); k++)
        P(e, "%s    const float *rb%d = r%d + (ptrdiff_t)(%s) * %lld;\n", in, k, k, s, ll(units));
    P(e, "%s    const int u = %s;\n", in, u);
    P(e, "%s    const __m256 sum = %s;\n", in,
      has_bias(e, n) ? arena_printf(e->a, "_mm256_add_ps(%s, _mm256_loadu_ps(bias + u))", vec)
                     : vec);
    const char *deeper = arena_printf(e->a, "%s        ", in);
    if (units % (2 * w) == 0) {   /* whole panels */
        simd_store_vector(e, n, arena_printf(e->a, "%s    ", in), "sum", "u");
    } else if (units % w == 0) {   /* whole vectors, the last panel's second one past the end */
        P(e, "%s    if (u < %lld) {\n", in, ll(units));
        simd_store_vector(e, n, deeper, "sum", "u");
        P(e, "%s    }\n", in);
    } else {
        P(e, "%s    if (u + W <= %lld) {\n", in, ll(units));
        simd_store_vector(e, n, deeper, "sum", "u");
        P(e, "%s    } else if (u < %lld) {\n", in, ll(units));
        simd_store_lanes(e, n, deeper, "sum", "0", arena_printf(e->a, "%lld - u", ll(units)), "u");
        P(e, "%s    }\n", in);
    }
    P(e, "%s}\n", in);
}

/* One sample b against panels p0 .. p0 + count - 1, `count` a constant. */
static void dense_one_sample(Emit *e, const Node *n, int count, const char *in) {
    int64_t inputs = in_elems(n, 0);
    P(e, "%s{\n", in);
    P(e, "%s    const float *xb = x0 + (ptrdiff_t)b * %lld;\n", in, ll(inputs));
    P(e, "%s    const float *wp = w + (ptrdiff_t)p0 * %lld;\n", in, ll(inputs * dense_nr(e->opt->target)));
    for (int g = 0; g < count; g++)
        P(e, "%s    __m256 c%d0 = _mm256_setzero_ps(), c%d1 = _mm256_setzero_ps();\n", in, g, g);
    P(e, "%s    for (int i = 0; i < %lld; i++, wp += NR) {\n", in, ll(inputs));
    P(e, "%s        const __m256 xv = _mm256_set1_ps(xb[i]);\n", in);
    for (int g = 0; g < count; g++) {
        int64_t at = g * inputs * dense_nr(e->opt->target);
        P(e, "%s        c%d0 = _mm256_fmadd_ps(_mm256_loadu_ps(wp + %lld), xv, c%d0);\n", in, g,
          ll(at), g);
        P(e, "%s        c%d1 = _mm256_fmadd_ps(_mm256_loadu_ps(wp + %lld), xv, c%d1);\n", in, g,
          ll(at + isa_of(e->opt->target)->width), g);
    }
    P(e, "%s    }\n", in);
    for (int g = 0; g < count; g++)
        for (int v = 0; v < 2; v++)
            dense_store(e, n, arena_printf(e->a, "%s    ", in), "b", arena_printf(e->a, "c%d%d", g, v),
                        arena_printf(e->a, "(p0 + %d) * NR + %d", g, v * isa_of(e->opt->target)->width));
    P(e, "%s}\n", in);
}

static void emit_dense_panels(Emit *e, const Node *n) {
    Target t = e->opt->target;
    int w = isa_of(t)->width, nr = dense_nr(t), mr = dense_mr(t);
    int64_t units = n->a.units, inputs = in_elems(n, 0);
    int64_t panels = (units + nr - 1) / nr;
    int64_t groups = (panels + DENSE_PANELS_AT_ONCE - 1) / DENSE_PANELS_AT_ONCE;
    bool omp = e->opt->openmp;
    P(e, "    enum { W = %d, NR = %d, MR = %d, G = %d }; /* W floats a vector; NR units a panel; "
         "MR samples a tile; G panels at once for one sample */\n", w, nr, mr,
      DENSE_PANELS_AT_ONCE);
    if (has_bias(e, n))
        P(e, "    const float *bias = w + %lld;\n", ll(panels * nr * inputs));
    if (has_state(e, n)) {
        P(e, "    /* the weights do not stay in L2: a lone sample walks them the other way\n"
             "     * round from the last call, which left its last panels there (any\n"
             "     * value of state[0] is a direction) */\n");
        P(e, "    const int back = state[0] != 1.0f;\n");
        P(e, "    state[0] = back ? 1.0f : 0.0f;\n");
    } else {
        P(e, "    const int back = 0;\n");
    }
    P(e, "    const int tiles = batch / MR; /* whole tiles of samples, then one by one */\n");
    if (omp) {
        P(e, "    #pragma omp parallel if(batch * %lldLL >= %d)\n", ll(omp_work(n)), OMP_SPLIT_WORK);
        P(e, "    {\n");
        P(e, "    const int nt = omp_get_num_threads(), t = omp_get_thread_num();\n");
        P(e, "    #pragma omp for schedule(static) nowait\n");
    } else {
        P(e, "    {\n");
        P(e, "    const int nt = 1, t = 0;\n");
    }
    P(e, "    for (int p = 0; p < %lld; p++)\n", ll(panels));
    P(e, "        for (int tile = 0; tile < tiles; tile++) {\n");
    P(e, "            const float *xs = x0 + (ptrdiff_t)tile * MR * %lld;\n", ll(inputs));
    P(e, "            const float *wp = w + (ptrdiff_t)p * %lld;\n", ll(inputs * nr));
    emit_tile_zero(e, "            ", mr, 2);
    P(e, "            for (int i = 0; i < %lld; i++, wp += NR) {\n", ll(inputs));
    const char *sample[8];   /* dense_mr(): 6 or 8 */
    for (int m = 0; m < mr; m++)
        sample[m] = arena_printf(e->a, "xs[%lld + i]", ll(m * inputs));
    emit_tile_step(e, "                ", mr, 2, "wp", sample);
    P(e, "            }\n");
    for (int m = 0; m < mr; m++)
        for (int v = 0; v < 2; v++)
            dense_store(e, n, "            ", arena_printf(e->a, "tile * MR + %d", m),
                        arena_printf(e->a, "a%d%d", m, v), arena_printf(e->a, "p * NR + %d", v * w));
    P(e, "        }\n");
    /* each thread the same groups of panels lo..hi-1 at every call: its L2
     * keeps what it can of them */
    P(e, "    const int lo = %lld * t / nt, hi = %lld * (t + 1) / nt;\n", ll(groups), ll(groups));
    P(e, "    for (int b = tiles * MR; b < batch; b++)\n");
    P(e, "        for (int k = lo; k < hi; k++) {\n");
    P(e, "            const int p0 = (back ? lo + hi - 1 - k : k) * G;\n");
    int64_t last = panels - (groups - 1) * DENSE_PANELS_AT_ONCE;   /* panels of the last group */
    if (last == DENSE_PANELS_AT_ONCE) {
        dense_one_sample(e, n, DENSE_PANELS_AT_ONCE, "            ");
    } else {
        P(e, "            if (p0 + G <= %lld)\n", ll(panels));
        dense_one_sample(e, n, DENSE_PANELS_AT_ONCE, "            ");
        P(e, "            else\n");
        dense_one_sample(e, n, (int)last, "            ");
    }
    P(e, "        }\n");
    P(e, "    }\n");
}

/* ---- dense backward ------------------------------------------------------------ */

/* The gradients of y = W x + b over a batch, as two register-tiled matrix
 * products, each output a chain of FMAs in a fixed order (over the samples
 * for dW, the units for dx) whatever the tile, so the tile changes no bit.
 * Weights: dW[u][i] = sum over b of dy[b][u] x[b][i], a tile of DR rows by
 * DV vectors of inputs summed over the whole batch, then stored once.
 * Input: dx[b][i] = sum over u of dy[b][u] W[u][i], DR samples by DV
 * vectors, the weight rows streamed. The tile is DR = 6 by DV = 4 vectors
 * on AVX-512 (24 accumulators), 6 by 2 on AVX2 (12): on the MNIST
 * network's 1568 -> 500 layer at batch 64 (Zen 4, one core) the 4 x 2
 * tile it replaced ran both products at 62-68 GFLOP/s, 6 x 4 at 111-120
 * (fewer loads and broadcasts a FMA). Inputs past the last whole tile go
 * a vector at a time, and past the last pair of vectors through the plain
 * loops, as before. */
enum { DENSE_BACK_ROWS = 6 };

static int dense_back_vectors(Target t) {
    return isa_of(t)->width == 16 ? 4 : 2;
}

/* dW's tile: DR rows from u0 by `nv` vectors of inputs from i, summed over
 * the batch and stored. */
static void dense_dw_tile(Emit *e, int64_t in, int64_t units, int nv, const char *indent) {
    emit_tile_zero(e, indent, DENSE_BACK_ROWS, nv);
    P(e, "%sfor (int b = 0; b < batch; b++) {\n", indent);
    P(e, "%s    const float *xb = x0 + (ptrdiff_t)b * %lld + i;\n", indent, ll(in));
    P(e, "%s    const float *g = dy + (ptrdiff_t)b * %lld + u0;\n", indent, ll(units));
    const char *grad[DENSE_BACK_ROWS];
    for (int r = 0; r < DENSE_BACK_ROWS; r++)
        grad[r] = arena_printf(e->a, "g[%d < rows ? %d : 0]", r, r);
    emit_tile_step(e, arena_printf(e->a, "%s    ", indent), DENSE_BACK_ROWS, nv, "xb", grad);
    P(e, "%s}\n", indent);
    for (int r = 0; r < DENSE_BACK_ROWS; r++) {
        P(e, "%sif (%d < rows) {\n", indent, r);
        P(e, "%s    float *gr = gw + (ptrdiff_t)(u0 + %d) * %lld + i;\n", indent, r, ll(in));
        for (int v = 0; v < nv; v++)
            P(e, "%s    _mm256_storeu_ps(gr + %d * W, a%d%d);\n", indent, v, r, v);
        P(e, "%s}\n", indent);
    }
}

/* dx's tile: DR samples from b0 by `nv` vectors of inputs from i, summed
 * over the units and stored (or added, `acc`). */
static void dense_dx_tile(Emit *e, int64_t in, int64_t units, int nv, bool acc,
                          const char *indent) {
    emit_tile_zero(e, indent, DENSE_BACK_ROWS, nv);
    P(e, "%sfor (int u = 0; u < %lld; u++) {\n", indent, ll(units));
    P(e, "%s    const float *wu = w + (ptrdiff_t)u * %lld + i;\n", indent, ll(in));
    const char *grad[DENSE_BACK_ROWS];
    for (int r = 0; r < DENSE_BACK_ROWS; r++)
        grad[r] = arena_printf(e->a, "dy[(ptrdiff_t)(b0 + (%d < samples ? %d : 0)) * %lld + u]",
                               r, r, ll(units));
    emit_tile_step(e, arena_printf(e->a, "%s    ", indent), DENSE_BACK_ROWS, nv, "wu", grad);
    P(e, "%s}\n", indent);
    for (int r = 0; r < DENSE_BACK_ROWS; r++) {
        P(e, "%sif (%d < samples) {\n", indent, r);
        P(e, "%s    float *d = dx0 + (ptrdiff_t)(b0 + %d) * %lld + i;\n", indent, r, ll(in));
        for (int v = 0; v < nv; v++) {
            if (acc)
                P(e, "%s    _mm256_storeu_ps(d + %d * W, _mm256_add_ps(_mm256_loadu_ps(d + %d * W), "
                     "a%d%d));\n", indent, v, v, r, v);
            else
                P(e, "%s    _mm256_storeu_ps(d + %d * W, a%d%d);\n", indent, v, r, v);
        }
        P(e, "%s}\n", indent);
    }
}

static void dense_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    int w = isa_of(e->opt->target)->width, nv = dense_back_vectors(e->opt->target);
    int64_t units = n->a.units, in = in_elems(n, 0);
    int64_t tiled = in / (nv * w) * (nv * w);   /* inputs in whole tiles */
    int64_t main = in / (2 * w) * (2 * w);      /* and in vectors: the plain loops after */
    P(e, "    enum { W = %d, DR = %d }; /* floats a vector; rows or samples a tile */\n", w,
      DENSE_BACK_ROWS);
    /* with --openmp each thread owns whole rows of the weight gradient,
     * then whole columns of the input gradient */
    if (n->a.bias) {
        if (e->opt->openmp)
            P(e, "    #pragma omp parallel for schedule(static)\n");
        P(e, "    for (int u = 0; u < %lld; u++) {\n", ll(units));
        P(e, "        float db = 0.0f;\n");
        P(e, "        for (int b = 0; b < batch; b++)\n");
        P(e, "            db += dy[(ptrdiff_t)b * %lld + u];\n", ll(units));
        P(e, "        gw[%lld + u] = db;\n", ll(units * in));
        P(e, "    }\n");
    }
    if (e->opt->openmp)
        P(e, "    #pragma omp parallel for schedule(static)\n");
    P(e, "    for (int u0 = 0; u0 < %lld; u0 += DR) {\n", ll(units));
    P(e, "        const int rows = u0 + DR <= %lld ? DR : %lld - u0;\n", ll(units), ll(units));
    P(e, "        for (int i = 0; i < %lld; i += %d * W) {\n", ll(tiled), nv);
    dense_dw_tile(e, in, units, nv, "            ");
    P(e, "        }\n");
    if (tiled < main) {
        P(e, "        for (int i = %lld; i < %lld; i += W) {\n", ll(tiled), ll(main));
        dense_dw_tile(e, in, units, 1, "            ");
        P(e, "        }\n");
    }
    if (main < in) {
        P(e, "        for (int r = 0; r < rows; r++)\n");
        P(e, "            for (int i = %lld; i < %lld; i++) {\n", ll(main), ll(in));
        P(e, "                float sum = 0.0f;\n");
        P(e, "                for (int b = 0; b < batch; b++)\n");
        P(e, "                    sum += dy[(ptrdiff_t)b * %lld + u0 + r] * x0[(ptrdiff_t)b * %lld + i];\n",
          ll(units), ll(in));
        P(e, "                gw[(ptrdiff_t)(u0 + r) * %lld + i] = sum;\n", ll(in));
        P(e, "            }\n");
    }
    P(e, "    }\n");
    if (!b->dx[0])
        return;
    const char *op = b->acc[0] ? "+=" : "=";
    /* Columns outermost: a panel of columns of w (units x DV vectors)
     * serves every block of samples from L2. With the samples outermost
     * each block read all of w again, from L3 when it is larger than L2
     * (the MNIST network's 3 MB layer, both gradients at batch 64: 3.4 ->
     * 3.1 ms with the 4 x 2 tile). */
    if (e->opt->openmp)
        P(e, "    #pragma omp parallel for schedule(static)\n");
    P(e, "    for (int i = 0; i < %lld; i += %d * W)\n", ll(tiled), nv);
    P(e, "        for (int b0 = 0; b0 < batch; b0 += DR) {\n");
    P(e, "            const int samples = b0 + DR <= batch ? DR : batch - b0;\n");
    dense_dx_tile(e, in, units, nv, b->acc[0], "            ");
    P(e, "        }\n");
    if (tiled < main) {
        if (e->opt->openmp)
            P(e, "    #pragma omp parallel for schedule(static)\n");
        P(e, "    for (int i = %lld; i < %lld; i += W)\n", ll(tiled), ll(main));
        P(e, "        for (int b0 = 0; b0 < batch; b0 += DR) {\n");
        P(e, "            const int samples = b0 + DR <= batch ? DR : batch - b0;\n");
        dense_dx_tile(e, in, units, 1, b->acc[0], "            ");
        P(e, "        }\n");
    }
    if (main < in) {
        if (e->opt->openmp)
            P(e, "    #pragma omp parallel for schedule(static)\n");
        P(e, "    for (int r = 0; r < batch; r++)\n");
        P(e, "        for (int i = %lld; i < %lld; i++) {\n", ll(main), ll(in));
        P(e, "            float sum = 0.0f;\n");
        P(e, "            for (int u = 0; u < %lld; u++)\n", ll(units));
        P(e, "                sum += dy[(ptrdiff_t)r * %lld + u] * w[(ptrdiff_t)u * %lld + i];\n",
          ll(units), ll(in));
        P(e, "            dx0[(ptrdiff_t)r * %lld + i] %s sum;\n", ll(in), op);
        P(e, "        }\n");
    }
}

/* ---- max pooling ----------------------------------------------------------- */

/* W outputs of a row a vector. Stride 1: each tap is a load of the row
 * shifted by its column. Stride 2: two loads of a run of an input row give
 * its even columns (the windows' first taps) and its odd ones (the second);
 * a third tap is the odd columns of the run one further on. A padded layer
 * first copies each channel's plane into scratch with -infinity around it:
 * padding then never wins, as in the scalar kernel, and the rows need no
 * bounds checks. The row's last vector is shifted back to end at its last
 * output (the overlap is stored twice, the same values). The taps are taken
 * in the scalar kernel's order with its comparison, so the outputs are bit
 * for bit the same (a -infinity pad loses to every value but -infinity,
 * whose bits it shares). Vectors are 16 wide where rows have 16 outputs,
 * else 8 (AVX2's words serve AVX-512 too); rows of fewer than 8 outputs take
 * one vector whose loads and store are masked to the row. */
typedef struct PoolGeo {
    int64_t c, h, wi, ho, wo, kh, kw, sh, sw;
    int64_t top, left, hp, wp;   /* the plane the windows read: padded or not */
    bool pads;
} PoolGeo;

static PoolGeo pool_geo(const Node *n) {
    const Attrs *a = &n->a;
    Shape in = in_shape_of(n, 0);
    PoolGeo g = {.c = in.d[0], .h = in.d[1], .wi = in.d[2], .ho = n->shape.d[1],
                 .wo = n->shape.d[2], .kh = a->kernel[0], .kw = a->kernel[1],
                 .sh = a->stride[0], .sw = a->stride[1], .top = a->pad_lo[0],
                 .left = a->pad_lo[1]};
    g.pads = a->pad_lo[0] || a->pad_lo[1] || a->pad_hi[0] || a->pad_hi[1];
    g.hp = g.h + a->pad_lo[0] + a->pad_hi[0];
    g.wp = g.wi + a->pad_lo[1] + a->pad_hi[1];
    return g;
}

/* The vector width, or 0: the layer takes the scalar kernel (another
 * stride, wider windows, a one-column window at stride 2, whose first tap
 * would take two columns, a window wholly in the padding, or a last vector
 * that would read past its row). */
static int pool_width(Target t, const Node *n) {
    const Attrs *a = &n->a;
    if (n->op != OP_MAXPOOL || n->shape.rank != 3)
        return 0;
    PoolGeo g = pool_geo(n);
    if ((g.sw == 2 ? g.kw < 2 || g.kw > 3 : g.sw != 1 || g.kw > 7) || g.kh > 7 ||
        a->pad_lo[0] >= g.kh || a->pad_hi[0] >= g.kh || a->pad_lo[1] >= g.kw ||
        a->pad_hi[1] >= g.kw)
        return 0;
    int w = isa_of(t)->width == 16 && g.wo >= 16 ? 16 : 8;
    if (g.wo < w)
        return w;   /* one masked vector a row */
    /* stride 2: the last run of 2W floats starts at column 1 for a third
     * tap, else 0; stride 1: the last tap's W floats */
    int64_t end = g.sw == 2 ? 2 * (g.wo - w) + (g.kw - 1) / 2 + 2 * w : g.wo - w + g.kw - 1 + w;
    return end <= g.wp ? w : 0;
}

/* Floats of the padded planes in scratch: one a sample, or where a lone
 * sample's channels are shared among threads (lone_split), one a channel if
 * that is more. */
static int64_t pool_scratch(Target t, const Node *n, int batch) {
    PoolGeo g = pool_geo(n);
    int64_t planes = n->lone_split && g.c > batch ? g.c : batch;
    return pool_width(t, n) && g.pads ? planes * g.hp * g.wp : 0;
}

/* "_mm256_setr_epi32(-1, ..., 0, ...)": lane l on when first + l < end. */
static const char *lane_mask(Emit *e, int64_t first, int64_t end) {
    const char *s = "_mm256_setr_epi32(";
    for (int64_t l = 0; l < 8; l++)
        s = arena_printf(e->a, "%s%s%s", s, l ? ", " : "", first + l < end ? "-1" : "0");
    return arena_printf(e->a, "%s)", s);
}

/* best = the tap at `at` (the first), or cnn_vmax of best and it. */
static void pool_tap(Emit *e, const char *in, bool first, const char *tap) {
    if (first)
        P(e, "%sbest = %s;\n", in, tap);
    else
        P(e, "%sbest = cnn_vmax(best, %s);\n", in, tap);
}

/* The taps of one vector of outputs: row pointer xp, loads through `load`
 * ("_mm256_loadu_ps(xp + %lld)" or a masked form with %s for its mask). */
static void pool_taps(Emit *e, const PoolGeo *g, int w, const char *in, bool masked) {
    P(e, "%s__m256 best;\n", in);
    for (int64_t i = 0; i < g->kh; i++) {
        if (g->sw == 1) {
            for (int64_t j = 0; j < g->kw; j++)
                pool_tap(e, in, i == 0 && j == 0,
                         masked ? arena_printf(e->a, "_mm256_maskload_ps(xp + %lld, m%lld)",
                                               ll(i * g->wp + j), ll(j))
                                : arena_printf(e->a, "_mm256_loadu_ps(xp + %lld)",
                                               ll(i * g->wp + j)));
            continue;
        }
        int64_t at = i * g->wp;
        const char *lo = masked ? arena_printf(e->a, "_mm256_maskload_ps(xp + %lld, m0)", ll(at))
                                : arena_printf(e->a, "_mm256_loadu_ps(xp + %lld)", ll(at));
        const char *hi = masked ? arena_printf(e->a, "_mm256_maskload_ps(xp + %lld, m1)",
                                               ll(at + 8))
                                : arena_printf(e->a, "_mm256_loadu_ps(xp + %lld)", ll(at + w));
        const char *in2 = arena_printf(e->a, "%s    ", in);
        P(e, "%s{\n", in);
        P(e, "%s    __m256 even, odd;\n", in);
        P(e, "%s    cnn_unzip(%s, %s, &even, &odd);\n", in, lo, hi);
        pool_tap(e, in2, i == 0, "even");
        pool_tap(e, in2, false, "odd");
        if (g->kw == 3) {
            /* the third tap: the odd columns of the run one further on */
            if (masked)
                P(e, "%s    cnn_unzip(_mm256_maskload_ps(xp + %lld, m2), "
                     "_mm256_maskload_ps(xp + %lld, m3), &even, &odd);\n", in, ll(at + 1),
                  ll(at + 9));
            else
                P(e, "%s    cnn_unzip(_mm256_loadu_ps(xp + %lld), _mm256_loadu_ps(xp + %lld), "
                     "&even, &odd);\n", in, ll(at + 1), ll(at + 1 + w));
            pool_tap(e, in2, false, "odd");
        }
        P(e, "%s}\n", in);
    }
}

/* Padded rows i0 .. i1-1 of channel c's plane into pl (row i0 first) with
 * -infinity around them: rows outside the input all -infinity, the others a
 * vector copy between -infinity borders (a per-element test here cost more
 * than the pooling after it). `src`: where input row ih starts. */
static void pool_pad_rows(Emit *e, const PoolGeo *g, int w, const char *in, const char *src,
                          const char *i0, const char *i1) {
    int64_t full = g->wi / w * w;
    P(e, "%sfor (int i = %s; i < %s; i++) {\n", in, i0, i1);
    if (!strcmp(i0, "0"))
        P(e, "%s    float *row = pl + i * %lld;\n", in, ll(g->wp));
    else
        P(e, "%s    float *row = pl + (i - %s) * %lld;\n", in, i0, ll(g->wp));
    P(e, "%s    const int ih = i - %lld;\n", in, ll(g->top));
    P(e, "%s    if (ih < 0 || ih >= %lld) {\n", in, ll(g->h));
    P(e, "%s        for (int j = 0; j < %lld; j++)\n", in, ll(g->wp));
    P(e, "%s            row[j] = ninf;\n", in);
    P(e, "%s        continue;\n", in);
    P(e, "%s    }\n", in);
    P(e, "%s    const float *src = %s;\n", in, src);
    if (g->left > 0) {
        P(e, "%s    for (int j = 0; j < %lld; j++)\n", in, ll(g->left));
        P(e, "%s        row[j] = ninf;\n", in);
    }
    if (full > 0) {
        P(e, "%s    for (int j = 0; j < %lld; j += W)\n", in, ll(full));
        P(e, "%s        _mm256_storeu_ps(row + %lld + j, _mm256_loadu_ps(src + j));\n", in,
          ll(g->left));
    }
    if (full < g->wi) {
        P(e, "%s    for (int j = %lld; j < %lld; j++)\n", in, ll(full), ll(g->wi));
        P(e, "%s        row[%lld + j] = src[j];\n", in, ll(g->left));
    }
    if (g->left + g->wi < g->wp) {
        P(e, "%s    for (int j = %lld; j < %lld; j++)\n", in, ll(g->left + g->wi), ll(g->wp));
        P(e, "%s        row[j] = ninf;\n", in);
    }
    P(e, "%s}\n", in);
}

/* Output rows r0 .. r1-1 of channel c: row oh's windows start at `xr`
 * (an expression in oh), its outputs go to yr. */
static void pool_rows(Emit *e, const PoolGeo *g, int w, const char *in, const char *r0,
                      const char *r1, const char *xr, const char *y) {
    int64_t vectors = (g->wo + w - 1) / w;
    const char *in4 = arena_printf(e->a, "%s    ", in);
    P(e, "%sfor (int oh = %s; oh < %s; oh++) {\n", in, r0, r1);
    P(e, "%s    const float *xr = %s;\n", in, xr);
    P(e, "%s    float *yr = %s + (c * %lld + oh) * %lld;\n", in, y, ll(g->ho), ll(g->wo));
    if (g->wo < w) {
        /* one vector, each load masked to the row's columns (the lanes past
         * it read zeros and are never stored) */
        P(e, "%s    const float *xp = xr;\n", in);
        if (g->sw == 1) {
            for (int64_t j = 0; j < g->kw; j++)
                P(e, "%s    const __m256i m%lld = %s;\n", in, ll(j), lane_mask(e, j, g->wp));
        } else {
            P(e, "%s    const __m256i m0 = %s, m1 = %s;\n", in, lane_mask(e, 0, g->wp),
              lane_mask(e, 8, g->wp));
            if (g->kw == 3)
                P(e, "%s    const __m256i m2 = %s, m3 = %s;\n", in, lane_mask(e, 1, g->wp),
                  lane_mask(e, 9, g->wp));
        }
        pool_taps(e, g, 8, in4, true);
        P(e, "%s    _mm256_maskstore_ps(yr, %s, best);\n", in, lane_mask(e, 0, g->wo));
    } else {
        P(e, "%s    for (int v = 0; v < %lld; v++) {\n", in, ll(vectors));
        P(e, "%s        const int ow = v < %lld ? v * W : %lld;\n", in, ll(vectors - 1),
          ll(g->wo - w));
        P(e, "%s        const float *xp = xr + %sow;\n", in, g->sw == 2 ? "2 * " : "");
        pool_taps(e, g, w, arena_printf(e->a, "%s        ", in), false);
        P(e, "%s        _mm256_storeu_ps(yr + ow, best);\n", in);
        P(e, "%s    }\n", in);
    }
    P(e, "%s}\n", in);
}

/* -infinity, from its bits: the generated code has no math.h */
static const char NINF[] =
    "const float ninf = _mm_cvtss_f32(_mm_castsi128_ps(_mm_set1_epi32(-8388608)));\n";

static void emit_maxpool(Emit *e, const Node *n, int w) {
    PoolGeo g = pool_geo(n);
    e->wide = w == 16;
    if (n->a.kernel[0] * n->a.kernel[1] > 1)   /* a 1x1 window takes no max */
        simd_need_vmax(e);
    if (g.sw == 2)
        simd_need_unzip(e);
    P(e, "    enum { W = %d }; /* floats a vector */\n", w);
    e->scratch_per_sample = g.pads;
    open_batch(e, n);
    e->scratch_per_sample = false;
    /* a lone sample's channels are shared among the threads, each channel
     * padded into a plane of its own (GoogLeNet's pools took 1.1 ms at
     * batch 1 on one thread while the other waited) */
    bool lone = n->lone_split && !e->plain;
    if (g.pads) {
        P(e, "        %s", NINF);
        if (lone)   /* asked here, outside the loop's own region */
            P(e, "        const int lone = batch == 1 && omp_get_level() == 0;\n");
    }
    if (lone)
        P(e, "        #pragma omp parallel for schedule(static)\n");
    P(e, "        for (int c = 0; c < %lld; c++) {\n", ll(g.c));
    if (g.pads) {
        P(e, "            float *pl = s + (ptrdiff_t)%s * %lld; /* the padded plane%s */\n",
          lone ? "(lone ? c : b)" : "b", ll(g.hp * g.wp),
          lone ? ": a lone sample's channel's, else the sample's" : "");
        pool_pad_rows(e, &g, w, "                ",
                      arena_printf(e->a, "xb0 + (c * %lld + ih) * %lld", ll(g.h), ll(g.wi)),
                      "0", arena_printf(e->a, "%lld", ll(g.hp)));
    }
    pool_rows(e, &g, w, "            ", "0", arena_printf(e->a, "%lld", ll(g.ho)),
              g.pads ? arena_printf(e->a, "pl + oh * %lld", ll(g.sh * g.wp))
                     : arena_printf(e->a, "xb0 + c * %lld + oh * %lld", ll(g.h * g.wi),
                                    ll(g.sh * g.wp)),
              "yb");
    P(e, "        }\n");
    close_batch(e);
}

/* The max pool that convolution `conv` takes after each chunk of its tiles
 * (pool_bands.c), as a function of its own named for the pool: output rows
 * r0 .. r1-1 of channel c from x, the convolution's rows of that channel
 * from row0 on, the rows the windows read first padded with -infinity
 * into pl where the pool pads. */
void simd_emit_band_pool(Emit *e, const Node *conv, const char *name) {
    const Node *n = conv->pool;
    int w = pool_width(e->opt->target, n);
    PoolGeo g = pool_geo(n);
    e->wide = w == 16;
    if (n->a.kernel[0] * n->a.kernel[1] > 1)
        simd_need_vmax(e);
    if (g.sw == 2)
        simd_need_unzip(e);
    P(e, "/* %s — %s:%d: %s, taken by %s after each chunk of its tiles\n", name,
      e->source, n->loc.line, layer_describe(e->a, n), conv->name);
    P(e, " *   rows r0..r1-1 of channel c: [%lld,%lld,%lld] -> [%lld,%lld,%lld]; x holds the "
         "channel's rows from row0 on%s\n */\n", ll(g.c), ll(g.h), ll(g.wi), ll(g.c), ll(g.ho),
      ll(g.wo), g.pads ? "; the rows the windows read padded with -infinity into pl first"
                       : "");
    P(e, "static CNN_SIMD void %s(const float *restrict x, int row0, float *restrict y, "
         "float *restrict pl, int c, int r0, int r1) {\n", name);
    P(e, "    enum { W = %d }; /* floats a vector */\n", w);
    if (g.pads) {
        P(e, "    %s", NINF);
        P(e, "    if (r0 >= r1)\n        return;\n");
        pool_pad_rows(e, &g, w, "    ", arena_printf(e->a, "x + (ih - row0) * %lld", ll(g.wi)),
                      arena_printf(e->a, "r0 * %lld", ll(g.sh)),
                      arena_printf(e->a, "(r1 - 1) * %lld + %lld", ll(g.sh), ll(g.kh)));
        pool_rows(e, &g, w, "    ", "r0", "r1",
                  arena_printf(e->a, "pl + (oh - r0) * %lld", ll(g.sh * g.wp)), "y");
    } else {
        P(e, "    (void)pl;\n");
        pool_rows(e, &g, w, "    ", "r0", "r1",
                  arena_printf(e->a, "x + (oh * %lld - row0) * %lld", ll(g.sh), ll(g.wi)), "y");
    }
    P(e, "}\n\n");
    e->wide = false;
}

/* ---- local response normalisation ------------------------------------------ */

/* Across channels, eight positions a vector. With beta = 0.75 (AlexNet,
 * GoogLeNet) base^beta is sqrt(base) * sqrt(sqrt(base)), two vector square
 * roots, where the scalar kernel pays an exp and a log per element. */
static bool emit_lrn(Emit *e, const Node *n) {
    const Attrs *a = &n->a;
    if (a->beta != 0.75 || n->shape.rank != 3)
        return false;
    int64_t c, hw;
    channels(n, &c, &hw);
    int w = isa_of(e->opt->target)->width;
    int64_t main = hw / w * w;
    e->need_exp = e->need_log = true;
    P(e, "    enum { W = %d }; /* floats a vector */\n", w);
    open_batch(e, n);
    /* a lone sample's channels are shared among the threads: GoogLeNet's
     * second LRN takes 0.27 ms, square roots and divisions, no memory */
    if (e->split && !e->plain)
        P(e, "        #pragma omp parallel for schedule(static)\n");
    P(e, "        for (int c = 0; c < %lld; c++) {\n", ll(c));
    int64_t below, above;
    lrn_reach(n, c, &below, &above);
    P(e, "            const int lo = c - %lld < 0 ? 0 : c - %lld;\n", ll(below), ll(below));
    P(e, "            const int hi = c + %lld >= %lld ? %lld : c + %lld;\n", ll(above),
      ll(c), ll(c - 1), ll(above));
    P(e, "            for (int i = 0; i < %lld; i += W) {\n", ll(main));
    P(e, "                __m256 sum = _mm256_setzero_ps(), r;\n");
    P(e, "                for (int j = lo; j <= hi; j++) {\n");
    P(e, "                    const __m256 x = _mm256_loadu_ps(xb0 + j * %lld + i);\n", ll(hw));
    P(e, "                    sum = _mm256_fmadd_ps(x, x, sum);\n");
    P(e, "                }\n");
    P(e, "                r = _mm256_sqrt_ps(_mm256_fmadd_ps(_mm256_set1_ps(%s), sum, "
         "_mm256_set1_ps(%s)));\n", float_lit(e->a, a->alpha / (double)a->size),
      float_lit(e->a, a->k));
    P(e, "                r = _mm256_mul_ps(r, _mm256_sqrt_ps(r));\n");
    P(e, "                _mm256_storeu_ps(yb + c * %lld + i, "
         "_mm256_div_ps(_mm256_loadu_ps(xb0 + c * %lld + i), r));\n", ll(hw), ll(hw));
    P(e, "            }\n");
    P(e, "            for (int i = %lld; i < %lld; i++) {\n", ll(main), ll(hw));
    P(e, "                double sum = 0.0;\n");
    P(e, "                for (int j = lo; j <= hi; j++)\n");
    P(e, "                    sum += (double)xb0[j * %lld + i] * xb0[j * %lld + i];\n", ll(hw),
      ll(hw));
    P(e, "                yb[c * %lld + i] = (float)(xb0[c * %lld + i] / cnn_exp(0.75 * "
         "cnn_log(%.17g + %.17g * sum)));\n", ll(hw), ll(hw), a->k, a->alpha / (double)a->size);
    P(e, "            }\n");
    P(e, "        }\n");
    close_batch(e);
    return true;
}

/* Writes the kernel in AVX2's words; for AVX-512, emit_text swaps them for
 * the 512-bit ones as they are written. */
static bool kernel(Emit *e, const Node *n) {
    if (n->op == OP_LRN)
        return emit_lrn(e, n);
    if (simd_conv(n) && n->winograd) {
        emit_wino_conv(e, n);
        return true;
    }
    if (simd_conv(n) && dw_suits(e->opt->target, n)) {
        emit_dw_conv(e, n);
        return true;
    }
    if (simd_conv(n) && n->rows_wino) {
        emit_rows_conv(e, n);
        return true;
    }
    if (simd_conv(n)) {
        emit_conv(e, n);
        return true;
    }
    if (n->op == OP_DENSE) {
        if (e->plain)
            emit_dense_train(e, n);
        else
            emit_dense_panels(e, n);
        return true;
    }
    int pool = pool_width(e->opt->target, n);
    if (pool) {
        emit_maxpool(e, n, pool);
        return true;
    }
    return false;
}

bool emit_simd_kernel(Emit *e, const Node *n) {
    e->wide = isa_of(e->opt->target)->width == 16;
    e->split = omp_split(e, n);
    bool done = kernel(e, n);
    e->wide = false;
    e->split = false;
    return done;
}

void emit_simd_dense_back(Emit *e, const BackSig *b) {
    e->wide = isa_of(e->opt->target)->width == 16;
    dense_back(e, b);
    e->wide = false;
}
