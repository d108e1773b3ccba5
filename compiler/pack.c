/* pack.c — how the canonical parameter vector (DSL.md) becomes the packed
 * vector the generated kernels read. Most tensors are copied as they are;
 * a batch norm that stays on its own is folded into one scale and one shift
 * per channel, so inference does a single multiply-add; a convolution or
 * dense layer is repacked when a batch norm was fused into it (fuse_bn.c)
 * or its kernel reads output channels in interleaved blocks (AVX2). */
#include "ir.h"

#include <math.h>
#include <string.h>

static PackOp *add_op(Arena *a, Packing *pk, PackKind kind, const Node *n,
                      int64_t src, int64_t count, int64_t out_count) {
    PackOp *op = arena_alloc(a, sizeof *op);
    op->kind = kind;
    op->node = n;
    op->src = src;
    op->dst = pk->count;
    op->count = count;
    op->eps = n->a.eps;
    op->bn_src = -1;
    vec_push(a, &pk->ops, op);
    pk->count += out_count;
    return op;
}

int64_t pack_conv_floats(int64_t k, int64_t per, int64_t groups, int mr) {
    int64_t blocks = (k / groups + mr - 1) / mr;
    return groups * blocks * mr * (per + 1);
}

int64_t pack_wino_floats(int64_t k, int64_t c, int mr, int m) {
    return (int64_t)(m + 2) * (m + 2) * ((k + mr - 1) / mr) * mr * c + k;
}

/* A convolution's or dense layer's weights (and bias), with the batch norm
 * fused into it folded in: PACK_CONV (per: weights per output channel) or
 * PACK_WINO (per: input channels). */
static PackOp *add_weighted(Arena *a, Packing *pk, PackKind kind, Node *n, int64_t per,
                            int64_t groups, int mr, int64_t out_count) {
    PackOp *op = add_op(a, pk, kind, n, n->params[0].offset, n->param_count, out_count);
    op->k = n->a.units;
    op->per = per;
    op->groups = groups;
    op->mr = mr;
    op->bias = n->a.bias;
    if (n->bn) {
        op->bn_src = n->bn->params[0].offset;
        op->eps = n->bn->a.eps;
    }
    n->pack_mr = mr;
    return op;
}

Packing *pack_plan(Graph *g, PackMrFn mr_of, Arena *a) {
    Packing *pk = arena_alloc(a, sizeof *pk);
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        n->packed = pk->count;
        n->pack_mr = 1;
        if (n->nparams == 0 || n->fused_into)
            continue;
        bool weighted = n->op == OP_CONV || n->op == OP_DENSE;
        int mr = weighted && mr_of ? mr_of(n) : 0;   /* 0: canonical order */
        if (n->op == OP_BN) {
            int64_t ch = n->params[0].count;
            add_op(a, pk, PACK_BN, n, n->params[0].offset, ch, 2 * ch);
        } else if (n->winograd) {
            int64_t k = n->a.units, c = n->params[0].count / (k * 9);
            PackOp *op = add_weighted(a, pk, PACK_WINO, n, c, 1, mr,
                                      pack_wino_floats(k, c, mr, n->winograd));
            op->m = n->winograd;
        } else if (weighted && (n->bn || mr > 0)) {
            if (mr == 0)
                mr = 1;
            int64_t k = n->a.units, groups = n->op == OP_CONV ? n->a.groups : 1;
            int64_t per = n->params[0].count / k;
            add_weighted(a, pk, PACK_CONV, n, per, groups, mr,
                         pack_conv_floats(k, per, groups, mr));
        } else {
            /* the node's tensors are adjacent in the canonical vector */
            add_op(a, pk, PACK_COPY, n, n->params[0].offset, n->param_count,
                   n->param_count);
        }
    }
    return pk;
}

/* The same arithmetic as cnn_pack_conv() in the generated code. */
static void pack_conv(const PackOp *op, const float *params, float *dst) {
    const float *w = params + op->src;
    const float *bias = op->bias ? w + op->k * op->per : NULL;
    const float *bn = op->bn_src >= 0 ? params + op->bn_src : NULL;
    int64_t kg = op->k / op->groups, blocks = (kg + op->mr - 1) / op->mr;
    float *db = dst + op->groups * blocks * op->mr * op->per;
    for (int64_t g = 0; g < op->groups; g++)
        for (int64_t ob = 0; ob < blocks; ob++)
            for (int64_t i = 0; i < op->mr; i++) {
                int64_t oc = ob * op->mr + i, at = (g * blocks + ob) * op->mr * op->per;
                int64_t ch = g * kg + oc;
                double scale = 1.0, shift = 0.0;
                if (oc < kg && bn) {
                    scale = (double)(float)(bn[ch] / sqrt((double)bn[3 * op->k + ch] + op->eps));
                    shift = bn[op->k + ch] - (double)bn[2 * op->k + ch] * scale;
                }
                for (int64_t j = 0; j < op->per; j++)
                    dst[at + j * op->mr + i] =
                        oc < kg ? (float)(w[ch * op->per + j] * scale) : 0.0f;
                db[(g * blocks + ob) * op->mr + i] =
                    oc < kg ? (float)((bias ? bias[ch] : 0.0) * scale + shift) : 0.0f;
            }
}

/* One dimension of G g G^T for F(2x2, 3x3): x[0], x[s], x[2s] to 4 values,
 * G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. */
static void wino2_g(const double *x, int s, double *out, int os) {
    out[0] = x[0];
    out[os] = (x[0] + x[s] + x[2 * s]) * 0.5;
    out[2 * os] = (x[0] - x[s] + x[2 * s]) * 0.5;
    out[3 * os] = x[2 * s];
}

/* The same for F(4x4, 3x3), to 6 values: G = [1/4 0 0; -1/6 -1/6 -1/6;
 * -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1], written as sums
 * scaled last, so that no C compiler can contract a product into an FMA
 * (the products by 2 and 4 are exact): cnn_pack_wino4 gives the same bits. */
static void wino4_g(const double *x, int s, double *out, int os) {
    out[0] = x[0] * 0.25;
    out[os] = -(x[0] + x[s] + x[2 * s]) / 6.0;
    out[2 * os] = -(x[0] - x[s] + x[2 * s]) / 6.0;
    out[3 * os] = (x[0] + 2.0 * x[s] + 4.0 * x[2 * s]) / 24.0;
    out[4 * os] = (x[0] - 2.0 * x[s] + 4.0 * x[2 * s]) / 24.0;
    out[5 * os] = x[2 * s];
}

/* The same arithmetic as cnn_pack_wino() and cnn_pack_wino4() in the
 * generated code: each 3x3 kernel (batch norm folded in, rounded to float
 * as PACK_CONV does) to U = G g G^T in double. */
static void pack_wino(const PackOp *op, const float *params, float *dst) {
    const float *w = params + op->src;
    const float *bias = op->bias ? w + op->k * op->per * 9 : NULL;
    const float *bn = op->bn_src >= 0 ? params + op->bn_src : NULL;
    int64_t k = op->k, c = op->per, mr = op->mr, blocks = (k + mr - 1) / mr;
    int a = op->m + 2, nx = a * a;
    void (*gt)(const double *, int, double *, int) = op->m == 4 ? wino4_g : wino2_g;
    float *db = dst + nx * blocks * mr * c;
    for (int64_t oc = 0; oc < blocks * mr; oc++) {
        double scale = 1.0, shift = 0.0;
        if (oc < k && bn) {
            scale = (double)(float)(bn[oc] / sqrt((double)bn[3 * k + oc] + op->eps));
            shift = bn[k + oc] - (double)bn[2 * k + oc] * scale;
        }
        for (int64_t ci = 0; ci < c; ci++) {
            double g[3][3], t[6][3], u[6][6];
            for (int i = 0; i < 9; i++)
                g[i / 3][i % 3] = oc < k ? (float)(w[(oc * c + ci) * 9 + i] * scale) : 0.0f;
            for (int j = 0; j < 3; j++)
                gt(&g[0][j], 3, &t[0][j], 3);
            for (int i = 0; i < a; i++)
                gt(t[i], 1, u[i], 1);
            for (int xi = 0; xi < nx; xi++)
                dst[((xi * blocks + oc / mr) * c + ci) * mr + oc % mr] = (float)u[xi / a][xi % a];
        }
        if (oc < k)
            db[oc] = (float)((bias ? bias[oc] : 0.0) * scale + shift);
    }
}

void pack_apply(const Packing *pk, const float *params, float *packed) {
    for (int i = 0; i < pk->ops.len; i++) {
        const PackOp *op = pk->ops.items[i];
        const float *src = params + op->src;
        float *dst = packed + op->dst;
        if (op->kind == PACK_COPY) {
            memcpy(dst, src, sizeof(float) * (size_t)op->count);
            continue;
        }
        if (op->kind == PACK_CONV) {
            pack_conv(op, params, dst);
            continue;
        }
        if (op->kind == PACK_WINO) {
            pack_wino(op, params, dst);
            continue;
        }
        /* The same arithmetic as cnn_pack_bn() in the generated code. */
        int64_t c = op->count;
        for (int64_t k = 0; k < c; k++) {
            float scale = (float)(src[k] / sqrt((double)src[3 * c + k] + op->eps));
            dst[k] = scale;
            dst[c + k] = (float)(src[c + k] - (double)src[2 * c + k] * scale);
        }
    }
}
