/* test_diagnostics.c — golden diagnostics (DSL.md, "Errors").
 *
 * Every tests/diag/NAME.cnn is compiled with compile_front exactly as
 * `cnnc check tests/diag/NAME.cnn` would (run from the repository root), and
 * what it prints must equal tests/diag/NAME.expect byte for byte: the
 * file:line:col, the message, the quoted line and the caret, the notes.
 * A file whose name starts with `warn_` must compile (warnings only, or
 * nothing at all); every other one must fail with at least one error.
 *
 * A first line `# args: --network NAME` selects a network, as the same
 * option does on the command line. tests/diag/regen.sh rewrites the .expect
 * files from ./cnnc for a person to review.
 */
#include "helpers.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/wait.h>
#include <unistd.h>

#define DIAG_GLOB "tests/diag/*.cnn"
/* Fewer golden files than this means the glob ran in the wrong directory. */
enum { MIN_GOLDEN = 60 };

/* The network named by a `# args: --network NAME` first line, or NULL.
 * Returns a malloc'd string. */
static char *network_arg(const char *src) {
    static const char tag[] = "# args: --network ";
    if (strncmp(src, tag, sizeof tag - 1) != 0)
        return NULL;
    const char *p = src + sizeof tag - 1;
    size_t n = strcspn(p, " \t\r\n");
    return n ? strndup(p, n) : NULL;
}

static char *expect_path(const char *cnn) {
    size_t n = strlen(cnn);
    char *p = malloc(n + 8);
    memcpy(p, cnn, n - 4);
    strcpy(p + n - 4, ".expect");
    return p;
}

/* The n-th line of `s` (from 0) as [start, end), or false past the end. */
static bool nth_line(const char *s, size_t len, int n, const char **b,
                     const char **e) {
    const char *p = s, *end = s + len;
    for (int i = 0; i < n; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return false;
        p = nl + 1;
    }
    if (p >= end)
        return false;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *b = p;
    *e = nl ? nl : end;
    return true;
}

/* A unified-style diff around the first line that differs: a few lines of
 * context, then the expected (-) and actual (+) lines from there on. */
static void print_diff(const char *name, const char *want, size_t want_len,
                       const char *got, size_t got_len) {
    int first = 0;
    for (;; first++) {
        const char *wb, *we, *gb, *ge;
        bool w = nth_line(want, want_len, first, &wb, &we);
        bool g = nth_line(got, got_len, first, &gb, &ge);
        if (!w || !g || we - wb != ge - gb || memcmp(wb, gb, (size_t)(we - wb)))
            break;
    }
    fprintf(stderr, "--- %s (expected)\n+++ %s (compile_front)\n@@ line %d @@\n",
            name, name, first + 1);
    const char *b, *e;
    for (int i = first >= 3 ? first - 3 : 0; i < first; i++)
        if (nth_line(want, want_len, i, &b, &e))
            fprintf(stderr, " %.*s\n", (int)(e - b), b);
    for (int i = first; i < first + 12 && nth_line(want, want_len, i, &b, &e); i++)
        fprintf(stderr, "-%.*s\n", (int)(e - b), b);
    for (int i = first; i < first + 12 && nth_line(got, got_len, i, &b, &e); i++)
        fprintf(stderr, "+%.*s\n", (int)(e - b), b);
    if ((want_len && want[want_len - 1] != '\n') || (got_len && got[got_len - 1] != '\n'))
        fprintf(stderr, "(a file lacks its final newline)\n");
}

static bool has_error_line(const char *diags) {
    return diags && strstr(diags, ": error: ") != NULL;
}

static bool starts_with_warn(const char *path) {
    const char *base = strrchr(path, '/');
    return !strncmp(base ? base + 1 : path, "warn_", 5);
}

/* Checks one golden file; returns a line saying what is wrong, or NULL. */
static char *check_golden(const char *path, bool *diff_printed) {
    size_t src_len;
    char *src = slurp(path, &src_len);
    if (!src)
        return strdup("cannot read the .cnn file");
    char *network = network_arg(src);
    free(src);

    FrontResult r = {0};
    front_run(&r, path, NULL, 0, network);
    char *epath = expect_path(path);
    size_t want_len;
    char *want = slurp(epath, &want_len);
    char *problem = NULL;
    char buf[512];

    if (!want) {
        snprintf(buf, sizeof buf, "%s is missing; run tests/diag/regen.sh and "
                 "review it", epath);
        problem = strdup(buf);
    } else if (want_len != r.diags_len || memcmp(want, r.diags, want_len)) {
        if (!*diff_printed)
            print_diff(path, want, want_len, r.diags, r.diags_len);
        *diff_printed = true;
        problem = strdup("diagnostics differ from the .expect file");
    } else if (starts_with_warn(path) && (!r.ok || has_error_line(r.diags))) {
        problem = strdup("a warn_ file must compile with warnings only");
    } else if (!starts_with_warn(path) && (r.ok || !has_error_line(r.diags))) {
        problem = strdup("expected compilation to fail with an error");
    } else if (r.ok != !has_error_line(r.diags)) {
        problem = strdup("ok and the printed errors disagree");
    }
    free(want);
    free(epath);
    free(network);
    front_done(&r);
    return problem;
}

Test(diagnostics, golden_files, .timeout = 120) {
    glob_t g;
    int rc = glob(DIAG_GLOB, 0, NULL, &g);
    cr_assert_eq(rc, 0, "no %s: run the tests from the repository root",
                 DIAG_GLOB);
    cr_assert_geq(g.gl_pathc, MIN_GOLDEN, "only %zu golden files under %s",
                  g.gl_pathc, DIAG_GLOB);
    int failures = 0;
    bool diff_printed = false;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char *problem = check_golden(g.gl_pathv[i], &diff_printed);
        if (problem) {
            cr_log_error("%s: %s", g.gl_pathv[i], problem);
            failures++;
            free(problem);
        }
    }
    size_t total = g.gl_pathc;
    globfree(&g);
    cr_assert_eq(failures, 0, "%d of %zu golden files failed (the first "
                 "difference is shown above)", failures, total);
}

/* Each .expect that promises errors has a matching .cnn, and no .expect is
 * left over from a renamed or deleted case. */
Test(diagnostics, no_orphan_expect_files) {
    glob_t g;
    if (glob("tests/diag/*.expect", 0, NULL, &g) != 0)
        cr_assert_fail("no tests/diag/*.expect files");
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char cnn[4096];
        size_t n = strlen(g.gl_pathv[i]);
        snprintf(cnn, sizeof cnn, "%.*s.cnn", (int)(n - 7), g.gl_pathv[i]);
        cr_expect_eq(access(cnn, R_OK), 0, "%s has no %s", g.gl_pathv[i], cnn);
    }
    globfree(&g);
}

/* ---- the errors before there is any source text ------------------------- */

Test(diagnostics, missing_file) {
    FrontResult r = {0};
    front_run(&r, "tests/diag/no-such-file.cnn", NULL, 0, NULL);
    cr_expect(!r.ok);
    cr_expect_str_eq(r.diags, "tests/diag/no-such-file.cnn: error: cannot "
                     "open: No such file or directory\n");
    front_done(&r);
}

Test(diagnostics, directory_is_not_a_file) {
    FrontResult r = {0};
    front_run(&r, "tests/diag", NULL, 0, NULL);
    cr_expect(!r.ok);
    cr_expect_str_eq(r.diags, "tests/diag: error: cannot read: Is a directory\n");
    front_done(&r);
}

Test(diagnostics, source_too_large) {
    size_t len = ((size_t)16 << 20) + 1;
    char *src = malloc(len);
    memset(src, ' ', len);
    FrontResult r = {0};
    front_run(&r, "big.cnn", src, len, NULL);
    cr_expect(!r.ok);
    cr_expect_str_eq(r.diags, "big.cnn: error: larger than 16 MiB; not a .cnn "
                     "file\n");
    front_done(&r);
    free(src);
}

/* A cycle through more blocks than any call path the search used to follow
 * (1000), none of them called by the network: still found, and the list of
 * blocks in the message is cut. */
Test(diagnostics, long_block_cycle) {
    enum { N = 1001 };
    size_t cap = (size_t)N * 48 + 128, len = 0;
    char *src = malloc(cap);
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(src + len, cap - len, "block b%d(x) {\n    return x -> b%d\n}\n",
                                i, (i + 1) % N);
    len += (size_t)snprintf(src + len, cap - len,
                            "network n {\n    input x: [3]\n    y = x -> relu\n    output y\n}\n");
    FrontResult r = {0};
    front_run(&r, "cycle.cnn", src, len, NULL);
    cr_expect(!r.ok);
    cr_expect(strstr(r.diags, "cycle.cnn:3002:17: error: block 'b0' calls itself through "
                     "'b1', 'b2', 'b3', 'b4', ... 994 more, 'b999', 'b1000'\n") != NULL,
              "got:\n%.600s", r.diags);
    front_done(&r);
    free(src);
}

/* ---- the command line agrees with compile_front -------------------------- */

/* Runs `build/cnnc-san check FILE [--network NAME]`; returns the exit status
 * (or 128 + signal) and its stderr (malloc'd) in *err. */
static int run_cnnc(const char *file, const char *network, char **err) {
    char errfile[] = "/tmp/cnnc-diag-XXXXXX";
    int fd = mkstemp(errfile);
    cr_assert(fd >= 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(fd, 2);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        if (network)
            execl("build/cnnc-san", "cnnc", "check", file, "--network", network,
                  (char *)NULL);
        else
            execl("build/cnnc-san", "cnnc", "check", file, (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    close(fd);
    *err = slurp(errfile, NULL);
    unlink(errfile);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* `cnnc check` prints the golden text on stderr, nothing on stdout, and
 * exits 1 on errors, 0 on warnings only. */
Test(diagnostics, cli_matches_golden, .timeout = 120) {
    cr_assert_eq(access("build/cnnc-san", X_OK), 0,
                 "build/cnnc-san is missing; run 'make test'");
    glob_t g;
    cr_assert_eq(glob(DIAG_GLOB, 0, NULL, &g), 0);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *path = g.gl_pathv[i];
        char *src = slurp(path, NULL);
        char *network = network_arg(src);
        char *epath = expect_path(path);
        char *want = slurp(epath, NULL);
        char *err = NULL;
        int rc = run_cnnc(path, network, &err);
        cr_expect_eq(rc, starts_with_warn(path) ? 0 : 1, "%s: exit status %d",
                     path, rc);
        if (want && err)
            cr_expect_str_eq(err, want, "%s: cnnc check's stderr differs from "
                             "the .expect file", path);
        free(err);
        free(want);
        free(epath);
        free(network);
        free(src);
    }
    globfree(&g);
}
