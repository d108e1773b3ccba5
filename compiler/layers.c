/* layers.c — the one table that describes every layer of DSL.md.
 *
 * A row gives the layer's name, its arguments with their defaults, its
 * shape rule, its parameter tensors in canonical order and its
 * multiply-accumulate count. Adding a layer is adding a row here (and its
 * kernels in the emitters). Shape rules report errors in the user's terms;
 * the generic checks every node gets (sizes, overflow) live in shape.c.
 */
#include "ir.h"

#include <string.h>

/* ---- shape rule helpers ----------------------------------------------- */

static const char *in_desc(const Node *n, int i) {
    return n->input_desc.items[i];
}

static Shape in_shape(const Node *n, int i) {
    return ((Node *)n->inputs.items[i])->shape;
}

/* Layers that look at rows and columns need [C,H,W]. */
static bool need_image(Check *c, Node *n) {
    Shape s = in_shape(n, 0);
    if (s.rank == 3)
        return true;
    check_error(c, n, "%s expects input [C,H,W] but %s has shape %s",
                n->layer->name, in_desc(n, 0), shape_str(c->arena, s));
    return false;
}

static bool same_shape(Check *c, Node *n) {
    (void)c;
    n->shape = in_shape(n, 0);
    return true;
}

/* One spatial dimension of a sliding window: the output size, or an error
 * if the window does not fit. dim is 0 for rows, 1 for columns. *unread
 * counts the real rows or columns that no window reaches. */
static bool window_dim(Check *c, Node *n, int dim, int64_t in, int64_t *out,
                       int64_t *unread) {
    const Attrs *a = &n->a;
    int64_t extent = a->dilation[dim] * (a->kernel[dim] - 1) + 1;
    int64_t padded = in + a->pad_lo[dim] + a->pad_hi[dim];
    if (extent > padded) {
        check_error(c, n,
                    "%s window of %lld %s does not fit the %s of %s (%lld, "
                    "%lld with padding)",
                    n->layer->name, (long long)extent,
                    dim ? "columns" : "rows", dim ? "width" : "height",
                    in_desc(n, 0), (long long)in, (long long)padded);
        return false;
    }
    *out = (padded - extent) / a->stride[dim] + 1;

    /* The lectures' "invalid stride": the windows are meant to cover the
     * input (extent >= stride) but the last one stops before the last real
     * row or column. Padding left unread is fine. */
    *unread = 0;
    if (extent >= a->stride[dim]) {
        int64_t last = (*out - 1) * a->stride[dim] - a->pad_lo[dim] + extent - 1;
        if (last < in - 1)
            *unread = in - 1 - last;
    }
    return true;
}

static const char *count_of(Arena *ar, int64_t k, const char *what) {
    return k == 1 ? arena_printf(ar, "last %s", what)
                  : arena_printf(ar, "last %lld %ss", (long long)k, what);
}

/* Resolves padding (pad=same, pad modes) and computes H' and W'. */
static bool window_shape(Check *c, Node *n, int64_t channels) {
    Attrs *a = &n->a;
    Shape s = in_shape(n, 0);
    for (int i = 0; i < 2; i++) {
        if (a->pad_same) {
            int64_t total = a->dilation[i] * (a->kernel[i] - 1);
            a->pad_lo[i] = total / 2;
            a->pad_hi[i] = total - total / 2;
        } else {
            a->pad_lo[i] = a->pad_hi[i] = a->pad[i];
        }
    }
    if (a->pad_same && (a->stride[0] != 1 || a->stride[1] != 1)) {
        check_error(c, n, "pad=same needs stride 1");
        return false;
    }
    for (int i = 0; i < 2; i++) {
        int64_t in = s.d[1 + i];
        if (a->pad_mode == PAD_REFLECT && a->pad_hi[i] >= in) {
            check_error(c, n, "reflect padding of %lld needs an input %s "
                        "than that, but %s is %lld %s",
                        (long long)a->pad_hi[i], i ? "wider" : "taller", in_desc(n, 0),
                        (long long)in, i ? "wide" : "high");
            return false;
        }
        if (a->pad_mode == PAD_CIRCULAR && a->pad_hi[i] > in) {
            check_error(c, n, "circular padding of %lld is larger than %s "
                        "(%lld %s)", (long long)a->pad_hi[i], in_desc(n, 0),
                        (long long)in, i ? "wide" : "high");
            return false;
        }
    }
    int64_t h, w, skip_h, skip_w;
    if (!window_dim(c, n, 0, s.d[1], &h, &skip_h) ||
        !window_dim(c, n, 1, s.d[2], &w, &skip_w))
        return false;
    if (skip_h || skip_w) {
        const char *what =
            skip_h && skip_w ? arena_printf(c->arena, "the %s and the %s",
                                            count_of(c->arena, skip_h, "row"),
                                            count_of(c->arena, skip_w, "column"))
            : skip_h ? arena_printf(c->arena, "the %s", count_of(c->arena, skip_h, "row"))
                     : arena_printf(c->arena, "the %s", count_of(c->arena, skip_w, "column"));
        check_warning(c, n, "%s %lldx%lld with stride %s leaves %s of %s unread",
                      n->layer->name, (long long)a->kernel[0],
                      (long long)a->kernel[1],
                      a->stride[0] == a->stride[1]
                          ? arena_printf(c->arena, "%lld", (long long)a->stride[0])
                          : arena_printf(c->arena, "(%lld, %lld)",
                                         (long long)a->stride[0], (long long)a->stride[1]),
                      what, in_desc(n, 0));
    }
    n->shape = (Shape){3, {channels, h, w}};
    return true;
}

/* ---- shape rules --------------------------------------------------------- */

static bool conv_shape(Check *c, Node *n) {
    if (!need_image(c, n))
        return false;
    int64_t ch = in_shape(n, 0).d[0], g = n->a.groups;
    if (ch % g != 0) {
        check_error(c, n, "groups=%lld must divide the %lld input channels of %s",
                    (long long)g, (long long)ch, in_desc(n, 0));
        return false;
    }
    if (n->a.units % g != 0) {
        check_error(c, n, "groups=%lld must divide the %lld filters",
                    (long long)g, (long long)n->a.units);
        return false;
    }
    return window_shape(c, n, n->a.units);
}

static bool local_shape(Check *c, Node *n) {
    if (!need_image(c, n))
        return false;
    n->a.dilation[0] = n->a.dilation[1] = 1;
    return window_shape(c, n, n->a.units);
}

static bool pool_shape(Check *c, Node *n) {
    if (!need_image(c, n))
        return false;
    n->a.dilation[0] = n->a.dilation[1] = 1;
    for (int i = 0; i < 2; i++)
        if (n->a.pad[i] * 2 > n->a.kernel[i]) {
            check_error(c, n, "%s padding %lld is more than half its kernel %lld",
                        n->layer->name, (long long)n->a.pad[i],
                        (long long)n->a.kernel[i]);
            return false;
        }
    return window_shape(c, n, in_shape(n, 0).d[0]);
}

static bool global_pool_shape(Check *c, Node *n) {
    if (!need_image(c, n))
        return false;
    n->shape = (Shape){3, {in_shape(n, 0).d[0], 1, 1}};
    return true;
}

static bool dense_shape(Check *c, Node *n) {
    (void)c;
    n->shape = (Shape){1, {n->a.units}};
    return true;
}

static bool flatten_shape(Check *c, Node *n) {
    (void)c;
    n->shape = (Shape){1, {shape_elems(in_shape(n, 0))}};
    return true;
}

static bool bn_shape(Check *c, Node *n) {
    if (!(n->a.eps > 0)) {
        check_error(c, n, "bn needs eps > 0");
        return false;
    }
    if (!(n->a.momentum >= 0 && n->a.momentum <= 1)) {
        check_error(c, n, "bn needs a momentum between 0 and 1");
        return false;
    }
    return same_shape(c, n);
}

static bool lrn_shape(Check *c, Node *n) {
    return need_image(c, n) && same_shape(c, n);
}

static bool maxout_shape(Check *c, Node *n) {
    Shape s = in_shape(n, 0);
    if (s.d[0] % n->a.pieces != 0) {
        check_error(c, n, "maxout with %lld pieces needs a channel count that "
                    "it divides, but %s has %lld",
                    (long long)n->a.pieces, in_desc(n, 0), (long long)s.d[0]);
        return false;
    }
    n->shape = s;
    n->shape.d[0] /= n->a.pieces;
    return true;
}

static bool dropout_shape(Check *c, Node *n) {
    if (!(n->a.p >= 0 && n->a.p < 1)) {
        check_error(c, n, "dropout probability must be at least 0 and below 1, "
                    "got %g", n->a.p);
        return false;
    }
    return same_shape(c, n);
}

static bool concat_shape(Check *c, Node *n) {
    Shape first = in_shape(n, 0);
    Shape out = first;
    for (int i = 1; i < n->inputs.len; i++) {
        Shape s = in_shape(n, i);
        bool ok = s.rank == first.rank;
        if (ok && s.rank == 3)
            ok = s.d[1] == first.d[1] && s.d[2] == first.d[2];
        if (!ok) {
            check_error(c, n,
                        "concat joins along channels, so all else must match, "
                        "but %s has shape %s and %s has shape %s",
                        in_desc(n, 0), shape_str(c->arena, first),
                        in_desc(n, i), shape_str(c->arena, s));
            return false;
        }
        if (!add_ok(out.d[0], s.d[0], &out.d[0])) {
            check_error(c, n, "concat makes too many channels");
            return false;
        }
    }
    n->shape = out;
    return true;
}

static bool add_shape(Check *c, Node *n) {
    Shape a = in_shape(n, 0), b = in_shape(n, 1);
    if (a.rank != b.rank || memcmp(a.d, b.d, sizeof(int64_t) * (size_t)a.rank)) {
        check_error(c, n, "'+' needs equal shapes, got %s and %s",
                    shape_str(c->arena, a), shape_str(c->arena, b));
        return false;
    }
    n->shape = a;
    return true;
}

/* ---- parameter tensors, canonical order (DSL.md) ------------------------ */

static void add_param(Node *n, const char *name, bool learnable, int rank,
                      const int64_t *dims) {
    ParamTensor *p = &n->params[n->nparams++];
    p->name = name;
    p->rank = rank;
    p->learnable = learnable;
    p->count = 1;
    for (int i = 0; i < rank; i++) {
        p->dims[i] = dims[i];
        p->count *= dims[i];   /* shape.c has checked these cannot overflow */
    }
}

static void conv_params(Node *n) {
    const Attrs *a = &n->a;
    int64_t cin = in_shape(n, 0).d[0] / a->groups;
    add_param(n, "weight", true, 4,
              (int64_t[]){a->units, cin, a->kernel[0], a->kernel[1]});
    if (a->bias)
        add_param(n, "bias", true, 1, (int64_t[]){a->units});
}

static void local_params(Node *n) {
    const Attrs *a = &n->a;
    const Shape *o = &n->shape;
    add_param(n, "weight", true, 6,
              (int64_t[]){o->d[1], o->d[2], a->units, in_shape(n, 0).d[0],
                          a->kernel[0], a->kernel[1]});
    if (a->bias)
        add_param(n, "bias", true, 3, o->d);
}

static void dense_params(Node *n) {
    add_param(n, "weight", true, 2,
              (int64_t[]){n->a.units, shape_elems(in_shape(n, 0))});
    if (n->a.bias)
        add_param(n, "bias", true, 1, (int64_t[]){n->a.units});
}

static void bn_params(Node *n) {
    const int64_t *ch = &n->shape.d[0];
    add_param(n, "gamma", true, 1, ch);
    add_param(n, "beta", true, 1, ch);
    add_param(n, "running_mean", false, 1, ch);
    add_param(n, "running_var", false, 1, ch);
}

static void prelu_params(Node *n) {
    add_param(n, "alpha", true, 1, &n->shape.d[0]);
}

static void bias_params(Node *n) {
    add_param(n, "bias", true, n->shape.rank, n->shape.d);
}

/* ---- multiply-accumulates per sample ------------------------------------ */

/* Each output element of a weighted layer costs one MAC per weight it
 * reads. The counts saturate rather than overflow on absurd sizes. */
static int64_t conv_macs(const Node *n) {
    int64_t per_output = sat_mul(in_shape(n, 0).d[0] / n->a.groups,
                                 sat_mul(n->a.kernel[0], n->a.kernel[1]));
    return sat_mul(shape_elems(n->shape), per_output);
}

static int64_t local_macs(const Node *n) {
    int64_t per_output = sat_mul(in_shape(n, 0).d[0],
                                 sat_mul(n->a.kernel[0], n->a.kernel[1]));
    return sat_mul(shape_elems(n->shape), per_output);
}

static int64_t dense_macs(const Node *n) {
    return sat_mul(n->a.units, shape_elems(in_shape(n, 0)));
}

/* ---- the table ------------------------------------------------------------ */

#define F(field) offsetof(Attrs, field)
#define REQ(nm, ty, field) {nm, ty, F(field), true, 0, false, 1}
#define OPT(nm, ty, field, d, mn) {nm, ty, F(field), false, d, false, mn}
#define STRIDE_IS_KERNEL {"stride", ARG_PAIR, F(stride), false, 0, true, 1}

static const LayerInfo layers[] = {
    {OP_CONV, "conv", NULL, false,
     {REQ("filters", ARG_INT, units), REQ("kernel", ARG_PAIR, kernel),
      OPT("stride", ARG_PAIR, stride, 1, 1), OPT("pad", ARG_PAD, pad, 0, 0),
      OPT("dilation", ARG_PAIR, dilation, 1, 1),
      OPT("groups", ARG_INT, groups, 1, 1), OPT("bias", ARG_BOOL, bias, 1, 0),
      OPT("pad_mode", ARG_PADMODE, pad_mode, PAD_ZEROS, 0)},
     conv_shape, conv_params, conv_macs,
     "2-D convolution: stride, padding, dilation, groups, padding modes"},
    {OP_LOCAL, "local", NULL, false,
     {REQ("filters", ARG_INT, units), REQ("kernel", ARG_PAIR, kernel),
      OPT("stride", ARG_PAIR, stride, 1, 1), OPT("pad", ARG_PAIR, pad, 0, 0),
      OPT("bias", ARG_BOOL, bias, 1, 0)},
     local_shape, local_params, local_macs,
     "locally connected layer: a convolution with unshared weights"},
    {OP_DENSE, "dense", "fc", false,
     {REQ("units", ARG_INT, units), OPT("bias", ARG_BOOL, bias, 1, 0)},
     dense_shape, dense_params, dense_macs,
     "fully connected layer over the flattened input (alias: fc)"},
    {OP_BN, "bn", NULL, false,
     {OPT("eps", ARG_REAL, eps, 1e-5, 0), OPT("momentum", ARG_REAL, momentum, 0.1, 0)},
     bn_shape, bn_params, NULL, "batch normalisation per channel or feature"},
    {OP_MAXPOOL, "maxpool", NULL, false,
     {REQ("kernel", ARG_PAIR, kernel), STRIDE_IS_KERNEL, OPT("pad", ARG_PAIR, pad, 0, 0)},
     pool_shape, NULL, NULL, "max pooling"},
    {OP_AVGPOOL, "avgpool", NULL, false,
     {REQ("kernel", ARG_PAIR, kernel), STRIDE_IS_KERNEL, OPT("pad", ARG_PAIR, pad, 0, 0)},
     pool_shape, NULL, NULL, "average pooling (padding counted)"},
    {OP_L2POOL, "l2pool", NULL, false,
     {REQ("kernel", ARG_PAIR, kernel), STRIDE_IS_KERNEL},
     pool_shape, NULL, NULL, "L2 pooling: square root of the sum of squares"},
    {OP_GLOBALAVGPOOL, "globalavgpool", NULL, false, {{0}},
     global_pool_shape, NULL, NULL, "mean of each channel"},
    {OP_GLOBALMAXPOOL, "globalmaxpool", NULL, false, {{0}},
     global_pool_shape, NULL, NULL, "max of each channel"},
    {OP_LRN, "lrn", NULL, false,
     {REQ("size", ARG_INT, size), OPT("alpha", ARG_REAL, alpha, 1e-4, 0),
      OPT("beta", ARG_REAL, beta, 0.75, 0), OPT("k", ARG_REAL, k, 1, 0)},
     lrn_shape, NULL, NULL, "local response normalisation across channels"},
    {OP_RELU, "relu", NULL, false, {{0}}, same_shape, NULL, NULL, "max(x, 0)"},
    {OP_RELU6, "relu6", NULL, false, {{0}}, same_shape, NULL, NULL, "min(max(x, 0), 6)"},
    {OP_SIGMOID, "sigmoid", NULL, false, {{0}}, same_shape, NULL, NULL, "1 / (1 + exp(-x))"},
    {OP_TANH, "tanh", NULL, false, {{0}}, same_shape, NULL, NULL, "hyperbolic tangent"},
    {OP_LEAKYRELU, "leakyrelu", NULL, false,
     {OPT("alpha", ARG_REAL, alpha, 0.01, 0)},
     same_shape, NULL, NULL, "x if x > 0, else alpha * x"},
    {OP_ELU, "elu", NULL, false, {OPT("alpha", ARG_REAL, alpha, 1.0, 0)},
     same_shape, NULL, NULL, "x if x > 0, else alpha * (exp(x) - 1)"},
    {OP_PRELU, "prelu", NULL, false, {{0}}, same_shape, prelu_params, NULL,
     "leaky ReLU with a learned slope per channel"},
    {OP_MAXOUT, "maxout", NULL, false, {REQ("pieces", ARG_INT, pieces)},
     maxout_shape, NULL, NULL, "max over groups of `pieces` channels"},
    {OP_SOFTMAX, "softmax", NULL, false, {{0}}, same_shape, NULL, NULL,
     "softmax over channels (over all features of a vector)"},
    {OP_DROPOUT, "dropout", NULL, false, {OPT("p", ARG_REAL, p, 0.5, 0)},
     dropout_shape, NULL, NULL, "inverted dropout in training, identity in inference"},
    {OP_FLATTEN, "flatten", NULL, false, {{0}}, flatten_shape, NULL, NULL,
     "[C,H,W] to [C*H*W]"},
    {OP_BIAS, "bias", NULL, false, {{0}}, same_shape, bias_params, NULL,
     "a learned value added to every element"},
    {OP_CONCAT, "concat", NULL, true, {{0}}, concat_shape, NULL, NULL,
     "join tensors along channels"},
    {OP_ADD, "+", NULL, false, {{0}}, add_shape, NULL, NULL,
     "element-wise sum of tensors of equal shape"},
};

enum { NLAYERS = sizeof layers / sizeof layers[0] };

int layer_count(void) { return NLAYERS; }
const LayerInfo *layer_at(int i) { return &layers[i]; }

const LayerInfo *layer_find(const char *name) {
    for (int i = 0; i < NLAYERS; i++) {
        if (layers[i].op == OP_ADD)
            continue;   /* '+' is an operator, not a callable name */
        if (strcmp(layers[i].name, name) == 0 ||
            (layers[i].alias && strcmp(layers[i].alias, name) == 0))
            return &layers[i];
    }
    return NULL;
}

const LayerInfo *layer_info(OpKind op) {
    for (int i = 0; i < NLAYERS; i++)
        if (layers[i].op == op)
            return &layers[i];
    return NULL;
}

int layer_nargs(const LayerInfo *li) {
    int n = 0;
    while (n < MAX_ARGS && li->args[n].name)
        n++;
    return n;
}

const ArgSpec *layer_arg(const LayerInfo *li, const char *name) {
    for (int i = 0; i < layer_nargs(li); i++)
        if (strcmp(li->args[i].name, name) == 0)
            return &li->args[i];
    return NULL;
}

bool is_symbol(const char *name) {
    static const char *const symbols[] = {
        "same", "true", "false", "zeros", "reflect", "replicate", "circular",
    };
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++)
        if (strcmp(symbols[i], name) == 0)
            return true;
    return false;
}

/* ---- short descriptions for tables ---------------------------------------- */

static const char *pair_str(Arena *ar, const int64_t *p, const char *sep) {
    if (p[0] == p[1])
        return arena_printf(ar, "%lld", (long long)p[0]);
    return arena_printf(ar, "%lld%s%lld", (long long)p[0], sep, (long long)p[1]);
}

static const char *window_str(Arena *ar, const Node *n) {
    const Attrs *a = &n->a;
    const char *s = arena_printf(ar, "%lldx%lld", (long long)a->kernel[0],
                                 (long long)a->kernel[1]);
    if (a->stride[0] != 1 || a->stride[1] != 1)
        s = arena_printf(ar, "%s/%s", s, pair_str(ar, a->stride, ","));
    if (a->pad_lo[0] || a->pad_lo[1] || a->pad_hi[0] || a->pad_hi[1])
        s = arena_printf(ar, "%s p%s", s,
                         a->pad_same ? "same" : pair_str(ar, a->pad_lo, ","));
    if (a->dilation[0] > 1 || a->dilation[1] > 1)
        s = arena_printf(ar, "%s d%s", s, pair_str(ar, a->dilation, ","));
    return s;
}

const char *layer_describe(Arena *ar, const Node *n) {
    const Attrs *a = &n->a;
    switch (n->op) {
    case OP_INPUT:
        return "input";
    case OP_CONV: {
        const char *s = arena_printf(ar, "conv %s %lld", window_str(ar, n),
                                     (long long)a->units);
        if (a->groups > 1)
            s = arena_printf(ar, "%s g%lld", s, (long long)a->groups);
        if (a->pad_mode != PAD_ZEROS) {
            static const char *const modes[] = {"", "reflect", "replicate",
                                                "circular"};
            s = arena_printf(ar, "%s %s", s, modes[a->pad_mode]);
        }
        return s;
    }
    case OP_LOCAL:
        return arena_printf(ar, "local %s %lld", window_str(ar, n),
                            (long long)a->units);
    case OP_DENSE:
        return arena_printf(ar, "dense %lld", (long long)a->units);
    case OP_MAXPOOL: case OP_AVGPOOL: case OP_L2POOL:
        return arena_printf(ar, "%s %s", n->layer->name, window_str(ar, n));
    case OP_LRN:
        return arena_printf(ar, "lrn %lld", (long long)a->size);
    case OP_LEAKYRELU: case OP_ELU:
        return arena_printf(ar, "%s %g", n->layer->name, a->alpha);
    case OP_MAXOUT:
        return arena_printf(ar, "maxout %lld", (long long)a->pieces);
    case OP_DROPOUT:
        return arena_printf(ar, "dropout %g", a->p);
    case OP_ADD:
        return "add";
    default:
        return n->layer->name;
    }
}
