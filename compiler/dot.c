/* dot.c — `cnnc dot`: the network as a Graphviz drawing. One box per layer
 * with its name, operation and output shape; colours by kind of layer. */
#include "ir.h"

static const char *colour(OpKind op) {
    switch (op) {
    case OP_INPUT: return "#e8e8e8";
    case OP_CONV: case OP_LOCAL: return "#cfe2f3";
    case OP_DENSE: case OP_BIAS: return "#d9d2e9";
    case OP_BN: case OP_LRN: case OP_DROPOUT: return "#fff2cc";
    case OP_MAXPOOL: case OP_AVGPOOL: case OP_L2POOL:
    case OP_GLOBALAVGPOOL: case OP_GLOBALMAXPOOL: return "#d9ead3";
    case OP_CONCAT: case OP_ADD: case OP_FLATTEN: return "#f4cccc";
    default: return "#fce5cd";
    }
}

/* Names and descriptions hold only identifier characters, digits and
 * punctuation from layer_describe, never quotes or backslashes. */
void print_dot(FILE *f, const Graph *g, Arena *a) {
    fprintf(f, "digraph \"%s\" {\n", g->name);
    fprintf(f, "    rankdir=TB;\n");
    fprintf(f, "    node [shape=box, style=\"rounded,filled\", "
               "fontname=\"Helvetica\", fontsize=10];\n");
    fprintf(f, "    edge [color=\"#666666\"];\n");
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        fprintf(f, "    n%d [label=\"%s\\n%s\\n%s\", fillcolor=\"%s\"];\n",
                n->id, n->name, layer_describe(a, n), shape_str(a, n->shape),
                colour(n->op));
    }
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        for (int k = 0; k < n->inputs.len; k++)
            fprintf(f, "    n%d -> n%d;\n", ((Node *)n->inputs.items[k])->id,
                    n->id);
    }
    for (int i = 0; i < g->outputs.len; i++) {
        const Node *n = g->outputs.items[i];
        fprintf(f, "    out%d [label=\"%s\", shape=plaintext, style=\"\"];\n",
                i, (const char *)g->output_names.items[i]);
        fprintf(f, "    n%d -> out%d;\n", n->id, i);
    }
    fprintf(f, "}\n");
}
