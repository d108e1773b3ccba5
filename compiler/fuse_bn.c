/* fuse_bn.c — batch norm folded into the convolution or dense layer before
 * it. In inference a batch norm is y = x * scale + shift per channel with
 * fixed statistics, and a convolution is linear in its weights, so
 * scale * (W x + b) + shift = (scale W) x + (scale b + shift): NAME_pack
 * computes the scaled weights and bias once (pack.c, cnn_pack_conv) and the
 * batch norm costs nothing at run time. Only a batch norm straight after
 * the layer qualifies: once an activation or a sum comes between, the
 * scaling no longer commutes. */
#include "ir.h"

void fuse_bn(Graph *g, Arena *a) {
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        if (n->op != OP_BN || n->is_output || !can_fuse_into_producer(n, 0))
            continue;
        Node *root = fusion_root(n->inputs.items[0]);
        if (root != n->inputs.items[0] || root->bn || root->epi)
            continue;   /* only right after the layer itself */
        root->bn = n;
        fuse_append(root, n, 0, (struct EpiStep){.kind = (EpiKind)-1}, a);
    }
}
