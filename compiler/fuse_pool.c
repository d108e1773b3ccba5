/* fuse_pool.c — a max pool taken by the kernel of the convolution before
 * it, which then stores the pooled values only: the pool has no kernel of
 * its own, and the convolution's output is the pool's (plan.c gives the
 * convolution the pool's storage).
 *
 * The direct kernels, wino_rows.c's and Winograd's take any max pool the
 * vector pool kernel takes, a chunk of their tiles (Winograd: a band of
 * tile rows) at a time, their own output kept in scratch a chunk's rows
 * (or channels) at a time (pool_bands.c). A 2x2 stride-2 pool goes further
 * in two kernels, which compute it in their registers, so the
 * convolution's output never goes to memory at all:
 * Winograd's (winograd.c), whose output tiles hold whole pooling windows
 * (one an F(2x2) tile, four an F(4x4) one), and depthwise.c's, whose tile
 * is R = 4 output rows by a vector along the row, so each pair of rows and
 * each pair of lanes is in registers together. Either way the epilogue
 * (bias, activation, residual sum) runs on every convolution output first,
 * then the maximum, with the scalar kernel's rule for NaN and signed zeros,
 * so the result is the same bits as the two layers apart. The pass runs
 * after the target is known (like wino_choose), since whether the kernel
 * qualifies depends on it. */
#include "emit.h"

bool pooled_in_conv(const Node *p) {
    return p->op == OP_MAXPOOL && p->inputs.len == 1 &&
           fusion_root(p->inputs.items[0])->pool == p;
}

bool pool_in_registers(Target t, const Node *conv, const Node *p) {
    const Attrs *a = &p->a;
    if (a->kernel[0] != 2 || a->kernel[1] != 2 || a->stride[0] != 2 || a->stride[1] != 2 ||
        a->pad_lo[0] || a->pad_lo[1] || a->pad_hi[0] || a->pad_hi[1])
        return false;
    /* whole windows only: no row or column left over */
    int64_t ho = conv->shape.d[1], wo = conv->shape.d[2];
    if (ho % 2 || wo % 2)
        return false;
    /* Winograd: each tile of outputs holds whole windows; a residual sum's
     * operand would have to be read by tiles too */
    if (conv->winograd) {
        for (int i = 0; conv->epi && i < conv->epi->n; i++)
            if (conv->epi->step[i].kind == EPI_ADD)
                return false;
        return true;
    }
    /* depthwise.c: its tiles of rows and vectors start on even rows and
     * columns (the last tile moves up by R = 4 rows, the last vector back
     * by W lanes: even when the plane is) */
    return dw_suits(t, conv) && wo >= dw_width(t, conv);
}

bool pool_suits(Target t, const Node *p) {
    if (p->op != OP_MAXPOOL || p->bad || p->inputs.len != 1 || p->shape.rank != 3)
        return false;
    const Node *in = p->inputs.items[0];
    const Node *conv = fusion_root(in);
    if (conv->op != OP_CONV || in->users != 1 || in->is_output || conv->slice_of ||
        conv->pool || !simd_target(t) || conv->shape.rank != 3)
        return false;
    /* else a chunk of the kernel's loop at a time (pool_bands.c): the
     * direct kernels, wino_rows.c's and Winograd's, any pool the vector
     * pool kernel takes */
    return pool_in_registers(t, conv, p) || (!dw_suits(t, conv) && simd_vector_pool(t, p));
}

void fuse_pool(Graph *g, Target t) {
    for (int i = 0; i < g->nodes.len; i++) {
        Node *p = g->nodes.items[i];
        if (pool_suits(t, p))
            fusion_root(p->inputs.items[0])->pool = p;
    }
}
