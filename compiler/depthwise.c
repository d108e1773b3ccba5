/* depthwise.c — depthwise convolutions (one filter per channel) on the
 * vector targets.
 *
 * A depthwise layer does kh * kw multiply-adds per output and reads each
 * input about as often, so it is bound by loads and memory, not by FMAs.
 * The kernel therefore works a channel at a time: the channel's plane is
 * padded into scratch just before it is used (it stays in L1 or L2, where
 * padding the whole input first sent it through memory twice), its kh * kw
 * weights sit in registers, and a tile of R output rows by one vector of
 * positions shares every input row it loads among the output rows that
 * read it: with stride 1 and a 3x3 kernel, 18 loads feed 36 FMAs.
 *
 * Vectors run along an output row. With stride 2 a vector of outputs reads
 * every other input column: two loads split into even and odd lanes
 * (cnn_unzip) give the taps j and j + 1. The last vector of a row is moved
 * back to end at the row's end (it recomputes some outputs; the values are
 * the same), and a row shorter than a vector goes out lane by lane; the
 * last tile of rows is moved up the same way.
 *
 * The same kernel takes a channel multiplier: groups equal to the input
 * channels and M outputs for each (K = M * C). That includes the first
 * layer of a network on one-channel images (C = 1, groups = 1: MNIST,
 * LeNet), where the general kernel has a reduction only kh * kw deep to
 * spread its stores over and ran at a fifth of the FMA peak. There every
 * plane is padded once, before the loop over output channels, and on
 * AVX-512 a tile computes two output channels that read the same plane, so
 * each load feeds both.
 */
#include "emit.h"

static long long ll(int64_t v) { return (long long)v; }

enum { ROWS = 4 };   /* output rows a tile: R accumulators, kh * kw weights */

typedef struct DwGeo {
    int64_t c, h, w;          /* channels, input plane */
    int64_t k, m;             /* output channels; M = K / C for each input one */
    int64_t kh, kw, sh, sw, dh, dw;
    int64_t top, left, hp, wp;   /* the padded plane */
    int64_t ho, wo;
    int64_t plane;            /* floats a channel's padded plane takes in
                                 scratch, with slack for the last loads */
    int64_t rows;             /* R: output rows a tile */
    int64_t pair;             /* output channels a tile: 2 where they share a
                                 plane and the registers hold both */
    int width;
    PadMode mode;
} DwGeo;

/* The kernel's vector width. On AVX-512, output rows narrower than 16
 * take AVX2's 8-wide vectors (AVX-512 CPUs run them too). Rows of 8 to 15
 * otherwise fell to the general kernel (stride 1) or went out lane by lane
 * (stride 2); on an EPYC (Zen 4) MobileNetV2's 14x14 depthwise layers took
 * 0.15-0.23 ms that way against 0.06-0.09 ms 8-wide. So do rows that 8-wide
 * vectors cover with fewer lanes: a row of 56 is 64 lanes 16-wide and 56
 * lanes 8-wide, and every 16-wide load of it splits a cache line. On the
 * same EPYC MobileNetV2's 56-wide layers ran 6-15% faster 8-wide; its
 * 28-wide ones (32 lanes either way) ran as fast or faster 16-wide. */
int dw_width(Target t, const Node *n) {
    int w = simd_width(t);
    if (w != 16 || n->shape.rank != 3)
        return w;
    int64_t wo = n->shape.d[2], rest = wo % 16;
    return wo < 16 || (rest > 0 && rest <= 8) ? 8 : 16;
}

/* One filter per output channel that reads a single input channel (groups
 * equal to the input channels, any multiple of them as outputs), a kernel
 * of at most 7x7 (its weights live in registers), and a stride a vector of
 * outputs can read: 1, or 2 without
 * dilation across the row. With stride 1 the output rows must fill a
 * vector: shorter ones (7x7) ran as fast or faster in the general kernel,
 * whose vectors run on across rows (bench/layers.py-style timings on
 * MobileNetV2's layers). */
bool dw_suits(Target t, const Node *n) {
    const Attrs *a = &n->a;
    if (n->op != OP_CONV || n->shape.rank != 3)
        return false;
    Shape in = in_shape_of(n, 0);
    bool strided = a->stride[1] == 2 && a->dilation[1] == 1;
    return a->groups == in.d[0] && a->units % in.d[0] == 0 &&
           a->kernel[0] * a->kernel[1] <= 49 &&
           (strided || (a->stride[1] == 1 && n->shape.d[2] >= dw_width(t, n)));
}

static DwGeo dw_geo(Target t, const Node *n) {
    const Attrs *a = &n->a;
    Shape in = in_shape_of(n, 0);
    DwGeo g = {.c = in.d[0], .h = in.d[1], .w = in.d[2], .kh = a->kernel[0],
               .kw = a->kernel[1], .sh = a->stride[0], .sw = a->stride[1],
               .dh = a->dilation[0], .dw = a->dilation[1], .top = a->pad_lo[0],
               .left = a->pad_lo[1], .ho = n->shape.d[1], .wo = n->shape.d[2],
               .width = dw_width(t, n), .mode = a->pad_mode, .k = a->units};
    g.m = g.k / g.c;
    g.hp = g.h + a->pad_lo[0] + a->pad_hi[0];
    g.wp = g.w + a->pad_lo[1] + a->pad_hi[1];
    g.rows = g.ho < ROWS ? g.ho : ROWS;
    /* With a multiplier, output channels oc and oc + 1 read the same plane:
     * a tile of both shares every load between them. MNIST's first layer (1
     * to 32 channels, 3x3) did 18 loads, most of them splitting a cache
     * line, for 36 FMAs and ran at 60% of the FMA peak on an EPYC (Zen 4).
     * Both channels' weights, accumulators and a row's loads must fit
     * AVX-512's 32 registers. */
    int64_t regs = 2 * (g.kh * g.kw + g.rows) + g.kw;
    g.pair = g.m % 2 == 0 && simd_width(t) == 16 && regs <= 30 ? 2 : 1;
    /* a vector's loads reach sw * W + (kw - 1) * dw floats past its first
     * output's window: past the plane's end on the last row */
    g.plane = g.hp * g.wp + g.sw * g.width + g.kw * g.dw + g.width;
    return g;
}

int64_t dw_scratch(Target t, const Node *n, int batch) {
    DwGeo g = dw_geo(t, n);
    return (int64_t)batch * g.c * g.plane;
}

const char *dw_schedule(Emit *e, const Node *n) {
    DwGeo g = dw_geo(e->opt->target, n);
    const char *how = g.m == 1 ? "depthwise, a channel at a time, its plane padded into "
                                 "scratch just before use"
                               : arena_printf(e->a, "one input channel to M=%lld outputs "
                                              "(depthwise with a multiplier), %s at a time, "
                                              "the planes padded first", ll(g.m),
                                              g.pair == 2 ? "two output channels, which share "
                                                            "every load,"
                                                          : "an output channel");
    const char *isa = g.width == 16 ? "avx512"
                      : simd_width(e->opt->target) == 16 ? "avx512 in AVX2's 8-wide vectors "
                                                           "(rows they fit better)"
                                                         : "avx2";
    return arena_printf(e->a, "%s: %s; tile R=%lld output rows x %d positions, "
                        "%lld weights in registers", isa, how,
                        ll(g.rows), g.width, ll(g.pair * g.kh * g.kw));
}

/* The taps of input row q (of the tile's rows) into the accumulators of
 * the output rows that read it; x<j> holds tap column j's vector. Output
 * channel oc + i of the tile has weights WEIGHT[i]<tap>, accumulators
 * ACC[i]<row>. */
static const char *const WEIGHT[2] = {"k", "m"}, *const ACC[2] = {"a", "z"};

/* Output channel oc + c of the tile, as C. */
static const char *oc_of(int64_t c) {
    return c ? "(oc + 1)" : "oc";
}

static void emit_row_taps(Emit *e, const DwGeo *g, int64_t q) {
    for (int64_t r = 0; r < g->rows; r++) {
        int64_t d = q - r * g->sh;   /* = i * dh for the kernel row i */
        if (d < 0 || d % g->dh || d / g->dh >= g->kh)
            continue;
        int64_t i = d / g->dh;
        for (int64_t c = 0; c < g->pair; c++)
            for (int64_t j = 0; j < g->kw; j++)
                P(e, "                    %s%lld = _mm256_fmadd_ps(%s%lld, x%lld, %s%lld);\n",
                  ACC[c], ll(r), WEIGHT[c], ll(i * g->kw + j), ll(j), ACC[c], ll(r));
    }
}

/* Loads x0 .. x<kw-1>: row q of the tile, the vector at output column ow. */
static void emit_row_loads(Emit *e, const DwGeo *g, int64_t q) {
    P(e, "                    {\n");
    P(e, "                    const float *in = p + %lld;\n", ll(q * g->wp));
    if (g->sw == 1) {
        for (int64_t j = 0; j < g->kw; j++)
            P(e, "                    const __m256 x%lld = _mm256_loadu_ps(in + ow + %lld);\n",
              ll(j), ll(j * g->dw));
    } else {
        /* stride 2: input columns 2 * ow + j; even taps from the even
         * lanes of a pair of loads, odd ones from the odd lanes */
        for (int64_t j = 0; j < g->kw; j += 2) {
            P(e, "                    __m256 x%lld, x%lld;\n", ll(j), ll(j + 1));
            P(e, "                    cnn_unzip(_mm256_loadu_ps(in + 2 * ow + %lld), "
                 "_mm256_loadu_ps(in + 2 * ow + %lld), &x%lld, &x%lld);\n", ll(j),
              ll(j + g->width), ll(j), ll(j + 1));
        }
        if (g->kw % 2)
            P(e, "                    (void)x%lld;\n", ll(g->kw));
    }
    emit_row_taps(e, g, q);
    P(e, "                    }\n");
}

/* Stores accumulator ACC[c]<r>: output row oh + r of channel oc + c, W
 * outputs from column ow, through the epilogue; lane by lane when the row is
 * shorter than W. */
static void emit_row_store(Emit *e, const Node *n, const DwGeo *g, int64_t c, int64_t r) {
    const char *in = "                    ";
    P(e, "%s{\n", in);
    P(e, "%s    const int at = %s * %lld + (oh + %lld) * %lld + ow;\n", in, oc_of(c),
      ll(g->ho * g->wo), ll(r), ll(g->wo));
    const char *acc = arena_printf(e->a, "%s%lld", ACC[c], ll(r)),
               *in2 = arena_printf(e->a, "%s    ", in);
    if (g->wo >= g->width)
        simd_store_vector(e, n, in2, acc, "at");
    else
        simd_store_lanes(e, n, in2, acc, "0", arena_printf(e->a, "%lld", ll(g->wo)), "at");
    P(e, "%s}\n", in);
}

/* With a 2x2 max pool fused (fuse_pool.c): output rows oh + r and
 * oh + r + 1 through the epilogue, their lanes split into even and odd
 * columns (cnn_unzip), and the four taps of each window taken by cnn_vmax,
 * the vector pooling kernel's maximum: the maximum of each row's pair,
 * then of the two rows (the same bits as in tap order). W / 2 pooled
 * values go out from column ow / 2 of pooled row (oh + r) / 2. */
static void emit_pooled_store(Emit *e, const Node *n, const DwGeo *g, int64_t c, int64_t r) {
    const char *in = "                    ", *in2 = "                        ", *acc = ACC[c];
    bool wide = g->width == 16;
    P(e, "%s{\n", in);
    for (int64_t q = r; q < r + 2; q++) {
        P(e, "%s__m256 x = %s%lld;\n", in2, acc, ll(q));
        simd_epilogue_vector(e, n, in2, arena_printf(e->a, "%s * %lld + (oh + %lld) * %lld + ow",
                                                     oc_of(c), ll(g->ho * g->wo), ll(q),
                                                     ll(g->wo)));
        P(e, "%s%s%lld = x;\n", in2, acc, ll(q));
        P(e, "%s}\n%s{\n", in, in);
    }
    P(e, "%s__m256 even, odd;\n", in2);
    P(e, "%scnn_unzip(%s%lld, %s%lld, &even, &odd);\n", in2, acc, ll(r), acc, ll(r + 1));
    P(e, "%sconst __m256 pairs = cnn_vmax(even, odd); /* row oh + %lld's, then the next's */\n",
      in2, ll(r));
    P(e, "%sfloat *py = yb + %s * %lld + (oh + %lld) / 2 * %lld + ow / 2;\n", in2,
      oc_of(c), ll(g->ho / 2 * (g->wo / 2)), ll(r), ll(g->wo / 2));
    /* halves of a vector: written for each width, outside the AVX2 to
     * AVX-512 translation */
    e->wide = false;
    if (wide)
        P(e, "%s_mm256_storeu_ps(py, _mm512_castps512_ps256(cnn_vmax512(pairs, "
             "_mm512_shuffle_f32x4(pairs, pairs, 0x4e))));\n", in2);
    else
        P(e, "%s_mm_storeu_ps(py, _mm256_castps256_ps128(cnn_vmax(pairs, "
             "_mm256_permute2f128_ps(pairs, pairs, 1))));\n", in2);
    e->wide = wide;
    P(e, "%s}\n", in);
}

void emit_dw_conv(Emit *e, const Node *n) {
    DwGeo g = dw_geo(e->opt->target, n);
    bool wide = e->wide;
    e->wide = g.width == 16;   /* AVX2's words stay as written for 8 lanes */
    int64_t taps = g.kh * g.kw, in_rows = (g.rows - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    e->need_pad = true;
    bool pooled = n->pool && !e->plain;
    if (g.sw == 2 || pooled)
        simd_need_unzip(e);
    if (pooled)
        simd_need_vmax(e);
    P(e, "    enum { R = %lld, W = %d }; /* the tile: R output rows x W positions */\n",
      ll(g.rows), g.width);
    P(e, "    const float *bias = w + %lld;\n", ll(g.k * taps));
    e->scratch_per_sample = true;
    open_batch(e, n);
    e->scratch_per_sample = false;
    P(e, "        float *sb = s + (ptrdiff_t)b * %lld; /* this sample's padded planes */\n",
      ll(g.c * g.plane));
    /* with a multiplier each plane is read by M output channels: padded
     * once, first; without, just before its one channel */
    const char *pad_to = g.m == 1 ? "oc" : "c";
    if (g.m > 1)
        P(e, "        for (int c = 0; c < %lld; c++) {\n", ll(g.c));
    else if (e->split && !e->plain)
        P(e, "        #pragma omp parallel for schedule(static)\n");
    if (g.m == 1)
        P(e, "        for (int oc = 0; oc < %lld; oc++) {\n", ll(g.k));
    P(e, "            float *pl = sb + (ptrdiff_t)%s * %lld;\n", pad_to, ll(g.plane));
    P(e, "            cnn_pad(xb0 + (ptrdiff_t)%s * %lld, pl, 1, %lld, %lld, %lld, %lld, %lld, "
         "%lld, %d);\n", pad_to, ll(g.h * g.w), ll(g.h), ll(g.w), ll(g.top), ll(g.left),
      ll(g.hp), ll(g.wp), (int)g.mode);
    P(e, "            for (int i = %lld; i < %lld; i++)\n", ll(g.hp * g.wp), ll(g.plane));
    P(e, "                pl[i] = 0.0f; /* what the last vectors read past the plane */\n");
    if (g.m > 1) {
        P(e, "        }\n");
        if (e->split && !e->plain)
            P(e, "        #pragma omp parallel for schedule(static)\n");
        P(e, "        for (int oc = 0; oc < %lld; oc += %lld) {\n", ll(g.k), ll(g.pair));
        P(e, "            const float *pl = sb + (ptrdiff_t)(oc / %lld) * %lld;\n", ll(g.m),
          ll(g.plane));
    }
    P(e, "            const float *wc = w + oc * %lld;\n", ll(taps));
    for (int64_t c = 0; c < g.pair; c++) {
        for (int64_t k = 0; k < taps; k++)
            P(e, "            const __m256 %s%lld = _mm256_set1_ps(wc[%lld]);\n", WEIGHT[c],
              ll(k), ll(c * taps + k));
        P(e, "            const __m256 b%s = _mm256_set1_ps(bias[%s]);\n", ACC[c], oc_of(c));
    }
    P(e, "            for (int t = 0; t < %lld; t += R) {\n", ll(g.ho));
    P(e, "                const int oh = t + R <= %lld ? t : %lld; /* the last tile moved up */\n",
      ll(g.ho), ll(g.ho - g.rows));
    int64_t step = g.wo >= g.width ? g.width : g.wo;
    P(e, "                for (int o = 0; o < %lld; o += %lld) {\n", ll(g.wo), ll(step));
    if (g.wo >= g.width)
        P(e, "                    const int ow = o + W <= %lld ? o : %lld; /* the last vector "
             "moved back */\n", ll(g.wo), ll(g.wo - g.width));
    else
        P(e, "                    const int ow = o;\n");
    P(e, "                    const float *p = pl + (ptrdiff_t)oh * %lld;\n", ll(g.sh * g.wp));
    for (int64_t c = 0; c < g.pair; c++)
        for (int64_t r = 0; r < g.rows; r++)
            P(e, "                    __m256 %s%lld = b%s;\n", ACC[c], ll(r), ACC[c]);
    for (int64_t q = 0; q < in_rows; q++)
        emit_row_loads(e, &g, q);
    for (int64_t c = 0; c < g.pair; c++)
        for (int64_t r = 0; r < g.rows; r += pooled ? 2 : 1) {
            if (pooled)
                emit_pooled_store(e, n, &g, c, r);
            else
                emit_row_store(e, n, &g, c, r);
        }
    P(e, "                }\n");
    P(e, "            }\n");
    P(e, "        }\n");
    close_batch(e);
    e->wide = wide;
}
