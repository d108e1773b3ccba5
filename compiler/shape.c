/* shape.c — types the graph: every node's per-sample output shape from its
 * layer's shape rule (layers.c), then the checks every node gets alike:
 * sizes that would overflow or exceed 2^40 bytes, the parameter vector's
 * layout in canonical order, and the MAC count.
 *
 * A node whose input is already broken is skipped silently, so an error is
 * reported once, at the layer that causes it, and not again downstream.
 */
#include "ir.h"

#include <string.h>

int64_t shape_elems(Shape s) {
    int64_t n = 1;
    for (int i = 0; i < s.rank; i++)
        if (!mul_ok(n, s.d[i], &n))
            return INT64_MAX;
    return n;
}

const char *shape_str(Arena *a, Shape s) {
    switch (s.rank) {
    case 1: return arena_printf(a, "[%lld]", (long long)s.d[0]);
    case 3: return arena_printf(a, "[%lld,%lld,%lld]", (long long)s.d[0],
                                (long long)s.d[1], (long long)s.d[2]);
    default: return "[?]";
    }
}

static void print_sites(Check *c, const Node *n) {
    for (const CallSite *s = n->site; s; s = s->parent)
        diag_note(c->diags, s->loc, "in block '%s' called here", s->block);
}

void check_error(Check *c, const Node *n, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_error(c->diags, n->loc, "%s", msg);
    print_sites(c, n);
}

void check_warning(Check *c, const Node *n, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_warning(c->diags, n->loc, "%s", msg);
    print_sites(c, n);
}

/* Every factor a shape rule or a MAC count multiplies is at most this, so
 * their products (at most three) stay far inside 64 bits. */
#define MAX_DIM ((int64_t)1 << 40)

static bool attrs_in_range(Check *c, Node *n) {
    const Attrs *a = &n->a;
    const int64_t vals[] = {a->units, a->kernel[0], a->kernel[1], a->stride[0],
                            a->stride[1], a->pad[0], a->pad[1], a->dilation[0],
                            a->dilation[1], a->groups, a->pieces, a->size};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        if (vals[i] > MAX_DIM) {
            check_error(c, n, "%s has an argument of %lld, too large for any "
                        "tensor", n->layer->name, (long long)vals[i]);
            return false;
        }
    /* The window's extent, dilation * (kernel - 1) + 1, must fit too. */
    for (int i = 0; i < 2; i++)
        if (a->dilation[i] > 1 && a->kernel[i] > MAX_DIM / a->dilation[i]) {
            check_error(c, n, "%s's dilated kernel is too large for any tensor",
                        n->layer->name);
            return false;
        }
    return true;
}

/* The per-sample output must be addressable and below 2^40 bytes. */
static bool size_ok(Check *c, Node *n) {
    int64_t elems = shape_elems(n->shape), bytes;
    for (int i = 0; i < n->shape.rank; i++)
        if (n->shape.d[i] > MAX_DIM)
            elems = INT64_MAX;
    if (elems == INT64_MAX || !mul_ok(elems, 4, &bytes) || bytes > MAX_BYTES) {
        if (n->op == OP_INPUT)
            diag_error(c->diags, n->loc, "input '%s' of shape %s takes more "
                       "than 2^40 bytes", n->name, shape_str(c->arena, n->shape));
        else
            check_error(c, n, "the output of %s, %s, takes more than 2^40 bytes",
                        n->layer->name, shape_str(c->arena, n->shape));
        return false;
    }
    return true;
}

/* Parameter tensors: counts checked before anything is multiplied out. */
static bool params_ok(Check *c, Node *n) {
    if (!n->layer->params)
        return true;
    /* The biggest factor products: conv K*C*kh*kw, local H'*W'*K*C*kh*kw,
     * dense units*in. Bound them with checked multiplies first. */
    int64_t in = shape_elems(((Node *)n->inputs.items[0])->shape);
    int64_t f[6] = {n->a.units, in, 1, 1, 1, 1};
    if (n->op == OP_CONV || n->op == OP_LOCAL) {
        f[1] = ((Node *)n->inputs.items[0])->shape.d[0];
        f[2] = n->a.kernel[0];
        f[3] = n->a.kernel[1];
        if (n->op == OP_LOCAL) {
            f[4] = n->shape.d[1];
            f[5] = n->shape.d[2];
        }
    } else if (n->op != OP_DENSE) {
        f[0] = shape_elems(n->shape);
        f[1] = 1;
    }
    int64_t total = 1;
    bool ok = true;
    for (int i = 0; i < 6; i++)
        ok &= mul_ok(total, f[i], &total);
    if (!ok || total > MAX_BYTES / 4) {
        check_error(c, n, "the weights of %s take more than 2^40 bytes",
                    n->layer->name);
        return false;
    }
    n->layer->params(n);
    return true;
}

static bool check_node(Check *c, Node *n) {
    if (n->op == OP_INPUT)
        return !n->bad && size_ok(c, n);
    for (int i = 0; i < n->inputs.len; i++)
        if (((Node *)n->inputs.items[i])->bad)
            return false;
    if (n->bad || !attrs_in_range(c, n) || !n->layer->shape(c, n) ||
        !size_ok(c, n) || !params_ok(c, n))
        return false;
    if (n->layer->macs)
        n->macs = n->layer->macs(n);
    return true;
}

bool check_shapes(Graph *g, Arena *a, Diags *d) {
    int errors_before = d->errors;
    Check c = {.arena = a, .diags = d, .graph = g};
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        if (!check_node(&c, n)) {
            n->bad = true;
            continue;
        }
        for (int k = 0; k < n->nparams; k++) {
            ParamTensor *p = &n->params[k];
            p->offset = g->param_count;
            int64_t sum;
            if (!add_ok(g->param_count, p->count, &sum) || sum > MAX_BYTES / 4) {
                check_error(&c, n, "the parameter vector reaches %s and "
                            "takes more than 2^40 bytes", n->name);
                return false;
            }
            g->param_count = sum;
            n->param_count += p->count;
            if (p->learnable)
                g->learnable_count += p->count;
        }
        g->macs = sat_add(g->macs, n->macs);
        /* each term is below 2^40 and there are at most MAX_NODES */
        g->activation_bytes += shape_elems(n->shape) * 4;
    }
    return d->errors == errors_before;
}
