/* fuse.c — the fusion driver and what the passes share.
 *
 * Fusion moves a layer's work into the kernel of the convolution or dense
 * layer that produces its input: a batch norm into its weights (fuse_bn.c),
 * a residual add (fuse_add.c) and an activation (fuse_act.c) into the loop
 * that stores its sums. The fused layer stays in the graph, so training,
 * which needs every intermediate, still sees it; for inference it has no
 * code and its output is the producing kernel's output (plan.c treats it as
 * a view). Each pass can be turned off on its own (--no-fuse=bn,add,act),
 * which is how the conformance suite checks them one at a time. A last
 * pass (fuse_concat.c) lets a convolution write straight into its slice
 * of a concat's output (--no-fuse=concat).
 */
#include "ir.h"

Node *fusion_root(const Node *n) {
    return n->fused_into ? n->fused_into : (Node *)n;
}

/* x reads input k; its work may join the kernel that writes that input when
 * that kernel is a convolution or dense layer, x is the only reader of the
 * input, and neither is a network output (whose bytes live in the caller's
 * buffer, chosen before fusion could move them). */
bool can_fuse_into_producer(const Node *x, int k) {
    const Node *in = x->inputs.items[k];
    const Node *root = fusion_root(in);
    if (root->op != OP_CONV && root->op != OP_DENSE)
        return false;
    if (in->users != 1 || x->fused_into)
        return false;
    for (int i = 0; i < x->inputs.len; i++)
        if (i != k && x->inputs.items[i] == in)
            return false;   /* x + x */
    return true;
}

void fuse_append(Node *root, Node *x, int k, struct EpiStep step, Arena *a) {
    if (step.kind != (EpiKind)-1) {
        if (!root->epi)
            root->epi = arena_alloc(a, sizeof *root->epi);
        root->epi->step[root->epi->n++] = step;
    }
    x->fused_into = root;
    x->fused_arg = k;
}

void fuse_graph(Graph *g, const FuseOptions *f, Arena *a) {
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        n->fused_into = NULL;
        n->fused_arg = 0;
        n->bn = NULL;
        n->epi = NULL;
        n->slice_of = NULL;
        n->slice_at = 0;
        n->pool = NULL;
        n->chain = 0;
    }
    if (!f->no_bn)
        fuse_bn(g, a);
    if (!f->no_add)
        fuse_add(g, a);
    if (!f->no_act)
        fuse_act(g, a);
    if (!f->no_concat)
        fuse_concat(g);   /* last: it needs to know each chain's root */
}
