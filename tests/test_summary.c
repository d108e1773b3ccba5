/* test_summary.c — the example networks and what the CLI shows of them.
 *
 * Every .cnn file in examples/ compiles without a diagnostic; the learnable counts
 * are torchvision's (alexnet, vgg16/19, resnet18/34/50, mobilenetv2) or
 * counted by hand from the layer list (the others, see each file's header).
 * print_summary() and print_dot() are checked on every example, and the
 * real ./cnnc binary (and the sanitized build/cnnc-san) is run as a
 * subprocess. Tests run from the repository root (`make test` does), after
 * `make` has built ./cnnc. All counts are exact: no tolerances. */
#include "helpers.h"

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct Expected {
    const char *file;
    const char *network;
    int64_t learnable;
    int64_t vector;       /* learnable + bn running statistics */
    int64_t macs;         /* 0: not checked */
    const char *input;    /* the first input's shape */
} Expected;

static const Expected examples[] = {
    {"lenet5.cnn", "lenet5", 61706, 61706, 416520, "[1,32,32]"},
    {"mnist.cnn", "mnist", 799078, 799078, 0, "[1,28,28]"},
    {"vgg16.cnn", "vgg16", 138357544, 138357544, 15470264320LL, "[3,224,224]"},
    {"vgg19.cnn", "vgg19", 143667240, 143667240, 0, "[3,224,224]"},
    {"resnet18.cnn", "resnet18", 11689512, 11699112, 1814073344, "[3,224,224]"},
    {"resnet34.cnn", "resnet34", 21797672, 21814696, 0, "[3,224,224]"},
    {"resnet50.cnn", "resnet50", 25557032, 25610152, 0, "[3,224,224]"},
    {"mobilenetv2.cnn", "mobilenetv2", 3504872, 3538984, 0, "[3,224,224]"},
    {"alexnet.cnn", "alexnet", 61100840, 61100840, 714188480, "[3,224,224]"},
    {"alexnet_original.cnn", "alexnet_original", 60965224, 60965224, 0, "[3,227,227]"},
    {"googlenet.cnn", "googlenet", 6998552, 6998552, 0, "[3,224,224]"},
    {"mobilenet.cnn", "mobilenet", 4231976, 4253864, 0, "[3,224,224]"},
    {"alphago.cnn", "alphago", 3882793, 3882793, 0, "[48,19,19]"},
    {"sentence_cnn.cnn", "sentence_cnn", 360902, 360902, 0, "[1,56,300]"},
};
enum { NEXAMPLES = sizeof examples / sizeof examples[0] };

static const Expected *expected_for(const char *file) {
    for (int i = 0; i < NEXAMPLES; i++)
        if (!strcmp(examples[i].file, file))
            return &examples[i];
    return NULL;
}

/* 1234567 -> "1,234,567", written independently of summary.c */
static void commas(int64_t v, char *out) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", (long long)v), k = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            out[k++] = ',';
        out[k++] = digits[i];
    }
    out[k] = 0;
}

static void compile_example(FrontResult *r, const char *file) {
    char path[256];
    snprintf(path, sizeof path, "examples/%s", file);
    front_run(r, path, NULL, 0, NULL);
    cr_assert(r->ok, "%s does not compile (run the tests from the repository "
              "root):\n%s", path, r->diags);
    cr_expect_eq(r->c.diags.errors, 0);
    cr_expect_eq(r->c.diags.warnings, 0, "%s has warnings:\n%s", path, r->diags);
    cr_expect_eq(r->diags_len, 0, "%s printed:\n%s", path, r->diags);
}

static char *summary_text(Graph *g, Arena *a) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    print_summary(f, g, NULL, a);
    fclose(f);
    return text;
}

static char *dot_text(Graph *g, Arena *a) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    print_dot(f, g, a);
    fclose(f);
    return text;
}

static int count_of(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Checks the summary of `g`: a header naming the network, one row per node
 * in graph order that starts with its name, and the totals with commas. */
static void check_summary(Graph *g, Arena *a) {
    char *text = summary_text(g, a);
    char line[256], num[48], num2[48];
    snprintf(line, sizeof line, "network %s\n", g->name);
    cr_expect_eq(strncmp(text, line, strlen(line)), 0, "header of:\n%s", text);

    const char *p = text;
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        snprintf(line, sizeof line, "\n%s ", n->name);
        const char *hit = strstr(p, line);
        cr_expect_not_null(hit, "%s: no row for '%s' after the previous one",
                           g->name, n->name);
        if (hit)
            p = hit + 1;
    }

    commas(g->learnable_count, num);
    snprintf(line, sizeof line, "\nlearnable parameters  %s\n", num);
    cr_expect_not_null(strstr(text, line), "%s: expected '%s' in:\n%s", g->name,
                       line + 1, text);
    if (g->param_count != g->learnable_count) {
        commas(g->param_count, num);
        commas(g->param_count - g->learnable_count, num2);
        snprintf(line, sizeof line,
                 "\nparameter vector      %s floats (with %s batch-norm", num, num2);
        cr_expect_not_null(strstr(text, line), "%s: expected '%s' in:\n%s",
                           g->name, line + 1, text);
    } else {
        cr_expect_null(strstr(text, "parameter vector"), "%s", text);
    }
    commas(g->macs, num);
    snprintf(line, sizeof line, "\nmultiply-accumulates  %s per sample\n", num);
    cr_expect_not_null(strstr(text, line), "%s: expected '%s'", g->name, line + 1);
    free(text);
}

/* Checks the drawing of `g`: a digraph with one node line per graph node,
 * one edge per input, one edge per output. */
static void check_dot(Graph *g, Arena *a) {
    char *text = dot_text(g, a);
    char line[256];
    snprintf(line, sizeof line, "digraph \"%s\" {\n", g->name);
    cr_expect_eq(strncmp(text, line, strlen(line)), 0, "start of:\n%.200s", text);
    size_t len = strlen(text);
    cr_expect(len >= 2 && !strcmp(text + len - 2, "}\n"), "dot ends with '}'");

    int edges = 0;
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        snprintf(line, sizeof line, "    n%d [label=\"%s\\n", n->id, n->name);
        cr_expect_eq(count_of(text, line), 1, "%s: node line for %s", g->name,
                     n->name);
        for (int k = 0; k < n->inputs.len; k++) {
            const Node *in = n->inputs.items[k];
            snprintf(line, sizeof line, "    n%d -> n%d;\n", in->id, n->id);
            cr_expect_gt(count_of(text, line), 0, "%s: edge %s -> %s", g->name,
                         in->name, n->name);
            edges++;
        }
    }
    cr_expect_eq(count_of(text, " [label="), g->nodes.len + g->outputs.len,
                 "%s: node lines", g->name);
    cr_expect_eq(count_of(text, " -> n"), edges, "%s: edges", g->name);
    cr_expect_eq(count_of(text, " -> out"), g->outputs.len, "%s: output edges",
                 g->name);
    free(text);
}

/* ---- the examples ------------------------------------------------------------- */

Test(examples, learnable_totals) {
    for (int i = 0; i < NEXAMPLES; i++) {
        const Expected *e = &examples[i];
        FrontResult r = {0};
        compile_example(&r, e->file);
        Graph *g = r.c.graph;
        cr_expect_str_eq(g->name, e->network);
        cr_expect_eq(g->learnable_count, e->learnable, "%s: %lld learnable, "
                     "expected %lld", e->file, (long long)g->learnable_count,
                     (long long)e->learnable);
        cr_expect_eq(g->param_count, e->vector, "%s: vector of %lld, expected "
                     "%lld", e->file, (long long)g->param_count,
                     (long long)e->vector);
        if (e->macs)
            cr_expect_eq(g->macs, e->macs, "%s: %lld MACs, expected %lld",
                         e->file, (long long)g->macs, (long long)e->macs);
        cr_assert_eq(g->inputs.len, 1);
        cr_expect_str_eq(shape_str(&r.c.arena, ((Node *)g->inputs.items[0])->shape),
                         e->input, "%s input", e->file);
        cr_expect_eq(g->outputs.len, 1);
        front_done(&r);
    }
}

Test(examples, every_file_compiles_and_is_known) {
    DIR *dir = opendir("examples");
    cr_assert_not_null(dir, "run the tests from the repository root");
    int seen = 0, listed = 0;
    struct dirent *ent;
    while ((ent = readdir(dir))) {
        size_t n = strlen(ent->d_name);
        if (n < 5 || strcmp(ent->d_name + n - 4, ".cnn"))
            continue;
        seen++;
        FrontResult r = {0};
        compile_example(&r, ent->d_name);
        const Expected *e = expected_for(ent->d_name);
        if (e) {
            listed++;
            cr_expect_eq(r.c.graph->learnable_count, e->learnable, "%s",
                         ent->d_name);
        }
        /* each file's network is named after the file */
        cr_expect_eq(strncmp(r.c.graph->name, ent->d_name, n - 4), 0, "%s defines %s",
                     ent->d_name, r.c.graph->name);
        cr_expect_eq(strlen(r.c.graph->name), n - 4);
        Graph *g = r.c.graph;
        for (int i = 0; i < g->nodes.len; i++)
            for (int j = 0; j < i; j++)
                cr_expect_str_neq(((Node *)g->nodes.items[i])->name,
                                  ((Node *)g->nodes.items[j])->name,
                                  "%s: node names are unique", ent->d_name);
        check_summary(g, &r.c.arena);
        check_dot(g, &r.c.arena);
        front_done(&r);
    }
    closedir(dir);
    cr_expect_geq(seen, NEXAMPLES);
    cr_expect_eq(listed, NEXAMPLES, "every expected example exists");
}

Test(examples, resnet50_layout) {
    FrontResult r = {0};
    compile_example(&r, "resnet50.cnn");
    Graph *g = r.c.graph;
    /* torchvision's v1.5: the stride on the 3x3, a projection shortcut
     * registered after the main path */
    Node *c2 = node_named(g, "bottleneck_proj2.bottleneck_path1.conv2");
    cr_assert_not_null(c2);
    cr_expect_eq(c2->a.stride[0], 2);
    cr_expect_eq(c2->a.kernel[0], 3);
    Node *sc = node_named(g, "bottleneck_proj2.conv1");
    cr_assert_not_null(sc);
    Node *main3 = node_named(g, "bottleneck_proj2.bottleneck_path1.bn3");
    cr_assert_not_null(main3);
    cr_expect_lt(main3->id, sc->id);
    cr_expect_eq(sc->params[0].offset, main3->params[3].offset + 512);
    cr_expect_eq(sc->params[0].dims[0], 512);
    cr_expect_eq(sc->params[0].dims[1], 256);
    Node *last = g->outputs.items[0];
    cr_expect_eq(last->op, OP_DENSE);
    cr_expect_eq(last->params[0].dims[1], 2048);
    front_done(&r);
}

/* ---- print_summary and print_dot on small graphs ----------------------------------- */

Test(summary, totals_with_commas) {
    static const struct {
        const char *layer;
        const char *learnable;
    } cases[] = {
        {"relu", "0"},
        {"dense(999, bias=false)", "999"},
        {"dense(1000, bias=false)", "1,000"},
        {"dense(100, bias=false) -> bias -> dense(1000)", "101,200"},
        {"dense(1000, bias=false) -> dense(1000, bias=false)", "1,001,000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char src[256];
        snprintf(src, sizeof src, "network tiny { input x: [1]; y = x -> %s; output y }\n",
                 cases[i].layer);
        FrontResult r = {0};
        Graph *g = must_compile(&r, src);
        char *text = summary_text(g, &r.c.arena);
        char want[128];
        snprintf(want, sizeof want, "\nlearnable parameters  %s\n", cases[i].learnable);
        cr_expect_not_null(strstr(text, want), "expected '%s' in:\n%s", want + 1, text);
        cr_expect_null(strstr(text, "parameter vector"), "no bn here:\n%s", text);
        check_summary(g, &r.c.arena);
        free(text);
        front_done(&r);
    }
}

Test(summary, bn_statistics_line) {
    FrontResult r = {0};
    Graph *g = must_compile(&r, "network b { input x: [1500]; y = x -> bn; output y }\n");
    char *text = summary_text(g, &r.c.arena);
    cr_expect_not_null(strstr(text, "\nlearnable parameters  3,000\n"), "%s", text);
    cr_expect_not_null(strstr(text, "\nparameter vector      6,000 floats (with "
                                    "3,000 batch-norm running statistics)\n"),
                       "%s", text);
    /* the row of bn1 shows its learnable parameters only */
    cr_expect_not_null(strstr(text, "3,000"), "%s", text);
    free(text);
    front_done(&r);
}

Test(dot, branches_and_several_outputs) {
    const char *src =
        "network d {\n"
        "    input a: [2, 4, 4]\n"
        "    input b: [2, 4, 4]\n"
        "    s = (a -> conv(2, 1)) + b\n"
        "    c = concat(s, a, b)\n"
        "    output c, s\n"
        "}\n";
    FrontResult r = {0};
    Graph *g = must_compile(&r, src);
    check_dot(g, &r.c.arena);
    char *text = dot_text(g, &r.c.arena);
    /* a=n0 b=n1 conv1=n2 add1=n3 concat1=n4 */
    static const char *const edges[] = {
        "    n0 -> n2;\n", "    n2 -> n3;\n", "    n1 -> n3;\n",
        "    n3 -> n4;\n", "    n0 -> n4;\n", "    n1 -> n4;\n",
        "    n4 -> out0;\n", "    n3 -> out1;\n",
    };
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        cr_expect_eq(count_of(text, edges[i]), 1, "edge '%s' in:\n%s", edges[i], text);
    cr_expect_eq(count_of(text, " -> "), 8, "%s", text);
    cr_expect_not_null(strstr(text, "label=\"c\""), "%s", text);
    cr_expect_not_null(strstr(text, "label=\"s\""), "%s", text);
    cr_expect_not_null(strstr(text, "[6,4,4]"), "concat's shape:\n%s", text);
    free(text);
    front_done(&r);
}

/* ---- the command line ------------------------------------------------------------ */

/* Runs `cmd` (stderr joined to stdout); returns the exit status and the
 * output (malloc'd) in *out. */
static int run(const char *cmd, char **out) {
    cr_assert_eq(access("./cnnc", X_OK), 0, "./cnnc is missing: run 'make' and "
                 "the tests from the repository root");
    char *full = NULL;
    cr_assert(asprintf(&full, "%s 2>&1", cmd) > 0);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 1024) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[len] = 0;
    int status = pclose(p);
    free(full);
    cr_assert(WIFEXITED(status), "%s did not exit normally", cmd);
    *out = buf;
    return WEXITSTATUS(status);
}

/* `word` occurs in `text` with no identifier character on either side. */
static bool mentions(const char *text, const char *word) {
    size_t n = strlen(word);
    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
        char before = p == text ? ' ' : p[-1], after = p[n];
        bool id_before = before == '_' || (before >= 'a' && before <= 'z') ||
                         (before >= '0' && before <= '9');
        bool id_after = after == '_' || (after >= 'a' && after <= 'z') ||
                        (after >= '0' && after <= '9');
        if (!id_before && !id_after)
            return true;
    }
    return false;
}

Test(cli, summary_resnet50) {
    static const char *const bins[] = {"./cnnc", "build/cnnc-san"};
    char *first = NULL;
    for (int i = 0; i < 2; i++) {
        char cmd[128], *out;
        cr_assert_eq(access(bins[i], X_OK), 0, "%s is missing: run 'make test'", bins[i]);
        snprintf(cmd, sizeof cmd, "%s summary examples/resnet50.cnn", bins[i]);
        int rc = run(cmd, &out);
        cr_expect_eq(rc, 0, "%s exited %d:\n%s", cmd, rc, out);
        cr_expect_eq(strncmp(out, "network resnet50\n", 17), 0, "%.200s", out);
        cr_expect_not_null(strstr(out, "\nlearnable parameters  25,557,032\n"), "%s", out);
        cr_expect_not_null(strstr(out, "\nparameter vector      25,610,152 floats"),
                           "%s", out);
        cr_expect_not_null(strstr(out, "\nbottleneck_proj1.bottleneck_path1.conv1 "),
                           "%s", out);
        cr_expect_null(strstr(out, "warning"), "%s", out);
        if (i == 0)
            first = out;
        else {
            cr_expect_str_eq(out, first, "the sanitized build prints the same");
            free(out);
        }
    }
    free(first);
}

Test(cli, check_and_dot) {
    char *out;
    int rc = run("./cnnc check examples/lenet5.cnn", &out);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect_eq(out[0], 0, "check prints nothing on a good file: %s", out);
    free(out);
    rc = run("./cnnc dot examples/lenet5.cnn", &out);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect_eq(strncmp(out, "digraph \"lenet5\" {", 18), 0, "%.100s", out);
    cr_expect_eq(count_of(out, " -> n"), 11, "lenet5 is a chain of 12 nodes:\n%s", out);
    free(out);
    rc = run("./cnnc summary examples/resnet50.cnn --network resnet50", &out);
    cr_expect_eq(rc, 0, "%s", out);
    free(out);
    rc = run("./cnnc summary examples/resnet50.cnn --network nope", &out);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect_not_null(strstr(out, "nope"), "%s", out);
    free(out);
    rc = run("./cnnc check examples/no_such_file.cnn", &out);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect_not_null(strstr(out, "no_such_file.cnn"), "%s", out);
    free(out);
}

Test(cli, help_mentions_every_layer) {
    static const char *const layers[] = {
        "conv", "local", "dense", "fc", "bn", "maxpool", "avgpool", "l2pool",
        "globalavgpool", "globalmaxpool", "lrn", "relu", "relu6", "sigmoid",
        "tanh", "leakyrelu", "elu", "prelu", "maxout", "softmax", "dropout",
        "flatten", "bias", "concat",
    };
    char *out;
    int rc = run("./cnnc --help", &out);
    cr_expect_eq(rc, 0, "%s", out);
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        cr_expect(mentions(out, layers[i]), "--help does not mention '%s':\n%s",
                  layers[i], out);
    cr_expect(mentions(out, "summary"));
    cr_expect(mentions(out, "check"));
    cr_expect(mentions(out, "--network"));
    free(out);
    rc = run("./cnnc -h", &out);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(mentions(out, "maxout"));
    free(out);
}

Test(cli, version) {
    char *out;
    int rc = run("./cnnc --version", &out);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect_eq(strncmp(out, "cnnc ", 5), 0, "%s", out);
    cr_expect(out[5] >= '0' && out[5] <= '9', "a version number: %s", out);
    cr_expect_not_null(strchr(out, '\n'));
    free(out);
}

Test(cli, usage_errors_exit_2) {
    static const char *const cmds[] = {
        "./cnnc frobnicate examples/lenet5.cnn",
        "./cnnc",
        "./cnnc summary",
        "./cnnc summary examples/lenet5.cnn --no-such-option",
        "./cnnc summary examples/lenet5.cnn --network",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *out;
        int rc = run(cmds[i], &out);
        cr_expect_eq(rc, 2, "'%s' exited %d:\n%s", cmds[i], rc, out);
        cr_expect_neq(out[0], 0, "'%s' says why", cmds[i]);
        free(out);
    }
    char *out;
    run("./cnnc frobnicate examples/lenet5.cnn", &out);
    cr_expect_not_null(strstr(out, "frobnicate"), "%s", out);
    free(out);
}
