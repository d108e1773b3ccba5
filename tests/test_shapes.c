/* test_shapes.c — every layer's shape rule at its edges, against PyTorch's
 * formulas: output size floor((in + pad_lo + pad_hi - dilation*(k-1) - 1) /
 * stride) + 1 (Conv2d, MaxPool2d, AvgPool2d with ceil_mode=False), padding
 * limits as PyTorch enforces them (reflect: pad < size; circular: pad <=
 * size; pooling: pad <= kernel/2), and the parameter tensors and MAC counts
 * of conv, local and dense.
 *
 * All comparisons are exact integers (or doubles parsed from the same
 * literal): no tolerances. */
#include "helpers.h"

/* PyTorch's output size for one spatial dimension; 0 when the window does
 * not fit (PyTorch raises). */
static int64_t pt_out(int64_t in, int64_t k, int64_t stride, int64_t pad_total,
                      int64_t dilation) {
    int64_t num = in + pad_total - dilation * (k - 1) - 1;
    if (num < 0)
        return 0;
    return num / stride + 1;
}

/* `network n { input i: INPUT; y = i -> LAYER; output y }`, on four lines
 * so that errors at the layer are at t.cnn:3:14. */
static char *one_src(const char *input, const char *layer) {
    char *src = NULL;
    cr_assert(asprintf(&src, "network n {\n    input i: %s\n    y = i -> %s\n"
                             "    output y\n}\n", input, layer) > 0);
    return src;
}

/* Compiles INPUT -> LAYER and returns the layer's node. */
static Node *one(FrontResult *r, const char *input, const char *layer) {
    char *src = one_src(input, layer);
    front_run(r, "t.cnn", src, strlen(src), NULL);
    cr_assert(r->ok, "%s -> %s should compile, got:\n%s", input, layer, r->diags);
    free(src);
    Graph *g = r->c.graph;
    cr_assert_eq(g->outputs.len, 1);
    return g->outputs.items[0];
}

/* INPUT -> LAYER must fail at the layer's call, with `msg` in the message. */
static void one_fails(const char *input, const char *layer, const char *msg) {
    char *src = one_src(input, layer);
    FrontResult r = {0};
    front_run(&r, "t.cnn", src, strlen(src), NULL);
    cr_expect_not(r.ok, "%s -> %s should fail", input, layer);
    cr_expect_not_null(strstr(r.diags, "t.cnn:3:14: error: "),
                       "%s -> %s: error not at the call:\n%s", input, layer,
                       r.diags);
    cr_expect_not_null(strstr(r.diags, msg), "%s -> %s: expected '%s' in:\n%s",
                       input, layer, msg, r.diags);
    front_done(&r);
    free(src);
}

/* INPUT -> LAYER must fail at the argument that starts with `at` (the
 * first occurrence of `at` in LAYER), with `msg` in the message. */
static void arg_fails(const char *input, const char *layer, const char *at,
                      const char *msg) {
    char *src = one_src(input, layer), where[64];
    const char *hit = strstr(layer, at);
    cr_assert_not_null(hit);
    snprintf(where, sizeof where, "t.cnn:3:%d: error: ", 14 + (int)(hit - layer));
    FrontResult r = {0};
    front_run(&r, "t.cnn", src, strlen(src), NULL);
    cr_expect_not(r.ok, "%s -> %s should fail", input, layer);
    cr_expect_not_null(strstr(r.diags, where), "%s -> %s: expected '%s' in:\n%s",
                       input, layer, where, r.diags);
    cr_expect_not_null(strstr(r.diags, msg), "%s -> %s: expected '%s' in:\n%s",
                       input, layer, msg, r.diags);
    front_done(&r);
    free(src);
}

/* A source with several statements must fail with `where` and `msg`. */
static void src_fails(const char *src, const char *where, const char *msg) {
    FrontResult r = {0};
    front_run(&r, "t.cnn", src, strlen(src), NULL);
    cr_expect_not(r.ok, "should fail:\n%s", src);
    cr_expect_not_null(strstr(r.diags, where), "expected '%s' in:\n%s", where,
                       r.diags);
    cr_expect_not_null(strstr(r.diags, msg), "expected '%s' in:\n%s", msg,
                       r.diags);
    front_done(&r);
}

static void expect_shape(const Node *n, int rank, int64_t d0, int64_t d1,
                         int64_t d2) {
    cr_expect_eq(n->shape.rank, rank, "%s: rank %d, expected %d", n->name,
                 n->shape.rank, rank);
    const int64_t d[3] = {d0, d1, d2};
    for (int i = 0; i < rank; i++)
        cr_expect_eq(n->shape.d[i], d[i], "%s: dim %d is %lld, expected %lld",
                     n->name, i, (long long)n->shape.d[i], (long long)d[i]);
}
#define SHAPE3(n, c, h, w) expect_shape(n, 3, c, h, w)
#define SHAPE1(n, c) expect_shape(n, 1, c, 0, 0)

static void expect_param(const Node *n, int k, const char *name,
                         bool learnable, const int64_t *dims, int rank) {
    cr_assert(k < n->nparams, "%s has %d parameter tensors, wanted #%d",
              n->name, n->nparams, k);
    const ParamTensor *p = &n->params[k];
    cr_expect_str_eq(p->name, name);
    cr_expect_eq(p->learnable, learnable, "%s.%s learnable", n->name, name);
    cr_expect_eq(p->rank, rank, "%s.%s rank %d, expected %d", n->name, name,
                 p->rank, rank);
    int64_t count = 1;
    for (int i = 0; i < rank && i < p->rank; i++) {
        cr_expect_eq(p->dims[i], dims[i], "%s.%s dim %d is %lld, expected %lld",
                     n->name, name, i, (long long)p->dims[i], (long long)dims[i]);
        count *= dims[i];
    }
    cr_expect_eq(p->count, count);
}
#define EXPECT_PARAM(n, k, name, learn, ...)                                   \
    expect_param(n, k, name, learn, (const int64_t[]){__VA_ARGS__},            \
                 (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

/* ---- conv --------------------------------------------------------------------- */

Test(conv, sweep_against_pytorch) {
    /* every small combination of input size, kernel, stride, padding and
     * dilation; H and W differ so that neither can stand in for the other */
    int checked = 0, refused = 0;
    for (int in = 1; in <= 7; in++)
        for (int k = 1; k <= 4; k++)
            for (int s = 1; s <= 3; s++)
                for (int p = 0; p <= 2; p++)
                    for (int d = 1; d <= 3; d++) {
                        char input[64], layer[96];
                        int w = in + 3;
                        snprintf(input, sizeof input, "[2, %d, %d]", in, w);
                        snprintf(layer, sizeof layer,
                                 "conv(5, %d, stride=%d, pad=%d, dilation=%d)",
                                 k, s, p, d);
                        int64_t oh = pt_out(in, k, s, 2 * p, d);
                        int64_t ow = pt_out(w, k, s, 2 * p, d);
                        if (oh == 0) {
                            one_fails(input, layer, "does not fit");
                            refused++;
                            continue;
                        }
                        FrontResult r = {0};
                        Node *n = one(&r, input, layer);
                        SHAPE3(n, 5, oh, ow);
                        EXPECT_PARAM(n, 0, "weight", true, 5, 2, k, k);
                        EXPECT_PARAM(n, 1, "bias", true, 5);
                        cr_expect_eq(n->macs, 5 * oh * ow * 2 * k * k);
                        cr_expect_eq(n->a.pad_lo[0], p);
                        cr_expect_eq(n->a.pad_hi[1], p);
                        front_done(&r);
                        checked++;
                    }
    cr_expect_gt(checked, 300);
    cr_expect_gt(refused, 50);
}

Test(conv, stride_padding_dilation) {
    FrontResult r = {0};
    Node *n = one(&r, "[3, 32, 32]", "conv(16, 3)");
    SHAPE3(n, 16, 30, 30);
    front_done(&r);
    n = one(&r, "[3, 32, 32]", "conv(16, 3, stride=2, pad=1)");
    SHAPE3(n, 16, 16, 16);
    front_done(&r);
    n = one(&r, "[3, 224, 224]", "conv(64, 7, stride=2, pad=3)");
    SHAPE3(n, 64, 112, 112);
    front_done(&r);
    n = one(&r, "[3, 227, 227]", "conv(96, 11, stride=4)");
    SHAPE3(n, 96, 55, 55);
    front_done(&r);
    n = one(&r, "[3, 32, 32]", "conv(8, 3, dilation=2)");
    SHAPE3(n, 8, 28, 28);
    EXPECT_PARAM(n, 0, "weight", true, 8, 3, 3, 3);
    front_done(&r);
    n = one(&r, "[3, 32, 32]", "conv(8, 3, dilation=2, pad=2)");
    SHAPE3(n, 8, 32, 32);
    front_done(&r);
}

Test(conv, tuples) {
    FrontResult r = {0};
    Node *n = one(&r, "[2, 17, 19]",
                  "conv(4, (3, 5), stride=(1, 2), pad=(0, 2), dilation=(2, 1))");
    int64_t oh = pt_out(17, 3, 1, 0, 2), ow = pt_out(19, 5, 2, 4, 1);
    cr_expect_eq(oh, 13);
    cr_expect_eq(ow, 10);
    SHAPE3(n, 4, oh, ow);
    EXPECT_PARAM(n, 0, "weight", true, 4, 2, 3, 5);
    EXPECT_PARAM(n, 1, "bias", true, 4);
    cr_expect_eq(n->a.kernel[0], 3);
    cr_expect_eq(n->a.kernel[1], 5);
    cr_expect_eq(n->a.stride[0], 1);
    cr_expect_eq(n->a.stride[1], 2);
    cr_expect_eq(n->a.pad_lo[0], 0);
    cr_expect_eq(n->a.pad_hi[0], 0);
    cr_expect_eq(n->a.pad_lo[1], 2);
    cr_expect_eq(n->a.pad_hi[1], 2);
    cr_expect_eq(n->a.dilation[0], 2);
    cr_expect_eq(n->a.dilation[1], 1);
    cr_expect_eq(n->macs, 4 * 13 * 10 * 2 * 3 * 5);
    front_done(&r);
}

Test(conv, groups) {
    FrontResult r = {0};
    Node *n = one(&r, "[4, 8, 8]", "conv(8, 3, groups=2)");
    SHAPE3(n, 8, 6, 6);
    EXPECT_PARAM(n, 0, "weight", true, 8, 2, 3, 3);
    EXPECT_PARAM(n, 1, "bias", true, 8);
    cr_expect_eq(n->macs, 8 * 6 * 6 * 2 * 9, "C/groups MACs per output");
    front_done(&r);

    /* depthwise: groups = C */
    n = one(&r, "[6, 8, 8]", "conv(6, 3, pad=1, groups=6, bias=false)");
    SHAPE3(n, 6, 8, 8);
    cr_expect_eq(n->nparams, 1);
    EXPECT_PARAM(n, 0, "weight", true, 6, 1, 3, 3);
    cr_expect_eq(n->macs, 6 * 64 * 9);
    front_done(&r);

    /* depthwise with a channel multiplier */
    n = one(&r, "[6, 8, 8]", "conv(12, 3, groups=6)");
    SHAPE3(n, 12, 6, 6);
    EXPECT_PARAM(n, 0, "weight", true, 12, 1, 3, 3);
    cr_expect_eq(n->macs, 12 * 36 * 9);
    front_done(&r);

    /* AlexNet's two towers */
    n = one(&r, "[96, 27, 27]", "conv(256, 5, pad=2, groups=2)");
    SHAPE3(n, 256, 27, 27);
    EXPECT_PARAM(n, 0, "weight", true, 256, 48, 5, 5);
    cr_expect_eq(n->macs, (int64_t)256 * 27 * 27 * 48 * 25);
    front_done(&r);

    one_fails("[4, 8, 8]", "conv(6, 3, groups=3)",
              "groups=3 must divide the 4 input channels");
    one_fails("[4, 8, 8]", "conv(5, 3, groups=2)", "groups=2 must divide the 5 filters");
    arg_fails("[4, 8, 8]", "conv(4, 3, groups=0)", "groups", "at least 1");
}

Test(conv, pad_same) {
    /* pad_lo = total / 2 and pad_hi = the rest, total = dilation*(k-1):
     * PyTorch's padding='same' (the extra row/column at the bottom/right) */
    static const struct {
        const char *layer;
        int64_t lo[2], hi[2];
    } cases[] = {
        {"conv(3, 1, pad=same)", {0, 0}, {0, 0}},
        {"conv(3, 2, pad=same)", {0, 0}, {1, 1}},
        {"conv(3, 3, pad=same)", {1, 1}, {1, 1}},
        {"conv(3, 4, pad=same)", {1, 1}, {2, 2}},
        {"conv(3, 5, pad=same)", {2, 2}, {2, 2}},
        {"conv(3, 6, pad=same)", {2, 2}, {3, 3}},
        {"conv(3, 3, pad=same, dilation=2)", {2, 2}, {2, 2}},
        {"conv(3, 4, pad=same, dilation=2)", {3, 3}, {3, 3}},
        {"conv(3, 2, pad=same, dilation=3)", {1, 1}, {2, 2}},
        {"conv(3, (2, 5), pad=same)", {0, 2}, {1, 2}},
        {"conv(3, (4, 1), pad=same, dilation=(1, 5))", {1, 0}, {2, 0}},
        {"conv(3, 4, pad=same, stride=(1, 1))", {1, 1}, {2, 2}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FrontResult r = {0};
        Node *n = one(&r, "[2, 7, 6]", cases[i].layer);
        cr_expect(n->a.pad_same, "%s", cases[i].layer);
        for (int d = 0; d < 2; d++) {
            cr_expect_eq(n->a.pad_lo[d], cases[i].lo[d], "%s: pad_lo[%d] = %lld",
                         cases[i].layer, d, (long long)n->a.pad_lo[d]);
            cr_expect_eq(n->a.pad_hi[d], cases[i].hi[d], "%s: pad_hi[%d] = %lld",
                         cases[i].layer, d, (long long)n->a.pad_hi[d]);
        }
        SHAPE3(n, 3, 7, 6);
        cr_expect_eq(r.c.diags.warnings, 0, "%s", r.diags);
        front_done(&r);
    }
    one_fails("[2, 8, 8]", "conv(3, 3, stride=2, pad=same)", "stride 1");
    one_fails("[2, 8, 8]", "conv(3, 3, stride=(1, 2), pad=same)", "stride 1");
    /* same is for conv only */
    arg_fails("[2, 8, 8]", "local(3, 3, pad=same)", "pad", "pad");
    arg_fails("[2, 8, 8]", "maxpool(3, pad=same)", "pad", "pad");
    arg_fails("[2, 8, 8]", "avgpool(3, pad=same)", "pad", "pad");
}

Test(conv, pad_modes) {
    FrontResult r = {0};
    Node *n;
    /* reflect: padding smaller than the input */
    n = one(&r, "[1, 4, 4]", "conv(2, 3, pad=3, pad_mode=reflect)");
    cr_expect_eq(n->a.pad_mode, PAD_REFLECT);
    SHAPE3(n, 2, 8, 8);
    front_done(&r);
    one_fails("[1, 4, 4]", "conv(2, 3, pad=4, pad_mode=reflect)", "reflect");
    one_fails("[1, 4, 9]", "conv(2, 3, pad=(4, 1), pad_mode=reflect)", "reflect");
    one_fails("[1, 9, 4]", "conv(2, 3, pad=(1, 4), pad_mode=reflect)", "reflect");
    n = one(&r, "[1, 2, 1]", "conv(2, (3, 1), pad=(1, 0), pad_mode=reflect)");
    SHAPE3(n, 2, 2, 1);
    front_done(&r);
    one_fails("[1, 2, 1]", "conv(2, (3, 1), pad=(1, 1), pad_mode=reflect)", "reflect");
    /* with pad=same and an even kernel the larger side counts */
    n = one(&r, "[1, 3, 3]", "conv(1, 4, pad=same, pad_mode=reflect)");
    cr_expect_eq(n->a.pad_hi[0], 2);
    SHAPE3(n, 1, 3, 3);
    front_done(&r);
    one_fails("[1, 2, 2]", "conv(1, 4, pad=same, pad_mode=reflect)", "reflect");

    /* replicate: any padding */
    n = one(&r, "[1, 4, 4]", "conv(2, 3, pad=10, pad_mode=replicate)");
    cr_expect_eq(n->a.pad_mode, PAD_REPLICATE);
    SHAPE3(n, 2, 22, 22);
    front_done(&r);

    /* circular: padding up to the input size */
    n = one(&r, "[1, 4, 4]", "conv(2, 3, pad=4, pad_mode=circular)");
    cr_expect_eq(n->a.pad_mode, PAD_CIRCULAR);
    SHAPE3(n, 2, 10, 10);
    front_done(&r);
    one_fails("[1, 4, 4]", "conv(2, 3, pad=5, pad_mode=circular)", "circular");
    one_fails("[1, 4, 9]", "conv(2, 3, pad=(5, 0), pad_mode=circular)", "circular");

    /* zeros, the default: any padding */
    n = one(&r, "[1, 4, 4]", "conv(2, 3, pad=10, pad_mode=zeros)");
    cr_expect_eq(n->a.pad_mode, PAD_ZEROS);
    SHAPE3(n, 2, 22, 22);
    front_done(&r);
    n = one(&r, "[1, 4, 4]", "conv(2, 3, pad=10)");
    cr_expect_eq(n->a.pad_mode, PAD_ZEROS);
    front_done(&r);

    arg_fails("[1, 4, 4]", "conv(2, 3, pad=1, pad_mode=same)", "pad_mode", "pad_mode");
    arg_fails("[1, 4, 4]", "conv(2, 3, pad=1, pad_mode=1)", "pad_mode", "pad_mode");
}

Test(conv, output_of_exactly_one) {
    FrontResult r = {0};
    Node *n = one(&r, "[1, 5, 5]", "conv(4, 5)");
    SHAPE3(n, 4, 1, 1);
    cr_expect_eq(n->macs, 4 * 25);
    front_done(&r);
    n = one(&r, "[1, 1, 1]", "conv(4, 3, pad=1)");
    SHAPE3(n, 4, 1, 1);
    front_done(&r);
    n = one(&r, "[1, 5, 5]", "conv(4, 7, pad=1)");
    SHAPE3(n, 4, 1, 1);
    front_done(&r);
    n = one(&r, "[1, 8, 8]", "conv(1, 1, stride=100)");
    SHAPE3(n, 1, 1, 1);
    cr_expect_eq(r.c.diags.warnings, 0, "a kernel smaller than its stride skips "
                 "rows by design:\n%s", r.diags);
    front_done(&r);
    n = one(&r, "[1, 1, 9]", "conv(2, (1, 3), dilation=(1, 4))");
    SHAPE3(n, 2, 1, 1);
    front_done(&r);
    n = one(&r, "[1, 1, 9]", "conv(2, (1, 5), stride=5)");
    SHAPE3(n, 2, 1, 1);
    front_done(&r);
}

Test(conv, window_larger_than_input) {
    one_fails("[1, 5, 5]", "conv(4, 6)", "does not fit");
    one_fails("[1, 5, 5]", "conv(4, 8, pad=1)", "does not fit");
    one_fails("[1, 6, 6]", "conv(4, 3, dilation=3)", "does not fit");
    one_fails("[1, 8, 5]", "conv(1, (1, 6))", "width");
    one_fails("[1, 5, 8]", "conv(1, (6, 1))", "height");
    one_fails("[1, 1, 1]", "conv(1, 2)", "does not fit");
}

Test(conv, not_an_image) {
    one_fails("[500]", "conv(16, 5)",
              "conv expects input [C,H,W] but 'i' has shape [500]");
    one_fails("[500]", "local(16, 5)", "local expects input [C,H,W]");
}

Test(conv, invalid_stride_warning) {
    FrontResult r = {0};
    /* 3x3 at stride 2 over 6 columns: the windows start at 0 and 2, column 5
     * is never read */
    Node *n = one(&r, "[1, 6, 6]", "conv(4, 3, stride=2)");
    SHAPE3(n, 4, 2, 2);
    cr_expect_eq(r.c.diags.warnings, 1);
    cr_expect_not_null(strstr(r.diags, "t.cnn:3:14: warning: "), "%s", r.diags);
    cr_expect_not_null(strstr(r.diags, "unread"), "%s", r.diags);
    front_done(&r);
    /* padding 1: the last window ends on the last real column */
    n = one(&r, "[1, 6, 6]", "conv(4, 3, stride=2, pad=1)");
    SHAPE3(n, 4, 3, 3);
    cr_expect_eq(r.c.diags.warnings, 0, "%s", r.diags);
    front_done(&r);
    /* 1x1 stride-2 shortcut: skips rows by design */
    n = one(&r, "[1, 6, 6]", "conv(4, 1, stride=2)");
    SHAPE3(n, 4, 3, 3);
    cr_expect_eq(r.c.diags.warnings, 0, "%s", r.diags);
    front_done(&r);
    /* only the rows */
    n = one(&r, "[1, 6, 7]", "conv(4, 3, stride=2)");
    SHAPE3(n, 4, 2, 3);
    cr_expect_eq(r.c.diags.warnings, 1);
    cr_expect_not_null(strstr(r.diags, "row"), "%s", r.diags);
    cr_expect_null(strstr(r.diags, "column"), "%s", r.diags);
    front_done(&r);
    /* pooling too: 2x2 pools over 7 rows drop the last */
    n = one(&r, "[1, 7, 8]", "maxpool(2)");
    SHAPE3(n, 1, 3, 4);
    cr_expect_eq(r.c.diags.warnings, 1, "%s", r.diags);
    front_done(&r);
    n = one(&r, "[1, 112, 112]", "maxpool(3, stride=2, pad=1)");
    SHAPE3(n, 1, 56, 56);
    cr_expect_eq(r.c.diags.warnings, 0, "%s", r.diags);
    front_done(&r);
}

/* ---- local ---------------------------------------------------------------------- */

Test(local, shapes_params_macs) {
    FrontResult r = {0};
    Node *n = one(&r, "[2, 6, 6]", "local(4, 3)");
    SHAPE3(n, 4, 4, 4);
    cr_expect_eq(n->nparams, 2);
    EXPECT_PARAM(n, 0, "weight", true, 4, 4, 4, 2, 3, 3);
    EXPECT_PARAM(n, 1, "bias", true, 4, 4, 4);
    cr_expect_eq(n->param_count, 4 * 4 * 4 * 2 * 9 + 64);
    cr_expect_eq(n->macs, 4 * 4 * 4 * 2 * 9);
    front_done(&r);

    n = one(&r, "[2, 5, 6]", "local(3, (2, 3), stride=(2, 1), pad=(1, 0))");
    int64_t oh = pt_out(5, 2, 2, 2, 1), ow = pt_out(6, 3, 1, 0, 1);
    cr_expect_eq(oh, 3);
    cr_expect_eq(ow, 4);
    SHAPE3(n, 3, oh, ow);
    EXPECT_PARAM(n, 0, "weight", true, 3, 4, 3, 2, 2, 3);
    EXPECT_PARAM(n, 1, "bias", true, 3, 3, 4);
    cr_expect_eq(n->macs, 3 * 3 * 4 * 2 * 2 * 3);
    front_done(&r);

    n = one(&r, "[3, 7, 7]", "local(2, 3, stride=2, bias=false)");
    SHAPE3(n, 2, 3, 3);
    cr_expect_eq(n->nparams, 1);
    EXPECT_PARAM(n, 0, "weight", true, 3, 3, 2, 3, 3, 3);
    front_done(&r);

    one_fails("[2, 4, 4]", "local(2, 5)", "does not fit");
    arg_fails("[2, 4, 4]", "local(2, 3, dilation=2)", "dilation", "dilation");
}

Test(local, sweep_against_pytorch) {
    for (int in = 2; in <= 6; in++)
        for (int k = 1; k <= 3; k++)
            for (int s = 1; s <= 2; s++)
                for (int p = 0; p <= 1; p++) {
                    char input[64], layer[96];
                    snprintf(input, sizeof input, "[3, %d, %d]", in, in + 1);
                    snprintf(layer, sizeof layer, "local(2, %d, stride=%d, pad=%d)",
                             k, s, p);
                    int64_t oh = pt_out(in, k, s, 2 * p, 1);
                    int64_t ow = pt_out(in + 1, k, s, 2 * p, 1);
                    if (oh == 0) {
                        one_fails(input, layer, "does not fit");
                        continue;
                    }
                    FrontResult r = {0};
                    Node *n = one(&r, input, layer);
                    SHAPE3(n, 2, oh, ow);
                    EXPECT_PARAM(n, 0, "weight", true, oh, ow, 2, 3, k, k);
                    EXPECT_PARAM(n, 1, "bias", true, 2, oh, ow);
                    cr_expect_eq(n->macs, 2 * oh * ow * 3 * k * k);
                    front_done(&r);
                }
}

/* ---- dense, bn ------------------------------------------------------------------ */

Test(dense, image_and_vector) {
    FrontResult r = {0};
    Node *n = one(&r, "[3, 4, 5]", "dense(7)");
    SHAPE1(n, 7);
    EXPECT_PARAM(n, 0, "weight", true, 7, 60);
    EXPECT_PARAM(n, 1, "bias", true, 7);
    cr_expect_eq(n->macs, 7 * 60);
    front_done(&r);
    n = one(&r, "[9]", "dense(2)");
    SHAPE1(n, 2);
    EXPECT_PARAM(n, 0, "weight", true, 2, 9);
    cr_expect_eq(n->macs, 18);
    front_done(&r);
    n = one(&r, "[9]", "dense(1, bias=false)");
    SHAPE1(n, 1);
    cr_expect_eq(n->nparams, 1);
    cr_expect_eq(n->param_count, 9);
    front_done(&r);
    n = one(&r, "[512, 1, 1]", "fc(1000)");
    SHAPE1(n, 1000);
    EXPECT_PARAM(n, 0, "weight", true, 1000, 512);
    cr_expect_eq(n->macs, 512000);
    front_done(&r);
    arg_fails("[9]", "dense(0)", "0", "at least 1");
    arg_fails("[9]", "dense(2.5)", "2.5", "integer");
}

Test(bn, vector_and_image) {
    FrontResult r = {0};
    Node *n = one(&r, "[5]", "bn");
    SHAPE1(n, 5);
    cr_expect_eq(n->nparams, 4);
    EXPECT_PARAM(n, 0, "gamma", true, 5);
    EXPECT_PARAM(n, 1, "beta", true, 5);
    EXPECT_PARAM(n, 2, "running_mean", false, 5);
    EXPECT_PARAM(n, 3, "running_var", false, 5);
    cr_expect_eq(n->a.eps, 1e-5);
    cr_expect_eq(n->a.momentum, 0.1);
    cr_expect_eq(r.c.graph->learnable_count, 10);
    cr_expect_eq(r.c.graph->param_count, 20);
    cr_expect_eq(n->macs, 0);
    front_done(&r);
    n = one(&r, "[3, 4, 4]", "bn(eps=1e-3, momentum=0.01)");
    SHAPE3(n, 3, 4, 4);
    EXPECT_PARAM(n, 0, "gamma", true, 3);
    EXPECT_PARAM(n, 3, "running_var", false, 3);
    cr_expect_eq(n->a.eps, 1e-3);
    cr_expect_eq(n->a.momentum, 0.01);
    front_done(&r);
    one_fails("[5]", "bn(eps=0)", "eps");
    one_fails("[5]", "bn(momentum=2)", "momentum");
    one_fails("[5]", "bn(momentum=-0.5)", "momentum");
}

/* ---- pooling --------------------------------------------------------------------- */

Test(pool, default_stride_is_kernel) {
    static const char *const pools[] = {"maxpool", "avgpool", "l2pool"};
    for (int i = 0; i < 3; i++) {
        char layer[64];
        FrontResult r = {0};
        snprintf(layer, sizeof layer, "%s(2)", pools[i]);
        Node *n = one(&r, "[3, 8, 8]", layer);
        SHAPE3(n, 3, 4, 4);
        cr_expect_eq(n->a.stride[0], 2);
        cr_expect_eq(n->a.stride[1], 2);
        cr_expect_eq(n->nparams, 0);
        front_done(&r);
        snprintf(layer, sizeof layer, "%s(3)", pools[i]);
        n = one(&r, "[3, 9, 9]", layer);
        SHAPE3(n, 3, 3, 3);
        front_done(&r);
        snprintf(layer, sizeof layer, "%s((2, 3))", pools[i]);
        n = one(&r, "[3, 8, 9]", layer);
        cr_expect_eq(n->a.stride[0], 2);
        cr_expect_eq(n->a.stride[1], 3);
        SHAPE3(n, 3, 4, 3);
        front_done(&r);
        snprintf(layer, sizeof layer, "%s(3, stride=1)", pools[i]);
        n = one(&r, "[3, 8, 8]", layer);
        SHAPE3(n, 3, 6, 6);
        front_done(&r);
        snprintf(layer, sizeof layer, "%s(5)", pools[i]);
        one_fails("[3, 4, 8]", layer, "does not fit");
        snprintf(layer, sizeof layer, "%s(2)", pools[i]);
        one_fails("[12]", layer, "expects input [C,H,W]");
    }
}

Test(pool, padding_at_most_half_the_kernel) {
    static const char *const pools[] = {"maxpool", "avgpool"};
    for (int i = 0; i < 2; i++) {
        char layer[64];
        FrontResult r = {0};
        /* 1 <= 2/2 */
        snprintf(layer, sizeof layer, "%s(2, pad=1)", pools[i]);
        Node *n = one(&r, "[1, 8, 8]", layer);
        SHAPE3(n, 1, 5, 5);
        front_done(&r);
        snprintf(layer, sizeof layer, "%s(3, stride=2, pad=1)", pools[i]);
        n = one(&r, "[64, 112, 112]", layer);
        SHAPE3(n, 64, 56, 56);
        front_done(&r);
        snprintf(layer, sizeof layer, "%s(4, pad=2)", pools[i]);
        n = one(&r, "[1, 8, 8]", layer);
        SHAPE3(n, 1, 3, 3);
        front_done(&r);
        snprintf(layer, sizeof layer, "%s((2, 4), pad=(1, 2))", pools[i]);
        n = one(&r, "[1, 8, 8]", layer);
        SHAPE3(n, 1, pt_out(8, 2, 2, 2, 1), pt_out(8, 4, 4, 4, 1));
        front_done(&r);
        snprintf(layer, sizeof layer, "%s(3, pad=2)", pools[i]);
        one_fails("[1, 8, 8]", layer, "half");
        snprintf(layer, sizeof layer, "%s(1, pad=1)", pools[i]);
        one_fails("[1, 8, 8]", layer, "half");
        snprintf(layer, sizeof layer, "%s((2, 4), pad=(2, 1))", pools[i]);
        one_fails("[1, 8, 8]", layer, "half");
        snprintf(layer, sizeof layer, "%s((4, 2), pad=(1, 2))", pools[i]);
        one_fails("[1, 8, 8]", layer, "half");
    }
    arg_fails("[1, 8, 8]", "l2pool(2, pad=1)", "pad", "pad");
    arg_fails("[1, 8, 8]", "maxpool(2, dilation=2)", "dilation", "dilation");
}

Test(pool, sweep_against_pytorch) {
    static const char *const pools[] = {"maxpool", "avgpool"};
    for (int i = 0; i < 2; i++)
        for (int in = 1; in <= 7; in++)
            for (int k = 1; k <= 4; k++)
                for (int s = 1; s <= 3; s++)
                    for (int p = 0; p <= k / 2; p++) {
                        char input[64], layer[96];
                        snprintf(input, sizeof input, "[2, %d, %d]", in, in + 2);
                        snprintf(layer, sizeof layer, "%s(%d, stride=%d, pad=%d)",
                                 pools[i], k, s, p);
                        int64_t oh = pt_out(in, k, s, 2 * p, 1);
                        int64_t ow = pt_out(in + 2, k, s, 2 * p, 1);
                        if (oh == 0) {
                            one_fails(input, layer, "does not fit");
                            continue;
                        }
                        FrontResult r = {0};
                        Node *n = one(&r, input, layer);
                        SHAPE3(n, 2, oh, ow);
                        cr_expect_eq(n->macs, 0);
                        front_done(&r);
                    }
}

Test(pool, global) {
    static const char *const pools[] = {"globalavgpool", "globalmaxpool"};
    for (int i = 0; i < 2; i++) {
        FrontResult r = {0};
        Node *n = one(&r, "[7, 5, 3]", pools[i]);
        SHAPE3(n, 7, 1, 1);
        cr_expect_eq(n->nparams, 0);
        front_done(&r);
        n = one(&r, "[7, 1, 1]", pools[i]);
        SHAPE3(n, 7, 1, 1);
        front_done(&r);
        one_fails("[7]", pools[i], "expects input [C,H,W]");
    }
}

/* ---- normalisation, activations, the rest -------------------------------------- */

Test(lrn, shapes_and_arguments) {
    FrontResult r = {0};
    Node *n = one(&r, "[8, 4, 4]", "lrn(5)");
    SHAPE3(n, 8, 4, 4);
    cr_expect_eq(n->a.size, 5);
    cr_expect_eq(n->a.alpha, 1e-4);
    cr_expect_eq(n->a.beta, 0.75);
    cr_expect_eq(n->a.k, 1.0);
    cr_expect_eq(n->nparams, 0);
    front_done(&r);
    n = one(&r, "[8, 4, 4]", "lrn(3, alpha=2e-4, beta=0.5, k=2)");
    cr_expect_eq(n->a.size, 3);
    cr_expect_eq(n->a.alpha, 2e-4);
    cr_expect_eq(n->a.beta, 0.5);
    cr_expect_eq(n->a.k, 2.0);
    front_done(&r);
    one_fails("[8]", "lrn(5)", "expects input [C,H,W]");
    arg_fails("[8, 4, 4]", "lrn(0)", "0", "at least 1");
}

Test(activations, rank_one_and_three) {
    static const char *const acts[] = {
        "relu", "relu6", "sigmoid", "tanh", "leakyrelu", "leakyrelu(0.2)",
        "elu", "elu(0.5)", "prelu", "softmax", "dropout", "dropout(0.1)",
    };
    static const char *const inputs[] = {"[6]", "[6, 3, 2]", "[1]", "[1, 1, 1]"};
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++)
        for (int i = 0; i < 4; i++) {
            FrontResult r = {0};
            Node *n = one(&r, inputs[i], acts[a]);
            Node *in = n->inputs.items[0];
            cr_expect_eq(n->shape.rank, in->shape.rank, "%s on %s", acts[a], inputs[i]);
            cr_expect_eq(memcmp(n->shape.d, in->shape.d, sizeof n->shape.d), 0,
                         "%s on %s", acts[a], inputs[i]);
            bool prelu = !strcmp(acts[a], "prelu");
            cr_expect_eq(n->nparams, prelu ? 1 : 0, "%s", acts[a]);
            cr_expect_eq(n->macs, 0);
            cr_expect_eq(r.c.diags.warnings, 0);
            front_done(&r);
        }
    FrontResult r = {0};
    cr_expect_eq(one(&r, "[4]", "leakyrelu")->a.alpha, 0.01);
    front_done(&r);
    cr_expect_eq(one(&r, "[4]", "leakyrelu(0.2)")->a.alpha, 0.2);
    front_done(&r);
    cr_expect_eq(one(&r, "[4]", "elu")->a.alpha, 1.0);
    front_done(&r);
    cr_expect_eq(one(&r, "[4]", "dropout")->a.p, 0.5);
    front_done(&r);
}

Test(activations, prelu_one_slope_per_channel) {
    FrontResult r = {0};
    Node *n = one(&r, "[4, 3, 3]", "prelu");
    EXPECT_PARAM(n, 0, "alpha", true, 4);
    cr_expect_eq(r.c.graph->learnable_count, 4);
    front_done(&r);
    n = one(&r, "[6]", "prelu");
    EXPECT_PARAM(n, 0, "alpha", true, 6);
    front_done(&r);
}

Test(maxout, divisibility) {
    FrontResult r = {0};
    Node *n = one(&r, "[12, 4, 5]", "maxout(3)");
    SHAPE3(n, 4, 4, 5);
    cr_expect_eq(n->a.pieces, 3);
    front_done(&r);
    n = one(&r, "[12]", "maxout(4)");
    SHAPE1(n, 3);
    front_done(&r);
    n = one(&r, "[12]", "maxout(12)");
    SHAPE1(n, 1);
    front_done(&r);
    n = one(&r, "[5, 2, 2]", "maxout(1)");
    SHAPE3(n, 5, 2, 2);
    front_done(&r);
    one_fails("[10]", "maxout(3)", "maxout with 3 pieces");
    one_fails("[10, 2, 2]", "maxout(4)", "maxout with 4 pieces");
    arg_fails("[10, 2, 2]", "maxout(0)", "0", "at least 1");
    one_fails("[10, 2, 2]", "maxout", "pieces");
}

Test(softmax, both_ranks) {
    FrontResult r = {0};
    SHAPE1(one(&r, "[361]", "softmax"), 361);
    front_done(&r);
    SHAPE3(one(&r, "[10, 2, 3]", "softmax"), 10, 2, 3);
    front_done(&r);
}

Test(dropout, probability_range) {
    static const char *const ok[] = {"dropout(0)", "dropout(0.5)", "dropout(p=0.999)",
                                     "dropout(.25)", "dropout"};
    static const double p[] = {0, 0.5, 0.999, 0.25, 0.5};
    for (int i = 0; i < 5; i++) {
        FrontResult r = {0};
        Node *n = one(&r, "[3, 2, 2]", ok[i]);
        cr_expect_eq(n->a.p, p[i], "%s", ok[i]);
        SHAPE3(n, 3, 2, 2);
        front_done(&r);
    }
    one_fails("[3]", "dropout(1)", "dropout probability");
    one_fails("[3]", "dropout(1.5)", "dropout probability");
    one_fails("[3]", "dropout(-0.1)", "dropout probability");
}

Test(flatten, shapes) {
    FrontResult r = {0};
    SHAPE1(one(&r, "[3, 4, 5]", "flatten"), 60);
    front_done(&r);
    SHAPE1(one(&r, "[7]", "flatten"), 7);
    front_done(&r);
    SHAPE1(one(&r, "[1, 1, 1]", "flatten"), 1);
    front_done(&r);
}

Test(bias, shape_of_input) {
    FrontResult r = {0};
    Node *n = one(&r, "[3, 4, 5]", "bias");
    SHAPE3(n, 3, 4, 5);
    EXPECT_PARAM(n, 0, "bias", true, 3, 4, 5);
    cr_expect_eq(n->param_count, 60);
    front_done(&r);
    n = one(&r, "[361]", "bias");
    SHAPE1(n, 361);
    EXPECT_PARAM(n, 0, "bias", true, 361);
    front_done(&r);
}

/* ---- concat and + ------------------------------------------------------------- */

static Node *two_inputs(FrontResult *r, const char *a, const char *b,
                        const char *expr) {
    char *src = NULL;
    cr_assert(asprintf(&src, "network n {\n    input a: %s\n    input b: %s\n"
                             "    y = %s\n    output y\n}\n", a, b, expr) > 0);
    front_run(r, "t.cnn", src, strlen(src), NULL);
    cr_assert(r->ok, "%s with %s, %s should compile:\n%s", expr, a, b, r->diags);
    free(src);
    return r->c.graph->outputs.items[0];
}

/* `expr` over inputs a and b must fail at line 4, column `col`. */
static void two_fail(const char *a, const char *b, const char *expr, int col,
                     const char *msg) {
    char *src = NULL, where[64];
    cr_assert(asprintf(&src, "network n {\n    input a: %s\n    input b: %s\n"
                             "    y = %s\n    output y\n}\n", a, b, expr) > 0);
    snprintf(where, sizeof where, "t.cnn:4:%d: error: ", col);
    src_fails(src, where, msg);
    free(src);
}

Test(concat, rank_one_and_three) {
    FrontResult r = {0};
    Node *n = two_inputs(&r, "[3]", "[5]", "concat(a, b)");
    SHAPE1(n, 8);
    front_done(&r);
    n = two_inputs(&r, "[2, 4, 4]", "[3, 4, 4]", "concat(a, b, a -> maxpool(1))");
    SHAPE3(n, 7, 4, 4);
    cr_expect_eq(n->inputs.len, 3);
    front_done(&r);
    n = two_inputs(&r, "[2, 4, 4]", "[3, 4, 4]", "concat(b)");
    SHAPE3(n, 3, 4, 4);
    front_done(&r);
    n = two_inputs(&r, "[1]", "[1]", "concat(a, b, a, b, a)");
    SHAPE1(n, 5);
    front_done(&r);
}

Test(concat, mismatches) {
    /* `    y = concat(` : concat at column 9 */
    two_fail("[2, 4, 4]", "[3, 4, 5]", "concat(a, b)", 9,
             "concat joins along channels");
    two_fail("[2, 4, 4]", "[3, 5, 4]", "concat(a, b)", 9, "[3,5,4]");
    two_fail("[2, 4, 4]", "[3, 4, 4]", "concat(a, a, b -> maxpool(2))", 9, "[3,2,2]");
    two_fail("[4]", "[4, 1, 1]", "concat(a, b)", 9, "concat joins along channels");
    two_fail("[4, 1, 1]", "[4]", "concat(a, b)", 9, "concat joins along channels");
    two_fail("[4]", "[4]", "concat(a, 3)", 0 + 19, "tensor");
}

Test(add, equal_shapes_only) {
    FrontResult r = {0};
    Node *n = two_inputs(&r, "[8]", "[8]", "a + b");
    SHAPE1(n, 8);
    cr_expect_eq(n->op, OP_ADD);
    front_done(&r);
    n = two_inputs(&r, "[2, 3, 4]", "[2, 3, 4]", "a + b + a");
    SHAPE3(n, 2, 3, 4);
    front_done(&r);
    /* `    y = a + b` : '+' at column 11 */
    two_fail("[2, 4, 4]", "[2, 4, 5]", "a + b", 11,
             "'+' needs equal shapes, got [2,4,4] and [2,4,5]");
    two_fail("[2, 4, 4]", "[3, 4, 4]", "a + b", 11,
             "'+' needs equal shapes, got [2,4,4] and [3,4,4]");
    two_fail("[8]", "[8, 1, 1]", "a + b", 11, "'+' needs equal shapes, got [8] and [8,1,1]");
    two_fail("[8]", "[9]", "a + b", 11, "'+' needs equal shapes, got [8] and [9]");
    /* the second '+' (column 15) is the one that fails */
    two_fail("[8]", "[8]", "a + b + (a -> dense(3))", 15, "[8] and [3]");
}

/* ---- inputs and sizes ---------------------------------------------------------- */

Test(inputs, ranks) {
    FrontResult r = {0};
    Node *n = one(&r, "[5]", "relu");
    SHAPE1(n->inputs.items[0], 5);
    front_done(&r);
    n = one(&r, "[3, 2, 1]", "relu");
    SHAPE3(n->inputs.items[0], 3, 2, 1);
    front_done(&r);
    src_fails("network n {\n    input i: [3, 8]\n    y = i -> relu\n    output y\n}\n",
              "t.cnn:2:11: error: ", "[N] or [C, H, W]");
    src_fails("network n {\n    input i: [1, 3, 8, 8]\n    y = i -> relu\n    output y\n}\n",
              "t.cnn:2:11: error: ", "[N] or [C, H, W]");
    src_fails("network n {\n    input i: [3, 0, 8]\n    y = i -> relu\n    output y\n}\n",
              "t.cnn:2:", "at least 1");
    src_fails("network n {\n    input i: [2.5]\n    y = i -> relu\n    output y\n}\n",
              "t.cnn:2:", "integer");
}

Test(inputs, sizes_up_to_two_to_the_forty_bytes) {
    FrontResult r = {0};
    /* 65536 * 65536 * 64 floats are exactly 2^40 bytes: allowed */
    Node *n = one(&r, "[65536, 65536, 64]", "relu");
    SHAPE3(n, 65536, 65536, 64);
    front_done(&r);
    src_fails("network n {\n    input i: [65536, 65536, 65]\n    y = i -> relu\n"
              "    output y\n}\n", "t.cnn:2:11: error: ", "2^40");
    src_fails("network n {\n    input i: [4294967296, 4294967296, 4294967296]\n"
              "    y = i -> relu\n    output y\n}\n", "t.cnn:2:11: error: ", "2^40");
    /* a layer whose output or weights are too large is an error at the layer */
    one_fails("[1024]", "dense(1099511627776)", "2^40");
    one_fails("[1048576]", "dense(1048576)", "2^40");
    one_fails("[4, 65536, 65536]", "conv(65, 1)", "2^40");
    /* exactly 2^40 bytes of output is still legal */
    n = one(&r, "[4, 65536, 65536]", "conv(64, 1)");
    SHAPE3(n, 64, 65536, 65536);
    front_done(&r);
    /* 2^20 * 2^16 floats = 2^38 bytes: large, but legal */
    n = one(&r, "[1048576]", "dense(65536, bias=false)");
    cr_expect_eq(n->params[0].count, (int64_t)1 << 36);
    cr_expect_eq(n->macs, (int64_t)1 << 36);
    front_done(&r);
}

/* ---- MAC totals ------------------------------------------------------------------ */

Test(macs, totals) {
    const char *src =
        "network n {\n"
        "    input i: [4, 10, 10]\n"
        "    y = i -> conv(8, 3, groups=2) -> relu -> local(2, (2, 3), stride=2)\n"
        "          -> bn -> dense(5)\n"
        "    output y\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = must_compile(&r, src);
    /* conv: [8,8,8], 2 input channels per group, 3x3 */
    int64_t conv = 8 * 8 * 8 * (4 / 2) * 9;
    /* local: [2,4,3] from 8 channels, 2x3 */
    int64_t local = 2 * pt_out(8, 2, 2, 0, 1) * pt_out(8, 3, 2, 0, 1) * 8 * 6;
    int64_t dense = 5 * 2 * 4 * 3;
    cr_expect_eq(node_named(g, "conv1")->macs, conv);
    cr_expect_eq(node_named(g, "local1")->macs, local);
    SHAPE3(node_named(g, "local1"), 2, 4, 3);
    cr_expect_eq(node_named(g, "dense1")->macs, dense);
    cr_expect_eq(node_named(g, "bn1")->macs, 0);
    cr_expect_eq(g->macs, conv + local + dense);
    front_done(&r);
}
