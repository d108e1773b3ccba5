/* wino_rows.c — 7-wide stride-2 convolutions (ResNet's first layer) by a
 * one-dimensional Winograd transform along the rows.
 *
 * A 7x7 stride-2 layer on a 3-channel image sums only C*7*7 = 147 products
 * per output, too few to amortise anything per output, and the direct
 * kernels spend most of their loads on an input read at every other column.
 * Along one input row r of channel c and kernel row i, an output pair
 * (2T, 2T+1) is two one-dimensional correlations at stride 1:
 *   even columns e[t] = r[2t] with the taps w0 w2 w4 w6: F(2,4),
 *     5 multiplications for the pair instead of 8;
 *   odd columns  o[t] = r[2t+1] with the taps w1 w3 w5: F(2,3),
 *     4 instead of 6.
 * So 9 products per (c, i) make two outputs where the direct sum needs 14.
 * The 9 transformed products, summed over the C*7 (channel, kernel row)
 * pairs first, are 9 independent matrix products
 *   M[xi][k][pair] = sum over (c, i) of U[xi][k][c,i] V[xi][c, row][pair],
 * computed by the direct kernel's register tile (MR output channels
 * broadcast against NV vectors of W pairs); the output transform then
 * costs a few additions per pair, once per C*7 products.
 *
 * Transforms (Cook-Toom at the points 0, 1, -1, 2 and infinity for F(2,4);
 * 0, 1, -1 and infinity for F(2,3)), d the input values, g the taps:
 *   F(2,4): V = 2d0-d1-2d2+d3, 2d1+d2-d3, -2d1+3d2-d3, d3-d1, 2d1-d2-2d3+d4
 *           U = g0/2, (g0+g1+g2+g3)/2, (g0-g1+g2-g3)/6, (g0+2g1+4g2+8g3)/6, g3
 *           y0 = M0+M1+M2+M3, y1 = M1-M2+2M3+M4
 *   F(2,3): V = d0-d2, d1+d2, d2-d1, d3-d1
 *           U = g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2
 *           y0 = M0+M1+M2, y1 = M1-M2+M3
 * Their constants are small (the largest 8/6), so the float error stays
 * near the direct sum's; the conformance suite holds it to 1e-4.
 *
 * Layout. The input is padded into scratch with zeros up to whole vectors;
 * each padded row is split by column modulo 4 into four phases q0..q3
 * (cnn_unzip twice), so that e[2T+a] and o[2T+a] for W consecutive pairs T
 * are plain vector loads. V keeps the even and the odd input rows apart,
 * each with TW = ceil(WO/2) pairs a row: output row oh and kernel row i read
 * V row oh + i/2 of parity i%2, so pair p = oh*TW + T of every output row
 * reads V at p plus a constant, and a tile of NR consecutive pairs is one
 * run of memory per (xi, c, i), as in the direct kernel's stride-1 form. The
 * last tile is shifted back to end at the last pair; the overlap is
 * computed and stored twice with the same values.
 *
 * The transformed weights U are made from the packed ones (the direct
 * kernel's MR-channel blocks, with batch norm folded in) at every call: 9
 * values per (channel, c, i) against the layer's 118 million products. */
#include "emit.h"

static long long ll(int64_t v) { return (long long)v; }

enum { XI = 9 };   /* transformed products per (c, i): 5 even, 4 odd */

typedef struct RowGeo {
    int64_t cin, k, h, w, top, left, kh;
    int64_t ho, wo;
    int64_t tw;          /* output pairs a row: ceil(WO/2) */
    int64_t hu;          /* V rows of each parity */
    int64_t hr, wr;      /* the padded copy: every vector's reads inside */
    int64_t ps;          /* floats of one (xi, c, parity) plane of V */
    int64_t len;         /* pairs computed: HO * TW */
    int64_t ci;          /* (channel, kernel row) pairs: the reduction */
    int64_t kb;          /* blocks of MR output channels */
    int width, mr, nv;
} RowGeo;

static RowGeo row_geo(Target t, const Node *n) {
    const Attrs *a = &n->a;
    Shape in = in_shape_of(n, 0);
    RowGeo g = {.cin = in.d[0], .k = a->units, .h = in.d[1], .w = in.d[2],
                .top = a->pad_lo[0], .left = a->pad_lo[1], .kh = a->kernel[0],
                .ho = n->shape.d[1], .wo = n->shape.d[2], .width = simd_width(t)};
    /* 4 output channels x 3 vectors on both targets: measured on ResNet's
     * first layer (Zen 4, best of 300 calls) against 6x2 and 8x1 on AVX2
     * (1.52 ms against 1.79 and 1.77; 3x4 and 2x6 spill) and against
     * 8x3, 4x4, 8x2, 16x1 on AVX-512 (1.57 ms against 1.59-1.69) */
    g.mr = 4;
    g.nv = 3;
    g.tw = (g.wo + 1) / 2;
    g.hu = g.ho + (g.kh - 1) / 2;
    g.hr = 2 * g.hu;
    /* the last vector of pairs starts at TV - W and reads 4W + 8 floats on */
    int64_t tv = (g.tw + g.width - 1) / g.width * g.width;
    g.wr = 4 * tv + 8;
    g.ps = g.hu * g.tw;
    g.len = g.ho * g.tw;
    g.ci = g.cin * g.kh;
    g.kb = (g.k + g.mr - 1) / g.mr;
    return g;
}

/* A plain 7-wide, stride-2, zero-padded convolution whose rows fill at
 * least a vector of pairs and whose output fills a tile (narrower ones keep
 * the direct kernels). */
bool rows_suits(Target t, const Node *n) {
    const Attrs *a = &n->a;
    if (!simd_target(t) || n->op != OP_CONV || n->shape.rank != 3 || a->groups != 1 ||
        a->kernel[1] != 7 || a->stride[0] != 2 || a->stride[1] != 2 ||
        a->dilation[0] != 1 || a->dilation[1] != 1 || a->pad_mode != PAD_ZEROS)
        return false;
    RowGeo g = row_geo(t, n);
    return g.tw >= g.width && g.len >= (int64_t)g.nv * g.width;
}

int rows_mr(Target t, const Node *n) {
    return row_geo(t, n).mr;
}

static int64_t u_floats(const RowGeo *g) {
    return g->kb * g->mr * XI * g->ci;
}

static int64_t sample_floats(const RowGeo *g) {
    return g->cin * g->hr * g->wr + XI * g->cin * 2 * g->ps;
}

/* U once, then per sample the padded copy and V. */
int64_t rows_scratch(Target t, const Node *n, int batch) {
    RowGeo g = row_geo(t, n);
    return u_floats(&g) + (int64_t)batch * sample_floats(&g);
}

const char *rows_schedule(Emit *e, const Node *n) {
    RowGeo g = row_geo(e->opt->target, n);
    return arena_printf(e->a,
        "%s: 1-D Winograd along rows, F(2,4) on the even columns and F(2,3) on the odd "
        "ones (9 products per 2 outputs instead of 14); input padded, split into column "
        "phases and transformed into scratch first; tile MR=%d output channels x NR=%d "
        "pairs of outputs (%d %s accumulators) per product, summed over %lld (channel, "
        "kernel row) pairs", g.width == 16 ? "avx512" : "avx2", g.mr, g.nv * g.width,
        g.mr * g.nv, g.width == 16 ? "zmm" : "ymm", ll(g.ci));
}

/* U[gb][xi][c*KH + i][MR] from the packed weights, 7 taps MR apart. */
static void emit_u(Emit *e, const RowGeo *g) {
    int64_t per = g->ci * 7;
    P(e, "    for (int gb = 0; gb < %lld; gb++)\n", ll(g->kb));
    P(e, "        for (int ci = 0; ci < %lld; ci++)\n", ll(g->ci));
    P(e, "            for (int m = 0; m < MR; m++) {\n");
    P(e, "                const float *g = w + ((ptrdiff_t)gb * %lld + ci * 7) * MR + m;\n",
      ll(per));
    P(e, "                float *o = u + ((ptrdiff_t)gb * %d * %lld + ci) * MR + m;\n", XI,
      ll(g->ci));
    P(e, "                const double g0 = g[0], g1 = g[MR], g2 = g[2 * MR], "
         "g3 = g[3 * MR], g4 = g[4 * MR], g5 = g[5 * MR], g6 = g[6 * MR];\n");
    static const char *const u[XI] = {
        "0.5 * g0", "0.5 * (g0 + g2 + g4 + g6)", "(g0 - g2 + g4 - g6) / 6.0",
        "(g0 + 2.0 * g2 + 4.0 * g4 + 8.0 * g6) / 6.0", "g6",
        "g1", "0.5 * (g1 + g3 + g5)", "0.5 * (g1 - g3 + g5)", "g5"};
    for (int x = 0; x < XI; x++)
        P(e, "                o[%lld] = (float)(%s);\n", ll(x * g->ci * g->mr), u[x]);
    P(e, "            }\n");
}

/* The four column phases of r from column 4t on: q0[T] = r[4T], ... */
static void emit_phases(Emit *e, const char *at, const char *sfx) {
    P(e, "                {\n");
    P(e, "                    __m256 e1, o1, e2, o2;\n");
    P(e, "                    cnn_unzip(_mm256_loadu_ps(%s), _mm256_loadu_ps(%s + W), &e1, &o1);\n",
      at, at);
    P(e, "                    cnn_unzip(_mm256_loadu_ps(%s + 2 * W), _mm256_loadu_ps(%s + 3 * W), "
         "&e2, &o2);\n", at, at);
    P(e, "                    cnn_unzip(e1, e2, &q0%s, &q2%s);\n", sfx, sfx);
    P(e, "                    cnn_unzip(o1, o2, &q1%s, &q3%s);\n", sfx, sfx);
    P(e, "                }\n");
}

/* V from the padded copy: every padded row, W pairs at a time, the last
 * vector shifted back to end at the row's last pair. */
static void emit_v(Emit *e, const RowGeo *g) {
    int64_t xs = g->cin * 2 * g->ps;
    if (e->split)
        P(e, "        #pragma omp parallel for schedule(static)\n");
    P(e, "        for (int ch = 0; ch < %lld; ch++) {\n", ll(g->cin * g->hr));
    P(e, "            const int c = ch / %lld, h = ch - c * %lld;\n", ll(g->hr), ll(g->hr));
    P(e, "            const float *r = xpad + (ptrdiff_t)ch * %lld;\n", ll(g->wr));
    P(e, "            float *o = v + (ptrdiff_t)(c * 2 + (h & 1)) * %lld + (h >> 1) * %lld;\n",
      ll(g->ps), ll(g->tw));
    P(e, "            for (int t0 = 0; t0 < %lld; t0 += W) {\n", ll(g->tw));
    P(e, "                const int t = t0 + W <= %lld ? t0 : %lld;\n", ll(g->tw),
      ll(g->tw - g->width));
    P(e, "                __m256 q0a, q1a, q2a, q3a, q0b, q1b, q2b, q3b, q0c, q1c, q2c, q3c;\n");
    emit_phases(e, "r + 4 * t", "a");
    emit_phases(e, "r + 4 * t + 4", "b");
    emit_phases(e, "r + 4 * t + 8", "c");
    P(e, "                (void)q1c;\n                (void)q2c;\n                (void)q3c;\n");
    /* even d0..d4 = q0a q2a q0b q2b q0c; odd d0..d3 = q1a q3a q1b q3b */
    static const char *const vx[XI] = {
        "_mm256_add_ps(_mm256_mul_ps(two, _mm256_sub_ps(q0a, q0b)), _mm256_sub_ps(q2b, q2a))",
        "_mm256_sub_ps(_mm256_fmadd_ps(two, q2a, q0b), q2b)",
        "_mm256_sub_ps(_mm256_fmsub_ps(three, q0b, q2b), _mm256_mul_ps(two, q2a))",
        "_mm256_sub_ps(q2b, q2a)",
        "_mm256_add_ps(_mm256_mul_ps(two, _mm256_sub_ps(q2a, q2b)), _mm256_sub_ps(q0c, q0b))",
        "_mm256_sub_ps(q1a, q1b)", "_mm256_add_ps(q3a, q1b)", "_mm256_sub_ps(q1b, q3a)",
        "_mm256_sub_ps(q3b, q3a)"};
    for (int x = 0; x < XI; x++)
        P(e, "                _mm256_storeu_ps(o + %lld + t, %s);\n", ll(x * xs), vx[x]);
    P(e, "            }\n");
    P(e, "        }\n");
}

/* One (c, i) step of a product: NV vectors of V, MR broadcast weights. */
static void emit_step(Emit *e, const RowGeo *g, int64_t off, int64_t woff) {
    P(e, "                    {\n");
    for (int v = 0; v < g->nv; v++)
        P(e, "                        const __m256 x%d = _mm256_loadu_ps(xp + %lld);\n", v,
          ll(off + v * g->width));
    for (int m = 0; m < g->mr; m++) {
        P(e, "                        %swv = _mm256_set1_ps(wp[%lld]);\n", m ? "" : "__m256 ",
          ll(woff + m));
        for (int v = 0; v < g->nv; v++)
            P(e, "                        c%d%d = _mm256_fmadd_ps(wv, x%d, c%d%d);\n", m, v, v,
              m, v);
    }
    P(e, "                    }\n");
}

/* The output transform of channel k's vector vi, then its stores: pairs
 * within one output row as two vectors, others output by output. */
static void emit_out(Emit *e, const Node *n, const RowGeo *g) {
    int64_t plane = g->ho * g->wo;
    P(e, "            for (int k = 0; k < MR; k++) {\n");
    if (g->k % g->mr)
        P(e, "                if (gb * MR + k >= %lld)\n                    break;\n", ll(g->k));
    if (bands_here(e, n))   /* pool_bands.c's buffer */
        P(e, "                const int at = (gb * MR + k) * %lld - sub;\n",
          ll(bands_plane(e->opt->target, n)));
    else
        P(e, "                const int at = (gb * MR + k) * %lld;\n", ll(plane));
    P(e, "                const __m256 b = _mm256_set1_ps(bias[gb * MR + k]);\n");
    P(e, "                for (int vi = 0; vi < NV; vi++) {\n");
    P(e, "                    const float *mk = m[0][k] + vi * W;\n");
    for (int x = 0; x < XI; x++)
        P(e, "                    const __m256 m%d = _mm256_loadu_ps(mk + %d * MR * NR);\n", x,
          x);
    P(e, "                    const __m256 y0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(m0, m1), "
         "_mm256_add_ps(m2, m3)), _mm256_add_ps(_mm256_add_ps(m5, m6), _mm256_add_ps(m7, b)));\n");
    P(e, "                    const __m256 y1 = _mm256_add_ps(_mm256_add_ps(_mm256_sub_ps(m1, m2), "
         "_mm256_fmadd_ps(two, m3, m4)), _mm256_add_ps(_mm256_sub_ps(m6, m7), "
         "_mm256_add_ps(m8, b)));\n");
    P(e, "                    const int q = p + vi * W, oh = q / %lld, t = q - oh * %lld;\n",
      ll(g->tw), ll(g->tw));
    P(e, "                    if (t + W <= %lld && 2 * (t + W) <= %lld) {\n", ll(g->tw),
      ll(g->wo));
    P(e, "                        __m256 lo, hi;\n");
    P(e, "                        cnn_zip(y0, y1, &lo, &hi);\n");
    P(e, "                        {\n");
    simd_store_vector(e, n, "                            ", "lo",
                      arena_printf(e->a, "at + oh * %lld + 2 * t", ll(g->wo)));
    P(e, "                        }\n");
    P(e, "                        {\n");
    simd_store_vector(e, n, "                            ", "hi",
                      arena_printf(e->a, "at + oh * %lld + 2 * t + W", ll(g->wo)));
    P(e, "                        }\n");
    P(e, "                        continue;\n");
    P(e, "                    }\n");
    /* a vector crossing a row's end, or an odd width's last pair */
    P(e, "                    float l0[W], l1[W];\n");
    P(e, "                    _mm256_storeu_ps(l0, y0);\n");
    P(e, "                    _mm256_storeu_ps(l1, y1);\n");
    P(e, "                    for (int l = 0; l < W; l++) {\n");
    P(e, "                        const int hh = (q + l) / %lld, ow = 2 * (q + l - hh * %lld);\n",
      ll(g->tw), ll(g->tw));
    P(e, "                        for (int s1 = 0; s1 < 2 && ow + s1 < %lld; s1++) {\n",
      ll(g->wo));
    P(e, "                            float v = s1 ? l1[l] : l0[l];\n");
    emit_epilogue_scalar(e, n, "                            ",
                         arena_printf(e->a, "at + hh * %lld + ow + s1", ll(g->wo)));
    P(e, "                            yb[at + hh * %lld + ow + s1] = v;\n", ll(g->wo));
    P(e, "                        }\n");
    P(e, "                    }\n");
    P(e, "                }\n");
    P(e, "            }\n");
}

/* The products, tile by tile (all blocks of output channels on a tile
 * while its V stays in L1), each followed by its output transform. */
static void emit_products(Emit *e, const Node *n, const RowGeo *g) {
    int64_t nr = (int64_t)g->nv * g->width, tiles = (g->len + nr - 1) / nr;
    int64_t xs = g->cin * 2 * g->ps;
    bool bands = bands_here(e, n);
    if (bands)
        bands_open(e, n);
    if (e->split)
        P(e, "        #pragma omp parallel for schedule(static)\n");
    if (bands)
        P(e, "        for (int it = it0; it < it1; it++) {\n");
    else
        P(e, "        for (int it = 0; it < %lld; it++) {\n", ll(tiles * g->kb));
    P(e, "            const int tile = it / %lld, gb = it - tile * %lld;\n", ll(g->kb),
      ll(g->kb));
    P(e, "            const int p = tile < %lld ? tile * NR : %lld;\n", ll(tiles - 1),
      ll(g->len - nr));
    P(e, "            float m[%d][MR][NR];\n", XI);
    P(e, "            for (int x = 0; x < %d; x++) {\n", XI);
    P(e, "                const float *xp = v + (ptrdiff_t)x * %lld + p;\n", ll(xs));
    P(e, "                const float *wp = u + ((ptrdiff_t)gb * %d + x) * %lld;\n", XI,
      ll(g->ci * g->mr));
    for (int m = 0; m < g->mr; m++)
        for (int v = 0; v < g->nv; v++)
            P(e, "                __m256 c%d%d = _mm256_setzero_ps();\n", m, v);
    P(e, "                for (int c = 0; c < %lld; c++, xp += %lld, wp += %lld) {\n",
      ll(g->cin), ll(2 * g->ps), ll(g->kh * g->mr));
    for (int64_t i = 0; i < g->kh; i++)
        emit_step(e, g, (i & 1) * g->ps + (i >> 1) * g->tw, i * g->mr);
    P(e, "                }\n");
    for (int m = 0; m < g->mr; m++)
        for (int v = 0; v < g->nv; v++)
            P(e, "                _mm256_storeu_ps(m[x][%d] + %d, c%d%d);\n", m, v * g->width,
              m, v);
    P(e, "            }\n");
    emit_out(e, n, g);
    P(e, "        }\n");
    if (bands)
        bands_close(e, n);
}

/* Tiles of pairs outermost, every block of output channels on each. */
TripOrder rows_trip_order(Target t, const Node *n) {
    RowGeo g = row_geo(t, n);
    int64_t nr = (int64_t)g.nv * g.width, tiles = (g.len + nr - 1) / nr;
    return (TripOrder){.trips = tiles * g.kb, .unit = g.kb, .unit_pos = nr, .pitch = g.tw,
                       .last_start = g.len - nr};
}

void emit_rows_conv(Emit *e, const Node *n) {
    RowGeo g = row_geo(e->opt->target, n);
    e->need_pad = true;
    e->need_zip = true;
    simd_need_unzip(e);
    P(e, "    enum { MR = %d, NV = %d, NR = %d, W = %d }; /* the register tile; W floats a "
         "vector */\n", g.mr, g.nv, g.nv * g.width, g.width);
    P(e, "    const float *bias = w + %lld;\n", ll(g.kb * g.mr * g.ci * 7));
    P(e, "    float *u = s; /* the transformed weights */\n");
    P(e, "    const __m256 two = _mm256_set1_ps(2.0f), three = _mm256_set1_ps(3.0f);\n");
    emit_u(e, &g);
    e->scratch_per_sample = true;
    open_batch(e, n);
    e->scratch_per_sample = false;
    /* pool_bands.c: the output and the pool's rows after V */
    bool bands = bands_here(e, n);
    P(e, "        float *xpad = s + %lld + (ptrdiff_t)b * %lld; /* the padded copy */\n",
      ll(u_floats(&g)), ll(sample_floats(&g) + (bands ? bands_scratch(e->opt->target, n) : 0)));
    P(e, "        float *v = xpad + %lld; /* V[xi][c][row parity][row][pair] */\n",
      ll(g.cin * g.hr * g.wr));
    if (bands)
        bands_pointers(e, n, arena_printf(e->a, "v + %lld", ll(XI * g.cin * 2 * g.ps)));
    P(e, "        cnn_pad(xb0, xpad, %lld, %lld, %lld, %lld, %lld, %lld, %lld, 0);\n", ll(g.cin),
      ll(g.h), ll(g.w), ll(g.top), ll(g.left), ll(g.hr), ll(g.wr));
    emit_v(e, &g);
    emit_products(e, n, &g);
    close_batch(e);
}
