/* summary.c — `cnnc summary`: the per-layer table of the lectures. For each
 * layer its output shape, learnable parameters, multiply-accumulates and
 * activation bytes (batch 1), then the totals and the planned arena beside
 * the no-reuse total and the lower bound. */
#include "ir.h"

#include <string.h>

/* 1234567 -> "1,234,567" */
static const char *grouped(Arena *a, int64_t v) {
    char digits[32], out[48];
    snprintf(digits, sizeof digits, "%lld", (long long)v);
    size_t n = strlen(digits), k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0 && digits[i - 1] != '-')
            out[k++] = ',';
        out[k++] = digits[i];
    }
    out[k] = 0;
    return arena_strdup(a, out);
}

static const char *human_bytes(Arena *a, int64_t b) {
    if (b < 10 * 1024)
        return arena_printf(a, "%lld B", (long long)b);
    if (b < 10 * 1024 * 1024)
        return arena_printf(a, "%.1f KiB", (double)b / 1024);
    if (b < (int64_t)10 * 1024 * 1024 * 1024)
        return arena_printf(a, "%.1f MiB", (double)b / (1024 * 1024));
    return arena_printf(a, "%.1f GiB", (double)b / (1024.0 * 1024 * 1024));
}

static int64_t learnable_of(const Node *n) {
    int64_t sum = 0;
    for (int k = 0; k < n->nparams; k++)
        if (n->params[k].learnable)
            sum += n->params[k].count;
    return sum;
}

void print_summary(FILE *f, const Graph *g, const Plan *plan, Arena *a) {
    int wname = 5, wop = 2;
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        int ln = (int)strlen(n->name), lo = (int)strlen(layer_describe(a, n));
        wname = ln > wname ? ln : wname;
        wop = lo > wop ? lo : wop;
    }
    fprintf(f, "network %s\n\n", g->name);
    fprintf(f, "%-*s  %-*s  %-16s %14s %16s %12s\n", wname, "layer", wop, "op",
            "output", "params", "MACs", "activations");
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        int64_t learn = learnable_of(n);
        fprintf(f, "%-*s  %-*s  %-16s %14s %16s %12s\n", wname, n->name, wop,
                layer_describe(a, n), shape_str(a, n->shape),
                learn ? grouped(a, learn) : "-",
                n->macs ? grouped(a, n->macs) : "-",
                human_bytes(a, shape_elems(n->shape) * 4));
    }
    fprintf(f, "\n");
    fprintf(f, "learnable parameters  %s\n", grouped(a, g->learnable_count));
    if (g->param_count != g->learnable_count)
        fprintf(f, "parameter vector      %s floats (with %s batch-norm "
                "running statistics)\n", grouped(a, g->param_count),
                grouped(a, g->param_count - g->learnable_count));
    fprintf(f, "weights               %s\n", human_bytes(a, g->param_count * 4));
    fprintf(f, "multiply-accumulates  %s per sample\n", grouped(a, g->macs));
    fprintf(f, "activations           %s per sample, every layer kept (no reuse)\n",
            human_bytes(a, g->activation_bytes));
    if (plan)
        fprintf(f, "arena                 %s at batch %d, planned (%s without reuse, "
                "%s live at most)\n", human_bytes(a, plan->arena_bytes), plan->batch,
                human_bytes(a, plan->no_reuse_bytes), human_bytes(a, plan->lower_bound));
}
