/* pack.c — how the canonical parameter vector (DSL.md) becomes the packed
 * vector the generated kernels read. For the scalar target most tensors are
 * copied as they are; batch normalisation is folded into one scale and one
 * shift per channel, so inference does a single multiply-add. */
#include "ir.h"

#include <math.h>
#include <string.h>

static void add_op(Arena *a, Packing *pk, PackKind kind, const Node *n,
                   int64_t src, int64_t count, int64_t out_count) {
    PackOp *op = arena_alloc(a, sizeof *op);
    op->kind = kind;
    op->node = n;
    op->src = src;
    op->dst = pk->count;
    op->count = count;
    op->eps = n->a.eps;
    vec_push(a, &pk->ops, op);
    pk->count += out_count;
}

Packing *pack_plan(Graph *g, Arena *a) {
    Packing *pk = arena_alloc(a, sizeof *pk);
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        n->packed = pk->count;
        if (n->nparams == 0)
            continue;
        if (n->op == OP_BN) {
            int64_t ch = n->params[0].count;
            add_op(a, pk, PACK_BN, n, n->params[0].offset, ch, 2 * ch);
        } else {
            /* the node's tensors are adjacent in the canonical vector */
            add_op(a, pk, PACK_COPY, n, n->params[0].offset, n->param_count,
                   n->param_count);
        }
    }
    return pk;
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
        /* The same arithmetic as cnn_pack_bn() in the generated code. */
        int64_t c = op->count;
        for (int64_t k = 0; k < c; k++) {
            float scale = (float)(src[k] / sqrt((double)src[3 * c + k] + op->eps));
            dst[k] = scale;
            dst[c + k] = (float)(src[c + k] - (double)src[2 * c + k] * scale);
        }
    }
}
