/* fuse_concat.c — concat made free. Channels are the outermost dimension
 * of a sample, so each input of a concat is one contiguous slice of each
 * sample of its output. A convolution whose output only the concat reads
 * can store its sums there directly (a sample stride of the concat's size,
 * an offset of the channels before it) instead of into a buffer of its own
 * that the concat then copies: the copy and the buffer are gone. plan.c
 * gives such a convolution the concat's storage; the concat copies only
 * the inputs that are not slices, and has no code when none is left.
 *
 * Only convolutions write slices: every form of their kernel (scalar,
 * direct SIMD, Winograd, depthwise) stores through the per-sample pointer
 * that open_batch() sets up, which is where the stride changes. */
#include "ir.h"

bool is_slice_of(const Node *in, const Node *concat) {
    return fusion_root(in)->slice_of == concat;
}

int concat_slices(const Node *concat) {
    int count = 0;
    for (int k = 0; k < concat->inputs.len; k++)
        count += is_slice_of(concat->inputs.items[k], concat);
    return count;
}

/* May input k of concat c be written in place? Its writer must be a
 * convolution (with anything fused into it) and c its only reader, once. */
static bool can_slice(const Node *c, int k) {
    const Node *in = c->inputs.items[k];
    const Node *root = fusion_root(in);
    if (root->op != OP_CONV || root->slice_of || in->users != 1 || in->is_output)
        return false;
    for (int i = 0; i < c->inputs.len; i++)
        if (i != k && c->inputs.items[i] == in)
            return false;   /* concat(x, x) */
    return true;
}

void fuse_concat(Graph *g) {
    for (int i = 0; i < g->nodes.len; i++) {
        Node *c = g->nodes.items[i];
        if (c->op != OP_CONCAT || c->bad)
            continue;
        int64_t at = 0;
        for (int k = 0; k < c->inputs.len; k++) {
            const Node *in = c->inputs.items[k];
            if (can_slice(c, k)) {
                Node *root = fusion_root(in);
                root->slice_of = c;
                root->slice_at = at;
            }
            at += shape_elems(in->shape);
        }
    }
}
