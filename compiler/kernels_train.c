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
 * padded input gradient. */
int64_t train_bscratch(const Node *n, int batch) {
    (void)batch;
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
                 a->kernel[1] + padded +
                 conv_tmp_floats(1, 1, hp, wz);
    }
    return total;
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

/* Zero a gradient that a scatter kernel only adds into. */
static void zero_dx(Emit *e, const BackSig *b, int k, int64_t count) {
    if (!b->dx[k] || b->acc[k])
        return;
    P(e, "    for (ptrdiff_t i = 0; i < (ptrdiff_t)batch * %lld; i++)\n", ll(count));
    P(e, "        dx%d[i] = 0.0f;\n", k);
}

static void zero_gw(Emit *e, const Node *n) {
    P(e, "    for (int i = 0; i < %lld; i++)\n        gw[i] = 0.0f;\n", ll(n->param_count));
}

/* Per-sample pointers for a backward kernel's loop over the batch. */
static void open_back_batch(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    P(e, "    for (int b = 0; b < batch; b++) {\n");
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

/* ---- convolution ------------------------------------------------------------- */

static void emit_conv_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    const Attrs *a = &n->a;
    Shape in = in_shape_of(n, 0), out = n->shape;
    int64_t cg = in.d[0] / a->groups, kg = a->units / a->groups;
    int64_t kh = a->kernel[0], kw = a->kernel[1], dh = a->dilation[0], dw = a->dilation[1];
    int64_t hp = in.d[1] + a->pad_lo[0] + a->pad_hi[0];
    int64_t wp = in.d[2] + a->pad_lo[1] + a->pad_hi[1];
    int64_t oh = out.d[1], ow = out.d[2], plane = oh * ow;
    int64_t padded = in.d[0] * hp * wp;
    int64_t hz = (oh - 1) * a->stride[0] + 1 + 2 * (kh - 1) * dh;
    int64_t wz = (ow - 1) * a->stride[1] + 1 + 2 * (kw - 1) * dw;
    int64_t col_at = pads(a) ? padded : 0, ckk = in.d[0] * kh * kw;
    int64_t z_at = col_at + ckk * plane, wf_at = z_at + a->units * hz * wz;
    int64_t dxp_at = wf_at + in.d[0] * kg * kh * kw, tmp_at = dxp_at + padded;
    int64_t wsize = a->units * cg * kh * kw;

    zero_gw(e, n);
    if (b->dx[0]) {
        /* the flipped, transposed kernels, once per call:
         * wf[c][kk][i][j] = w[g*Kg + kk][c - g*Cg][kh-1-i][kw-1-j] */
        P(e, "    for (int c = 0; c < %lld; c++)\n", ll(in.d[0]));
        P(e, "        for (int kk = 0; kk < %lld; kk++)\n", ll(kg));
        P(e, "            for (int i = 0; i < %lld; i++)\n", ll(kh));
        P(e, "                for (int j = 0; j < %lld; j++)\n", ll(kw));
        P(e, "                    s[%lld + ((c * %lld + kk) * %lld + i) * %lld + j] =\n",
          ll(wf_at), ll(kg), ll(kh), ll(kw));
        P(e, "                        w[((((c / %lld) * %lld + kk) * %lld + c %% %lld) * %lld "
             "+ %lld - i) * %lld + %lld - j];\n",
          ll(cg), ll(kg), ll(cg), ll(cg), ll(kh), ll(kh - 1), ll(kw), ll(kw - 1));
    }
    /* on the vector targets a stride-1 input gradient runs through the
     * forward kernels, as a convolution node of its own (NAME_dx) */
    Node *bx = simd_target(e->opt->target) && b->dx[0]
             ? simd_backward_data_node(n, e->a) : NULL;
    int64_t pk_at = train_bscratch(n, 1);
    if (bx)   /* the flipped kernels in the order the input-gradient kernel reads */
        P(e, "    cnn_pack_conv(s + %lld, NULL, NULL, 0.0, s + %lld, %lld, %lld, %lld, %d);\n",
          ll(wf_at), ll(pk_at), ll(in.d[0]), ll(kg * kh * kw), ll(a->groups),
          simd_conv_mr(e->opt->target, bx));
    open_back_batch(e, b);
    if (pads(a)) {
        e->need_pad = true;
        P(e, "        cnn_pad(xb0, s, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %d);\n",
          ll(in.d[0]), ll(in.d[1]), ll(in.d[2]), ll(a->pad_lo[0]), ll(a->pad_lo[1]),
          ll(hp), ll(wp), (int)a->pad_mode);
        P(e, "        const float *in = s;\n");
    } else {
        P(e, "        const float *in = xb0;\n");
    }
    /* weight gradient: a correlation of the input with the output
     * gradient, as dot products of dy's rows with the input's columns
     * col[c][i][j][oh*OW + ow] = in[c][oh*sh + i*dh][ow*sw + j*dw] */
    P(e, "        float *col = s + %lld;\n", ll(col_at));
    P(e, "        for (int c = 0; c < %lld; c++)\n", ll(in.d[0]));
    P(e, "            for (int i = 0; i < %lld; i++)\n", ll(kh));
    P(e, "                for (int j = 0; j < %lld; j++) {\n", ll(kw));
    P(e, "                    float *cr = col + ((c * %lld + i) * %lld + j) * %lld;\n",
      ll(kh), ll(kw), ll(plane));
    P(e, "                    const float *xr = in + c * %lld + i * %lld + j * %lld;\n",
      ll(hp * wp), ll(dh * wp), ll(dw));
    P(e, "                    for (int oh = 0; oh < %lld; oh++)\n", ll(oh));
    P(e, "                        for (int ow = 0; ow < %lld; ow++)\n", ll(ow));
    P(e, "                            cr[oh * %lld + ow] = xr[oh * %lld + ow%s];\n", ll(ow),
      ll(a->stride[0] * wp),
      a->stride[1] == 1 ? "" : arena_printf(e->a, " * %lld", ll(a->stride[1])));
    P(e, "                }\n");
    bool tiled = simd_target(e->opt->target) && kg % 4 == 0 && cg * kh * kw >= 3;
    if (tiled) {
        /* four output channels by three columns at a time, in registers */
        int64_t per = cg * kh * kw, main = per / 3 * 3;
        e->need_dot4x3 = true;
        if (main < per)
            e->need_dot = true;
        P(e, "        for (int k = 0; k < %lld; k += 4) {\n", ll(a->units));
        P(e, "            const float *cg = col + (k / %lld) * %lld;\n", ll(kg), ll(per * plane));
        P(e, "            for (int r = 0; r < %lld; r += 3)\n", ll(main));
        P(e, "                cnn_dot4x3(dyb + k * %lld, cg + r * %lld, %lld, gw + k * %lld + r, "
             "%lld);\n", ll(plane), ll(plane), ll(plane), ll(per), ll(per));
        if (main < per) {
            P(e, "            for (int kk = k; kk < k + 4; kk++)\n");
            P(e, "                for (int r = %lld; r < %lld; r++)\n", ll(main), ll(per));
            P(e, "                    gw[kk * %lld + r] += cnn_dot(dyb + kk * %lld, cg + r * %lld, "
                 "%lld);\n", ll(per), ll(plane), ll(plane), ll(plane));
        }
        P(e, "        }\n");
    } else {
        e->need_dot = true;
    }
    if (!tiled || a->bias) {
        P(e, "        for (int k = 0; k < %lld; k++) {\n", ll(a->units));
        P(e, "            const float *dyk = dyb + k * %lld;\n", ll(plane));
        if (a->bias) {
            P(e, "            float db = 0.0f;\n");
            P(e, "            for (int i = 0; i < %lld; i++)\n", ll(plane));
            P(e, "                db += dyk[i];\n");
            P(e, "            gw[%lld + k] += db;\n", ll(wsize));
        }
        if (!tiled) {
            P(e, "            const float *cg = col + (k / %lld) * %lld;\n", ll(kg),
              ll(cg * kh * kw * plane));
            P(e, "            float *gk = gw + k * %lld;\n", ll(cg * kh * kw));
            P(e, "            for (int r = 0; r < %lld; r++)\n", ll(cg * kh * kw));
            P(e, "                gk[r] += cnn_dot(dyk, cg + r * %lld, %lld);\n", ll(plane),
              ll(plane));
        }
        P(e, "        }\n");
    }
    if (bx) {
        /* input gradient: the convolution of dy with the flipped kernels */
        int64_t bs_at = pk_at +
            pack_conv_floats(in.d[0], kg * kh * kw, a->groups, simd_conv_mr(e->opt->target, bx));
        P(e, "        float *dxp = s + %lld;\n", ll(dxp_at));
        P(e, "        %s_dx(dyb, dxp, s + %lld, %s1);\n", e->fn[n->id],
          ll(pk_at), simd_scratch(e->opt->target, bx, 1) > 0
                         ? arena_printf(e->a, "s + %lld, ", ll(bs_at)) : "");
    } else if (b->dx[0]) {
        /* input gradient: spread dy by the stride into z, pad it by the
         * kernel's extent, and convolve with the flipped kernels */
        P(e, "        float *z = s + %lld, *dxp = s + %lld;\n", ll(z_at), ll(dxp_at));
        P(e, "        for (int i = 0; i < %lld; i++)\n            z[i] = 0.0f;\n",
          ll(a->units * hz * wz));
        P(e, "        for (int k = 0; k < %lld; k++)\n", ll(a->units));
        P(e, "            for (int oh = 0; oh < %lld; oh++)\n", ll(oh));
        P(e, "                for (int ow = 0; ow < %lld; ow++)\n", ll(ow));
        P(e, "                    z[(k * %lld + %lld + oh * %lld) * %lld + %lld + ow * %lld] ="
             " dyb[(k * %lld + oh) * %lld + ow];\n",
          ll(hz), ll((kh - 1) * dh), ll(a->stride[0]), ll(wz), ll((kw - 1) * dw),
          ll(a->stride[1]), ll(oh), ll(ow));
        P(e, "        for (int i = 0; i < %lld; i++)\n            dxp[i] = 0.0f;\n", ll(padded));
        ConvLoops c = {
            .in = "z", .out = "dxp", .w = arena_printf(e->a, "(s + %lld)", ll(wf_at)),
            .cin_g = kg, .k = in.d[0], .groups = a->groups, .kh = kh, .kw = kw,
            .dh = dh, .dw = dw, .sh = 1, .sw = 1, .hin = hz, .win = wz,
            .hout = (oh - 1) * a->stride[0] + (kh - 1) * dh + 1,
            .wout = (ow - 1) * a->stride[1] + (kw - 1) * dw + 1,
            .out_rows = hp, .out_row_stride = wp, .init = NULL,
            .tmp = arena_printf(e->a, "s + %lld", ll(tmp_at)),
        };
        emit_conv_loops(e, &c);
    }
    if (b->dx[0]) {   /* dxp is the padded input's gradient: fold the padding back */
        e->need_unpad = true;
        P(e, "        cnn_unpad(dxp, dxb0, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %d, %d);\n",
          ll(in.d[0]), ll(in.d[1]), ll(in.d[2]), ll(a->pad_lo[0]), ll(a->pad_lo[1]),
          ll(hp), ll(wp), (int)a->pad_mode, b->acc[0] ? 1 : 0);
    }
    P(e, "    }\n");
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
    open_back_batch(e, b);
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
 * cache while every sample adds its outer product and its input gradient. */
static void emit_dense_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    int64_t units = n->a.units, in = in_elems(n, 0);
    zero_gw(e, n);
    zero_dx(e, b, 0, in);
    P(e, "    for (int u = 0; u < %lld; u++) {\n", ll(units));
    P(e, "        float *gu = gw + (ptrdiff_t)u * %lld;\n", ll(in));
    if (b->dx[0])
        P(e, "        const float *wu = w + (ptrdiff_t)u * %lld;\n", ll(in));
    P(e, "        for (int b = 0; b < batch; b++) {\n");
    P(e, "            const float g = dy[(ptrdiff_t)b * %lld + u];\n", ll(units));
    P(e, "            const float *xb = x0 + (ptrdiff_t)b * %lld;\n", ll(in));
    if (n->a.bias)
        P(e, "            gw[%lld + u] += g;\n", ll(units * in));
    P(e, "            for (int i = 0; i < %lld; i++)\n", ll(in));
    P(e, "                gu[i] += g * xb[i];\n");
    if (b->dx[0]) {
        P(e, "            float *dxb = dx0 + (ptrdiff_t)b * %lld;\n", ll(in));
        P(e, "            for (int i = 0; i < %lld; i++)\n", ll(in));
        P(e, "                dxb[i] += g * wu[i];\n");
    }
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
    P(e, "    const double count = (double)batch * %lld;\n", ll(hw));
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
    P(e, "    for (ptrdiff_t i = 0; i < (ptrdiff_t)batch * %lld; i++) {\n", ll(out_elems(n)));
    P(e, "        const float m = !on ? 1.0f : cnn_uniform(key, (unsigned long long)i) < %.17g "
         "? 0.0f : %s;\n", p, float_lit(e->a, 1.0 / (1.0 - p)));
    P(e, "        aux[i] = m;\n");
    P(e, "        y[i] = x0[i] * m;\n");
    P(e, "    }\n");
}

/* ---- pooling ---------------------------------------------------------------- */

static void emit_pool_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    const Attrs *a = &n->a;
    Shape in = in_shape_of(n, 0), out = n->shape;
    bool is_max = n->op == OP_MAXPOOL, is_l2 = n->op == OP_L2POOL;
    if (!b->dx[0])
        return;
    zero_dx(e, b, 0, in_elems(n, 0));
    open_back_batch(e, b);
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
    open_back_batch(e, b);
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
    int64_t lo = a->size / 2, hi = (a->size - 1) / 2;
    open_back_batch(e, b);
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
    open_back_batch(e, b);
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
    open_back_batch(e, b);
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
    open_back_batch(e, b);
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
    zero_gw(e, n);
    P(e, "    for (int b = 0; b < batch; b++)\n");
    P(e, "        for (int i = 0; i < %lld; i++)\n", ll(out_elems(n)));
    P(e, "            gw[i] += dy[(ptrdiff_t)b * %lld + i];\n", ll(out_elems(n)));
    emit_back_map(e, b, "g");
}

static void emit_add_back(Emit *e, const BackSig *b) {
    P(e, "    for (ptrdiff_t i = 0; i < (ptrdiff_t)batch * %lld; i++) {\n", ll(out_elems(b->n)));
    for (int k = 0; k < 2; k++)
        if (b->dx[k])
            P(e, "        dx%d[i] %s dy[i];\n", k, put(b, k));
    P(e, "    }\n");
}

static void emit_concat_back(Emit *e, const BackSig *b) {
    const Node *n = b->n;
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
