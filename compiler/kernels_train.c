/* kernels_train.c — the training kernels, portable C: batch norm on batch
 * statistics, dropout with a seeded mask, and the backward of every layer.
 *
 * A backward kernel reads d loss / d output (dy) and writes
 *   - the gradient of each input that needs one (dx0, dx1, ...), either
 *     assigned or added, since a tensor read by several layers sums the
 *     gradients from all of them;
 *   - the gradients of its parameters (gw), always assigned, in the
 *     canonical layout at the node's canonical offset.
 * The input gradient of a convolution is itself a convolution: of the
 * output gradient, spread out by the stride and padded, with the kernels
 * flipped and transposed. It is emitted with the forward pass's loops
 * (emit_conv_loops), so whatever speeds one direction speeds the other.
 */
#include "emit.h"

#include <string.h>

static long long ll(int64_t v) { return (long long)v; }

/* ---- what each backward kernel takes ----------------------------------------- */

static bool pads(const Attrs *a) {
    return a->pad_lo[0] || a->pad_lo[1] || a->pad_hi[0] || a->pad_hi[1];
}

/* Does the backward of n compute the gradient of its first input? Known
 * once the inputs' gradient buffers are planned. */
static bool wants_dx0(const Node *n) {
    return ((const Node *)n->inputs.items[0])->train->grad != NULL;
}

/* Scratch floats the backward kernel needs: for a convolution, the padded
 * input (when it pads) and its columns (im2col), then for the input
 * gradient the spread output gradient z, the flipped kernels and the
 * padded input gradient. For a convolution this is one lane's worth
 * (train_lane_total multiplies it out). */
int64_t train_bscratch_lane(const Node *n) {
    const Attrs *a = &n->a;
    if (n->op == OP_LRN)
        return wants_dx0(n) ? 2 * n->shape.d[0] : 0;
    if (n->op != OP_CONV && n->op != OP_LOCAL)
        return 0;
    Shape in = in_shape_of(n, 0), out = n->shape;
    int64_t hp = in.d[1] + a->pad_lo[0] + a->pad_hi[0];
    int64_t wp = in.d[2] + a->pad_lo[1] + a->pad_hi[1];
    int64_t padded = in.d[0] * hp * wp;
    if (n->op == OP_LOCAL)
        return padded + (wants_dx0(n) ? padded : 0);
    int64_t total = (pads(a) ? padded : 0) +
                    in.d[0] * a->kernel[0] * a->kernel[1] * out.d[1] * out.d[2];
    if (wants_dx0(n)) {
        int64_t hz = (out.d[1] - 1) * a->stride[0] + 1 + 2 * (a->kernel[0] - 1) * a->dilation[0];
        int64_t wz = (out.d[2] - 1) * a->stride[1] + 1 + 2 * (a->kernel[1] - 1) * a->dilation[1];
        total += a->units * hz * wz + in.d[0] * (a->units / a->groups) * a->kernel[0] *
                 a->kernel[1] + padded;
    }
    return total;
}

/* ---- the weight gradient in vectors of output channels (vector targets) ------ */

/* gw[k][r] = sum over positions p of dy[k][p] * X[r][p], X the input's rows
 * (r = c, i, j of the kernel). As dot products along p every (k, r) pair
 * ends in a horizontal sum, and a 14x14 plane gives only 196 terms to
 * share it; so on the vector targets the sum runs with vectors of output
 * channels instead: dy transposed to dyT[p][k], each X[r][p] broadcast,
 * MR rows of X by NV vectors of channels in registers for the whole run
 * of positions, and the tile added into gT[r][k], the lane's transposed
 * gradient, which goes into gw once after the lane's samples. At stride 1
 * X[r] is read straight from the (padded) input, rows wp apart as the
 * forward kernels read it: dyT holds zeros at the dropped columns, so they
 * add nothing. */
typedef struct DwVec {
    int w;           /* floats a vector */
    int64_t kgp;     /* a group's output channels, rounded up to whole vectors */
    int64_t kt;      /* dyT's and gT's row: groups * kgp */
    int64_t rows;    /* rows of X: a group's input channels * kh * kw */
    int nv, mr;      /* the register tile: MR rows of X by NV vectors of channels */
    bool holes;      /* dyT has entries no dy fills (zeroed once a lane) */
    bool flat;       /* stride 1: X read from the input itself */
    int64_t len, pitch;   /* positions summed over, and their row pitch */
} DwVec;

static DwVec dw_vec(Target t, const Node *n) {
    DwVec d = {0};
    const Attrs *a = &n->a;
    if (!simd_target(t) || n->op != OP_CONV)
        return d;
    Shape in = in_shape_of(n, 0);
    int w = simd_width(t);
    int64_t kg = a->units / a->groups;
    int64_t kgp = (kg + w - 1) / w * w;
    int64_t per = in.d[0] / a->groups * a->kernel[0] * a->kernel[1];
    /* channels padded to whole vectors: at least two lanes in three used,
     * else the dot products stay (a depthwise layer's single channel); and
     * rows of X enough to pay for transposing dy (a first layer's 9 or 27
     * rows keep the dot products, whose runs of positions are long) */
    if (3 * kg < 2 * kgp || per < 4 * w)
        return d;
    d.w = w;
    d.kgp = kgp;
    d.kt = a->groups * kgp;
    d.rows = per;
    int64_t vecs = kgp / w;
    d.nv = vecs % 4 == 0 ? 4 : vecs % 3 == 0 ? 3 : vecs % 2 == 0 ? 2 : 1;
    /* accumulators, NV loads and a broadcast within the register file,
     * and no more loads than FMAs a position */
    static const int mr16[] = {0, 12, 6, 4, 3}, mr32[] = {0, 12, 12, 8, 6};
    d.mr = (w == 16 ? mr32 : mr16)[d.nv];
    d.flat = a->stride[0] == 1 && a->stride[1] == 1;
    int64_t wp = in.d[2] + a->pad_lo[1] + a->pad_hi[1];
    int64_t oh = n->shape.d[1], ow = n->shape.d[2];
    d.pitch = d.flat ? wp : ow;
    d.len = d.flat ? (oh - 1) * wp + ow : oh * ow;
    /* positions past a row's end (stride 1) and lanes past a group's
     * channels: no dy lands there, and zeros add nothing */
    d.holes = d.len * d.kt != oh * ow * a->units;
    return d;
}

/* dyT [len][kt] and gT [cg*kh*kw + 1][kt] (its last row the bias
 * gradient) at the end of a lane's scratch. */
int64_t train_dw_floats(Target t, const Node *n) {
    DwVec d = dw_vec(t, n);
    return d.w ? d.len * d.kt + (d.rows + 1) * d.kt : 0;
}

/* ---- lanes: a convolution's backward on several threads ----------------------- */

/* With --openmp a convolution's backward splits the batch into at most
 * TRAIN_LANES lanes of consecutive samples. Each lane has its own scratch
 * and its own weight gradient, so the lanes run in parallel without
 * sharing a float they write, and the lanes' gradients are summed in lane
 * order afterwards. The lanes are fixed by the batch alone, not by the
 * threads, so the gradient is the same float for float whatever
 * OMP_NUM_THREADS is. Eight lanes keep eight cores busy and cost eight
 * copies of the weight gradient. */
enum { TRAIN_LANES = 8 };

int train_lanes(const BuildOptions *opt) {
    return opt->openmp ? (opt->batch < TRAIN_LANES ? opt->batch : TRAIN_LANES) : 1;
}

static int lanes_of(const Node *n) {
    return n->op == OP_CONV && n->train ? n->train->lanes : 1;
}

/* Floats from one lane's block to the next: its scratch, then its weight
 * gradient, in whole cache lines. */
static int64_t lane_stride(const Node *n, int64_t per_lane) {
    return (per_lane + n->param_count + 15) / 16 * 16;
}

int64_t train_lane_total(const Node *n, int64_t per_lane) {
    int lanes = lanes_of(n);
    return lanes > 1 && per_lane > 0 ? lanes * lane_stride(n, per_lane) : per_lane;
}

int64_t train_bscratch(const Node *n, int batch) {
    (void)batch;
    return train_lane_total(n, train_bscratch_lane(n));
}

BackSig back_signature(const Node *n, const bool *written, Arena *ar) {
    BackSig b = {.n = n};
    b.dx = arena_alloc(ar, sizeof(bool) * (size_t)(n->inputs.len + 1));
    b.acc = arena_alloc(ar, sizeof(bool) * (size_t)(n->inputs.len + 1));
    for (int k = 0; k < n->inputs.len; k++) {
        const Node *in = n->inputs.items[k];
        b.dx[k] = in->train->grad != NULL;
        b.any_dx |= b.dx[k];
    }
    /* Within one kernel, a second gradient into the same tensor adds. */
    for (int k = 0; k < n->inputs.len; k++) {
        const Node *in = n->inputs.items[k];
        b.acc[k] = written[in->id];
        for (int j = 0; j < k; j++)
            if (n->inputs.items[j] == in && b.dx[j])
                b.acc[k] = true;
    }
    b.x = backward_reads_input(n);
    b.y = backward_reads_output(n);
    b.aux = n->train->aux != NULL;
    b.gw = n->nparams > 0;
    b.w = b.any_dx && (n->op == OP_CONV || n->op == OP_LOCAL || n->op == OP_DENSE ||
                       n->op == OP_PRELU);
    if (n->op == OP_BN)
        b.w = true;   /* gamma, for dx and nothing else */
    if (n->op == OP_BN && !b.any_dx)
        b.w = false;
    b.s = n->train->bscratch != NULL;
    return b;
}

/* Does this node's backward have anything to do? */
bool back_needed(const BackSig *b) {
    return b->any_dx || b->gw;
}

/* "dx0[i] = " or "dx0[i] += " */
static const char *put(const BackSig *b, int k) {
    return b->acc[k] ? "+=" : "=";
}

/* With --openmp, the loop that follows shared out among the threads (its
 * iterations write nothing in common). */
static void omp_for(Emit *e, const char *indent) {
    if (e->opt->openmp)
        P(e, "%s#pragma omp parallel for schedule(static)\n", indent);
}

/* Zero a gradient that a scatter kernel only adds into. */
static void zero_dx(Emit *e, const BackSig *b, int k, int64_t count) {
    if (!b->dx[k] || b->acc[k])
        return;
    omp_for(e, "    ");
    P(e, "    for (ptrdiff_t i = 0; i < (ptrdiff_t)batch * %lld; i++)\n", ll(count));
    P(e, "        dx%d[i] = 0.0f;\n", k);
}

static void zero_gw(Emit *e, const Node *n) {
    P(e, "    for (int i = 0; i < %lld; i++)\n        gw[i] = 0.0f;\n", ll(n->param_count));
}

/* Per-sample pointers for a backward kernel's loop over samples
 * first..last-1; `parallel`: the samples shared out among the threads
 * (--openmp), for kernels whose samples write nothing in common. */
static void open_back_range(Emit *e, const BackSig *b, const char *first, const char *last,
                            bool parallel) {
    const Node *n = b->n;
    if (parallel && e->opt->openmp)
        P(e, "    #pragma omp parallel for if(batch > 1) schedule(static)\n");
    P(e, "    for (int b = %s; b < %s; b++) {\n", first, last);
    for (int k = 0; k < n->inputs.len; k++) {
        if (b->x)
            P(e, "        const float *xb%d = x%d + (ptrdiff_t)b * %lld;\n", k, k,
              ll(in_elems(n, k)));
        if (b->dx[k])
            P(e, "        float *dxb%d = dx%d + (ptrdiff_t)b * %lld;\n", k, k,
              ll(in_elems(n, k)));
    }
    if (b->y)
        P(e, "        const float *yb = y + (ptrdiff_t)b * %lld;\n", ll(out_elems(n)));
    P(e, "        const float *dyb = dy + (ptrdiff_t)b * %lld;\n", ll(out_elems(n)));
}

static void open_back_batch(Emit *e, const BackSig *b, bool parallel) {
    open_back_range(e, b, "0", "batch", parallel);
}

/* ---- convolution ------------------------------------------------------------- */

/* Where a convolution's backward keeps things, in floats from the start of
 * a lane's block of scratch. The flipped kernels (wf) and their packed
 * copy (pk) are written once per call into lane 0's block and read by
 * every lane; the rest belongs to the lane. */
typedef struct ConvBack {
    Shape in, out;
    int64_t cg, kg, kh, kw, dh, dw, hp, wp, oh, ow, plane, padded, hz, wz, wsize;
    int64_t col_at, z_at, wf_at, dxp_at, pk_at, bs_at;
    Node *bx;           /* the input gradient as a forward convolution, or NULL */
    int lanes;          /* 1: the samples in one loop, no OpenMP */
    int64_t per;        /* floats of a lane's scratch; its weight gradient follows */
    int64_t stride;     /* floats from one lane's block to the next */
    DwVec dv;           /* the weight gradient in vectors of channels (dv.w 0: not) */
    int64_t dyt_at, gt_at;
} ConvBack;

static ConvBack conv_back_layout(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    const Attrs *a = &n->a;
    ConvBack c = {.in = in_shape_of(n, 0), .out = n->shape};
    c.cg = c.in.d[0] / a->groups;
    c.kg = a->units / a->groups;
    c.kh = a->kernel[0], c.kw = a->kernel[1], c.dh = a->dilation[0], c.dw = a->dilation[1];
    c.hp = c.in.d[1] + a->pad_lo[0] + a->pad_hi[0];
    c.wp = c.in.d[2] + a->pad_lo[1] + a->pad_hi[1];
    c.oh = c.out.d[1], c.ow = c.out.d[2], c.plane = c.oh * c.ow;
    c.padded = c.in.d[0] * c.hp * c.wp;
    c.hz = (c.oh - 1) * a->stride[0] + 1 + 2 * (c.kh - 1) * c.dh;
    c.wz = (c.ow - 1) * a->stride[1] + 1 + 2 * (c.kw - 1) * c.dw;
    c.wsize = a->units * c.cg * c.kh * c.kw;
    int64_t ckk = c.in.d[0] * c.kh * c.kw;
    c.col_at = pads(a) ? c.padded : 0;
    c.z_at = c.col_at + ckk * c.plane;
    c.wf_at = c.z_at + a->units * c.hz * c.wz;
    c.dxp_at = c.wf_at + c.in.d[0] * c.kg * c.kh * c.kw;
    /* on the vector targets a stride-1 input gradient runs through the
     * forward kernels, as a convolution node of its own (NAME_dx) */
    c.bx = simd_target(e->opt->target) && b->dx[0] ? simd_dx_node(e, n) : NULL;
    c.pk_at = train_bscratch_lane(n);
    if (c.bx)
        c.bs_at = c.pk_at + simd_train_packed(e->opt->target, c.bx);
    c.lanes = lanes_of(n);
    c.per = simd_target(e->opt->target) ? simd_train_bscratch_lane(e->opt->target, n)
                                        : train_bscratch_lane(n);
    c.stride = lane_stride(n, c.per);
    c.dv = dw_vec(e->opt->target, n);
    if (c.dv.w) {
        c.dyt_at = c.per - train_dw_floats(e->opt->target, n);
        c.gt_at = c.dyt_at + c.dv.len * c.dv.kt;
    }
    return c;
}

/* Once per call, before the samples: the weight gradient zeroed, and for
 * the input gradient the flipped, transposed kernels
 * wf[c][kk][i][j] = w[g*Kg + kk][c - g*Cg][kh-1-i][kw-1-j] (packed for the
 * input-gradient kernel on the vector targets). */
static void emit_conv_back_setup(Emit *e, const BackSig *b, const ConvBack *c) {
    const Node *n = b->n;
    zero_gw(e, n);
    if (!b->dx[0])
        return;
    P(e, "    for (int c = 0; c < %lld; c++)\n", ll(c->in.d[0]));
    P(e, "        for (int kk = 0; kk < %lld; kk++)\n", ll(c->kg));
    P(e, "            for (int i = 0; i < %lld; i++)\n", ll(c->kh));
    P(e, "                for (int j = 0; j < %lld; j++)\n", ll(c->kw));
    P(e, "                    s[%lld + ((c * %lld + kk) * %lld + i) * %lld + j] =\n",
      ll(c->wf_at), ll(c->kg), ll(c->kh), ll(c->kw));
    P(e, "                        w[((((c / %lld) * %lld + kk) * %lld + c %% %lld) * %lld "
         "+ %lld - i) * %lld + %lld - j];\n",
      ll(c->cg), ll(c->kg), ll(c->cg), ll(c->cg), ll(c->kh), ll(c->kh - 1), ll(c->kw),
      ll(c->kw - 1));
    if (c->bx && c->bx->winograd) {
        bool f4 = c->bx->winograd == 4;
        e->need_pack_wino4 |= f4;
        e->need_pack_wino2 |= !f4;
        P(e, "    cnn_pack_wino%s(s + %lld, NULL, NULL, 0.0, s + %lld, %lld, %lld, %d);\n",
          f4 ? "4" : "", ll(c->wf_at), ll(c->pk_at), ll(c->in.d[0]), ll(c->kg),
          wino_mr(e->opt->target, c->bx));
    } else if (c->bx) {
        P(e, "    cnn_pack_conv(s + %lld, NULL, NULL, 0.0, s + %lld, %lld, %lld, %lld, %d);\n",
          ll(c->wf_at), ll(c->pk_at), ll(c->in.d[0]), ll(c->kg * c->kh * c->kw),
          ll(n->a.groups), simd_conv_mr(e->opt->target, c->bx));
    }
}

/* One register tile of the vector weight gradient: rows r0..r0+rows-1 of
 * X (q0.. point at them) by NV vectors of channels, over all positions. */
static void emit_dw_tile(Emit *e, const ConvBack *c, int rows) {
    const DwVec *d = &c->dv;
    for (int i = 0; i < rows; i++) {
        const char *r = arena_printf(e->a, "(r0 + %d)", i);
        if (d->flat)
            P(e, "                const float *q%d = xg + %s / %lld * %lld + %s / %lld %% %lld * %lld"
                 " + %s %% %lld * %lld;\n", i, r, ll(c->kh * c->kw), ll(c->hp * c->wp), r,
              ll(c->kw), ll(c->kh), ll(c->dh * c->wp), r, ll(c->kw), ll(c->dw));
        else
            P(e, "                const float *q%d = xg + %s * %lld;\n", i, r, ll(c->plane));
    }
    P(e, "                for (int v = 0; v < %lld; v += %d) {\n", ll(d->kgp), d->nv * d->w);
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < d->nv; v++)
            P(e, "                    __m256 a%d_%d = _mm256_setzero_ps();\n", i, v);
    P(e, "                    const float *dp = dyt + g * %lld + v;\n", ll(d->kgp));
    P(e, "                    for (int p = 0; p < %lld; p++, dp += %lld) {\n", ll(d->len),
      ll(d->kt));
    for (int v = 0; v < d->nv; v++)
        P(e, "                        const __m256 d%d = _mm256_loadu_ps(dp + %d);\n", v,
          v * d->w);
    for (int i = 0; i < rows; i++) {
        P(e, "                        %sxb = _mm256_set1_ps(q%d[p]);\n", i ? "" : "__m256 ", i);
        for (int v = 0; v < d->nv; v++)
            P(e, "                        a%d_%d = _mm256_fmadd_ps(xb, d%d, a%d_%d);\n", i, v, v,
              i, v);
    }
    P(e, "                    }\n");
    P(e, "                    float *gt = gT + r0 * %lld + g * %lld + v;\n", ll(d->kt),
      ll(d->kgp));
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < d->nv; v++) {
            const char *at = arena_printf(e->a, "gt + %lld", ll(i * d->kt + v * d->w));
            P(e, "                    _mm256_storeu_ps(%s, _mm256_add_ps(_mm256_loadu_ps(%s), "
                 "a%d_%d));\n", at, at, i, v);
        }
    P(e, "                }\n");
}

/* One sample's weight gradient in vectors of channels (DwVec), added to
 * the lane's gT; `in` (stride 1) or `col` holds the sample's X. */
static void emit_dw_vec(Emit *e, const BackSig *b, const ConvBack *c, const char *ls) {
    const Node *n = b->n;
    const Attrs *a = &n->a;
    const DwVec *d = &c->dv;
    bool was_wide = e->wide;
    e->wide = d->w == 16;
    int64_t per = d->rows;
    P(e, "        /* dy transposed, dyT[p][g * %lld + kk]%s */\n", ll(d->kgp),
      d->holes ? " (its zeros written before the samples)" : "");
    P(e, "        float *dyt = %s + %lld, *gT = %s + %lld;\n", ls, ll(c->dyt_at), ls,
      ll(c->gt_at));
    /* written in order, read from one line of each channel's plane at a time */
    P(e, "        for (int oh = 0; oh < %lld; oh++)\n", ll(c->oh));
    P(e, "            for (int ow = 0; ow < %lld; ow++)\n", ll(c->ow));
    P(e, "                for (int k = 0; k < %lld; k++)\n", ll(a->units));
    P(e, "                    dyt[(oh * %lld + ow) * %lld + k / %lld * %lld + k %% %lld] = "
         "dyb[(k * %lld + oh) * %lld + ow];\n", ll(d->pitch), ll(d->kt), ll(c->kg),
      ll(d->kgp), ll(c->kg), ll(c->oh), ll(c->ow));
    P(e, "        for (int g = 0; g < %lld; g++) {\n", ll(a->groups));
    if (d->flat)
        P(e, "            const float *xg = in + g * %lld;\n", ll(c->cg * c->hp * c->wp));
    else
        P(e, "            const float *xg = col + g * %lld;\n", ll(per * c->plane));
    P(e, "            int r0 = 0;\n");
    P(e, "            for (; r0 + %d <= %lld; r0 += %d) {\n", d->mr, ll(per), d->mr);
    emit_dw_tile(e, c, d->mr);
    P(e, "            }\n");
    if (per % d->mr) {
        P(e, "            {\n");
        emit_dw_tile(e, c, (int)(per % d->mr));
        P(e, "            }\n");
    }
    P(e, "        }\n");
    if (a->bias) {
        P(e, "        for (int v = 0; v < %lld; v += %d) { /* the bias: dyT's rows summed */\n",
          ll(d->kt), d->w);
        P(e, "            __m256 sum = _mm256_loadu_ps(gT + %lld + v);\n", ll(per * d->kt));
        P(e, "            for (int p = 0; p < %lld; p++)\n", ll(d->len));
        P(e, "                sum = _mm256_add_ps(sum, _mm256_loadu_ps(dyt + p * %lld + v));\n",
          ll(d->kt));
        P(e, "            _mm256_storeu_ps(gT + %lld + v, sum);\n", ll(per * d->kt));
        P(e, "        }\n");
    }
    e->wide = was_wide;
}

/* The input's columns col[c][i][j][oh*OW + ow] = in[c][oh*sh + i*dh][ow*sw +
 * j*dw], for the weight gradient of a strided layer (or on the portable
 * target, of any layer). */
static void emit_back_columns(Emit *e, const BackSig *b, const ConvBack *c, const char *ls) {
    const Attrs *a = &b->n->a;
    P(e, "        float *col = %s + %lld;\n", ls, ll(c->col_at));
    P(e, "        for (int c = 0; c < %lld; c++)\n", ll(c->in.d[0]));
    P(e, "            for (int i = 0; i < %lld; i++)\n", ll(c->kh));
    P(e, "                for (int j = 0; j < %lld; j++) {\n", ll(c->kw));
    P(e, "                    float *cr = col + ((c * %lld + i) * %lld + j) * %lld;\n",
      ll(c->kh), ll(c->kw), ll(c->plane));
    P(e, "                    const float *xr = in + c * %lld + i * %lld + j * %lld;\n",
      ll(c->hp * c->wp), ll(c->dh * c->wp), ll(c->dw));
    P(e, "                    for (int oh = 0; oh < %lld; oh++)\n", ll(c->oh));
    P(e, "                        for (int ow = 0; ow < %lld; ow++)\n", ll(c->ow));
    P(e, "                            cr[oh * %lld + ow] = xr[oh * %lld + ow%s];\n", ll(c->ow),
      ll(a->stride[0] * c->wp),
      a->stride[1] == 1 ? "" : arena_printf(e->a, " * %lld", ll(a->stride[1])));
    P(e, "                }\n");
}

/* The weight gradient's share of samples first..last-1: a correlation of
 * the input with the output gradient, added to gl (on the vector targets
 * with DwVec, to the lane's gT, which emit_dw_out adds to gl after the
 * samples). ls: the lane's scratch. */
static void emit_conv_back_weights(Emit *e, const BackSig *b, const ConvBack *c,
                                   const char *ls, const char *gl) {
    const Node *n = b->n;
    const Attrs *a = &n->a;
    if (pads(a)) {
        e->need_pad = true;
        P(e, "        cnn_pad(xb0, %s, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %d);\n", ls,
          ll(c->in.d[0]), ll(c->in.d[1]), ll(c->in.d[2]), ll(a->pad_lo[0]), ll(a->pad_lo[1]),
          ll(c->hp), ll(c->wp), (int)a->pad_mode);
        P(e, "        const float *in = %s;\n", ls);
    } else {
        P(e, "        const float *in = xb0;\n");
    }
    int64_t per = c->cg * c->kh * c->kw, plane = c->plane;
    bool vec = c->dv.w > 0;
    bool tiled = !vec && simd_target(e->opt->target) && c->kg % 4 == 0 && per >= 3;
    if (!vec || !c->dv.flat)
        emit_back_columns(e, b, c, ls);
    if (vec) {
        emit_dw_vec(e, b, c, ls);
    } else if (tiled) {
        /* four output channels by three columns at a time, in registers */
        int64_t main = per / 3 * 3;
        e->need_dot4x3 = true;
        if (main < per)
            e->need_dot = true;
        P(e, "        for (int k = 0; k < %lld; k += 4) {\n", ll(a->units));
        P(e, "            const float *cg = col + (k / %lld) * %lld;\n", ll(c->kg),
          ll(per * plane));
        P(e, "            for (int r = 0; r < %lld; r += 3)\n", ll(main));
        P(e, "                cnn_dot4x3(dyb + k * %lld, cg + r * %lld, %lld, %s + k * %lld + r, "
             "%lld);\n", ll(plane), ll(plane), ll(plane), gl, ll(per), ll(per));
        if (main < per) {
            P(e, "            for (int kk = k; kk < k + 4; kk++)\n");
            P(e, "                for (int r = %lld; r < %lld; r++)\n", ll(main), ll(per));
            P(e, "                    %s[kk * %lld + r] += cnn_dot(dyb + kk * %lld, cg + r * %lld, "
                 "%lld);\n", gl, ll(per), ll(plane), ll(plane), ll(plane));
        }
        P(e, "        }\n");
    } else {
        e->need_dot = true;
    }
    bool dots = !vec && !tiled;
    if ((!a->bias || vec) && !dots)
        return;
    P(e, "        for (int k = 0; k < %lld; k++) {\n", ll(a->units));
    P(e, "            const float *dyk = dyb + k * %lld;\n", ll(plane));
    if (a->bias && plane >= 16) {
        /* eight running sums: one would wait on each add before the next */
        P(e, "            float part[8] = {0};\n");
        P(e, "            for (int i = 0; i < %lld; i += 8)\n", ll(plane / 8 * 8));
        P(e, "                for (int j = 0; j < 8; j++)\n");
        P(e, "                    part[j] += dyk[i + j];\n");
        P(e, "            float db = ((part[0] + part[1]) + (part[2] + part[3])) +\n"
             "                       ((part[4] + part[5]) + (part[6] + part[7]));\n");
        if (plane % 8)
            P(e, "            for (int i = %lld; i < %lld; i++)\n"
                 "                db += dyk[i];\n", ll(plane / 8 * 8), ll(plane));
        P(e, "            %s[%lld + k] += db;\n", gl, ll(c->wsize));
    } else if (a->bias) {
        P(e, "            float db = 0.0f;\n");
        P(e, "            for (int i = 0; i < %lld; i++)\n", ll(plane));
        P(e, "                db += dyk[i];\n");
        P(e, "            %s[%lld + k] += db;\n", gl, ll(c->wsize));
    }
    if (dots) {
        P(e, "            const float *cg = col + (k / %lld) * %lld;\n", ll(c->kg),
          ll(per * plane));
        P(e, "            float *gk = %s + k * %lld;\n", gl, ll(per));
        P(e, "            for (int r = 0; r < %lld; r++)\n", ll(per));
        P(e, "                gk[r] += cnn_dot(dyk, cg + r * %lld, %lld);\n", ll(plane),
          ll(plane));
    }
    P(e, "        }\n");
}

/* Around the loop over a lane's samples, with DwVec: gT (and dyT's holes,
 * which no sample writes) zeroed before it, and gT added into gl (gw's
 * layout, [k][r]) after it. */
static void emit_dw_open(Emit *e, const ConvBack *c, const char *ls) {
    if (!c->dv.w)
        return;
    P(e, "    for (int i = 0; i < %lld; i++) /* the lane's transposed weight gradient */\n",
      ll((c->dv.rows + 1) * c->dv.kt));
    P(e, "        %s[%lld + i] = 0.0f;\n", ls, ll(c->gt_at));
    if (c->dv.holes) {
        P(e, "    for (int i = 0; i < %lld; i++) /* dyT, zeros where no output is */\n",
          ll(c->dv.len * c->dv.kt));
        P(e, "        %s[%lld + i] = 0.0f;\n", ls, ll(c->dyt_at));
    }
}

static void emit_dw_out(Emit *e, const BackSig *b, const ConvBack *c, const char *ls,
                        const char *gl) {
    if (!c->dv.w)
        return;
    int64_t per = c->dv.rows;
    P(e, "    for (int k = 0; k < %lld; k++)\n", ll(c->kg * (c->dv.kt / c->dv.kgp)));
    P(e, "        for (int r = 0; r < %lld; r++)\n", ll(per));
    P(e, "            %s[k * %lld + r] += %s[%lld + r * %lld + k / %lld * %lld + k %% %lld];\n",
      gl, ll(per), ls, ll(c->gt_at), ll(c->dv.kt), ll(c->kg), ll(c->dv.kgp), ll(c->kg));
    if (b->n->a.bias) {
        P(e, "    for (int k = 0; k < %lld; k++)\n", ll(b->n->a.units));
        P(e, "        %s[%lld + k] += %s[%lld + k / %lld * %lld + k %% %lld];\n", gl,
          ll(c->wsize), ls, ll(c->gt_at + per * c->dv.kt), ll(c->kg), ll(c->dv.kgp),
          ll(c->kg));
    }
}

/* The input gradient of one sample: the convolution of dy with the
 * flipped kernels (read from s), into the lane's scratch ls, then folded
 * back from the padded input's gradient. */
static void emit_conv_back_data(Emit *e, const BackSig *b, const ConvBack *c, const char *ls) {
    const Node *n = b->n;
    const Attrs *a = &n->a;
    if (!b->dx[0])
        return;
    if (c->bx) {
        P(e, "        float *dxp = %s + %lld;\n", ls, ll(c->dxp_at));
        P(e, "        %s_dx(dyb, dxp, s + %lld, %s1);\n", e->fn[n->id], ll(c->pk_at),
          simd_kernel_scratch(e->opt->target, c->bx, 1) > 0
              ? arena_printf(e->a, "%s + %lld, ", ls, ll(c->bs_at)) : "");
    } else {
        /* spread dy by the stride into z, pad it by the kernel's extent,
         * and convolve with the flipped kernels */
        P(e, "        float *z = %s + %lld, *dxp = %s + %lld;\n", ls, ll(c->z_at), ls,
          ll(c->dxp_at));
        P(e, "        for (int i = 0; i < %lld; i++)\n            z[i] = 0.0f;\n",
          ll(a->units * c->hz * c->wz));
        P(e, "        for (int k = 0; k < %lld; k++)\n", ll(a->units));
        P(e, "            for (int oh = 0; oh < %lld; oh++)\n", ll(c->oh));
        P(e, "                for (int ow = 0; ow < %lld; ow++)\n", ll(c->ow));
        P(e, "                    z[(k * %lld + %lld + oh * %lld) * %lld + %lld + ow * %lld] ="
             " dyb[(k * %lld + oh) * %lld + ow];\n",
          ll(c->hz), ll((c->kh - 1) * c->dh), ll(a->stride[0]), ll(c->wz),
          ll((c->kw - 1) * c->dw), ll(a->stride[1]), ll(c->oh), ll(c->ow));
        P(e, "        for (int i = 0; i < %lld; i++)\n            dxp[i] = 0.0f;\n",
          ll(c->padded));
        ConvLoops cl = {
            .in = "z", .out = "dxp", .w = arena_printf(e->a, "(s + %lld)", ll(c->wf_at)),
            .cin_g = c->kg, .k = c->in.d[0], .groups = a->groups, .kh = c->kh, .kw = c->kw,
            .dh = c->dh, .dw = c->dw, .sh = 1, .sw = 1, .hin = c->hz, .win = c->wz,
            .hout = (c->oh - 1) * a->stride[0] + (c->kh - 1) * c->dh + 1,
            .wout = (c->ow - 1) * a->stride[1] + (c->kw - 1) * c->dw + 1,
            .out_rows = c->hp, .out_row_stride = c->wp, .init = NULL,
        };
        emit_conv_loops(e, &cl);
    }
    e->need_unpad = true;
    P(e, "        cnn_unpad(dxp, dxb0, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %d, %d);\n",
      ll(c->in.d[0]), ll(c->in.d[1]), ll(c->in.d[2]), ll(a->pad_lo[0]), ll(a->pad_lo[1]),
      ll(c->hp), ll(c->wp), (int)a->pad_mode, b->acc[0] ? 1 : 0);
}

/* The loop over samples first..last-1, with the lane's scratch ls and
 * weight gradient gl. */
static void emit_conv_back_samples(Emit *e, const BackSig *b, const ConvBack *c,
                                   const char *first, const char *last, const char *ls,
                                   const char *gl) {
    emit_dw_open(e, c, ls);
    open_back_range(e, b, first, last, false);
    emit_conv_back_weights(e, b, c, ls, gl);
    emit_conv_back_data(e, b, c, ls);
    P(e, "    }\n");
    emit_dw_out(e, b, c, ls, gl);
}

/* The samples first..last-1 of one lane, for NAME_backward's parallel loop
 * over the lanes (--openmp): a function of its own, so that the per-sample
 * loop reads the same as without lanes. */
void emit_backward_lane(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    if (n->op != OP_CONV || lanes_of(n) == 1)
        return;
    ConvBack c = conv_back_layout(e, b);
    emit_kernel_comment(e, n, b->dx[0] ? "backward of one lane's samples (OpenMP): input "
                                         "gradients, and weight gradients added to the lane's own"
                                       : "backward of one lane's samples (OpenMP): weight "
                                         "gradients, added to the lane's own");
    /* s: the flipped kernels, which only the input gradient reads */
    P(e, "static %svoid %s_back_lane(const float *x0, const float *dy, %sfloat *sl, "
         "float *gl, int first, int last) {\n",
      simd_target(e->opt->target) ? "CNN_SIMD " : "", e->fn[n->id],
      b->dx[0] ? "float *dx0, const float *s, " : "");
    emit_conv_back_samples(e, b, &c, "first", "last", "sl", "gl");
    P(e, "}\n\n");
}

/* What the kernel comment says of a backward kernel's threads. */
const char *backward_schedule(Emit *e, const BackSig *b) {
    int lanes = lanes_of(b->n);
    DwVec d = b->n->op == OP_CONV && b->gw ? dw_vec(e->opt->target, b->n) : (DwVec){0};
    const char *dw = d.w ? arena_printf(e->a, "; weight gradient in vectors of output "
                                        "channels, tiles of MR=%d input rows x NV=%d vectors",
                                        d.mr, d.nv)
                         : "";
    if (lanes == 1 || !back_needed(b))
        return arena_printf(e->a, "backward: input and weight gradients%s", dw);
    return arena_printf(e->a, "backward: input and weight gradients%s; OpenMP: the batch in "
                        "up to %d lanes, each with its own scratch and weight gradient, "
                        "added in lane order", dw, lanes);
}

static void emit_conv_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    ConvBack c = conv_back_layout(e, b);
    emit_conv_back_setup(e, b, &c);
    if (c.lanes == 1) {
        emit_conv_back_samples(e, b, &c, "0", "batch", "s", "gw");
        return;
    }
    P(e, "    const int lanes = batch < %d ? batch : %d;\n", c.lanes, c.lanes);
    P(e, "    #pragma omp parallel for schedule(static)\n");
    P(e, "    for (int l = 0; l < lanes; l++) {\n");
    P(e, "        float *sl = s + (ptrdiff_t)l * %lld; /* the lane's scratch */\n", ll(c.stride));
    P(e, "        float *gl = l > 0 ? sl + %lld : gw;  /* and weight gradient */\n", ll(c.per));
    P(e, "        if (l > 0)\n");
    P(e, "            for (int i = 0; i < %lld; i++)\n", ll(n->param_count));
    P(e, "                gl[i] = 0.0f;\n");
    P(e, "        %s_back_lane(x0, dy, %ssl, gl, l * batch / lanes, (l + 1) * batch / lanes);\n",
      e->fn[n->id], b->dx[0] ? "dx0, s, " : "");
    P(e, "    }\n");
    P(e, "    /* the lanes' weight gradients, added in lane order */\n");
    P(e, "    #pragma omp parallel for schedule(static)\n");
    P(e, "    for (int i = 0; i < %lld; i++)\n", ll(n->param_count));
    P(e, "        for (int l = 1; l < lanes; l++)\n");
    P(e, "            gw[i] += s[(ptrdiff_t)l * %lld + %lld + i];\n", ll(c.stride), ll(c.per));
}

/* Locally connected: every weight is used by one output position only. */
static void emit_local_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    const Attrs *a = &n->a;
    Shape in = in_shape_of(n, 0), out = n->shape;
    int64_t kh = a->kernel[0], kw = a->kernel[1];
    int64_t hp = in.d[1] + a->pad_lo[0] + a->pad_hi[0];
    int64_t wp = in.d[2] + a->pad_lo[1] + a->pad_hi[1];
    int64_t per = in.d[0] * kh * kw, padded = in.d[0] * hp * wp;
    int64_t bias_at = out.d[1] * out.d[2] * out.d[0] * per;
    zero_gw(e, n);
    open_back_batch(e, b, false);
    e->need_pad = true;
    P(e, "        cnn_pad(xb0, s, %lld, %lld, %lld, %lld, %lld, %lld, %lld, 0);\n",
      ll(in.d[0]), ll(in.d[1]), ll(in.d[2]), ll(a->pad_lo[0]), ll(a->pad_lo[1]), ll(hp), ll(wp));
    if (b->dx[0])
        P(e, "        float *dxp = s + %lld;\n"
             "        for (int i = 0; i < %lld; i++)\n            dxp[i] = 0.0f;\n",
          ll(padded), ll(padded));
    P(e, "        for (int oh = 0; oh < %lld; oh++)\n", ll(out.d[1]));
    P(e, "            for (int ow = 0; ow < %lld; ow++)\n", ll(out.d[2]));
    P(e, "                for (int k = 0; k < %lld; k++) {\n", ll(out.d[0]));
    P(e, "                    const float g = dyb[(k * %lld + oh) * %lld + ow];\n",
      ll(out.d[1]), ll(out.d[2]));
    P(e, "                    const ptrdiff_t at = ((oh * %lld + ow) * %lld + k) * %lld;\n",
      ll(out.d[2]), ll(out.d[0]), ll(per));
    if (a->bias)
        P(e, "                    gw[%lld + (k * %lld + oh) * %lld + ow] += g;\n",
          ll(bias_at), ll(out.d[1]), ll(out.d[2]));
    P(e, "                    for (int c = 0; c < %lld; c++)\n", ll(in.d[0]));
    P(e, "                        for (int i = 0; i < %lld; i++)\n", ll(kh));
    P(e, "                            for (int j = 0; j < %lld; j++) {\n", ll(kw));
    P(e, "                                const ptrdiff_t xi = c * %lld + (oh * %lld + i) * %lld "
         "+ ow * %lld + j;\n", ll(hp * wp), ll(a->stride[0]), ll(wp), ll(a->stride[1]));
    P(e, "                                gw[at + (c * %lld + i) * %lld + j] += g * s[xi];\n",
      ll(kh), ll(kw));
    if (b->dx[0])
        P(e, "                                dxp[xi] += g * w[at + (c * %lld + i) * %lld + j];\n",
          ll(kh), ll(kw));
    P(e, "                            }\n");
    P(e, "                }\n");
    if (b->dx[0]) {
        e->need_unpad = true;
        P(e, "        cnn_unpad(dxp, dxb0, %lld, %lld, %lld, %lld, %lld, %lld, %lld, 0, %d);\n",
          ll(in.d[0]), ll(in.d[1]), ll(in.d[2]), ll(a->pad_lo[0]), ll(a->pad_lo[1]),
          ll(hp), ll(wp), b->acc[0] ? 1 : 0);
    }
    P(e, "    }\n");
}

/* Weight row outer, batch inner: the row of w and of its gradient stay in
 * cache while every sample adds its outer product and its input gradient.
 * With --openmp the input gradient gets a loop of its own over the
 * samples, so that each thread owns whole rows of the weight gradient in
 * the first and whole samples of the input gradient in the second; every
 * sum is still taken in the same order. */
static void emit_dense_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    int64_t units = n->a.units, in = in_elems(n, 0);
    bool split = e->opt->openmp && b->dx[0];
    zero_gw(e, n);
    zero_dx(e, b, 0, in);
    omp_for(e, "    ");
    P(e, "    for (int u = 0; u < %lld; u++) {\n", ll(units));
    P(e, "        float *gu = gw + (ptrdiff_t)u * %lld;\n", ll(in));
    if (b->dx[0] && !split)
        P(e, "        const float *wu = w + (ptrdiff_t)u * %lld;\n", ll(in));
    P(e, "        for (int b = 0; b < batch; b++) {\n");
    P(e, "            const float g = dy[(ptrdiff_t)b * %lld + u];\n", ll(units));
    P(e, "            const float *xb = x0 + (ptrdiff_t)b * %lld;\n", ll(in));
    if (n->a.bias)
        P(e, "            gw[%lld + u] += g;\n", ll(units * in));
    P(e, "            for (int i = 0; i < %lld; i++)\n", ll(in));
    P(e, "                gu[i] += g * xb[i];\n");
    if (b->dx[0] && !split) {
        P(e, "            float *dxb = dx0 + (ptrdiff_t)b * %lld;\n", ll(in));
        P(e, "            for (int i = 0; i < %lld; i++)\n", ll(in));
        P(e, "                dxb[i] += g * wu[i];\n");
    }
    P(e, "        }\n");
    P(e, "    }\n");
    if (!split)
        return;
    omp_for(e, "    ");
    P(e, "    for (int b = 0; b < batch; b++) {\n");
    P(e, "        float *dxb = dx0 + (ptrdiff_t)b * %lld;\n", ll(in));
    P(e, "        for (int u = 0; u < %lld; u++) {\n", ll(units));
    P(e, "            const float g = dy[(ptrdiff_t)b * %lld + u];\n", ll(units));
    P(e, "            const float *wu = w + (ptrdiff_t)u * %lld;\n", ll(in));
    P(e, "            for (int i = 0; i < %lld; i++)\n", ll(in));
    P(e, "                dxb[i] += g * wu[i];\n");
    P(e, "        }\n");
    P(e, "    }\n");
}

/* ---- batch norm on batch statistics ------------------------------------------ */

/* Normalises with the batch's mean and (biased) variance, keeps mean and
 * 1/std for the backward pass, and moves the running statistics toward the
 * batch's (the unbiased variance), as PyTorch's training mode does. */
void emit_bn_train(Emit *e, const Node *n) {
    int64_t c, hw;
    channels(n, &c, &hw);
    e->need_sqrt = true;
    P(e, "    const double count = (double)batch * %lld;\n", ll(hw));
    omp_for(e, "    ");
    P(e, "    for (int c = 0; c < %lld; c++) {\n", ll(c));
    P(e, "        double sum = 0.0, sq = 0.0, mean, var, inv;\n");
    P(e, "        for (int b = 0; b < batch; b++)\n");
    P(e, "            for (int i = 0; i < %lld; i++)\n", ll(hw));
    P(e, "                sum += x0[((ptrdiff_t)b * %lld + c) * %lld + i];\n", ll(c), ll(hw));
    P(e, "        mean = sum / count;\n");
    P(e, "        for (int b = 0; b < batch; b++)\n");
    P(e, "            for (int i = 0; i < %lld; i++) {\n", ll(hw));
    P(e, "                double d = x0[((ptrdiff_t)b * %lld + c) * %lld + i] - mean;\n",
      ll(c), ll(hw));
    P(e, "                sq += d * d;\n");
    P(e, "            }\n");
    P(e, "        var = sq / count;\n");
    P(e, "        inv = 1.0 / cnn_sqrt(var + %.17g);\n", n->a.eps);
    P(e, "        aux[c] = (float)mean;\n");
    P(e, "        aux[%lld + c] = (float)inv;\n", ll(c));
    P(e, "        for (int b = 0; b < batch; b++)\n");
    P(e, "            for (int i = 0; i < %lld; i++) {\n", ll(hw));
    P(e, "                const ptrdiff_t at = ((ptrdiff_t)b * %lld + c) * %lld + i;\n",
      ll(c), ll(hw));
    P(e, "                y[at] = (float)((x0[at] - mean) * inv * w[c] + w[%lld + c]);\n", ll(c));
    P(e, "            }\n");
    P(e, "        w[%lld + c] = (float)((1.0 - %.17g) * w[%lld + c] + %.17g * mean);\n",
      ll(2 * c), n->a.momentum, ll(2 * c), n->a.momentum);
    P(e, "        w[%lld + c] = (float)((1.0 - %.17g) * w[%lld + c] + %.17g * "
         "(count > 1.0 ? sq / (count - 1.0) : var));\n",
      ll(3 * c), n->a.momentum, ll(3 * c), n->a.momentum);
    P(e, "    }\n");
}

static void emit_bn_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    int64_t c, hw;
    channels(n, &c, &hw);
    if (b->dx[0])   /* only the input's gradient divides by it */
        P(e, "    const double count = (double)batch * %lld;\n", ll(hw));
    omp_for(e, "    ");
    P(e, "    for (int c = 0; c < %lld; c++) {\n", ll(c));
    P(e, "        const double mean = aux[c], inv = aux[%lld + c];\n", ll(c));
    P(e, "        double sum = 0.0, dot = 0.0;\n");
    P(e, "        for (int b = 0; b < batch; b++)\n");
    P(e, "            for (int i = 0; i < %lld; i++) {\n", ll(hw));
    P(e, "                const ptrdiff_t at = ((ptrdiff_t)b * %lld + c) * %lld + i;\n",
      ll(c), ll(hw));
    P(e, "                sum += dy[at];\n");
    P(e, "                dot += dy[at] * (x0[at] - mean) * inv;\n");
    P(e, "            }\n");
    P(e, "        gw[c] = (float)dot;\n");
    P(e, "        gw[%lld + c] = (float)sum;\n", ll(c));
    P(e, "        gw[%lld + c] = 0.0f;\n", ll(2 * c));
    P(e, "        gw[%lld + c] = 0.0f;\n", ll(3 * c));
    if (b->dx[0]) {
        P(e, "        const double k = w[c] * inv / count;\n");
        P(e, "        for (int b = 0; b < batch; b++)\n");
        P(e, "            for (int i = 0; i < %lld; i++) {\n", ll(hw));
        P(e, "                const ptrdiff_t at = ((ptrdiff_t)b * %lld + c) * %lld + i;\n",
          ll(c), ll(hw));
        P(e, "                const double xhat = (x0[at] - mean) * inv;\n");
        P(e, "                dx0[at] %s (float)(k * (count * dy[at] - sum - xhat * dot));\n",
          put(b, 0));
        P(e, "            }\n");
    }
    P(e, "    }\n");
}

/* ---- dropout ------------------------------------------------------------- */

/* Inverted dropout: keep with probability 1-p and scale by 1/(1-p). The
 * mask comes from a counter-based generator (seed, layer, element), so it
 * does not depend on the order elements are visited in. */
void emit_dropout_train(Emit *e, const Node *n) {
    e->need_uniform = true;
    double p = n->a.p;
    P(e, "    const unsigned long long key = seed ^ %lluULL;\n",
      (unsigned long long)(n->id + 1) * 0x9E3779B97F4A7C15ULL);
    omp_for(e, "    ");
    P(e, "    for (ptrdiff_t i = 0; i < (ptrdiff_t)batch * %lld; i++) {\n", ll(out_elems(n)));
    P(e, "        const float m = !on ? 1.0f : cnn_uniform(key, (unsigned long long)i) < %.17g "
         "? 0.0f : %s;\n", p, float_lit(e->a, 1.0 / (1.0 - p)));
    P(e, "        aux[i] = m;\n");
    P(e, "        y[i] = x0[i] * m;\n");
    P(e, "    }\n");
}

/* ---- pooling ---------------------------------------------------------------- */

/* A 2x2 max pool of stride 2 that tiles its input exactly: each input
 * belongs to one window, so each window writes its four gradients itself
 * (dy at the maximum, zeros elsewhere) and nothing is zeroed first. The
 * maximum is the first largest in the window's order, a NaN taking its
 * place as in the general loop below. */
static void emit_pool2_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    Shape in = in_shape_of(n, 0), out = n->shape;
    int64_t w = in.d[2];
    open_back_batch(e, b, true);
    P(e, "        for (int c = 0; c < %lld; c++)\n", ll(out.d[0]));
    P(e, "            for (int oh = 0; oh < %lld; oh++)\n", ll(out.d[1]));
    P(e, "                for (int ow = 0; ow < %lld; ow++) {\n", ll(out.d[2]));
    P(e, "                    const ptrdiff_t at = (c * %lld + 2 * oh) * %lld + 2 * ow;\n",
      ll(in.d[1]), ll(w));
    P(e, "                    const float *x = xb0 + at, g = dyb[(c * %lld + oh) * %lld + ow];\n",
      ll(out.d[1]), ll(out.d[2]));
    P(e, "                    float best = x[0];\n");
    P(e, "                    int k = 0;\n");
    for (int t = 0; t < 3; t++) {
        const char *o = t == 0 ? "1" : arena_printf(e->a, "%lld", ll(t == 1 ? w : w + 1));
        P(e, "                    if (x[%s] > best || x[%s] != x[%s]) {\n", o, o, o);
        if (t < 2)
            P(e, "                        best = x[%s];\n", o);
        P(e, "                        k = %d;\n", t + 1);
        P(e, "                    }\n");
    }
    P(e, "                    float *d = dxb0 + at;\n");
    P(e, "                    d[0] = k == 0 ? g : 0.0f;\n");
    P(e, "                    d[1] = k == 1 ? g : 0.0f;\n");
    P(e, "                    d[%lld] = k == 2 ? g : 0.0f;\n", ll(w));
    P(e, "                    d[%lld] = k == 3 ? g : 0.0f;\n", ll(w + 1));
    P(e, "                }\n");
    P(e, "    }\n");
}

static void emit_pool_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    const Attrs *a = &n->a;
    Shape in = in_shape_of(n, 0), out = n->shape;
    bool is_max = n->op == OP_MAXPOOL, is_l2 = n->op == OP_L2POOL;
    if (!b->dx[0])
        return;
    if (is_max && !b->acc[0] && a->kernel[0] == 2 && a->kernel[1] == 2 &&
        a->stride[0] == 2 && a->stride[1] == 2 && a->dilation[0] == 1 &&
        a->dilation[1] == 1 && !pads(a) && in.d[1] == 2 * out.d[1] &&
        in.d[2] == 2 * out.d[2]) {
        emit_pool2_back(e, b);
        return;
    }
    zero_dx(e, b, 0, in_elems(n, 0));
    open_back_batch(e, b, true);
    P(e, "        for (int c = 0; c < %lld; c++)\n", ll(out.d[0]));
    P(e, "            for (int oh = 0; oh < %lld; oh++)\n", ll(out.d[1]));
    P(e, "                for (int ow = 0; ow < %lld; ow++) {\n", ll(out.d[2]));
    P(e, "                    const ptrdiff_t o = (c * %lld + oh) * %lld + ow;\n",
      ll(out.d[1]), ll(out.d[2]));
    P(e, "                    const ptrdiff_t base = c * %lld;\n", ll(in.d[1] * in.d[2]));
    if (is_max)
        P(e, "                    float best = 0.0f;\n"
             "                    ptrdiff_t arg = -1;\n");
    open_window(e, n);
    P(e, "                            const ptrdiff_t at = base + ih * %lld + iw;\n", ll(in.d[2]));
    if (is_max) {
        P(e, "                            if (arg < 0 || xb0[at] > best || xb0[at] != xb0[at]) {\n");
        P(e, "                                best = xb0[at];\n");
        P(e, "                                arg = at;\n");
        P(e, "                            }\n");
    } else if (is_l2) {
        P(e, "                            if (yb[o] > 0.0f)\n");
        P(e, "                                dxb0[at] += dyb[o] * xb0[at] / yb[o];\n");
    } else {
        P(e, "                            dxb0[at] += dyb[o] / %lld.0f;\n",
          ll(a->kernel[0] * a->kernel[1]));
    }
    P(e, "                        }\n");
    P(e, "                    }\n");
    if (is_max)
        P(e, "                    dxb0[arg] += dyb[o];\n");
    P(e, "                }\n");
    P(e, "    }\n");
}

static void emit_global_pool_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    Shape in = in_shape_of(n, 0);
    int64_t hw = in.d[1] * in.d[2];
    if (!b->dx[0])
        return;
    open_back_batch(e, b, true);
    P(e, "        for (int c = 0; c < %lld; c++) {\n", ll(in.d[0]));
    if (n->op == OP_GLOBALAVGPOOL) {
        P(e, "            const float g = dyb[c] / %lld.0f;\n", ll(hw));
        P(e, "            for (int i = 0; i < %lld; i++)\n", ll(hw));
        P(e, "                dxb0[c * %lld + i] %s g;\n", ll(hw), put(b, 0));
    } else {
        P(e, "            const float *xc = xb0 + c * %lld;\n", ll(hw));
        P(e, "            int arg = 0;\n");
        P(e, "            for (int i = 1; i < %lld; i++)\n", ll(hw));
        P(e, "                if (xc[i] > xc[arg] || (xc[i] != xc[i] && xc[arg] == xc[arg]))\n");
        P(e, "                    arg = i;\n");
        if (!b->acc[0]) {
            P(e, "            for (int i = 0; i < %lld; i++)\n", ll(hw));
            P(e, "                dxb0[c * %lld + i] = 0.0f;\n", ll(hw));
        }
        P(e, "            dxb0[c * %lld + arg] += dyb[c];\n", ll(hw));
    }
    P(e, "        }\n");
    P(e, "    }\n");
}

/* dx_c = dy_c D_c^-beta - (2 alpha beta / size) x_c * sum over the windows
 * that hold c of dy_j x_j D_j^(-beta-1), D_j = k + alpha/size * sum x^2. */
static void emit_lrn_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    const Attrs *a = &n->a;
    int64_t c, hw;
    channels(n, &c, &hw);
    if (!b->dx[0])
        return;
    e->need_exp = e->need_log = true;
    int64_t lo, hi;
    lrn_reach(n, c, &lo, &hi);
    open_back_batch(e, b, false);
    P(e, "        for (int i = 0; i < %lld; i++) {\n", ll(hw));
    P(e, "            for (int c = 0; c < %lld; c++) {\n", ll(c));
    P(e, "                double sum = 0.0;\n");
    P(e, "                for (int j = c - %lld; j <= c + %lld; j++)\n", ll(lo), ll(hi));
    P(e, "                    if (j >= 0 && j < %lld)\n", ll(c));
    P(e, "                        sum += (double)xb0[j * %lld + i] * xb0[j * %lld + i];\n",
      ll(hw), ll(hw));
    P(e, "                const double base = %.17g + %.17g * sum;\n", a->k,
      a->alpha / (double)a->size);
    P(e, "                const double scale = cnn_exp(-%.17g * cnn_log(base));\n", a->beta);
    P(e, "                s[c] = (float)scale;\n");
    P(e, "                s[%lld + c] = (float)(dyb[c * %lld + i] * xb0[c * %lld + i] * scale / base);\n",
      ll(c), ll(hw), ll(hw));
    P(e, "            }\n");
    P(e, "            for (int c = 0; c < %lld; c++) {\n", ll(c));
    P(e, "                double sum = 0.0;\n");
    P(e, "                for (int j = c - %lld; j <= c + %lld; j++)\n", ll(hi), ll(lo));
    P(e, "                    if (j >= 0 && j < %lld)\n", ll(c));
    P(e, "                        sum += s[%lld + j];\n", ll(c));
    P(e, "                dxb0[c * %lld + i] %s (float)(dyb[c * %lld + i] * s[c] - %.17g * "
         "xb0[c * %lld + i] * sum);\n", ll(hw), put(b, 0), ll(hw),
      2.0 * a->alpha * a->beta / (double)a->size, ll(hw));
    P(e, "            }\n");
    P(e, "        }\n");
    P(e, "    }\n");
}

/* ---- element-wise layers -------------------------------------------------- */

/* dx0[i] (+)= expr over the whole batch; v is x0[i], u is y[i], g is dy[i]. */
static void emit_back_map(Emit *e, const BackSig *b, const char *expr) {
    if (!b->dx[0])
        return;
    omp_for(e, "    ");
    P(e, "    for (ptrdiff_t i = 0; i < (ptrdiff_t)batch * %lld; i++) {\n", ll(out_elems(b->n)));
    P(e, "        const float g = dy[i];\n");
    if (b->x)
        P(e, "        const float v = x0[i];\n");
    if (b->y)
        P(e, "        const float u = y[i];\n");
    P(e, "        dx0[i] %s %s;\n", put(b, 0), expr);
    P(e, "    }\n");
}

static void emit_prelu_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    int64_t c, hw;
    channels(n, &c, &hw);
    zero_gw(e, n);
    open_back_batch(e, b, false);
    P(e, "        for (int c = 0; c < %lld; c++)\n", ll(c));
    P(e, "            for (int i = 0; i < %lld; i++) {\n", ll(hw));
    P(e, "                const float v = xb0[c * %lld + i], g = dyb[c * %lld + i];\n",
      ll(hw), ll(hw));
    P(e, "                if (!(v > 0.0f))\n");
    P(e, "                    gw[c] += v * g;\n");
    if (b->dx[0])
        P(e, "                dxb0[c * %lld + i] %s v > 0.0f ? g : w[c] * g;\n", ll(hw), put(b, 0));
    P(e, "            }\n");
    P(e, "    }\n");
}

static void emit_maxout_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    int64_t c, hw, pieces = n->a.pieces;
    channels(n, &c, &hw);
    if (!b->dx[0])
        return;
    zero_dx(e, b, 0, in_elems(n, 0));
    open_back_batch(e, b, true);
    P(e, "        for (int c = 0; c < %lld; c++)\n", ll(c));
    P(e, "            for (int i = 0; i < %lld; i++) {\n", ll(hw));
    P(e, "                int arg = 0;\n");
    P(e, "                for (int p = 1; p < %lld; p++) {\n", ll(pieces));
    P(e, "                    float v = xb0[(c * %lld + p) * %lld + i];\n", ll(pieces), ll(hw));
    P(e, "                    float best = xb0[(c * %lld + arg) * %lld + i];\n", ll(pieces), ll(hw));
    P(e, "                    if (v > best || (v != v && best == best))\n");
    P(e, "                        arg = p;\n");
    P(e, "                }\n");
    P(e, "                dxb0[(c * %lld + arg) * %lld + i] += dyb[c * %lld + i];\n",
      ll(pieces), ll(hw), ll(hw));
    P(e, "            }\n");
    P(e, "    }\n");
}

static void emit_softmax_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    int64_t c, hw;
    channels(n, &c, &hw);
    if (!b->dx[0])
        return;
    open_back_batch(e, b, true);
    P(e, "        for (int i = 0; i < %lld; i++) {\n", ll(hw));
    P(e, "            double dot = 0.0;\n");
    P(e, "            for (int c = 0; c < %lld; c++)\n", ll(c));
    P(e, "                dot += (double)dyb[c * %lld + i] * yb[c * %lld + i];\n", ll(hw), ll(hw));
    P(e, "            for (int c = 0; c < %lld; c++)\n", ll(c));
    P(e, "                dxb0[c * %lld + i] %s (float)(yb[c * %lld + i] * (dyb[c * %lld + i] - dot));\n",
      ll(hw), put(b, 0), ll(hw), ll(hw));
    P(e, "        }\n");
    P(e, "    }\n");
}

static void emit_bias_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    /* each weight's sum over the samples in sample order */
    omp_for(e, "    ");
    P(e, "    for (int i = 0; i < %lld; i++) {\n", ll(out_elems(n)));
    P(e, "        float sum = 0.0f;\n");
    P(e, "        for (int b = 0; b < batch; b++)\n");
    P(e, "            sum += dy[(ptrdiff_t)b * %lld + i];\n", ll(out_elems(n)));
    P(e, "        gw[i] = sum;\n");
    P(e, "    }\n");
    emit_back_map(e, b, "g");
}

static void emit_add_back(Emit *e, const BackSig *b) {
    omp_for(e, "    ");
    P(e, "    for (ptrdiff_t i = 0; i < (ptrdiff_t)batch * %lld; i++) {\n", ll(out_elems(b->n)));
    for (int k = 0; k < 2; k++)
        if (b->dx[k])
            P(e, "        dx%d[i] %s dy[i];\n", k, put(b, k));
    P(e, "    }\n");
}

static void emit_concat_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    omp_for(e, "    ");
    P(e, "    for (int b = 0; b < batch; b++) {\n");
    P(e, "        const float *dyb = dy + (ptrdiff_t)b * %lld;\n", ll(out_elems(n)));
    int64_t at = 0;
    for (int k = 0; k < n->inputs.len; k++) {
        int64_t len = in_elems(n, k);
        if (b->dx[k]) {
            P(e, "        for (int i = 0; i < %lld; i++)\n", ll(len));
            P(e, "            dx%d[(ptrdiff_t)b * %lld + i] %s dyb[%lld + i];\n", k, ll(len),
              put(b, k), ll(at));
        }
        at += len;
    }
    P(e, "    }\n");
}

void emit_backward_kernel(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    const Attrs *a = &n->a;
    switch (n->op) {
    case OP_CONV: emit_conv_back(e, b); break;
    case OP_LOCAL: emit_local_back(e, b); break;
    case OP_DENSE:
        if (simd_target(e->opt->target))
            emit_simd_dense_back(e, b);
        else
            emit_dense_back(e, b);
        break;
    case OP_BN: emit_bn_back(e, b); break;
    case OP_MAXPOOL: case OP_AVGPOOL: case OP_L2POOL: emit_pool_back(e, b); break;
    case OP_GLOBALAVGPOOL: case OP_GLOBALMAXPOOL: emit_global_pool_back(e, b); break;
    case OP_LRN: emit_lrn_back(e, b); break;
    case OP_RELU: emit_back_map(e, b, "u > 0.0f ? g : 0.0f"); break;
    case OP_RELU6: emit_back_map(e, b, "u > 0.0f && u < 6.0f ? g : 0.0f"); break;
    case OP_SIGMOID: emit_back_map(e, b, "g * u * (1.0f - u)"); break;
    case OP_TANH: emit_back_map(e, b, "g * (1.0f - u * u)"); break;
    case OP_LEAKYRELU:
        emit_back_map(e, b, arena_printf(e->a, "v > 0.0f ? g : (float)(%.17g * g)", a->alpha));
        break;
    case OP_ELU:
        e->need_exp = true;
        emit_back_map(e, b, arena_printf(e->a, "v > 0.0f ? g : (float)(%.17g * g * cnn_exp(v))",
                                         a->alpha));
        break;
    case OP_PRELU: emit_prelu_back(e, b); break;
    case OP_MAXOUT: emit_maxout_back(e, b); break;
    case OP_SOFTMAX: emit_softmax_back(e, b); break;
    case OP_DROPOUT: emit_back_map(e, b, "g * aux[i]"); break;
    case OP_FLATTEN: emit_back_map(e, b, "g"); break;
    case OP_BIAS: emit_bias_back(e, b); break;
    case OP_ADD: emit_add_back(e, b); break;
    case OP_CONCAT: emit_concat_back(e, b); break;
    case OP_INPUT: case OP_COUNT: break;
    }
}
