/* fuse_add.c — a residual sum added where the convolution stores its
 * output. For y = conv(x) + r (ResNet's shortcut), the kernel adds r to
 * each finished sum instead of writing conv(x) out and reading it back in
 * a separate loop. The other summand must already exist when the
 * convolution runs: it is computed earlier in evaluation order. */
#include "ir.h"

void fuse_add(Graph *g, Arena *a) {
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        if (n->op != OP_ADD || n->is_output || n->inputs.len != 2)
            continue;
        for (int k = 0; k < 2; k++) {
            if (!can_fuse_into_producer(n, k))
                continue;
            Node *root = fusion_root(n->inputs.items[k]);
            const Node *other = n->inputs.items[1 - k];
            if (other->id >= root->id || (root->epi && root->epi->n >= MAX_EPI))
                continue;
            fuse_append(root, n, k,
                        (struct EpiStep){.kind = EPI_ADD, .node = n, .operand = other}, a);
            break;
        }
    }
}
