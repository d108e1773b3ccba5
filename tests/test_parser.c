/* test_parser.c — the parser and the expander on every construct of DSL.md:
 * definitions and network selection, blocks (defaults, nesting, argument
 * kinds), chains, direct and bare calls, repeated stages and nested groups,
 * `+` and `concat`, tuples, `pad=same`, integer arithmetic, unary minus,
 * reals, `;`, comments, rebinding and the `fc` alias. Every graph is checked
 * for node names, node order (= canonical order), shapes and the parameter
 * tensors' names, dims, offsets and learnable flags.
 *
 * All values compared are exact (integers, or doubles parsed from the same
 * decimal text): no tolerances. */
#include "helpers.h"

/* ---- helpers ---------------------------------------------------------------- */

static Graph *compile_net(FrontResult *r, const char *src, const char *network) {
    front_run(r, "t.cnn", src, strlen(src), network);
    cr_assert(r->ok, "expected to compile, got:\n%s\nsource:\n%s", r->diags, src);
    cr_assert_not_null(r->c.graph);
    return r->c.graph;
}

static Node *nth(Graph *g, int i) {
    cr_assert(i >= 0 && i < g->nodes.len, "no node #%d (graph has %d)", i,
              g->nodes.len);
    return g->nodes.items[i];
}

static Node *must_node(Graph *g, const char *name) {
    Node *n = node_named(g, name);
    cr_assert_not_null(n, "no node named '%s'", name);
    return n;
}

static Node *in_of(const Node *n, int i) {
    cr_assert(i < n->inputs.len, "%s has %d inputs, wanted #%d", n->name,
              n->inputs.len, i);
    return n->inputs.items[i];
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

/* The nodes, in graph order, are exactly `names`. */
static void expect_nodes(Graph *g, const char *const *names, int count) {
    cr_expect_eq(g->nodes.len, count, "graph has %d nodes, expected %d",
                 g->nodes.len, count);
    int n = g->nodes.len < count ? g->nodes.len : count;
    for (int i = 0; i < n; i++) {
        Node *nd = g->nodes.items[i];
        cr_expect_str_eq(nd->name, names[i], "node #%d is '%s', expected '%s'",
                         i, nd->name, names[i]);
    }
}
#define EXPECT_NODES(g, ...)                                                   \
    do {                                                                       \
        static const char *const names_[] = {__VA_ARGS__};                     \
        expect_nodes(g, names_, (int)(sizeof names_ / sizeof names_[0]));      \
    } while (0)

static void expect_param(const Node *n, int k, const char *name,
                         bool learnable, int64_t offset, const int64_t *dims,
                         int rank) {
    cr_assert(k < n->nparams, "%s has %d parameter tensors, wanted #%d",
              n->name, n->nparams, k);
    const ParamTensor *p = &n->params[k];
    cr_expect_str_eq(p->name, name, "%s tensor #%d is '%s', expected '%s'",
                     n->name, k, p->name, name);
    cr_expect_eq(p->learnable, learnable, "%s.%s learnable flag", n->name, name);
    cr_expect_eq(p->offset, offset, "%s.%s at offset %lld, expected %lld",
                 n->name, name, (long long)p->offset, (long long)offset);
    cr_expect_eq(p->rank, rank, "%s.%s rank %d, expected %d", n->name, name,
                 p->rank, rank);
    int64_t count = 1;
    for (int i = 0; i < rank && i < p->rank; i++) {
        cr_expect_eq(p->dims[i], dims[i], "%s.%s dim %d is %lld, expected %lld",
                     n->name, name, i, (long long)p->dims[i],
                     (long long)dims[i]);
        count *= dims[i];
    }
    cr_expect_eq(p->count, count, "%s.%s count %lld, expected %lld", n->name,
                 name, (long long)p->count, (long long)count);
}
#define EXPECT_PARAM(n, k, name, learn, off, ...)                              \
    expect_param(n, k, name, learn, off, (const int64_t[]){__VA_ARGS__},       \
                 (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

/* No two nodes share a name. */
static void expect_unique_names(Graph *g) {
    for (int i = 0; i < g->nodes.len; i++)
        for (int j = 0; j < i; j++) {
            const char *a = ((Node *)g->nodes.items[i])->name;
            const char *b = ((Node *)g->nodes.items[j])->name;
            cr_expect_str_neq(a, b, "nodes #%d and #%d are both '%s'", j, i, a);
        }
}

/* The invariants every typed graph keeps: ids are positions, names are
 * unique, inputs come before their users, parameter tensors are laid out
 * back to back in node order, and the totals add up. */
static void expect_layout(Graph *g) {
    int64_t off = 0, learn = 0, macs = 0;
    expect_unique_names(g);
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        cr_expect_eq(n->id, i, "%s has id %d at position %d", n->name, n->id, i);
        for (int k = 0; k < n->inputs.len; k++)
            cr_expect_lt(((Node *)n->inputs.items[k])->id, i,
                         "%s reads a later node", n->name);
        int64_t sum = 0;
        for (int k = 0; k < n->nparams; k++) {
            const ParamTensor *p = &n->params[k];
            cr_expect_eq(p->offset, off, "%s.%s at %lld, expected %lld (packed)",
                         n->name, p->name, (long long)p->offset, (long long)off);
            off += p->count;
            sum += p->count;
            if (p->learnable)
                learn += p->count;
        }
        cr_expect_eq(n->param_count, sum, "%s param_count", n->name);
        macs += n->macs;
    }
    cr_expect_eq(g->param_count, off, "param_count %lld, tensors sum to %lld",
                 (long long)g->param_count, (long long)off);
    cr_expect_eq(g->learnable_count, learn);
    cr_expect_eq(g->macs, macs);
}

/* Column (1-based) of the first `needle` on line `line` of `src`. */
static int column_of(const char *src, int line, const char *needle) {
    const char *p = src;
    for (int l = 1; l < line; l++) {
        p = strchr(p, '\n');
        cr_assert_not_null(p, "source has no line %d", line);
        p++;
    }
    const char *eol = strchr(p, '\n');
    const char *hit = strstr(p, needle);
    cr_assert(hit && (!eol || hit < eol), "'%s' not on line %d", needle, line);
    return (int)(hit - p) + 1;
}

/* `src` must fail with an error at the first `at` on line `line` whose
 * message contains `msg`. */
static void expect_error(const char *src, const char *network, int line,
                         const char *at, const char *msg) {
    FrontResult r = {0};
    front_run(&r, "t.cnn", src, strlen(src), network);
    cr_expect_not(r.ok, "expected an error, compiled:\n%s", src);
    cr_expect_null(r.c.graph, "a failed compilation leaves no graph");
    if (line > 0) {
        char where[64];
        snprintf(where, sizeof where, "t.cnn:%d:%d: error: ", line,
                 column_of(src, line, at));
        cr_expect_not_null(strstr(r.diags, where), "expected '%s' in:\n%s",
                           where, r.diags);
    }
    cr_expect_not_null(strstr(r.diags, msg), "expected '%s' in:\n%s", msg,
                       r.diags);
    front_done(&r);
}

/* ---- the three examples of DSL.md, verbatim ---------------------------------- */

static const char *const lenet5_src =
    "# LeNet-5 (LeCun et al., 1998)\n"
    "network lenet5 {\n"
    "    input img: [1, 32, 32]\n"
    "    f = img -> conv(6, 5) -> relu -> maxpool(2)\n"
    "            -> conv(16, 5) -> relu -> maxpool(2)\n"
    "    logits = f -> dense(120) -> relu -> dense(84) -> relu -> dense(10)\n"
    "    output logits\n"
    "}\n";

static const char *const vgg16_src =
    "# VGG-16: the slides' INPUT -> [[CONV -> RELU]*N -> POOL]*M -> [FC -> RELU]*L, written as is\n"
    "network vgg16 {\n"
    "    input img: [3, 224, 224]\n"
    "    x = img -> (conv(64, 3, pad=1) -> relu) * 2 -> maxpool(2)\n"
    "            -> (conv(128, 3, pad=1) -> relu) * 2 -> maxpool(2)\n"
    "            -> (conv(256, 3, pad=1) -> relu) * 3 -> maxpool(2)\n"
    "            -> (conv(512, 3, pad=1) -> relu) * 3 -> maxpool(2)\n"
    "            -> (conv(512, 3, pad=1) -> relu) * 3 -> maxpool(2)\n"
    "    logits = x -> dense(4096) -> relu -> dropout(0.5)\n"
    "               -> dense(4096) -> relu -> dropout(0.5) -> dense(1000)\n"
    "    output logits\n"
    "}\n";

static const char *const resnet18_src =
    "# ResNet blocks: a block is a named, parameterised sub-network\n"
    "block basic(x, ch) {\n"
    "    y = x -> conv(ch, 3, pad=1, bias=false) -> bn -> relu\n"
    "          -> conv(ch, 3, pad=1, bias=false) -> bn\n"
    "    return relu(y + x)\n"
    "}\n"
    "block basic_down(x, ch) {\n"
    "    y = x -> conv(ch, 3, stride=2, pad=1, bias=false) -> bn -> relu\n"
    "          -> conv(ch, 3, pad=1, bias=false) -> bn\n"
    "    s = x -> conv(ch, 1, stride=2, bias=false) -> bn\n"
    "    return relu(y + s)\n"
    "}\n"
    "network resnet18 {\n"
    "    input img: [3, 224, 224]\n"
    "    x = img -> conv(64, 7, stride=2, pad=3, bias=false) -> bn -> relu\n"
    "            -> maxpool(3, stride=2, pad=1)\n"
    "            -> basic(64) * 2\n"
    "            -> basic_down(128) -> basic(128)\n"
    "            -> basic_down(256) -> basic(256)\n"
    "            -> basic_down(512) -> basic(512)\n"
    "    logits = x -> globalavgpool -> dense(1000)\n"
    "    output logits\n"
    "}\n";

Test(dsl_examples, lenet5) {
    FrontResult r = {0};
    Graph *g = compile_net(&r, lenet5_src, NULL);
    cr_expect_str_eq(g->name, "lenet5");
    EXPECT_NODES(g, "img", "conv1", "relu1", "maxpool1", "conv2", "relu2",
                 "maxpool2", "dense1", "relu3", "dense2", "relu4", "dense3");
    expect_layout(g);
    cr_expect_eq(r.c.diags.warnings, 0, "warnings:\n%s", r.diags);

    Node *img = must_node(g, "img");
    cr_expect_eq(img->op, OP_INPUT);
    cr_expect_eq(g->inputs.len, 1);
    cr_expect_eq(g->inputs.items[0], img);
    SHAPE3(img, 1, 32, 32);
    SHAPE3(must_node(g, "conv1"), 6, 28, 28);
    SHAPE3(must_node(g, "relu1"), 6, 28, 28);
    SHAPE3(must_node(g, "maxpool1"), 6, 14, 14);
    SHAPE3(must_node(g, "conv2"), 16, 10, 10);
    SHAPE3(must_node(g, "maxpool2"), 16, 5, 5);
    SHAPE1(must_node(g, "dense1"), 120);
    SHAPE1(must_node(g, "dense2"), 84);
    SHAPE1(must_node(g, "dense3"), 10);

    EXPECT_PARAM(must_node(g, "conv1"), 0, "weight", true, 0, 6, 1, 5, 5);
    EXPECT_PARAM(must_node(g, "conv1"), 1, "bias", true, 150, 6);
    EXPECT_PARAM(must_node(g, "conv2"), 0, "weight", true, 156, 16, 6, 5, 5);
    EXPECT_PARAM(must_node(g, "conv2"), 1, "bias", true, 2556, 16);
    EXPECT_PARAM(must_node(g, "dense1"), 0, "weight", true, 2572, 120, 400);
    EXPECT_PARAM(must_node(g, "dense1"), 1, "bias", true, 50572, 120);
    EXPECT_PARAM(must_node(g, "dense2"), 0, "weight", true, 50692, 84, 120);
    EXPECT_PARAM(must_node(g, "dense2"), 1, "bias", true, 60772, 84);
    EXPECT_PARAM(must_node(g, "dense3"), 0, "weight", true, 60856, 10, 84);
    EXPECT_PARAM(must_node(g, "dense3"), 1, "bias", true, 61696, 10);
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = nth(g, i);
        bool weighted = n->op == OP_CONV || n->op == OP_DENSE;
        cr_expect_eq(n->nparams, weighted ? 2 : 0, "%s tensors", n->name);
    }
    cr_expect_eq(g->learnable_count, 61706);
    cr_expect_eq(g->param_count, 61706);
    /* 6*28*28*25 + 16*10*10*150 + 400*120 + 120*84 + 84*10 */
    cr_expect_eq(g->macs, 416520);
    cr_expect_eq(g->outputs.len, 1);
    cr_expect_eq(g->outputs.items[0], must_node(g, "dense3"));
    cr_expect_str_eq(g->output_names.items[0], "logits");
    front_done(&r);
}

Test(dsl_examples, vgg16) {
    FrontResult r = {0};
    Graph *g = compile_net(&r, vgg16_src, NULL);
    cr_expect_str_eq(g->name, "vgg16");
    EXPECT_NODES(g, "img",
        "conv1", "relu1", "conv2", "relu2", "maxpool1",
        "conv3", "relu3", "conv4", "relu4", "maxpool2",
        "conv5", "relu5", "conv6", "relu6", "conv7", "relu7", "maxpool3",
        "conv8", "relu8", "conv9", "relu9", "conv10", "relu10", "maxpool4",
        "conv11", "relu11", "conv12", "relu12", "conv13", "relu13", "maxpool5",
        "dense1", "relu14", "dropout1", "dense2", "relu15", "dropout2", "dense3");
    expect_layout(g);
    cr_expect_eq(r.c.diags.warnings, 0, "warnings:\n%s", r.diags);

    /* each repetition has its own weights, and `* 2` repeats conv -> relu */
    Node *c1 = must_node(g, "conv1"), *c2 = must_node(g, "conv2");
    cr_expect_eq(in_of(c2, 0), must_node(g, "relu1"));
    cr_expect_eq(in_of(must_node(g, "relu1"), 0), c1);
    EXPECT_PARAM(c1, 0, "weight", true, 0, 64, 3, 3, 3);
    EXPECT_PARAM(c1, 1, "bias", true, 1728, 64);
    EXPECT_PARAM(c2, 0, "weight", true, 1792, 64, 64, 3, 3);
    EXPECT_PARAM(c2, 1, "bias", true, 38656, 64);
    SHAPE3(c2, 64, 224, 224);
    SHAPE3(must_node(g, "maxpool1"), 64, 112, 112);
    SHAPE3(must_node(g, "maxpool2"), 128, 56, 56);
    SHAPE3(must_node(g, "maxpool3"), 256, 28, 28);
    SHAPE3(must_node(g, "conv13"), 512, 14, 14);
    SHAPE3(must_node(g, "maxpool5"), 512, 7, 7);
    Node *d1 = must_node(g, "dense1");
    SHAPE1(d1, 4096);
    /* the convolutions hold 14,714,688 parameters */
    EXPECT_PARAM(d1, 0, "weight", true, 14714688, 4096, 25088);
    EXPECT_PARAM(must_node(g, "dense3"), 0, "weight", true,
                 138357544 - 4096000 - 1000, 1000, 4096);
    cr_expect_eq(must_node(g, "dropout1")->a.p, 0.5);
    cr_expect_eq(must_node(g, "dropout2")->a.p, 0.5);
    cr_expect_eq(must_node(g, "maxpool3")->a.stride[0], 2);
    cr_expect_eq(g->learnable_count, 138357544);
    cr_expect_eq(g->param_count, 138357544);
    cr_expect_eq(g->macs, 15470264320LL);
    front_done(&r);
}

Test(dsl_examples, resnet18) {
    FrontResult r = {0};
    Graph *g = compile_net(&r, resnet18_src, NULL);
    cr_expect_str_eq(g->name, "resnet18");
    expect_layout(g);
    cr_expect_eq(r.c.diags.warnings, 0, "warnings:\n%s", r.diags);

    /* the full node order: stem, eight blocks expanded in place, head */
    static const char *const basic[] = {"conv1", "bn1", "relu1", "conv2",
                                        "bn2", "add1", "relu2"};
    static const char *const down[] = {"conv1", "bn1", "relu1", "conv2", "bn2",
                                       "conv3", "bn3", "add1", "relu2"};
    static const char *const blocks[] = {"basic1", "basic2", "basic_down1",
                                         "basic3", "basic_down2", "basic4",
                                         "basic_down3", "basic5"};
    char names[80][48];
    const char *expected[80];
    int n = 0;
    const char *stem[] = {"img", "conv1", "bn1", "relu1", "maxpool1"};
    for (int i = 0; i < 5; i++)
        snprintf(names[n++], 48, "%s", stem[i]);
    for (int b = 0; b < 8; b++) {
        bool is_down = !strncmp(blocks[b], "basic_down", 10);
        const char *const *body = is_down ? down : basic;
        int len = is_down ? 9 : 7;
        for (int i = 0; i < len; i++)
            snprintf(names[n++], 48, "%s.%s", blocks[b], body[i]);
    }
    snprintf(names[n++], 48, "globalavgpool1");
    snprintf(names[n++], 48, "dense1");
    for (int i = 0; i < n; i++)
        expected[i] = names[i];
    cr_expect_eq(n, 69);
    expect_nodes(g, expected, n);

    SHAPE3(must_node(g, "conv1"), 64, 112, 112);
    SHAPE3(must_node(g, "maxpool1"), 64, 56, 56);
    SHAPE3(must_node(g, "basic2.relu2"), 64, 56, 56);
    SHAPE3(must_node(g, "basic_down1.conv1"), 128, 28, 28);
    SHAPE3(must_node(g, "basic_down1.conv3"), 128, 28, 28);
    SHAPE3(must_node(g, "basic_down2.add1"), 256, 14, 14);
    SHAPE3(must_node(g, "basic_down3.add1"), 512, 7, 7);
    SHAPE3(must_node(g, "basic5.relu2"), 512, 7, 7);
    SHAPE3(must_node(g, "globalavgpool1"), 512, 1, 1);
    SHAPE1(must_node(g, "dense1"), 1000);

    /* y + x inside basic1 adds its bn2 and the block's argument */
    Node *add = must_node(g, "basic1.add1");
    cr_expect_eq(add->op, OP_ADD);
    cr_expect_eq(in_of(add, 0), must_node(g, "basic1.bn2"));
    cr_expect_eq(in_of(add, 1), must_node(g, "maxpool1"));
    cr_expect_eq(in_of(must_node(g, "basic1.relu2"), 0), add);
    Node *dadd = must_node(g, "basic_down1.add1");
    cr_expect_eq(in_of(dadd, 0), must_node(g, "basic_down1.bn2"));
    cr_expect_eq(in_of(dadd, 1), must_node(g, "basic_down1.bn3"));
    cr_expect_eq(in_of(must_node(g, "basic_down1.conv1"), 0),
                 must_node(g, "basic2.relu2"));
    cr_expect_eq(in_of(must_node(g, "basic_down1.conv3"), 0),
                 must_node(g, "basic2.relu2"));
    cr_expect_str_eq(must_node(g, "basic3.conv1")->site->block, "basic");
    cr_expect_null(must_node(g, "conv1")->site);

    Node *bn1 = must_node(g, "bn1");
    EXPECT_PARAM(must_node(g, "conv1"), 0, "weight", true, 0, 64, 3, 7, 7);
    cr_expect_eq(must_node(g, "conv1")->nparams, 1, "bias=false");
    EXPECT_PARAM(bn1, 0, "gamma", true, 9408, 64);
    EXPECT_PARAM(bn1, 1, "beta", true, 9472, 64);
    EXPECT_PARAM(bn1, 2, "running_mean", false, 9536, 64);
    EXPECT_PARAM(bn1, 3, "running_var", false, 9600, 64);
    EXPECT_PARAM(must_node(g, "basic1.conv1"), 0, "weight", true, 9664,
                 64, 64, 3, 3);
    EXPECT_PARAM(must_node(g, "basic1.bn1"), 0, "gamma", true, 46528, 64);
    EXPECT_PARAM(must_node(g, "basic_down1.conv1"), 0, "weight", true, 158144,
                 128, 64, 3, 3);
    EXPECT_PARAM(must_node(g, "basic_down1.conv2"), 0, "weight", true, 232384,
                 128, 128, 3, 3);
    EXPECT_PARAM(must_node(g, "basic_down1.conv3"), 0, "weight", true, 380352,
                 128, 64, 1, 1);
    EXPECT_PARAM(must_node(g, "dense1"), 0, "weight", true, 11186112, 1000, 512);
    EXPECT_PARAM(must_node(g, "dense1"), 1, "bias", true, 11698112, 1000);
    cr_expect_eq(g->learnable_count, 11689512);
    cr_expect_eq(g->param_count, 11699112);
    front_done(&r);
}

/* ---- definitions and --network ----------------------------------------------- */

static const char *const three_nets =
    "network first { input a: [4]; y = a -> dense(3); output y }\n"
    "block twice(x, n) { return x -> dense(n) -> dense(n) }\n"
    "network second {\n"
    "    input b: [2, 6, 6]\n"
    "    y = b -> later(5)\n"
    "    output y\n"
    "}\n"
    "# a block defined after the network that uses it\n"
    "block later(x, k) { return x -> conv(k, 3) }\n"
    "network third { input c: [7]; y = c -> twice(2); output y }\n";

Test(networks, default_is_last) {
    FrontResult r = {0};
    Graph *g = compile_net(&r, three_nets, NULL);
    cr_expect_str_eq(g->name, "third");
    EXPECT_NODES(g, "c", "twice1.dense1", "twice1.dense2");
    SHAPE1(must_node(g, "twice1.dense2"), 2);
    EXPECT_PARAM(must_node(g, "twice1.dense1"), 0, "weight", true, 0, 2, 7);
    EXPECT_PARAM(must_node(g, "twice1.dense2"), 0, "weight", true, 16, 2, 2);
    front_done(&r);
}

Test(networks, select_each) {
    FrontResult r = {0};
    Graph *g = compile_net(&r, three_nets, "first");
    cr_expect_str_eq(g->name, "first");
    EXPECT_NODES(g, "a", "dense1");
    SHAPE1(must_node(g, "dense1"), 3);
    front_done(&r);

    g = compile_net(&r, three_nets, "second");
    cr_expect_str_eq(g->name, "second");
    EXPECT_NODES(g, "b", "later1.conv1");
    SHAPE3(must_node(g, "later1.conv1"), 5, 4, 4);
    EXPECT_PARAM(must_node(g, "later1.conv1"), 0, "weight", true, 0, 5, 2, 3, 3);
    front_done(&r);

    g = compile_net(&r, three_nets, "third");
    cr_expect_str_eq(g->name, "third");
    front_done(&r);
}

Test(networks, unknown_name) {
    expect_error(three_nets, "fourth", 0, NULL, "fourth");
    /* a block is not a network */
    expect_error(three_nets, "twice", 0, NULL, "twice");
}

Test(networks, every_definition_is_name_checked) {
    /* an unused value in a network that is not selected is still an error */
    const char *src =
        "network other {\n"
        "    input a: [4]\n"
        "    unused = a -> relu\n"
        "    y = a -> relu\n"
        "    output y\n"
        "}\n"
        "network main { input b: [4]; y = b -> relu; output y }\n";
    expect_error(src, "main", 3, "unused", "value 'unused' is never used");
    /* ... and so is a block nobody calls that names an unknown layer */
    const char *src2 =
        "block orphan(x) { return x -> frobnicate }\n"
        "network main { input b: [4]; y = b -> relu; output y }\n";
    expect_error(src2, NULL, 1, "frobnicate", "frobnicate");
}

Test(networks, shapes_checked_only_for_the_selected_network) {
    /* `bad` has a shape error (conv on a vector), `good` is fine */
    const char *src =
        "network bad { input a: [10]; y = a -> conv(4, 3); output y }\n"
        "network good { input a: [10]; y = a -> relu; output y }\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, "good");
    cr_expect_str_eq(g->name, "good");
    front_done(&r);
    g = compile_net(&r, src, NULL);
    cr_expect_str_eq(g->name, "good");
    front_done(&r);
    expect_error(src, "bad", 1, "conv",
                 "conv expects input [C,H,W] but 'a' has shape [10]");
}

Test(networks, no_network_is_an_error) {
    expect_error("block b(x) { return x -> relu }\n", NULL, 0, NULL, "error");
}

/* ---- blocks -------------------------------------------------------------------- */

Test(blocks, defaults_use_earlier_params) {
    const char *src =
        "block bottle(x, ch, mid=ch/4, k=3, p=(k-1)/2) {\n"
        "    return x -> conv(mid, 1) -> relu -> conv(mid, k, pad=p) -> conv(ch, 1)\n"
        "}\n"
        "network n {\n"
        "    input i: [64, 9, 9]\n"
        "    a = i -> bottle(64)\n"                 /* mid 16, k 3, pad 1 */
        "    b = a -> bottle(64, mid=8, k=5)\n"     /* pad 2 from k */
        "    c = b -> bottle(10, p=0)\n"            /* mid 10/4 = 2 */
        "    output c\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "i",
                 "bottle1.conv1", "bottle1.relu1", "bottle1.conv2", "bottle1.conv3",
                 "bottle2.conv1", "bottle2.relu1", "bottle2.conv2", "bottle2.conv3",
                 "bottle3.conv1", "bottle3.relu1", "bottle3.conv2", "bottle3.conv3");
    expect_layout(g);
    Node *b1c2 = must_node(g, "bottle1.conv2");
    cr_expect_eq(b1c2->a.units, 16);
    cr_expect_eq(b1c2->a.pad[0], 1);
    SHAPE3(b1c2, 16, 9, 9);
    EXPECT_PARAM(must_node(g, "bottle1.conv1"), 0, "weight", true, 0, 16, 64, 1, 1);
    Node *b2c2 = must_node(g, "bottle2.conv2");
    cr_expect_eq(b2c2->a.units, 8);
    cr_expect_eq(b2c2->a.kernel[0], 5);
    cr_expect_eq(b2c2->a.pad[0], 2);
    SHAPE3(b2c2, 8, 9, 9);
    Node *b3c1 = must_node(g, "bottle3.conv1");
    cr_expect_eq(b3c1->a.units, 2, "10/4 rounds down to 2");
    Node *b3c2 = must_node(g, "bottle3.conv2");
    cr_expect_eq(b3c2->a.pad[0], 0);
    SHAPE3(b3c2, 2, 7, 7);
    SHAPE3(must_node(g, "bottle3.conv3"), 10, 7, 7);
    front_done(&r);
}

Test(blocks, calling_blocks) {
    const char *src =
        "block unit(x, ch) { return x -> conv(ch, 3, pad=1) -> relu }\n"
        "block pair(x, ch) {\n"
        "    y = x -> unit(ch)\n"
        "    return y -> unit(ch * 2)\n"
        "}\n"
        "block stage(x, ch) { return x -> pair(ch) -> maxpool(2) }\n"
        "network n {\n"
        "    input i: [3, 16, 16]\n"
        "    x = i -> stage(4) -> stage(8)\n"
        "    output x\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "i",
                 "stage1.pair1.unit1.conv1", "stage1.pair1.unit1.relu1",
                 "stage1.pair1.unit2.conv1", "stage1.pair1.unit2.relu1",
                 "stage1.maxpool1",
                 "stage2.pair1.unit1.conv1", "stage2.pair1.unit1.relu1",
                 "stage2.pair1.unit2.conv1", "stage2.pair1.unit2.relu1",
                 "stage2.maxpool1");
    expect_layout(g);
    SHAPE3(must_node(g, "stage1.pair1.unit2.conv1"), 8, 16, 16);
    SHAPE3(must_node(g, "stage1.maxpool1"), 8, 8, 8);
    SHAPE3(must_node(g, "stage2.pair1.unit1.conv1"), 8, 8, 8);
    SHAPE3(must_node(g, "stage2.pair1.unit2.conv1"), 16, 8, 8);
    SHAPE3(must_node(g, "stage2.maxpool1"), 16, 4, 4);
    EXPECT_PARAM(must_node(g, "stage1.pair1.unit2.conv1"), 0, "weight", true,
                 4 * 27 + 4, 8, 4, 3, 3);

    /* the call chain, innermost first */
    const CallSite *s = must_node(g, "stage2.pair1.unit2.conv1")->site;
    cr_assert_not_null(s);
    cr_expect_str_eq(s->block, "unit");
    cr_expect_eq(s->loc.line, 4);
    cr_assert_not_null(s->parent);
    cr_expect_str_eq(s->parent->block, "pair");
    cr_expect_eq(s->parent->loc.line, 6);
    cr_assert_not_null(s->parent->parent);
    cr_expect_str_eq(s->parent->parent->block, "stage");
    cr_expect_eq(s->parent->parent->loc.line, 9);
    cr_expect_eq(s->parent->parent->loc.col, column_of(src, 9, "stage(8)"));
    cr_expect_null(s->parent->parent->parent);
    front_done(&r);
}

Test(blocks, argument_kinds) {
    /* tensors, integers, tuples and identifiers as block arguments */
    const char *src =
        "block join(x, other, k, p, b) {\n"
        "    y = x -> conv(4, k, pad=p, bias=b)\n"
        "    z = other -> conv(4, k, pad=p, bias=b)\n"
        "    return y + z\n"
        "}\n"
        "network n {\n"
        "    input a: [2, 8, 8]\n"
        "    input c: [3, 8, 8]\n"
        "    s = a -> join(c, (3, 1), same, false)\n"
        "    t = join(a, c, k=(1, 5), p=(0, 2), b=true)\n"
        "    output s, t\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "a", "c", "join1.conv1", "join1.conv2", "join1.add1",
                 "join2.conv1", "join2.conv2", "join2.add1");
    expect_layout(g);
    Node *c1 = must_node(g, "join1.conv1");
    cr_expect_eq(in_of(c1, 0), must_node(g, "a"));
    cr_expect_eq(in_of(must_node(g, "join1.conv2"), 0), must_node(g, "c"));
    cr_expect(c1->a.pad_same);
    cr_expect_eq(c1->a.kernel[0], 3);
    cr_expect_eq(c1->a.kernel[1], 1);
    cr_expect_not(c1->a.bias);
    cr_expect_eq(c1->nparams, 1);
    SHAPE3(c1, 4, 8, 8);
    EXPECT_PARAM(c1, 0, "weight", true, 0, 4, 2, 3, 1);
    EXPECT_PARAM(must_node(g, "join1.conv2"), 0, "weight", true, 24, 4, 3, 3, 1);
    Node *d1 = must_node(g, "join2.conv1");
    cr_expect(d1->a.bias);
    cr_expect_not(d1->a.pad_same);
    cr_expect_eq(d1->a.pad[1], 2);
    SHAPE3(d1, 4, 8, 8);
    EXPECT_PARAM(d1, 0, "weight", true, 60, 4, 2, 1, 5);
    EXPECT_PARAM(d1, 1, "bias", true, 100, 4);
    cr_expect_eq(g->outputs.len, 2);
    cr_expect_eq(g->outputs.items[0], must_node(g, "join1.add1"));
    cr_expect_eq(g->outputs.items[1], must_node(g, "join2.add1"));
    cr_expect_str_eq(g->output_names.items[0], "s");
    cr_expect_str_eq(g->output_names.items[1], "t");
    front_done(&r);
}

Test(blocks, errors) {
    expect_error("block b(x) { return x -> b }\n"
                 "network n { input i: [4]; y = i -> b; output y }\n",
                 NULL, 1, "b }", "calls itself");
    expect_error("block p(x) { return x -> q }\n"
                 "block q(x) { return x -> p }\n"
                 "network n { input i: [4]; y = i -> p; output y }\n",
                 NULL, 0, NULL, "calls itself");
    expect_error("block b(x, ch) { return x -> dense(ch) }\n"
                 "network n { input i: [4]; y = i -> b; output y }\n",
                 NULL, 2, "b;", "ch");
    expect_error("block b(x, ch) { return x -> dense(ch) }\n"
                 "network n { input i: [4]; y = i -> b(2, 3); output y }\n",
                 NULL, 2, "3", "too many");
}

/* ---- calls ------------------------------------------------------------------------ */

Test(calls, bare_names) {
    const char *src =
        "block head(x, units=3) { return x -> flatten -> dense(units) }\n"
        "network n {\n"
        "    input i: [2, 4, 4]\n"
        "    y = i -> bn -> relu -> globalavgpool -> head -> softmax\n"
        "    output y\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "i", "bn1", "relu1", "globalavgpool1", "head1.flatten1",
                 "head1.dense1", "softmax1");
    expect_layout(g);
    SHAPE3(must_node(g, "globalavgpool1"), 2, 1, 1);
    SHAPE1(must_node(g, "head1.flatten1"), 2);
    SHAPE1(must_node(g, "softmax1"), 3);
    cr_expect_eq(must_node(g, "bn1")->a.eps, 1e-5);
    cr_expect_eq(must_node(g, "bn1")->a.momentum, 0.1);
    front_done(&r);
}

Test(calls, direct_equals_chain) {
    const char *src =
        "block blk(x, k) { return x -> conv(k, 1) }\n"
        "network n {\n"
        "    input x: [3, 10, 10]\n"
        "    a = conv(x, 32, 3)\n"
        "    b = x -> conv(32, 3)\n"
        "    c = relu(a + b)\n"
        "    d = blk(c, 5)\n"
        "    e = concat(d, c -> blk(7))\n"
        "    output e\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "x", "conv1", "conv2", "add1", "relu1", "blk1.conv1",
                 "blk2.conv1", "concat1");
    expect_layout(g);
    Node *a = must_node(g, "conv1"), *b = must_node(g, "conv2");
    cr_expect_eq(memcmp(&a->a, &b->a, sizeof a->a), 0,
                 "conv(x, 32, 3) and x -> conv(32, 3) have equal attributes");
    cr_expect_eq(in_of(a, 0), must_node(g, "x"));
    cr_expect_eq(in_of(b, 0), must_node(g, "x"));
    SHAPE3(a, 32, 8, 8);
    SHAPE3(b, 32, 8, 8);
    EXPECT_PARAM(a, 0, "weight", true, 0, 32, 3, 3, 3);
    EXPECT_PARAM(b, 0, "weight", true, 896, 32, 3, 3, 3);
    Node *relu = must_node(g, "relu1");
    cr_expect_eq(in_of(relu, 0), must_node(g, "add1"));
    SHAPE3(must_node(g, "blk1.conv1"), 5, 8, 8);
    SHAPE3(must_node(g, "concat1"), 12, 8, 8);
    front_done(&r);
}

Test(calls, named_arguments_any_order) {
    const char *src =
        "network n {\n"
        "    input x: [3, 10, 10]\n"
        "    a = x -> conv(filters=4, kernel=3, stride=2, pad=1)\n"
        "    b = x -> conv(4, 3, pad=1, stride=2)\n"
        "    c = conv(x, 4, pad=1, kernel=3, stride=2)\n"
        "    output a, b, c\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    Node *a = must_node(g, "conv1"), *b = must_node(g, "conv2"),
         *c = must_node(g, "conv3");
    cr_expect_eq(memcmp(&a->a, &b->a, sizeof a->a), 0);
    cr_expect_eq(memcmp(&a->a, &c->a, sizeof a->a), 0);
    SHAPE3(a, 4, 5, 5);
    front_done(&r);
    expect_error("network n { input x: [3, 10, 10]; y = x -> conv(4, pad=1, 3); "
                 "output y }\n", NULL, 1, "3)", "positional");
    expect_error("network n { input x: [3, 10, 10]; y = x -> conv(4, 3, filters=2); "
                 "output y }\n", NULL, 1, "filters", "twice");
    expect_error("network n { input x: [3, 10, 10]; y = x -> conv(4); output y }\n",
                 NULL, 1, "conv", "kernel");
}

Test(calls, fc_alias) {
    const char *src =
        "network n {\n"
        "    input x: [2, 3, 4]\n"
        "    y = x -> fc(10) -> relu -> fc(5, bias=false)\n"
        "    output y\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "x", "dense1", "relu1", "dense2");
    Node *d = must_node(g, "dense1");
    cr_expect_eq(d->op, OP_DENSE);
    cr_expect_eq(d->layer, layer_find("dense"));
    cr_expect_eq(layer_find("fc"), layer_find("dense"));
    SHAPE1(d, 10);
    EXPECT_PARAM(d, 0, "weight", true, 0, 10, 24);
    EXPECT_PARAM(d, 1, "bias", true, 240, 10);
    Node *d2 = must_node(g, "dense2");
    cr_expect_eq(d2->nparams, 1);
    EXPECT_PARAM(d2, 0, "weight", true, 250, 5, 10);
    expect_layout(g);
    front_done(&r);
}

/* ---- repeated stages and groups -------------------------------------------- */

Test(repeat, single_stage) {
    const char *src =
        "network n {\n"
        "    input x: [2, 8, 8]\n"
        "    y = x -> conv(2, 3, pad=1) * 3 -> relu * 1\n"
        "    output y\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "x", "conv1", "conv2", "conv3", "relu1");
    expect_layout(g);
    cr_expect_eq(in_of(must_node(g, "conv2"), 0), must_node(g, "conv1"));
    cr_expect_eq(in_of(must_node(g, "conv3"), 0), must_node(g, "conv2"));
    for (int i = 1; i <= 3; i++)
        EXPECT_PARAM(nth(g, i), 0, "weight", true, (i - 1) * 38, 2, 2, 3, 3);
    cr_expect_eq(g->param_count, 3 * 38);
    front_done(&r);
}

Test(repeat, nested_groups) {
    const char *src =
        "network n {\n"
        "    input x: [3, 16, 16]\n"
        "    y = x -> ((conv(8, 3, pad=1) -> relu) * 2 -> maxpool(2)) * 2\n"
        "    output y\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "x", "conv1", "relu1", "conv2", "relu2", "maxpool1",
                 "conv3", "relu3", "conv4", "relu4", "maxpool2");
    expect_layout(g);
    SHAPE3(must_node(g, "conv2"), 8, 16, 16);
    SHAPE3(must_node(g, "maxpool1"), 8, 8, 8);
    SHAPE3(must_node(g, "conv3"), 8, 8, 8);
    SHAPE3(must_node(g, "maxpool2"), 8, 4, 4);
    EXPECT_PARAM(must_node(g, "conv1"), 0, "weight", true, 0, 8, 3, 3, 3);
    EXPECT_PARAM(must_node(g, "conv2"), 0, "weight", true, 224, 8, 8, 3, 3);
    EXPECT_PARAM(must_node(g, "conv3"), 0, "weight", true, 224 + 584, 8, 8, 3, 3);
    EXPECT_PARAM(must_node(g, "conv4"), 0, "weight", true, 224 + 2 * 584, 8, 8, 3, 3);
    cr_expect_eq(in_of(must_node(g, "conv3"), 0), must_node(g, "maxpool1"));
    front_done(&r);
}

Test(repeat, three_levels) {
    const char *src =
        "network n {\n"
        "    input x: [4]\n"
        "    y = x -> (((dense(4) -> relu) * 2 -> tanh) * 2 -> sigmoid) * 2\n"
        "    output y\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    /* 2 * (2 * (2 * 2 + 1) + 1) = 22 layers */
    cr_expect_eq(g->nodes.len, 23);
    cr_expect_str_eq(nth(g, 5)->name, "tanh1");
    cr_expect_str_eq(nth(g, 11)->name, "sigmoid1");
    cr_expect_str_eq(nth(g, 22)->name, "sigmoid2");
    cr_expect_str_eq(nth(g, 19)->name, "dense8");
    cr_expect_eq(g->param_count, 8 * 20);
    expect_layout(g);
    front_done(&r);
}

Test(repeat, count_from_block_params) {
    const char *src =
        "block stack(x, ch, n, extra=1) {\n"
        "    return x -> (conv(ch, 3, pad=1) -> relu) * n -> dense(ch) * (n + extra)\n"
        "}\n"
        "block fcs(x, ch, n) { return x -> (dense(ch) -> relu) * n }\n"
        "block twice(x, m) { return x -> fcs(2, m) * m }\n"
        "network n {\n"
        "    input x: [1, 4, 4]\n"
        "    y = x -> stack(3, 2)\n"
        "    z = x -> stack(2, n=1, extra=0)\n"
        "    output y, z\n"
        "}\n"
        "network other {\n"
        "    input x: [2, 4, 4]\n"
        "    y = x -> twice(2)\n"
        "    output y\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, "n");
    /* stack(3, 2): 2 x (conv, relu), dense * 3; stack(2, n=1, extra=0):
     * conv, relu, dense * 1 */
    EXPECT_NODES(g, "x", "stack1.conv1", "stack1.relu1", "stack1.conv2",
                 "stack1.relu2", "stack1.dense1", "stack1.dense2",
                 "stack1.dense3", "stack2.conv1", "stack2.relu1", "stack2.dense1");
    cr_expect_eq(must_node(g, "stack2.conv1")->a.units, 2);
    front_done(&r);

    g = compile_net(&r, src, "other");
    /* twice(2): fcs(2, 2) twice; each: 2 x (dense, relu) */
    EXPECT_NODES(g, "x", "twice1.fcs1.dense1", "twice1.fcs1.relu1",
                 "twice1.fcs1.dense2", "twice1.fcs1.relu2", "twice1.fcs2.dense1",
                 "twice1.fcs2.relu1", "twice1.fcs2.dense2", "twice1.fcs2.relu2");
    EXPECT_PARAM(must_node(g, "twice1.fcs1.dense1"), 0, "weight", true, 0, 2, 32);
    front_done(&r);
}

Test(repeat, block_call_repeated) {
    const char *src =
        "block res(x) { return relu((x -> dense(4)) + x) }\n"
        "network n {\n"
        "    input x: [4]\n"
        "    y = x -> res * 3 -> res\n"
        "    z = y -> res(  ) * 2\n"
        "    output z\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "x",
                 "res1.dense1", "res1.add1", "res1.relu1",
                 "res2.dense1", "res2.add1", "res2.relu1",
                 "res3.dense1", "res3.add1", "res3.relu1",
                 "res4.dense1", "res4.add1", "res4.relu1",
                 "res5.dense1", "res5.add1", "res5.relu1",
                 "res6.dense1", "res6.add1", "res6.relu1");
    cr_expect_eq(in_of(must_node(g, "res2.add1"), 1), must_node(g, "res1.relu1"));
    cr_expect_eq(in_of(must_node(g, "res5.dense1"), 0), must_node(g, "res4.relu1"));
    cr_expect_eq(g->param_count, 6 * 20);
    expect_layout(g);
    front_done(&r);
}

Test(repeat, counts_below_one_are_errors) {
    expect_error("network n { input x: [4]; y = x -> relu * 0; output y }\n",
                 NULL, 1, "0;", "at least 1");
    expect_error("block b(x, n) { return x -> relu * n }\n"
                 "network n { input x: [4]; y = x -> b(1 - 2); output y }\n",
                 NULL, 0, NULL, "at least 1");
    expect_error("block b(x, n) { return x -> relu * n }\n"
                 "network n { input x: [4]; y = x -> b(2.0); output y }\n",
                 NULL, 0, NULL, "error");
}

/* ---- `+` and concat ---------------------------------------------------------- */

Test(operators, plus_several_terms) {
    const char *src =
        "network n {\n"
        "    input x: [3, 4, 4]\n"
        "    a = x -> conv(2, 1)\n"
        "    s = a + a + (x -> conv(2, 1)) + (x -> conv(2, 1) -> relu)\n"
        "    output s\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    /* left to right, each term before the sum that uses it */
    EXPECT_NODES(g, "x", "conv1", "add1", "conv2", "add2", "conv3", "relu1",
                 "add3");
    expect_layout(g);
    Node *add1 = must_node(g, "add1"), *add2 = must_node(g, "add2"),
         *add3 = must_node(g, "add3");
    cr_expect_eq(in_of(add1, 0), must_node(g, "conv1"));
    cr_expect_eq(in_of(add1, 1), must_node(g, "conv1"));
    cr_expect_eq(in_of(add2, 0), add1);
    cr_expect_eq(in_of(add2, 1), must_node(g, "conv2"));
    cr_expect_eq(in_of(add3, 0), add2);
    cr_expect_eq(in_of(add3, 1), must_node(g, "relu1"));
    SHAPE3(add3, 2, 4, 4);
    cr_expect_eq(g->outputs.items[0], add3);
    cr_expect_eq(add1->loc.line, 4);
    cr_expect_eq(add1->loc.col, column_of(src, 4, "+"));
    EXPECT_PARAM(must_node(g, "conv2"), 0, "weight", true, 8, 2, 3, 1, 1);
    EXPECT_PARAM(must_node(g, "conv3"), 0, "weight", true, 16, 2, 3, 1, 1);
    front_done(&r);
}

Test(operators, concat_several) {
    const char *src =
        "network n {\n"
        "    input x: [3, 4, 4]\n"
        "    input v: [5]\n"
        "    a = x -> conv(2, 1)\n"
        "    c = concat(a, x, a -> relu, x -> conv(7, 1))\n"
        "    w = concat(v, v -> dense(2), v)\n"
        "    d = x -> concat(c)\n"
        "    output d, w\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "x", "v", "conv1", "relu1", "conv2", "concat1", "dense1",
                 "concat2", "concat3");
    expect_layout(g);
    Node *c = must_node(g, "concat1");
    cr_expect_eq(c->inputs.len, 4);
    cr_expect_eq(in_of(c, 0), must_node(g, "conv1"));
    cr_expect_eq(in_of(c, 1), must_node(g, "x"));
    cr_expect_eq(in_of(c, 2), must_node(g, "relu1"));
    cr_expect_eq(in_of(c, 3), must_node(g, "conv2"));
    SHAPE3(c, 2 + 3 + 2 + 7, 4, 4);
    Node *w = must_node(g, "concat2");
    cr_expect_eq(w->inputs.len, 3);
    SHAPE1(w, 12);
    Node *d = must_node(g, "concat3");
    cr_expect_eq(d->inputs.len, 2);
    cr_expect_eq(in_of(d, 0), must_node(g, "x"));
    cr_expect_eq(in_of(d, 1), c);
    SHAPE3(d, 17, 4, 4);
    front_done(&r);
}

/* ---- canonical order: arguments before the layer, left to right ------------- */

Test(canonical_order, concat_branches) {
    const char *src =
        "network n {\n"
        "    input a: [3, 4, 4]\n"
        "    input b: [5, 4, 4]\n"
        "    y = concat(a -> conv(2, 1), b -> conv(6, 3, pad=1) -> bn)\n"
        "    output y\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "a", "b", "conv1", "conv2", "bn1", "concat1");
    expect_layout(g);
    Node *c1 = must_node(g, "conv1"), *c2 = must_node(g, "conv2");
    cr_expect_eq(in_of(c1, 0), must_node(g, "a"));
    cr_expect_eq(in_of(c2, 0), must_node(g, "b"));
    EXPECT_PARAM(c1, 0, "weight", true, 0, 2, 3, 1, 1);
    EXPECT_PARAM(c1, 1, "bias", true, 6, 2);
    EXPECT_PARAM(c2, 0, "weight", true, 8, 6, 5, 3, 3);
    EXPECT_PARAM(c2, 1, "bias", true, 278, 6);
    Node *bn = must_node(g, "bn1");
    EXPECT_PARAM(bn, 0, "gamma", true, 284, 6);
    EXPECT_PARAM(bn, 1, "beta", true, 290, 6);
    EXPECT_PARAM(bn, 2, "running_mean", false, 296, 6);
    EXPECT_PARAM(bn, 3, "running_var", false, 302, 6);
    cr_expect_eq(g->param_count, 308);
    cr_expect_eq(g->learnable_count, 296);
    SHAPE3(must_node(g, "concat1"), 8, 4, 4);
    front_done(&r);
}

Test(canonical_order, plus_branches) {
    const char *src =
        "network n {\n"
        "    input x: [3, 4, 4]\n"
        "    input y: [2, 6, 6]\n"
        "    z = (x -> conv(4, 1)) + (y -> conv(4, 3))\n"
        "    output z\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "x", "y", "conv1", "conv2", "add1");
    expect_layout(g);
    Node *c1 = must_node(g, "conv1"), *c2 = must_node(g, "conv2");
    cr_expect_eq(in_of(c1, 0), must_node(g, "x"));
    cr_expect_eq(in_of(c2, 0), must_node(g, "y"));
    EXPECT_PARAM(c1, 0, "weight", true, 0, 4, 3, 1, 1);
    EXPECT_PARAM(c1, 1, "bias", true, 12, 4);
    EXPECT_PARAM(c2, 0, "weight", true, 16, 4, 2, 3, 3);
    EXPECT_PARAM(c2, 1, "bias", true, 88, 4);
    SHAPE3(must_node(g, "add1"), 4, 4, 4);
    front_done(&r);
}

Test(canonical_order, statements_before_arguments) {
    /* evaluation order is statement order: `b` is computed before `a`, so
     * its conv comes first even though it is concat's second argument */
    const char *src =
        "network n {\n"
        "    input x: [3, 4, 4]\n"
        "    b = x -> conv(5, 1)\n"
        "    a = x -> conv(2, 1)\n"
        "    y = concat(a, b, concat(x -> conv(1, 1), relu(conv(x, 3, 1))))\n"
        "    output y\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "x", "conv1", "conv2", "conv3", "conv4", "relu1", "concat1",
                 "concat2");
    expect_layout(g);
    cr_expect_eq(must_node(g, "conv1")->a.units, 5);
    cr_expect_eq(must_node(g, "conv2")->a.units, 2);
    cr_expect_eq(must_node(g, "conv3")->a.units, 1);
    cr_expect_eq(must_node(g, "conv4")->a.units, 3);
    EXPECT_PARAM(must_node(g, "conv1"), 0, "weight", true, 0, 5, 3, 1, 1);
    EXPECT_PARAM(must_node(g, "conv2"), 0, "weight", true, 20, 2, 3, 1, 1);
    EXPECT_PARAM(must_node(g, "conv3"), 0, "weight", true, 28, 1, 3, 1, 1);
    EXPECT_PARAM(must_node(g, "conv4"), 0, "weight", true, 32, 3, 3, 1, 1);
    Node *outer = must_node(g, "concat2");
    cr_expect_eq(in_of(outer, 0), must_node(g, "conv2"));
    cr_expect_eq(in_of(outer, 1), must_node(g, "conv1"));
    cr_expect_eq(in_of(outer, 2), must_node(g, "concat1"));
    SHAPE3(outer, 2 + 5 + 1 + 3, 4, 4);
    front_done(&r);
}

Test(canonical_order, layer_tensor_order) {
    /* each layer's tensors in the table's order, interleaved layer by layer */
    const char *src =
        "network n {\n"
        "    input x: [2, 5, 5]\n"
        "    y = x -> local(3, 3) -> prelu -> bn -> bias -> dense(4) -> bn\n"
        "    output y\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "x", "local1", "prelu1", "bn1", "bias1", "dense1", "bn2");
    expect_layout(g);
    Node *l = must_node(g, "local1");
    SHAPE3(l, 3, 3, 3);
    EXPECT_PARAM(l, 0, "weight", true, 0, 3, 3, 3, 2, 3, 3);   /* 486 */
    EXPECT_PARAM(l, 1, "bias", true, 486, 3, 3, 3);            /* 27 */
    EXPECT_PARAM(must_node(g, "prelu1"), 0, "alpha", true, 513, 3);
    Node *bn = must_node(g, "bn1");
    EXPECT_PARAM(bn, 0, "gamma", true, 516, 3);
    EXPECT_PARAM(bn, 1, "beta", true, 519, 3);
    EXPECT_PARAM(bn, 2, "running_mean", false, 522, 3);
    EXPECT_PARAM(bn, 3, "running_var", false, 525, 3);
    EXPECT_PARAM(must_node(g, "bias1"), 0, "bias", true, 528, 3, 3, 3);
    EXPECT_PARAM(must_node(g, "dense1"), 0, "weight", true, 555, 4, 27);
    EXPECT_PARAM(must_node(g, "dense1"), 1, "bias", true, 663, 4);
    Node *bn2 = must_node(g, "bn2");
    EXPECT_PARAM(bn2, 0, "gamma", true, 667, 4);
    EXPECT_PARAM(bn2, 1, "beta", true, 671, 4);
    EXPECT_PARAM(bn2, 2, "running_mean", false, 675, 4);
    EXPECT_PARAM(bn2, 3, "running_var", false, 679, 4);
    cr_expect_eq(g->param_count, 683);
    cr_expect_eq(g->learnable_count, 683 - 6 - 8);
    front_done(&r);
}

/* ---- values: tuples, pad=same, arithmetic, numbers ------------------------------ */

Test(values, tuples) {
    const char *src =
        "network n {\n"
        "    input words: [1, 56, 300]\n"
        "    y = words -> conv(100, (3, 300)) -> maxpool((2, 1), stride=(2, 1), pad=(1, 0))\n"
        "    output y\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    Node *c = must_node(g, "conv1");
    cr_expect_eq(c->a.kernel[0], 3);
    cr_expect_eq(c->a.kernel[1], 300);
    SHAPE3(c, 100, 54, 1);
    EXPECT_PARAM(c, 0, "weight", true, 0, 100, 1, 3, 300);
    Node *p = must_node(g, "maxpool1");
    cr_expect_eq(p->a.pad[0], 1);
    cr_expect_eq(p->a.pad[1], 0);
    SHAPE3(p, 100, 28, 1);
    front_done(&r);
    expect_error("network n { input x: [1, 8, 8]; y = x -> conv(2, (3, 3, 3)); "
                 "output y }\n", NULL, 1, "(3, 3, 3)", "pair");
    expect_error("network n { input x: [1, 8, 8]; y = x -> conv((2, 2), 3); "
                 "output y }\n", NULL, 1, "(2, 2)", "integer");
}

Test(values, pad_same) {
    const char *src =
        "network n {\n"
        "    input x: [3, 9, 10]\n"
        "    a = x -> conv(4, 3, pad=same)\n"
        "    b = x -> conv(4, (4, 5), pad=same, dilation=(1, 2))\n"
        "    output a, b\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    Node *a = must_node(g, "conv1"), *b = must_node(g, "conv2");
    cr_expect(a->a.pad_same);
    cr_expect_eq(a->a.pad_lo[0], 1);
    cr_expect_eq(a->a.pad_hi[0], 1);
    SHAPE3(a, 4, 9, 10);
    cr_expect(b->a.pad_same);
    cr_expect_eq(b->a.pad_lo[0], 1);   /* total 3: 1 top, 2 bottom */
    cr_expect_eq(b->a.pad_hi[0], 2);
    cr_expect_eq(b->a.pad_lo[1], 4);   /* total 2*4 = 8 */
    cr_expect_eq(b->a.pad_hi[1], 4);
    SHAPE3(b, 4, 9, 10);
    front_done(&r);
}

Test(values, integer_arithmetic) {
    const char *src =
        "block b(x, k, f=2+3*2) {\n"
        "    return x -> conv(f, k, pad=(k-1)/2) -> conv((f + 2) * 2, 1)\n"
        "                  -> conv(20 - 4 - 3, 1) -> conv(17 / 3 * 3, 1)\n"
        "}\n"
        "network n {\n"
        "    input x: [2 * 3, 20 / 2 - 1, 3 + 2 * 2]\n"
        "    y = x -> b(5) -> conv(2, 3, pad=(0 - 3) / 2 + 2) -> conv(1, 3, pad=-(-1))\n"
        "    output y\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    SHAPE3(must_node(g, "x"), 6, 9, 7);
    Node *c1 = must_node(g, "b1.conv1");
    cr_expect_eq(c1->a.units, 8, "2+3*2: '*' binds tighter");
    cr_expect_eq(c1->a.pad[0], 2);
    SHAPE3(c1, 8, 9, 7);
    cr_expect_eq(must_node(g, "b1.conv2")->a.units, 20);
    cr_expect_eq(must_node(g, "b1.conv3")->a.units, 13, "'-' is left-assoc");
    cr_expect_eq(must_node(g, "b1.conv4")->a.units, 15, "17/3 = 5, then * 3");
    /* (0-3)/2 = floor(-1.5) = -2, + 2 = 0: no padding (truncation gives 1) */
    Node *c5 = must_node(g, "conv1");
    cr_expect_eq(c5->a.pad[0], 0);
    SHAPE3(c5, 2, 7, 5);
    cr_expect_eq(must_node(g, "conv2")->a.pad[0], 1);
    SHAPE3(must_node(g, "conv2"), 1, 7, 5);
    front_done(&r);
}

Test(values, rounding_down) {
    /* -7/2 = -4 and 7/-2 = -4 (rounding down), -6/2 = -3 exactly; checked
     * through pads that must come out non-negative */
    const char *src =
        "network n {\n"
        "    input x: [1, 20, 20]\n"
        "    a = x -> conv(1, 1, pad=(0 - 7) / 2 + 4)\n"   /* 0 */
        "    b = x -> conv(1, 1, pad=7 / (0 - 2) + 5)\n"   /* 1 */
        "    c = x -> conv(1, 1, pad=(0 - 6) / 2 + 5)\n"   /* 2 */
        "    d = x -> conv(1, 1, pad=(0 - 7) / (0 - 2))\n" /* 3 */
        "    output a, b, c, d\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    for (int i = 0; i < 4; i++) {
        Node *n = nth(g, 1 + i);
        cr_expect_eq(n->a.pad[0], i, "%s pad %lld, expected %d", n->name,
                     (long long)n->a.pad[0], i);
        SHAPE3(n, 1, 20 + 2 * i, 20 + 2 * i);
    }
    front_done(&r);
}

Test(values, arithmetic_errors) {
    expect_error("network n { input x: [1, 8, 8]; y = x -> conv(2 - 3, 3); output y }\n",
                 NULL, 1, "- 3", "at least 1");
    expect_error("network n { input x: [1, 8, 8]; y = x -> conv(2, 3, pad=1/0); output y }\n",
                 NULL, 1, "/0", "division by zero");
    expect_error("network n { input x: [1, 8, 8]; y = x -> conv(1e5, 3); output y }\n",
                 NULL, 1, "1e5", "integer");
    expect_error("network n { input x: [1, 8, 8]; y = x -> conv(2.0, 3); output y }\n",
                 NULL, 1, "2.0", "integer");
    expect_error("network n { input x: [1, 8 - 9, 8]; y = x -> relu; output y }\n",
                 NULL, 1, "- 9", "at least 1");
    expect_error("network n { input x: [1, 8, 8]; y = x -> conv(2 * 1.5, 3); output y }\n",
                 NULL, 1, "*", "integer");
}

Test(values, unary_minus_and_reals) {
    const char *src =
        "network n {\n"
        "    input x: [4]\n"
        "    y = x -> leakyrelu(-0.1) -> dropout(.25) -> bn(eps=1e-5, momentum=.5)\n"
        "           -> elu(2) -> leakyrelu(alpha=- 2.5e-1) -> bn(1.5E-3, 0)\n"
        "           -> dropout(p=0) -> elu -> leakyrelu -> elu(1.) -> elu(-(1))\n"
        "           -> leakyrelu(--3)\n"
        "    output y\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "x", "leakyrelu1", "dropout1", "bn1", "elu1", "leakyrelu2",
                 "bn2", "dropout2", "elu2", "leakyrelu3", "elu3", "elu4",
                 "leakyrelu4");
    cr_expect_eq(must_node(g, "leakyrelu1")->a.alpha, -0.1);
    cr_expect_eq(must_node(g, "dropout1")->a.p, 0.25);
    cr_expect_eq(must_node(g, "bn1")->a.eps, 1e-5);
    cr_expect_eq(must_node(g, "bn1")->a.momentum, 0.5);
    cr_expect_eq(must_node(g, "elu1")->a.alpha, 2.0, "an integer where a real goes");
    cr_expect_eq(must_node(g, "leakyrelu2")->a.alpha, -0.25);
    cr_expect_eq(must_node(g, "bn2")->a.eps, 1.5e-3);
    cr_expect_eq(must_node(g, "bn2")->a.momentum, 0.0);
    cr_expect_eq(must_node(g, "dropout2")->a.p, 0.0);
    cr_expect_eq(must_node(g, "elu2")->a.alpha, 1.0, "default");
    cr_expect_eq(must_node(g, "leakyrelu3")->a.alpha, 0.01, "default");
    cr_expect_eq(must_node(g, "elu3")->a.alpha, 1.0);
    cr_expect_eq(must_node(g, "elu4")->a.alpha, -1.0);
    cr_expect_eq(must_node(g, "leakyrelu4")->a.alpha, 3.0);
    expect_layout(g);
    /* bn on [4]: four of each statistic */
    EXPECT_PARAM(must_node(g, "bn1"), 3, "running_var", false, 12, 4);
    front_done(&r);
    /* numbers carry no sign: a '-' is the operator, which needs a number */
    expect_error("network n { input x: [4]; y = x -> leakyrelu(-same); output y }\n",
                 NULL, 1, "-same", "number");
}

/* ---- lexical rules and statements --------------------------------------------- */

Test(syntax, semicolons_are_optional) {
    const char *with =
        "network n { input x: [2, 4, 4]; ; y = x -> conv(3, 1);;; output y; }\n";
    const char *without =
        "network n { input x: [2, 4, 4] y = x -> conv(3, 1) output y }\n";
    const char *lines =
        "network n\n{\ninput\nx\n:\n[\n2\n,\n4\n,\n4\n]\ny\n=\nx\n->\nconv\n(\n3\n,\n1\n)\n"
        "output\ny\n}\n";
    const char *const srcs[] = {with, without, lines};
    for (int i = 0; i < 3; i++) {
        FrontResult r = {0};
        Graph *g = compile_net(&r, srcs[i], NULL);
        EXPECT_NODES(g, "x", "conv1");
        SHAPE3(must_node(g, "conv1"), 3, 4, 4);
        cr_expect_eq(g->param_count, 9);
        front_done(&r);
    }
}

Test(syntax, comments_and_white_space) {
    const char *src =
        "# a file that starts with a comment } { -> (\n"
        "\t\r\n"
        "block b(x) {   # a comment after the brace\n"
        "    # return x -> dense(99)\n"
        "    return x -> relu # -> tanh\n"
        "}\r\n"
        "network n {#no space\n"
        "\tinput x: [4]   # the input\n"
        "    y = x -> b # -> b\n"
        "      # a comment in the middle of a chain\n"
        "      -> dense(3)\n"
        "    output y #\n"
        "}\n"
        "# the end, no newline after it";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "x", "b1.relu1", "dense1");
    cr_expect_eq(must_node(g, "dense1")->loc.line, 11);
    cr_expect_eq(must_node(g, "dense1")->loc.col, 10);
    cr_expect_eq(must_node(g, "x")->loc.line, 8);
    cr_expect_eq(must_node(g, "x")->loc.col, 8, "a tab is one column");
    front_done(&r);
}

Test(syntax, rebinding) {
    const char *src =
        "network n {\n"
        "    input x: [3, 6, 6]\n"
        "    y = x -> conv(2, 1)\n"
        "    x = x -> relu\n"
        "    x = x -> conv(2, 1)\n"
        "    y = y + x\n"
        "    x = y -> flatten\n"
        "    output x\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "x", "conv1", "relu1", "conv2", "add1", "flatten1");
    /* the input keeps its name; each use sees the latest binding above it */
    cr_expect_eq(in_of(must_node(g, "relu1"), 0), must_node(g, "x"));
    cr_expect_eq(in_of(must_node(g, "conv2"), 0), must_node(g, "relu1"));
    SHAPE3(must_node(g, "conv2"), 2, 6, 6);
    cr_expect_eq(in_of(must_node(g, "add1"), 0), must_node(g, "conv1"));
    cr_expect_eq(in_of(must_node(g, "add1"), 1), must_node(g, "conv2"));
    cr_expect_eq(in_of(must_node(g, "flatten1"), 0), must_node(g, "add1"));
    SHAPE1(must_node(g, "flatten1"), 72);
    cr_expect_eq(g->outputs.items[0], must_node(g, "flatten1"));
    front_done(&r);
    /* with y = x -> conv(4, 3), y is [4,4,4] and the rebound x [2,6,6] */
    const char *bad =
        "network n {\n"
        "    input x: [3, 6, 6]\n"
        "    y = x -> conv(4, 3)\n"
        "    x = x -> relu\n"
        "    x = x -> conv(2, 1)\n"
        "    y = y + x\n"
        "    output y\n"
        "}\n";
    expect_error(bad, NULL, 6, "+", "'+' needs equal shapes, got [4,4,4] and [2,6,6]");
}

Test(syntax, inputs_and_outputs) {
    const char *src =
        "network n {\n"
        "    input b: [3]\n"
        "    input a: [2, 2, 2]\n"
        "    unused_ok = a -> flatten\n"
        "    s = concat(unused_ok, b)\n"
        "    output s, unused_ok\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    EXPECT_NODES(g, "b", "a", "flatten1", "concat1");
    cr_expect_eq(g->inputs.len, 2);
    cr_expect_eq(g->inputs.items[0], must_node(g, "b"));
    cr_expect_eq(g->inputs.items[1], must_node(g, "a"));
    cr_expect_eq(g->outputs.len, 2);
    cr_expect_eq(g->outputs.items[0], must_node(g, "concat1"));
    cr_expect_eq(g->outputs.items[1], must_node(g, "flatten1"));
    cr_expect_str_eq(g->output_names.items[1], "unused_ok");
    cr_expect_eq(must_node(g, "flatten1")->users, 2, "concat and an output");
    cr_expect_eq(must_node(g, "concat1")->users, 1, "an output");
    SHAPE1(must_node(g, "concat1"), 11);
    front_done(&r);
}

Test(syntax, unused_input_is_a_warning) {
    const char *src =
        "network n {\n"
        "    input a: [3]\n"
        "    input spare: [2]\n"
        "    y = a -> relu\n"
        "    output y\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    cr_expect_eq(r.c.diags.warnings, 1);
    cr_expect_not_null(strstr(r.diags, "t.cnn:3:11: warning: "), "%s", r.diags);
    cr_expect_not_null(strstr(r.diags, "spare"));
    cr_expect_eq(g->inputs.len, 2);
    front_done(&r);
}

Test(syntax, errors_at_the_right_place) {
    /* DSL.md: a stage after '->' is a call or a group */
    expect_error("network n {\n    input x: [4]\n    y = x -> relu + x\n    output y\n}\n",
                 NULL, 3, "+", "parentheses");
    /* a name may not be bound to a layer's or block's name */
    expect_error("network n {\n    input x: [4]\n    relu = x -> tanh\n    output relu\n}\n",
                 NULL, 3, "relu", "relu");
    expect_error("block b(x) { return x }\n"
                 "network n {\n    input x: [4]\n    b = x -> tanh\n    output b\n}\n",
                 NULL, 4, "b", "'b'");
    /* used before bound, never used, not defined */
    expect_error("network n {\n    input x: [4]\n    y = z -> relu\n    z = x -> relu\n"
                 "    output y\n}\n", NULL, 3, "z", "'z'");
    expect_error("network n {\n    input x: [4]\n    y = x -> relu\n    z = x -> relu\n"
                 "    output y\n}\n", NULL, 4, "z", "value 'z' is never used");
    expect_error("network n {\n    input x: [4]\n    y = w -> relu\n    output y\n}\n",
                 NULL, 3, "w", "'w'");
    /* unknown layers and arguments */
    expect_error("network n {\n    input x: [4]\n    y = x -> relux\n    output y\n}\n",
                 NULL, 3, "relux", "relux");
    expect_error("network n {\n    input x: [1, 4, 4]\n    y = x -> conv(2, 3, padding=1)\n"
                 "    output y\n}\n", NULL, 3, "padding", "padding");
    /* a syntax error */
    expect_error("network n {\n    input x: [4]\n    y = x -> dense(3,)\n    output y\n}\n",
                 NULL, 3, ")", "unexpected");
    /* '*' between tensors, '-' on a tensor */
    expect_error("network n {\n    input x: [4]\n    y = (x -> relu) * x\n    output y\n}\n",
                 NULL, 3, "*", "error");
}

/* ---- node names are unique ----------------------------------------------------- */

Test(names, unique_when_counters_collide) {
    /* the first relu6 and the 61st relu would both be "relu61" */
    FrontResult r = {0};
    Graph *g = compile_net(&r, "network n { input x: [4]; y = x -> relu6 -> relu * 61; "
                               "output y }\n", NULL);
    expect_layout(g);
    cr_expect_eq(g->nodes.len, 63);
    cr_expect_str_eq(nth(g, 1)->name, "relu61");
    cr_expect_eq(nth(g, 1)->op, OP_RELU6);
    cr_expect_str_eq(nth(g, 2)->name, "relu1");
    cr_expect_str_eq(nth(g, 61)->name, "relu60");
    cr_expect_str_eq(nth(g, 62)->name, "relu_61");
    cr_expect_eq(nth(g, 62)->op, OP_RELU);
    front_done(&r);

    g = compile_net(&r, "network n { input x: [4]; y = x -> relu * 61 -> relu6; "
                        "output y }\n", NULL);
    expect_layout(g);
    cr_expect_str_eq(nth(g, 61)->name, "relu61");
    cr_expect_eq(nth(g, 61)->op, OP_RELU);
    cr_expect_str_eq(nth(g, 62)->name, "relu6_1");
    cr_expect_eq(nth(g, 62)->op, OP_RELU6);
    front_done(&r);
}

Test(names, unique_block_prefixes) {
    /* the 11th call of block a and the first of block a1 would both be "a11." */
    const char *src =
        "block a(x) { return x -> relu }\n"
        "block a1(x) { return x -> relu }\n"
        "network n { input x: [4]; y = x -> a * 11 -> a1 -> a; output y }\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    expect_layout(g);
    cr_expect_eq(g->nodes.len, 14);
    cr_expect_str_eq(nth(g, 11)->name, "a11.relu1");
    cr_expect_str_eq(nth(g, 11)->site->block, "a");
    cr_expect_str_eq(nth(g, 12)->name, "a1_1.relu1");
    cr_expect_str_eq(nth(g, 12)->site->block, "a1");
    cr_expect_str_eq(nth(g, 13)->name, "a12.relu1");
    front_done(&r);
}

Test(names, inputs_keep_their_names) {
    /* inputs are named as declared; a layer whose name is taken moves aside */
    const char *src =
        "network n {\n"
        "    input conv1: [3, 8, 8]\n"
        "    input relu61: [4]\n"
        "    input relu6_1: [4]\n"
        "    a = conv1 -> conv(4, 3) -> conv(2, 1)\n"
        "    b = relu61 + relu6_1 -> relu6\n"
        "    output a, b\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = compile_net(&r, src, NULL);
    expect_layout(g);
    EXPECT_NODES(g, "conv1", "relu61", "relu6_1", "conv_1", "conv2", "add1",
                 "relu6__1");
    cr_expect_eq(nth(g, 0)->op, OP_INPUT);
    cr_expect_eq(nth(g, 3)->op, OP_CONV);
    cr_expect_eq(in_of(nth(g, 3), 0), nth(g, 0));
    cr_expect_eq(nth(g, 6)->op, OP_RELU6);
    front_done(&r);
}
