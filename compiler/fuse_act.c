/* fuse_act.c — an activation applied where the convolution or dense layer
 * stores its output (after any folded batch norm and fused residual sum),
 * instead of in a pass of its own over memory. The piecewise-linear ones
 * qualify: they cost one or two vector instructions per sum. */
#include "ir.h"

void fuse_act(Graph *g, Arena *a) {
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        EpiKind kind;
        switch (n->op) {
        case OP_RELU: kind = EPI_RELU; break;
        case OP_RELU6: kind = EPI_RELU6; break;
        case OP_LEAKYRELU: kind = EPI_LEAKY; break;
        default: continue;
        }
        if (n->is_output || !can_fuse_into_producer(n, 0))
            continue;
        Node *root = fusion_root(n->inputs.items[0]);
        if (root->epi && root->epi->n >= MAX_EPI)
            continue;
        fuse_append(root, n, 0,
                    (struct EpiStep){.kind = kind, .node = n, .alpha = n->a.alpha}, a);
    }
}
