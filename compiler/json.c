/* json.c — `cnnc graph`: the typed graph as JSON, for tools and for the
 * tests that build a PyTorch twin of a network from exactly what the
 * compiler understood (tests/conformance/twin.py). */
#include "ir.h"

static void ints(FILE *f, const int64_t *v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%lld", i ? ", " : "", (long long)v[i]);
    fputc(']', f);
}

static void shape(FILE *f, Shape s) {
    ints(f, s.d, s.rank);
}

/* The arguments of the layer's table row, as resolved, plus the padding
 * the shape rule settled on. */
static void attrs(FILE *f, const Node *n) {
    const LayerInfo *li = n->layer;
    static const char *const modes[] = {"zeros", "reflect", "replicate", "circular"};
    fputs("{", f);
    int k = 0;
    for (; li && k < layer_nargs(li); k++) {
        const ArgSpec *s = &li->args[k];
        const char *field = (const char *)&n->a + s->offset;
        fprintf(f, "%s\"%s\": ", k ? ", " : "", s->name);
        switch (s->type) {
        case ARG_INT: fprintf(f, "%lld", (long long)*(const int64_t *)field); break;
        case ARG_PAIR:
        case ARG_PAD: ints(f, (const int64_t *)field, 2); break;
        case ARG_REAL: fprintf(f, "%.17g", *(const double *)field); break;
        case ARG_BOOL: fputs(*(const bool *)field ? "true" : "false", f); break;
        case ARG_PADMODE: fprintf(f, "\"%s\"", modes[*(const PadMode *)field]); break;
        }
    }
    if (li && li->args[0].name && (n->op == OP_CONV || n->op == OP_LOCAL ||
                                  n->op == OP_MAXPOOL || n->op == OP_AVGPOOL ||
                                  n->op == OP_L2POOL)) {
        fputs(", \"pad_lo\": ", f);
        ints(f, n->a.pad_lo, 2);
        fputs(", \"pad_hi\": ", f);
        ints(f, n->a.pad_hi, 2);
    }
    fputs("}", f);
}

/* `s` as the inside of a JSON string: a file name may hold any byte but
 * NUL, names are identifiers. Bytes from 0x80 up pass as they are (UTF-8,
 * or at worst not valid UTF-8: a reader may reject it but nothing breaks). */
static void json_chars(FILE *f, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
}

void print_graph_json(FILE *f, const Graph *g, const char *filename) {
    fprintf(f, "{\n  \"name\": \"%s\",\n  \"param_count\": %lld,\n"
               "  \"learnable_count\": %lld,\n",
            g->name, (long long)g->param_count, (long long)g->learnable_count);
    fputs("  \"inputs\": [", f);
    for (int i = 0; i < g->inputs.len; i++) {
        const Node *n = g->inputs.items[i];
        fprintf(f, "%s{\"name\": \"%s\", \"node\": %d, \"shape\": ", i ? ", " : "",
                n->name, n->id);
        shape(f, n->shape);
        fputs("}", f);
    }
    fputs("],\n  \"outputs\": [", f);
    for (int i = 0; i < g->outputs.len; i++) {
        const Node *n = g->outputs.items[i];
        fprintf(f, "%s{\"name\": \"%s\", \"node\": %d, \"shape\": ", i ? ", " : "",
                (const char *)g->output_names.items[i], n->id);
        shape(f, n->shape);
        fputs("}", f);
    }
    fputs("],\n  \"nodes\": [\n", f);
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        fprintf(f, "    {\"id\": %d, \"name\": \"%s\", \"op\": \"%s\", \"loc\": \"",
                n->id, n->name, n->op == OP_INPUT ? "input" : n->op == OP_ADD ? "add"
                                                                 : n->layer->name);
        json_chars(f, filename);
        fprintf(f, ":%d:%d\", \"inputs\": [", n->loc.line, n->loc.col);
        for (int k = 0; k < n->inputs.len; k++)
            fprintf(f, "%s%d", k ? ", " : "", ((Node *)n->inputs.items[k])->id);
        fputs("], \"shape\": ", f);
        shape(f, n->shape);
        fputs(", \"attrs\": ", f);
        attrs(f, n);
        fputs(", \"params\": [", f);
        for (int k = 0; k < n->nparams; k++) {
            const ParamTensor *p = &n->params[k];
            fprintf(f, "%s{\"name\": \"%s\", \"offset\": %lld, \"learnable\": %s, "
                       "\"shape\": ", k ? ", " : "", p->name, (long long)p->offset,
                    p->learnable ? "true" : "false");
            ints(f, p->dims, p->rank);
            fputs("}", f);
        }
        fprintf(f, "]}%s\n", i + 1 < g->nodes.len ? "," : "");
    }
    fputs("  ]\n}\n", f);
}
