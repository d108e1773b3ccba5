/* chain.c — runs of convolutions that NAME_forward takes one sample at a
 * time (--no-fuse=chain turns it off).
 *
 * Layer by layer, a batch's activations go through memory between every
 * two layers: 64 samples of a ResNet-50 bottleneck's 64x56x56 intermediate
 * are 51 MB, far past L2 and L3, written by one layer and read back by the
 * next. In a chain, sample b goes through every member before sample b+1
 * starts, so what one member passes the next is one sample's (800 KB there,
 * which stays in L2), and the plan gives each buffer that only the chain
 * writes and reads the bytes of one sample (plan.c). Bottleneck chains
 * (1x1 -> 3x3 -> 1x1) keep their intermediates in cache this way, and whole
 * residual stages with them, since their sums and activations are fused
 * into the convolutions.
 *
 * Members are convolutions and max pools (ResNet's first pool, between
 * its first convolution and the stages). Between two of them there may be
 * only nodes with no code of their own: fused into a member, a max pool
 * inside a member's kernel, a concat its inputs wrote. Any other layer
 * ends a chain, and so does a network output (its bytes are the caller's).
 * Dense layers stay out: at batch > 1 their kernels read each weight once
 * for all the samples. A chain needs two members, and only builds for more
 * than one sample make any.
 *
 * With OpenMP the threads take the chain's samples whole, each running
 * every member on its sample with the kernels' loops to itself; each
 * sample in flight has its own slot of the chain's buffers (plan.c). The
 * threads meet once a chain instead of once a layer, and each works in its
 * own cache.
 */
#include "emit.h"

/* (is_output comes from the plan the front end made, as in the fusion
 * passes.) */
bool chain_member(const Node *n) {
    bool conv = n->op == OP_CONV && n->shape.rank == 3;
    bool pool = n->op == OP_MAXPOOL && !pooled_in_conv(n);
    return (conv || pool) && !n->fused_into && !n->is_output;
}

/* No code of its own, so no reason to end a chain. */
static bool silent(const Node *n) {
    return !n->is_output && (n->fused_into || pooled_in_conv(n) ||
                             (n->op == OP_CONCAT && concat_slices(n) == n->inputs.len));
}

/* Ends the run from node `first` (a member) to before `end`: chain *next
 * when it has two members and one of them stores more than L2 holds for
 * the whole batch (below that, layer by layer stays in cache too, and
 * the kernels' batch loops cost less than a call a sample: LeNet-5 at
 * batch 64 ran 8% slower in chains). The silent nodes among and after
 * the members belong to it too: a fused residual add reads its operand at
 * its own step in the plan, which must count as inside the chain. */
static void close_run(Graph *g, int first, int end, int members, int batch, int *next) {
    int64_t most = 0;
    for (int i = first; members >= 2 && i < end; i++) {
        const Node *n = g->nodes.items[i];
        int64_t stored = shape_elems(n->pool ? n->pool->shape : n->shape);
        if (chain_member(n) && stored > most)
            most = stored;
    }
    if (members < 2 || most * 4 * batch <= L2_BYTES)
        return;
    for (int i = first; i < end; i++)
        ((Node *)g->nodes.items[i])->chain = *next;
    (*next)++;
}

void chain_samples(Graph *g, const BuildOptions *opt) {
    if (opt->batch < 2)
        return;
    int next = 1, first = -1, members = 0;
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        if (chain_member(n)) {
            if (members++ == 0)
                first = i;
        } else if (!silent(n) || members == 0) {
            close_run(g, first, i, members, opt->batch, &next);
            first = -1;
            members = 0;
        }
    }
    close_run(g, first, g->nodes.len, members, opt->batch, &next);
}
