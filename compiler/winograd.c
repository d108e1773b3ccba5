/* winograd.c — 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3) and
 * F(4x4, 3x3).
 *
 * Each m x m block of outputs (a tile; m = 2 or 4) needs an a x a patch of
 * input, a = m + 2. With
 *   V = B^T d B   (the patch, transformed: additions, and for F(4x4) exact
 *                  products by 2, 4 and 5),
 *   U = G g G^T   (the 3x3 kernel, transformed once by NAME_pack),
 *   Y = A^T (U . V) A,
 * where . multiplies element by element, a tile costs a^2 multiplications
 * per (input, output) channel pair instead of 9 m^2: 16 instead of 36 for
 * F(2x2), 36 instead of 144 for F(4x4). Summed over input channels, the
 * NX = a^2 products are NX independent matrix products
 *   M[xi][k][tile] = sum over c of U[xi][k][c] V[xi][c][tile],
 * which the same register tile as the direct kernel computes (MR output
 * channels broadcast against NV vectors of tiles). The transforms are
 * vectorised over W tiles of a row of tiles: the input's columns are split
 * apart by their place in the tile (cnn_unzip; twice for F(4x4)'s four),
 * the outputs' zipped back together (cnn_zip).
 *
 * The input is padded into scratch with room for whole vectors of tiles.
 * Tiles are processed a band of BR tile rows at a time, so the transformed
 * band V and the products M stay in cache between the three steps.
 *
 * F(2x2) only adds and subtracts input values and halves weights, so its
 * float error stays near the direct sum's. F(4x4) (points 0, +-1, +-2)
 * multiplies rounding errors by its larger transform constants (up to 8
 * in A, 5 in B): about ten times F(2x2)'s error, 1e-5 of the output's
 * largest value on ResNet-50, within the conformance suite's 1e-4 against
 * PyTorch. wino_choose takes F(4x4) where it saves clearly more work than
 * F(2x2) once the empty lanes of its shorter rows of tiles are counted,
 * F(2x2) on small planes (7x7). A 2x2 max pool after the layer can go
 * into either output transform (fuse_pool.c): an F(2x2) tile is one
 * pooling window, an F(4x4) tile four. Any other vector max pool (or a
 * 2x2 one after a residual sum) is taken after each band, from the band's
 * rows of output kept in scratch (pool_bands.c).
 */
#include "emit.h"

#include <assert.h>

static long long ll(int64_t v) { return (long long)v; }

/* The GEMM register tiles: MR output channels x NV vectors of tiles, each
 * with its accumulators, NV loaded vectors and a broadcast in the register
 * file (16 ymm, 32 zmm), and none so large that the C compiler spills
 * accumulators (12 x 2 did, with gcc -O2). AVX-512's 16 x 1 is for
 * planes of one vector of tiles with 16 or 32 channels, where 24 x 1
 * computes a third of its products in vain (the MNIST network's 32-channel
 * 14x14 layer: 29 -> 18 us). It loads a vector and a broadcast for each
 * FMA, as 24 x 1 does, but has fewer FMAs to hide the loads behind, so
 * its share of useful lanes counts at 0.8 (the third column): it must
 * waste a fifth fewer to be taken. */
static const double AVX2_GEMM[][3] = {{4, 3, 1}, {6, 2, 1}, {3, 4, 1}};
static const double AVX512_GEMM[][3] = {{8, 3, 1}, {6, 4, 1}, {4, 6, 1}, {24, 1, 1},
                                        {16, 1, 0.8}};

typedef struct WinoGeo {
    int64_t c, k, h, w;       /* input channels and plane, output channels */
    int64_t top, left;        /* padding before the input */
    int64_t ho, wo;           /* the output plane */
    int64_t th, tw;           /* tile rows, tiles a row */
    /* A vector holds W tiles of one row or, where rows have at most W/rv
     * tiles, W/rv tiles of each of rv rows (2; 4 on AVX-512), so that short
     * rows still fill the lanes. */
    int64_t rv;               /* tile rows a vector covers */
    int64_t vr;               /* vectors for those rows */
    int64_t slot;             /* tiles a row takes in V and M, empty ones too */
    int64_t thp;              /* tile rows, rounded up to whole vectors */
    int64_t hp, wp;           /* the padded copy: every vector's patch inside */
    int64_t br;               /* tile rows a band (a multiple of rv) */
    int64_t tb;               /* tiles a band's row of V and M hold */
    int64_t kb, kp;           /* output channel blocks; channels padded to MR */
    int m, a, nx;             /* F(m x m, 3x3): a x a patches, nx = a * a products */
    int width, mr, nv;
} WinoGeo;

/* The geometry of F(m x m, 3x3) on node n. */
static WinoGeo wino_geo_m(Target t, const Node *n, int m) {
    const Attrs *a = &n->a;
    Shape in = in_shape_of(n, 0);
    int width = simd_width(t);
    WinoGeo g = {.c = in.d[0], .k = a->units, .h = in.d[1], .w = in.d[2],
                 .top = a->pad_lo[0], .left = a->pad_lo[1],
                 .ho = n->shape.d[1], .wo = n->shape.d[2], .m = m, .a = m + 2,
                 .nx = (m + 2) * (m + 2), .width = width};
    g.th = (g.ho + m - 1) / m;
    g.tw = (g.wo + m - 1) / m;
    g.rv = width == 16 && g.tw <= 4 ? 4 : g.tw <= width / 2 ? 2 : 1;
    g.vr = g.rv > 1 ? 1 : (g.tw + width - 1) / width;
    g.slot = g.vr * width / g.rv;
    g.thp = (g.th + g.rv - 1) / g.rv * g.rv;
    g.hp = m * g.thp + 2;
    g.wp = m * g.slot + m;   /* F(4x4) loads columns 4..4W + 3 of a vector */
    /* Each GEMM register tile with the band it suits: as many tile rows as
     * keep the band's V and M within half of L2 (F(2x2) with weights too
     * big for L2, which are read again for every band: at least 128
     * tiles), in whole tiles of NV vectors where the rows allow. The tile
     * wasting the fewest lanes on ragged channel counts and bands wins; the
     * first on a tie. F(4x4) keeps its bands small even then: 64x56x56 on
     * AVX2 (590 KB of weights, 295 KB of V and M a tile row) ran at 255
     * GFLOP/s in bands of one tile row, 148 in two, 143 in eight. */
    int64_t row_bytes = g.nx * 4 * (g.c + g.k) * g.slot;
    int64_t fit = (L2_BYTES / 2) / row_bytes;
    if (m == 2 && g.nx * 4 * g.c * g.k > L2_BYTES / 2 && fit * g.slot < 128)
        fit = (128 + g.slot - 1) / g.slot;
    const double (*tiles)[3] = width == 16 ? AVX512_GEMM : AVX2_GEMM;
    int count = width == 16 ? (int)(sizeof AVX512_GEMM / sizeof *AVX512_GEMM)
                            : (int)(sizeof AVX2_GEMM / sizeof *AVX2_GEMM);
    double best = -1.0;
    for (int i = 0; i < count; i++) {
        int mr = (int)tiles[i][0], nv = (int)tiles[i][1];
        int64_t unit = g.rv;   /* tile rows making whole tiles of NV vectors */
        while (unit / g.rv * g.vr % nv)
            unit += g.rv;
        int64_t br = fit / unit * unit;
        if (br < unit)
            br = unit;
        if (br > g.thp)
            br = g.thp;
        int64_t used = 0, padded = 0;
        for (int64_t ty = 0; ty < g.thp; ty += br) {
            int64_t vecs = (ty + br <= g.thp ? br : g.thp - ty) / g.rv * g.vr;
            used += vecs;
            padded += (vecs + nv - 1) / nv * nv;
        }
        int64_t kp = (g.k + mr - 1) / mr * mr;
        double use = (double)used / (double)padded * (double)g.k / (double)kp * tiles[i][2];
        if (use > best + 1e-9) {
            best = use;
            g.mr = mr;
            g.nv = nv;
            g.br = br;
        }
    }
    g.kb = (g.k + g.mr - 1) / g.mr;
    g.kp = g.kb * g.mr;
    g.tb = (g.br / g.rv * g.vr + g.nv - 1) / g.nv * g.nv * width;
    return g;
}

/* The 2x2 max pool the output transform applies (fuse_pool.c): none in
 * the plain kernels training's forward pass calls, which store every
 * output for the backward pass, nor where the pool is taken after each
 * band (pool_bands.c). */
static const Node *pool_of(const Emit *e, const Node *n) {
    return e->plain || bands_here(e, n) ? NULL : n->pool;
}

/* The geometry of the tile size wino_choose gave n (F(2x2) before it). */
static WinoGeo wino_geo(Target t, const Node *n) {
    return wino_geo_m(t, n, n->winograd == 4 ? 4 : 2);
}

/* The multiplications F(m x m, 3x3) saves against the direct kernel,
 * counting the tiles it computes in vain: the empty lanes at the end of
 * each row of tiles and the rows rounded up to whole vectors. */
static double wino_saving(Target t, const Node *n, int m) {
    WinoGeo g = wino_geo_m(t, n, m);
    return 9.0 * (double)(g.ho * g.wo) / ((double)g.nx * (double)(g.thp * g.slot));
}

/* Where F(m x m, 3x3) applies and pays: a plain 3x3 stride-1 convolution,
 * enough channels that the transforms are a small part of the work, and
 * tile rows long enough to fill the vectors (the multiplications saved,
 * less the lanes left empty at the end of each row of tiles). The bar of
 * 1.5 is measured for F(2x2): layers scoring 1.72-2.25 ran 1.4-1.9x faster
 * than the direct kernel (3x3 layers of 64-512 channels, 7x7 to 56x56),
 * one scoring 0.86 (512x7x7 on AVX-512 before four-row tiles) slower. */
static bool wino_applies(const Node *n) {
    const Attrs *a = &n->a;
    return n->op == OP_CONV && n->shape.rank == 3 && a->groups == 1 && a->kernel[0] == 3 &&
           a->kernel[1] == 3 && a->stride[0] == 1 && a->stride[1] == 1 &&
           a->dilation[0] == 1 && a->dilation[1] == 1 && a->pad_mode == PAD_ZEROS &&
           in_shape_of(n, 0).d[0] >= 16 && a->units >= 16;
}

bool wino_suits(Target t, const Node *n, int m) {
    return wino_applies(n) && wino_saving(t, n, m) >= 1.5;
}

/* The tile size for a layer: F(4x4, 3x3) where its saving beats F(2x2)'s
 * by RATIO4 after the empty lanes of its shorter rows of tiles, F(2x2)
 * elsewhere: the 6x6 transforms cost more a tile than the 4x4 ones, and
 * small planes leave F(4x4) lanes empty (7x7: two tiles a row, a ratio of
 * 0.45-0.9). RATIO4 is a margin, not a measured bar: the layers measured
 * (64-256 channels, 14x14 to 56x56) score 1.55-1.78 and ran 1.3-1.8x
 * faster with F(4x4) on both targets. */
static const double RATIO4 = 1.25;

static int wino_tile(Target t, const Node *n) {
    return wino_saving(t, n, 4) >= RATIO4 * wino_saving(t, n, 2) ? 4 : 2;
}

int wino_pick(Target t, const Node *n) {
    int m = simd_target(t) && wino_applies(n) ? wino_tile(t, n) : 0;
    return m && wino_suits(t, n, m) ? m : 0;
}

void wino_choose(Graph *g, Target t, bool off) {
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        bool on = !off && simd_target(t) && !n->fused_into;
        n->winograd = on ? wino_pick(t, n) : 0;
        n->rows_wino = on && rows_suits(t, n);
    }
}

/* pool_bands.c's view of the kernel: each trip a band of BR tile rows,
 * which finishes m * BR more rows of every channel; a pool after the
 * layer that the output transform does not take in registers takes the
 * rows after each band. */
TripOrder wino_trip_order(Target t, const Node *n) {
    WinoGeo g = wino_geo(t, n);
    int64_t bands = (g.thp + g.br - 1) / g.br, step = g.m * g.br * g.wo;
    return (TripOrder){.trips = bands, .unit = 1, .unit_pos = step, .pitch = g.wo,
                       .last_start = (bands - 1) * step, .chunk_a_trip = true};
}

int wino_mr(Target t, const Node *n) {
    return wino_geo(t, n).mr;
}

/* Per sample: the padded input, the band's V [NX][C][TB] and M [NX][KP][TB]. */
int64_t wino_scratch(Target t, const Node *n, int batch) {
    WinoGeo g = wino_geo(t, n);
    return (int64_t)batch * (g.c * g.hp * g.wp + g.nx * (g.c + g.kp) * g.tb);
}

const char *wino_schedule(Emit *e, const Node *n) {
    WinoGeo g = wino_geo(e->opt->target, n);
    return arena_printf(e->a,
        "%s: Winograd F(%dx%d,3x3), %lldx%lld tiles of %dx%d outputs from %dx%d patches, %s a "
        "vector; bands of BR=%lld tile rows; %d products by a tile of MR=%d output channels x "
        "NV=%d vectors of tiles (%d %s accumulators)",
        g.width == 16 ? "avx512" : "avx2", g.m, g.m, ll(g.th), ll(g.tw), g.m, g.m, g.a, g.a,
        g.rv > 1 ? arena_printf(e->a, "%lld from each of %lld rows", ll(g.width / g.rv),
                                ll(g.rv))
                 : arena_printf(e->a, "%d", g.width),
        ll(g.br), g.nx, g.mr, g.nv, g.mr * g.nv, g.width == 16 ? "zmm" : "ymm");
}

/* ---- the kernel ----------------------------------------------------------- */

/* The statements giving r, the vector's (first) tile row in the band, and
 * (vectors of one row) xv, its place in that row. */
static void emit_vector_place(Emit *e, const WinoGeo *g, const char *in) {
    if (g->rv > 1)
        P(e, "%sconst int r = %lld * v;\n", in, ll(g->rv));
    else
        P(e, "%sconst int r = v / %lld, xv = v - r * %lld;\n", in, ll(g->vr), ll(g->vr));
}

/* Input transform of one channel for the band: a vector of tiles at a
 * time, rows i of the patch split into columns j by cnn_unzip, then
 * t = B^T d (rows) and V = t B (columns), each of the 16 results stored to
 * its own matrix. Vectors past the band's last are zeroed: the GEMM reads
 * whole tiles of NV vectors. */
static void emit_input_transform(Emit *e, const WinoGeo *g) {
    int64_t vs = g->c * g->tb;
    if (e->split)
        P(e, "            #pragma omp for schedule(static)\n");
    P(e, "            for (int c = 0; c < %lld; c++) {\n", ll(g->c));
    P(e, "                float *vc = V + c * TB;\n");
    P(e, "                for (int v = 0; v < used; v++) {\n");
    emit_vector_place(e, g, "                    ");
    P(e, "                    const float *d = in + (ptrdiff_t)c * %lld + (2 * (ty0 + r)) * %lld%s;\n",
      ll(g->hp * g->wp), ll(g->wp), g->rv == 1 ? " + 2 * xv * W" : "");
    P(e, "                    __m256 d0, d1, d2, d3;\n");
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j += 2) {
            /* the vector's lanes run along a row of tiles and on to the
             * next W columns, or the next row of tiles (two rows of input
             * down), or with four rows W/2 columns of each */
            int64_t at = i * g->wp + j, r2 = 2 * g->wp;
            const char *load;
            if (g->rv == 4)
                load = arena_printf(e->a, "cnn_load2x8(d + %lld, d + %lld), "
                                    "cnn_load2x8(d + %lld, d + %lld)", ll(at), ll(at + r2),
                                    ll(at + 2 * r2), ll(at + 3 * r2));
            else
                load = arena_printf(e->a, "_mm256_loadu_ps(d + %lld), _mm256_loadu_ps(d + %lld)",
                                    ll(at), ll(at + (g->rv == 2 ? r2 : g->width)));
            P(e, "                    cnn_unzip(%s, &d%d, &d%d);\n", load, j, j + 1);
        }
        P(e, "                    const __m256 t%d0 = _mm256_sub_ps(d0, d2), "
             "t%d1 = _mm256_add_ps(d1, d2),\n", i, i);
        P(e, "                                 t%d2 = _mm256_sub_ps(d2, d1), "
             "t%d3 = _mm256_sub_ps(d1, d3);\n", i, i);
    }
    P(e, "                    float *o = vc + v * W;\n");
    for (int j = 0; j < 4; j++) {
        P(e, "                    _mm256_storeu_ps(o + %lld, _mm256_sub_ps(t0%d, t2%d));\n",
          ll((0 + j) * vs), j, j);
        P(e, "                    _mm256_storeu_ps(o + %lld, _mm256_add_ps(t1%d, t2%d));\n",
          ll((4 + j) * vs), j, j);
        P(e, "                    _mm256_storeu_ps(o + %lld, _mm256_sub_ps(t2%d, t1%d));\n",
          ll((8 + j) * vs), j, j);
        P(e, "                    _mm256_storeu_ps(o + %lld, _mm256_sub_ps(t1%d, t3%d));\n",
          ll((12 + j) * vs), j, j);
    }
    P(e, "                }\n");
    P(e, "                for (int v = used; v < nvec; v++)\n");
    P(e, "                    for (int xi = 0; xi < NX; xi++)\n");
    P(e, "                        _mm256_storeu_ps(vc + xi * %lld + v * W, _mm256_setzero_ps());\n",
      ll(vs));
    P(e, "            }\n");
}

/* The NX products, each over the band: MR output channels (weights
 * broadcast) x NV vectors of tiles per register tile. The loop runs over
 * (product, channel block, tile group) with the tile groups innermost, so
 * a block's weights stay in L1 while the band passes. One channel a trip:
 * unrolled further, gcc -O2 spilled accumulators and ran 10% slower.
 *
 * On small planes (a band of one or two tile groups) each weight is read
 * once a call, and at batch 1 a network's transformed weights (ResNet-18:
 * 100 MB) come from memory, not cache: the hardware prefetcher, fed only
 * broadcasts of 4 bytes, kept the 512x7x7 F(2x2) layer waiting (AVX2:
 * 2.1 ms in ResNet-50 against 1.4 ms with its weights in L3). Each trip
 * asks for the line WEIGHTS_AHEAD floats on: that layer took 1.5 ms on
 * AVX2 and 1.35 instead of 1.6 on AVX-512; VGG-16 5-11% less in all. On
 * large planes the line is in cache already and the prefetch costs a
 * load slot (no change measured). 1024 floats ran as fast as 512 on AVX2
 * and a little faster on AVX-512; 256 lagged. */
enum { WEIGHTS_AHEAD = 1024 };

static void emit_gemm(Emit *e, const WinoGeo *g) {
    if (e->split)
        P(e, "            #pragma omp for schedule(static)\n");
    P(e, "            for (int it = 0; it < NX * %lld * (nvec / NV); it++) {\n", ll(g->kb));
    P(e, "                const int tg = it %% (nvec / NV), kx = it / (nvec / NV);\n");
    P(e, "                const int xi = kx / %lld, kb = kx - xi * %lld;\n", ll(g->kb), ll(g->kb));
    P(e, "                const float *wp = w + (ptrdiff_t)kx * %lld;\n", ll(g->c * g->mr));
    P(e, "                const float *xp = V + (ptrdiff_t)xi * %lld + tg * NV * W;\n",
      ll(g->c * g->tb));
    for (int i = 0; i < g->mr; i++)
        for (int v = 0; v < g->nv; v++)
            P(e, "                __m256 c%d%d = _mm256_setzero_ps();\n", i, v);
    P(e, "                for (int c = 0; c < %lld; c++, xp += TB, wp += MR) {\n", ll(g->c));
    P(e, "                    _mm_prefetch((const char *)(wp + %d), _MM_HINT_T0);\n",
      WEIGHTS_AHEAD);
    for (int v = 0; v < g->nv; v++)
        P(e, "                    const __m256 xv%d = _mm256_loadu_ps(xp + %lld);\n", v,
          ll(v * g->width));
    for (int i = 0; i < g->mr; i++) {
        P(e, "                    %swv = _mm256_set1_ps(wp[%d]);\n", i == 0 ? "__m256 " : "", i);
        for (int v = 0; v < g->nv; v++)
            P(e, "                    c%d%d = _mm256_fmadd_ps(wv, xv%d, c%d%d);\n", i, v, v, i, v);
    }
    P(e, "                }\n");
    P(e, "                float *mp = M + (ptrdiff_t)xi * %lld + kb * MR * TB + tg * NV * W;\n",
      ll(g->kp * g->tb));
    for (int i = 0; i < g->mr; i++)
        for (int v = 0; v < g->nv; v++)
            P(e, "                _mm256_storeu_ps(mp + %lld, c%d%d);\n",
              ll(i * g->tb + v * g->width), i, v);
    P(e, "            }\n");
}

/* Floats a channel of the output takes where the stores go: the plane, or
 * pool_bands.c's rows of it in scratch (at k * this - sub). */
static int64_t out_plane(Emit *e, const Node *n, const WinoGeo *g) {
    return bands_here(e, n) ? bands_plane(e->opt->target, n) : g->ho * g->wo;
}

/* Stores vector `vec`: W outputs of channel k from row `oh`, column `ow`
 * on, through the epilogue; past the row's end, lane by lane; nothing
 * past the last row. */
static void emit_store(Emit *e, const Node *n, const WinoGeo *g, const char *vec,
                       const char *oh, const char *ow) {
    const char *in = "                        ";
    P(e, "%s{\n", in);
    P(e, "%s    const int oy = %s, ow = %s, at = k * %lld + oy * %lld + ow%s;\n", in, oh, ow,
      ll(out_plane(e, n, g)), ll(g->wo), bands_here(e, n) ? " - sub" : "");
    P(e, "%s    if (oy >= %lld) {\n", in, ll(g->ho));
    P(e, "%s    } else if (ow + W <= %lld) {\n", in, ll(g->wo));
    simd_store_vector(e, n, arena_printf(e->a, "%s        ", in), vec, "at");
    P(e, "%s    } else if (ow < %lld) {\n", in, ll(g->wo));
    simd_store_lanes(e, n, arena_printf(e->a, "%s        ", in), vec, "0",
                     arena_printf(e->a, "%lld - ow", ll(g->wo)), "at");
    P(e, "%s    }\n", in);
    P(e, "%s}\n", in);
}

/* Stores vector `vec` holding two rows of W/2 outputs of channel k, rows
 * `oh` and `oh` + 2, lane by lane through the epilogue (rows of tiles four
 * to a vector, at most 8 outputs a row). */
static void emit_store_quarter(Emit *e, const Node *n, const WinoGeo *g, const char *vec,
                               const char *oh) {
    const char *in = "                    ";
    P(e, "%sfor (int q = 0; q < 2; q++) {\n", in);
    P(e, "%s    const int oy = %s + 2 * q, at = k * %lld + oy * %lld%s;\n", in, oh,
      ll(out_plane(e, n, g)), ll(g->wo), bands_here(e, n) ? " - sub" : "");
    P(e, "%s    if (oy >= %lld)\n", in, ll(g->ho));
    P(e, "%s        break;\n", in);
    simd_store_lanes(e, n, arena_printf(e->a, "%s    ", in), vec, "q * W / 2",
                     arena_printf(e->a, "%lld", ll(g->wo)), "at");
    P(e, "%s}\n", in);
}

/* The pooled values in `lane`, `run` for each of the vector's rv rows of
 * tiles, to pooled row `py` from column `px` (expressions of q, the row
 * of tiles in the vector), cut at the plane's right and bottom edges. */
static void emit_lane_rows(Emit *e, const WinoGeo *g, const char *in, int64_t run,
                           const char *py, const char *px) {
    int64_t ph = g->ho / 2, pw = g->wo / 2;
    P(e, "%sfor (int q = 0; q < %lld; q++) {\n", in, ll(g->rv));
    P(e, "%s    const int py = %s, px = %s;\n", in, py, px);
    P(e, "%s    const int count = px + %lld <= %lld ? %lld : %lld - px;\n", in, ll(run),
      ll(pw), ll(run), ll(pw));
    P(e, "%s    if (py >= %lld || count <= 0)\n", in, ll(ph));
    P(e, "%s        break;\n", in);
    P(e, "%s    float *py_row = yb + k * %lld + py * %lld + px;\n", in, ll(ph * pw), ll(pw));
    P(e, "%s    for (int l = 0; l < count; l++)\n", in);
    P(e, "%s        py_row[l] = lane[q * %lld + l];\n", in, ll(run));
    P(e, "%s}\n", in);
}

/* With a 2x2 max pool fused (fuse_pool.c), each tile is one pooling
 * window: its four outputs through the epilogue (no residual sum: its
 * operand is laid out by rows, not tiles), then cnn_vmax in the pooling
 * kernel's order, and one pooled value a tile. The vector's lanes are its
 * tiles, so rows of pooled values go out as they are: W from column
 * xv * W of pooled row r, or W / rv from each of rv rows. */
static void emit_pooled_store(Emit *e, const Node *n, const WinoGeo *g) {
    const char *in = "                    ";
    int64_t per_row = g->width / g->rv;
    P(e, "%s__m256 best;\n", in);
    const char *taps[] = {"y00", "y01", "y10", "y11"};
    for (int i = 0; i < 4; i++) {
        P(e, "%s{\n%s    __m256 x = %s;\n", in, in, taps[i]);
        simd_epilogue_vector(e, n, arena_printf(e->a, "%s    ", in), "0");
        P(e, "%s    best = %s;\n%s}\n", in, i == 0 ? "x" : "cnn_vmax(best, x)", in);
    }
    P(e, "%sfloat lane[W];\n", in);
    P(e, "%s_mm256_storeu_ps(lane, best);\n", in);
    emit_lane_rows(e, g, in, per_row, "ty0 + r + q", g->rv == 1 ? "xv * W" : "0");
}

/* Output transform, a vector of W tiles at a time: s = A^T M (rows), then
 * Y = s A (columns), plus the bias; each output row's two columns of
 * results zipped into 2W consecutive outputs. */
static void emit_output_transform(Emit *e, const Node *n, const WinoGeo *g) {
    int64_t ms = g->kp * g->tb;
    if (e->split)
        P(e, "            #pragma omp for schedule(static)\n");
    P(e, "            for (int k = 0; k < %lld; k++) {\n", ll(g->k));
    P(e, "                const __m256 bk = _mm256_set1_ps(bias[k]);\n");
    P(e, "                for (int v = 0; v < used; v++) {\n");
    emit_vector_place(e, g, "                    ");
    if (!pool_of(e, n))
        P(e, "                    const int oh = 2 * (ty0 + r);\n");
    P(e, "                    const float *m = M + k * TB + v * W;\n");
    for (int j = 0; j < 4; j++) {
        P(e, "                    const __m256 m0%d = _mm256_loadu_ps(m + %lld), "
             "m1%d = _mm256_loadu_ps(m + %lld),\n", j, ll(j * ms), j, ll((4 + j) * ms));
        P(e, "                                 m2%d = _mm256_loadu_ps(m + %lld), "
             "m3%d = _mm256_loadu_ps(m + %lld);\n", j, ll((8 + j) * ms), j, ll((12 + j) * ms));
        P(e, "                    const __m256 s0%d = _mm256_add_ps(_mm256_add_ps(m0%d, m1%d), m2%d);\n",
          j, j, j, j);
        P(e, "                    const __m256 s1%d = _mm256_sub_ps(_mm256_sub_ps(m1%d, m2%d), m3%d);\n",
          j, j, j, j);
    }
    for (int i = 0; i < 2; i++) {
        P(e, "                    const __m256 y%d0 = _mm256_add_ps(_mm256_add_ps("
             "_mm256_add_ps(s%d0, s%d1), s%d2), bk);\n", i, i, i, i);
        P(e, "                    const __m256 y%d1 = _mm256_add_ps(_mm256_sub_ps("
             "_mm256_sub_ps(s%d1, s%d2), s%d3), bk);\n", i, i, i, i);
    }
    if (pool_of(e, n)) {
        emit_pooled_store(e, n, g);
        P(e, "                }\n");
        P(e, "            }\n");
        return;
    }
    P(e, "                    __m256 lo, hi;\n");
    for (int i = 0; i < 2; i++) {
        P(e, "                    cnn_zip(y%d0, y%d1, &lo, &hi);\n", i, i);
        if (g->rv == 4) {
            emit_store_quarter(e, n, g, "lo", arena_printf(e->a, "oh + %d", i));
            emit_store_quarter(e, n, g, "hi", arena_printf(e->a, "oh + %d", i + 4));
            continue;
        }
        /* hi continues lo's row, or is the next row of tiles */
        emit_store(e, n, g, "lo", arena_printf(e->a, "oh + %d", i),
                   g->rv == 1 ? "2 * xv * W" : "0");
        emit_store(e, n, g, "hi", arena_printf(e->a, "oh + %d", g->rv == 2 ? i + 2 : i),
                   g->rv == 2 ? "0" : "2 * xv * W + W");
    }
    P(e, "                }\n");
    P(e, "            }\n");
}

/* ---- F(4x4, 3x3) --------------------------------------------------------- */

/* The offset in the padded input of vector p (0..3) of the four that
 * hold a patch row's 4W consecutive columns for a vector's tiles: with one
 * row of tiles a vector, the next W columns; with rv rows, each row of
 * tiles (`tile_rows` floats apart) takes 4 / rv vectors. */
static int64_t quarter_at(const WinoGeo *g, int p, int64_t tile_rows) {
    int per_row = 4 / (int)g->rv;
    return p / per_row * tile_rows + p % per_row * g->width;
}

/* One dimension of V = B^T d B for F(4x4, 3x3): x0..x5 (variables named
 * x then 0..5) to out0..out5, with
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
 *          0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1],
 * shared terms first; the constants are exact, so the FMAs round once. */
static void emit_bt6(Emit *e, const char *in, const char *x, const char *out) {
    P(e, "%sconst __m256 %sa = _mm256_fnmadd_ps(four, %s2, %s4), "
         "%sb = _mm256_fnmadd_ps(four, %s1, %s3),\n", in, out, x, x, out, x, x);
    P(e, "%s             %sc = _mm256_sub_ps(%s4, %s2), %sd = _mm256_sub_ps(%s3, %s1);\n", in,
      out, x, x, out, x, x);
    P(e, "%sconst __m256 %s0 = _mm256_fnmadd_ps(five, %s2, _mm256_fmadd_ps(four, %s0, %s4)),\n",
      in, out, x, x, x);
    P(e, "%s             %s1 = _mm256_add_ps(%sa, %sb), %s2 = _mm256_sub_ps(%sa, %sb),\n", in,
      out, out, out, out, out, out);
    P(e, "%s             %s3 = _mm256_fmadd_ps(two, %sd, %sc), "
         "%s4 = _mm256_fnmadd_ps(two, %sd, %sc),\n", in, out, out, out, out, out, out);
    P(e, "%s             %s5 = _mm256_fnmadd_ps(five, %s3, _mm256_fmadd_ps(four, %s1, %s5));\n",
      in, out, x, x, x);
}

/* One dimension of Y = A^T M A: x0..x5 to out0..out3, with
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]. */
static void emit_at6(Emit *e, const char *in, const char *x, const char *out) {
    P(e, "%sconst __m256 %sp = _mm256_add_ps(%s1, %s2), %sq = _mm256_sub_ps(%s1, %s2),\n", in,
      out, x, x, out, x, x);
    P(e, "%s             %sr = _mm256_add_ps(%s3, %s4), %ss = _mm256_sub_ps(%s3, %s4);\n", in,
      out, x, x, out, x, x);
    P(e, "%sconst __m256 %s0 = _mm256_add_ps(_mm256_add_ps(%s0, %sp), %sr),\n", in, out, x, out,
      out);
    P(e, "%s             %s1 = _mm256_fmadd_ps(two, %ss, %sq),\n", in, out, out, out);
    P(e, "%s             %s2 = _mm256_fmadd_ps(four, %sr, %sp),\n", in, out, out, out);
    P(e, "%s             %s3 = _mm256_add_ps(_mm256_fmadd_ps(eight, %ss, %sq), %s5);\n", in, out,
      out, out, x);
}

/* Input transform for F(4x4, 3x3), a vector of tiles at a time: each of
 * the patch's six rows as 4W columns from 0 and 4W from 4, split four ways
 * (two rounds of cnn_unzip) into the tiles' columns 0..3 and 4..5; the row
 * transform of each patch row, then the column transform, each of the 36
 * results stored to its own matrix. */
static void emit_input_transform4(Emit *e, const WinoGeo *g) {
    const char *in = "                    ";
    int64_t vs = g->c * g->tb;
    if (e->split)
        P(e, "            #pragma omp for schedule(static)\n");
    P(e, "            for (int c = 0; c < %lld; c++) {\n", ll(g->c));
    P(e, "                float *vc = V + c * TB;\n");
    P(e, "                for (int v = 0; v < used; v++) {\n");
    emit_vector_place(e, g, in);
    P(e, "%sconst float *d = in + (ptrdiff_t)c * %lld + (4 * (ty0 + r)) * %lld%s;\n", in,
      ll(g->hp * g->wp), ll(g->wp), g->rv == 1 ? " + 4 * xv * W" : "");
    P(e, "%sconst __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f), "
         "five = _mm256_set1_ps(5.0f);\n", in);
    for (int i = 0; i < 6; i++) {
        P(e, "%s__m256 d%d0, d%d1, d%d2, d%d3, d%d4, d%d5;\n", in, i, i, i, i, i, i);
        P(e, "%s{\n", in);
        P(e, "%s    __m256 e0, o0, e1, o1, unused;\n", in);
        for (int half = 0; half < 2; half++) {
            int64_t at[4];
            for (int p = 0; p < 4; p++)
                at[p] = i * g->wp + 4 * half + quarter_at(g, p, 4 * g->wp);
            P(e, "%s    cnn_unzip(_mm256_loadu_ps(d + %lld), _mm256_loadu_ps(d + %lld), &e0, &o0);\n",
              in, ll(at[0]), ll(at[1]));
            P(e, "%s    cnn_unzip(_mm256_loadu_ps(d + %lld), _mm256_loadu_ps(d + %lld), &e1, &o1);\n",
              in, ll(at[2]), ll(at[3]));
            if (half == 0) {
                P(e, "%s    cnn_unzip(e0, e1, &d%d0, &d%d2);\n", in, i, i);
                P(e, "%s    cnn_unzip(o0, o1, &d%d1, &d%d3);\n", in, i, i);
            } else {
                P(e, "%s    cnn_unzip(e0, e1, &d%d4, &unused);\n", in, i);
                P(e, "%s    cnn_unzip(o0, o1, &d%d5, &unused);\n", in, i);
            }
        }
        P(e, "%s}\n", in);
        emit_bt6(e, in, arena_printf(e->a, "d%d", i), arena_printf(e->a, "t%d", i));
    }
    P(e, "%sfloat *o = vc + v * W;\n", in);
    for (int j = 0; j < 6; j++) {
        P(e, "%s{\n", in);
        P(e, "%s    const __m256 x0 = t0%d, x1 = t1%d, x2 = t2%d, x3 = t3%d, x4 = t4%d, "
             "x5 = t5%d;\n", in, j, j, j, j, j, j);
        emit_bt6(e, arena_printf(e->a, "%s    ", in), "x", "u");
        for (int i = 0; i < 6; i++)
            P(e, "%s    _mm256_storeu_ps(o + %lld, u%d);\n", in, ll((6 * i + j) * vs), i);
        P(e, "%s}\n", in);
    }
    P(e, "                }\n");
    P(e, "                for (int v = used; v < nvec; v++)\n");
    P(e, "                    for (int xi = 0; xi < NX; xi++)\n");
    P(e, "                        _mm256_storeu_ps(vc + xi * %lld + v * W, _mm256_setzero_ps());\n",
      ll(vs));
    P(e, "            }\n");
}

/* With a 2x2 max pool fused, each F(4x4) tile holds four pooling windows:
 * output rows 2a and 2a + 1 (each through the epilogue: y = s A plus the
 * bias) give pooled row a, columns 0-1 and 2-3 its two pooled columns,
 * taken by cnn_vmax in the pooling kernel's order. Zipping the two
 * columns puts each tile's pair side by side, so a row of tiles is a run
 * of 2W / rv pooled values, copied lane by lane up to the plane's edge. */
static void emit_pooled_store4(Emit *e, const Node *n, const WinoGeo *g) {
    const char *in = "                    ";
    int64_t run = 2 * g->width / g->rv;
    for (int a = 0; a < 2; a++) {
        P(e, "%s{\n", in);
        for (int i = 2 * a; i < 2 * a + 2; i++) {
            const char *y = arena_printf(e->a, "y%d", i);
            emit_at6(e, arena_printf(e->a, "%s    ", in), arena_printf(e->a, "s%d", i), y);
            for (int j = 0; j < 4; j++) {
                P(e, "%s    __m256 o%d%d;\n", in, i - 2 * a, j);
                P(e, "%s    {\n%s        __m256 x = _mm256_add_ps(%s%d, bk);\n", in, in, y, j);
                simd_epilogue_vector(e, n, arena_printf(e->a, "%s        ", in), "0");
                P(e, "%s        o%d%d = x;\n%s    }\n", in, i - 2 * a, j, in);
            }
        }
        for (int b = 0; b < 2; b++) {
            P(e, "%s    __m256 p%d = o0%d;\n", in, b, 2 * b);
            P(e, "%s    p%d = cnn_vmax(p%d, o0%d);\n", in, b, b, 2 * b + 1);
            P(e, "%s    p%d = cnn_vmax(p%d, o1%d);\n", in, b, b, 2 * b);
            P(e, "%s    p%d = cnn_vmax(p%d, o1%d);\n", in, b, b, 2 * b + 1);
        }
        P(e, "%s    __m256 lo, hi;\n", in);
        P(e, "%s    cnn_zip(p0, p1, &lo, &hi);\n", in);
        P(e, "%s    float lane[2 * W];\n", in);
        P(e, "%s    _mm256_storeu_ps(lane, lo);\n", in);
        P(e, "%s    _mm256_storeu_ps(lane + W, hi);\n", in);
        emit_lane_rows(e, g, arena_printf(e->a, "%s    ", in), run,
                       arena_printf(e->a, "2 * (ty0 + r + q) + %d", a),
                       g->rv == 1 ? "2 * xv * W" : "0");
        P(e, "%s}\n", in);
    }
}

/* Output transform for F(4x4, 3x3), a vector of W tiles at a time: the
 * column transform of each of the six columns of M, then the row transform
 * of each output row plus the bias, its four columns of results
 * interleaved (two rounds of cnn_zip) into 4W consecutive outputs and
 * stored through the epilogue. */
static void emit_output_transform4(Emit *e, const Node *n, const WinoGeo *g) {
    const char *in = "                    ";
    int64_t ms = g->kp * g->tb;
    if (e->split)
        P(e, "            #pragma omp for schedule(static)\n");
    P(e, "            for (int k = 0; k < %lld; k++) {\n", ll(g->k));
    P(e, "                const __m256 bk = _mm256_set1_ps(bias[k]);\n");
    P(e, "                for (int v = 0; v < used; v++) {\n");
    emit_vector_place(e, g, in);
    if (!pool_of(e, n))
        P(e, "%sconst int oh = 4 * (ty0 + r);\n", in);
    P(e, "%sconst float *m = M + k * TB + v * W;\n", in);
    P(e, "%sconst __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f), "
         "eight = _mm256_set1_ps(8.0f);\n", in);
    for (int j = 0; j < 6; j++) {
        P(e, "%s__m256 s0%d, s1%d, s2%d, s3%d;\n", in, j, j, j, j);
        P(e, "%s{\n", in);
        for (int i = 0; i < 6; i++)
            P(e, "%s    const __m256 x%d = _mm256_loadu_ps(m + %lld);\n", in, i,
              ll((6 * i + j) * ms));
        emit_at6(e, arena_printf(e->a, "%s    ", in), "x", "u");
        P(e, "%s    s0%d = u0;\n%s    s1%d = u1;\n%s    s2%d = u2;\n%s    s3%d = u3;\n", in, j,
          in, j, in, j, in, j);
        P(e, "%s}\n", in);
    }
    if (pool_of(e, n)) {
        emit_pooled_store4(e, n, g);
        P(e, "                }\n");
        P(e, "            }\n");
        return;
    }
    const char *ow0 = g->rv == 1 ? "4 * xv * W" : "0";
    for (int i = 0; i < 4; i++) {
        P(e, "%s{\n", in);
        emit_at6(e, arena_printf(e->a, "%s    ", in), arena_printf(e->a, "s%d", i), "y");
        P(e, "%s    __m256 lo0, hi0, lo1, hi1, q0, q1, q2, q3;\n", in);
        P(e, "%s    cnn_zip(_mm256_add_ps(y0, bk), _mm256_add_ps(y2, bk), &lo0, &hi0);\n", in);
        P(e, "%s    cnn_zip(_mm256_add_ps(y1, bk), _mm256_add_ps(y3, bk), &lo1, &hi1);\n", in);
        P(e, "%s    cnn_zip(lo0, lo1, &q0, &q1);\n", in);
        P(e, "%s    cnn_zip(hi0, hi1, &q2, &q3);\n", in);
        for (int p = 0; p < 4; p++) {
            /* quarter p: its row of tiles (4 output rows apart) and columns */
            int per_row = 4 / (int)g->rv;
            int64_t dy = p / per_row * 4, dx = p % per_row * g->width;
            emit_store(e, n, g, arena_printf(e->a, "q%d", p),
                       arena_printf(e->a, "oh + %lld", ll(i + dy)),
                       arena_printf(e->a, "%s + %lld", ow0, ll(dx)));
        }
        P(e, "%s}\n", in);
    }
    P(e, "                }\n");
    P(e, "            }\n");
}

void emit_wino_conv(Emit *e, const Node *n) {
    WinoGeo g = wino_geo(e->opt->target, n);
    bool bands = bands_here(e, n);
    int64_t copy = g.c * g.hp * g.wp, own = copy + g.nx * (g.c + g.kp) * g.tb;
    int64_t per_sample = own + (bands ? bands_scratch(e->opt->target, n) : 0);
    e->need_zip |= !pool_of(e, n) || g.m == 4;
    simd_need_unzip(e);
    if (pool_of(e, n))
        simd_need_vmax(e);
    e->need_load2x8 |= g.rv == 4 && g.m == 2;
    e->need_pad = true;
    P(e, "    enum { MR = %d, NV = %d, W = %d, BR = %lld, TB = %lld, NX = %d };\n", g.mr, g.nv,
      g.width, ll(g.br), ll(g.tb), g.nx);
    P(e, "    /* MR x NV vectors: the products' register tile; W floats a vector; BR tile\n"
         "     * rows a band; TB tiles a row of V and M; NX products, F(%dx%d,3x3) */\n", g.m, g.m);
    P(e, "    const float *bias = w + %lld;\n", ll(g.nx * g.kp * g.c));
    e->scratch_per_sample = true;
    open_batch(e, n);
    e->scratch_per_sample = false;
    P(e, "        float *in = s + (ptrdiff_t)b * %lld; /* this sample's padded input, */\n",
      ll(per_sample));
    P(e, "        float *V = in + %lld; /* the band transformed, [NX][%lld][TB], */\n", ll(copy),
      ll(g.c));
    P(e, "        float *M = V + %lld; /* the NX products, [NX][%lld][TB] */\n",
      ll(g.nx * g.c * g.tb), ll(g.kp));
    if (bands) {
        bands_pointers(e, n, arena_printf(e->a, "in + %lld", ll(own)));
        P(e, "        /* band ch of BR tile rows is chunk ch */\n");
        bands_table(e, n, "        ");
    }
    if (e->split) {
        /* the threads pad the channels they transform: the same static
         * shares of the same count, so each reads its own writes (the
         * MNIST network, 2 threads: 38.3 -> 36.9 us) */
        P(e, "        #pragma omp parallel\n");
        P(e, "        {\n");
        P(e, "        #pragma omp for schedule(static)\n");
        P(e, "        for (int c = 0; c < %lld; c++)\n", ll(g.c));
        P(e, "            cnn_pad(xb0 + (ptrdiff_t)c * %lld, in + (ptrdiff_t)c * %lld, 1, %lld, "
             "%lld, %lld, %lld, %lld, %lld, 0);\n", ll(g.h * g.w), ll(g.hp * g.wp), ll(g.h),
          ll(g.w), ll(g.top), ll(g.left), ll(g.hp), ll(g.wp));
    } else {
        P(e, "        cnn_pad(xb0, in, %lld, %lld, %lld, %lld, %lld, %lld, %lld, 0);\n", ll(g.c),
          ll(g.h), ll(g.w), ll(g.top), ll(g.left), ll(g.hp), ll(g.wp));
    }
    P(e, "        for (int ty0 = 0; ty0 < %lld; ty0 += BR) {\n", ll(g.thp));
    P(e, "            const int rows = ty0 + BR <= %lld ? BR : %lld - ty0;\n", ll(g.thp),
      ll(g.thp));
    P(e, "            const int used = rows / %lld * %lld; /* vectors of tiles */\n", ll(g.rv),
      ll(g.vr));
    P(e, "            const int nvec = (used + NV - 1) / NV * NV;\n");
    if (bands) {
        P(e, "            const int ch = ty0 / BR;\n");
        bands_chunk_start(e, n, "            ");
    }
    if (g.m == 4)
        emit_input_transform4(e, &g);
    else
        emit_input_transform(e, &g);
    emit_gemm(e, &g);
    if (g.m == 4)
        emit_output_transform4(e, n, &g);
    else
        emit_output_transform(e, n, &g);
    if (bands)
        bands_chunk_pool(e, n, "            ");
    P(e, "        }\n");
    if (e->split)
        P(e, "        }\n");
    close_batch(e);
}
