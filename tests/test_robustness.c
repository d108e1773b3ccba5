/* test_robustness.c — bad input of any kind ends in a clear error (DESIGN.md,
 * "Correctness"; DSL.md, "Errors").
 *
 * Every .cnn under examples/ and tests/diag/ is cut at every length and
 * mutated a few thousand times with a fixed seed, and each result goes
 * through compile_front in this (ASan + UBSan, LeakSanitizer at exit)
 * process. Each run must either succeed with no error printed, or fail with
 * at least one "error:" line: never a crash, a hang, a leak, or a failure
 * without a word. A last test runs the sanitized cnnc on a few such files
 * and checks its exit status.
 *
 * A failing input is written to build/robustness-failure.cnn; run
 * `build/cnnc-san check build/robustness-failure.cnn` to see it fail.
 */
#include "helpers.h"

#include <fcntl.h>
#include <stdarg.h>
#include <glob.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FAILURE_FILE "build/robustness-failure.cnn"
enum { MUTATIONS = 3000 };

/* ---- the corpus ------------------------------------------------------------ */

typedef struct Corpus {
    int n;
    char *path[256];
    char *src[256];
    size_t len[256];
} Corpus;

static void corpus_add(Corpus *c, const char *pattern) {
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc && c->n < 256; i++) {
        c->path[c->n] = strdup(g.gl_pathv[i]);
        c->src[c->n] = slurp(g.gl_pathv[i], &c->len[c->n]);
        if (c->src[c->n])
            c->n++;
        else
            free(c->path[c->n]);
    }
    globfree(&g);
}

static void corpus_load(Corpus *c) {
    memset(c, 0, sizeof *c);
    corpus_add(c, "examples/*.cnn");
    int examples = c->n;
    corpus_add(c, "tests/diag/*.cnn");
    cr_assert_geq(examples, 10, "examples/*.cnn not found: run the tests from "
                  "the repository root");
    cr_assert_gt(c->n, examples, "tests/diag/*.cnn not found");
}

static void corpus_free(Corpus *c) {
    for (int i = 0; i < c->n; i++) {
        free(c->path[i]);
        free(c->src[i]);
    }
}

/* ---- one run ---------------------------------------------------------------- */

/* Is there a diagnostic line "fuzz.cnn:...: error: ..."? Quoted source lines
 * start with spaces, so text in the source cannot fake one. */
static bool printed_error(const char *diags) {
    for (const char *line = diags; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        if (!strncmp(line, "fuzz.cnn", 8)) {
            const char *e = strstr(line, ": error: ");
            if (e && e < line + n)
                return true;
        }
        line = nl ? nl + 1 : NULL;
    }
    return false;
}

static void save_failure(const char *src, size_t len) {
    FILE *f = fopen(FAILURE_FILE, "wb");
    if (f) {
        fwrite(src, 1, len, f);
        fclose(f);
    }
}

/* Compiles one input; fails the test, saving the input, if the outcome
 * breaks the contract. */
static int compiled;   /* how many inputs compiled, for the log */

static void check_input(const char *what, const char *src, size_t len) {
    FrontResult r = {0};
    front_run(&r, "fuzz.cnn", src, len, NULL);
    bool err = printed_error(r.diags);
    const char *problem = NULL;
    if (!r.ok && !err)
        problem = "failed without printing an error";
    else if (r.ok && err)
        problem = "printed an error but succeeded";
    else if (r.ok && !r.c.graph)
        problem = "succeeded without a graph";
    compiled += r.ok;
    if (problem) {
        save_failure(src, len);
        cr_log_error("%s: %s; the input is in %s; diagnostics:\n%s", what,
                     problem, FAILURE_FILE, r.diags ? r.diags : "");
    }
    front_done(&r);
    cr_assert(problem == NULL, "%s: %s (input saved to %s)", what,
              problem ? problem : "", FAILURE_FILE);
}

/* ---- mutations ---------------------------------------------------------------- */

typedef struct Rng {
    uint64_t s;
} Rng;

static uint64_t rng_next(Rng *r) {   /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t rng_below(Rng *r, size_t n) {
    return n ? (size_t)(rng_next(r) % n) : 0;
}

/* Tokens worth inserting: keywords, punctuation, numbers at the edges,
 * argument names and values; layer names come from the layer table. */
static const char *const dictionary[] = {
    "network", "block", "input", "output", "return", "{", "}", "(", ")", "[",
    "]", ",", ":", "=", "->", "+", "-", "*", "/", ";", "#", "\n", "x", "y",
    "img", "0", "1", "2", "3", "7", "-1", "0.5", "1e-5", "1e308", "1e999",
    ".25", "99999999999999999999", "9223372036854775807", "4611686018427387904",
    "1099511627776", "same", "true", "false", "zeros", "reflect", "circular",
    "replicate", "pad=", "stride=", "dilation=", "groups=", "bias=", "eps=",
    "pad_mode=", "p=", "* 1000", "* 0", "(3, 3)", "(1, 2, 3)", "[1, 1, 1]",
    "\xc3\xa9", "\x01", "@", "\"", "\t",
};
enum { NDICT = sizeof dictionary / sizeof dictionary[0] };

static const char *random_token(Rng *r) {
    size_t k = rng_below(r, NDICT + (size_t)layer_count());
    if (k < NDICT)
        return dictionary[k];
    const LayerInfo *li = layer_at((int)(k - NDICT));
    return li->op == OP_ADD ? "+" : li->name;
}

/* A growable byte buffer for one mutant. */
typedef struct Buf {
    char *p;
    size_t len, cap;
} Buf;

static void buf_splice(Buf *b, size_t at, size_t del, const char *ins,
                       size_t n) {
    if (at > b->len)
        at = b->len;
    if (del > b->len - at)
        del = b->len - at;
    size_t len = b->len - del + n;
    if (len + 1 > b->cap) {
        b->cap = (len + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memmove(b->p + at + n, b->p + at + del, b->len - at - del);
    memcpy(b->p + at, ins, n);
    b->len = len;
    b->p[len] = 0;
}

/* The line around byte `at`, as [start, end] with end after its newline. */
static void line_at(const Buf *b, size_t at, size_t *start, size_t *end) {
    size_t s = at, e = at;
    while (s > 0 && b->p[s - 1] != '\n')
        s--;
    while (e < b->len && b->p[e] != '\n')
        e++;
    if (e < b->len)
        e++;
    *start = s;
    *end = e;
}

static void mutate_once(Rng *r, Buf *b) {
    size_t at = rng_below(r, b->len + 1);
    switch (rng_below(r, 9)) {
    case 0: {   /* a random byte in place of one */
        char c = (char)rng_below(r, 256);
        buf_splice(b, at, 1, &c, 1);
        break;
    }
    case 1:     /* flip one bit */
        if (at < b->len)
            b->p[at] ^= (char)(1u << rng_below(r, 8));
        break;
    case 2: {   /* insert a random byte */
        char c = (char)rng_below(r, 256);
        buf_splice(b, at, 0, &c, 1);
        break;
    }
    case 3:     /* delete a few bytes */
        buf_splice(b, at, 1 + rng_below(r, 8), "", 0);
        break;
    case 4:
    case 5: {   /* insert a token, perhaps with spaces around it */
        const char *t = random_token(r);
        char tmp[64];
        int n = snprintf(tmp, sizeof tmp, "%s%s%s", rng_below(r, 2) ? " " : "",
                         t, rng_below(r, 2) ? " " : "");
        buf_splice(b, at, 0, tmp, (size_t)n);
        break;
    }
    case 6: {   /* duplicate a line */
        size_t s, e;
        line_at(b, at, &s, &e);
        char *copy = malloc(e - s + 1);   /* the line may hold NULs */
        memcpy(copy, b->p + s, e - s);
        buf_splice(b, e, 0, copy, e - s);
        free(copy);
        break;
    }
    case 7: {   /* delete a line */
        size_t s, e;
        line_at(b, at, &s, &e);
        buf_splice(b, s, e - s, "", 0);
        break;
    }
    case 8: {   /* change a number: sizes are where shape errors come from */
        static const char *const nums[] = {"0", "1", "2", "3", "5", "64",
                                           "1000000", "4294967296"};
        size_t d = at;
        while (d < b->len && (b->p[d] < '0' || b->p[d] > '9'))
            d++;
        size_t e = d;
        while (e < b->len && b->p[e] >= '0' && b->p[e] <= '9')
            e++;
        const char *num = nums[rng_below(r, sizeof nums / sizeof nums[0])];
        buf_splice(b, d, e - d, num, strlen(num));
        break;
    }
    }
}

/* The i-th mutant of `src`: 1 to 4 mutations with seed i. */
static void make_mutant(Buf *b, const char *src, size_t len, uint64_t seed) {
    b->len = 0;
    buf_splice(b, 0, 0, src, len);
    Rng r = {seed * 0x2545f4914f6cdd1dull + 1};
    int n = 1 + (int)rng_below(&r, 4);
    for (int k = 0; k < n; k++)
        mutate_once(&r, b);
}

/* ---- the tests ------------------------------------------------------------------ */

Test(robustness, every_prefix, .timeout = 120) {
    Corpus c;
    corpus_load(&c);
    long runs = 0;
    for (int f = 0; f < c.n; f++) {
        for (size_t n = 0; n <= c.len[f]; n++) {
            char what[512];
            snprintf(what, sizeof what, "%s cut to %zu bytes", c.path[f], n);
            check_input(what, c.src[f], n);
            runs++;
        }
    }
    cr_log_info("%ld truncated inputs from %d files", runs, c.n);
    corpus_free(&c);
}

Test(robustness, random_mutations, .timeout = 120) {
    Corpus c;
    corpus_load(&c);
    Buf b = {0};
    for (int i = 0; i < MUTATIONS; i++) {
        int f = i % c.n;
        make_mutant(&b, c.src[f], c.len[f], (uint64_t)i);
        char what[512];
        snprintf(what, sizeof what, "mutant %d of %s", i, c.path[f]);
        check_input(what, b.p, b.len);
    }
    cr_log_info("%d mutants, %d of them compiled", MUTATIONS, compiled);
    free(b.p);
    corpus_free(&c);
}

/* ---- large generated files ------------------------------------------------ */

/* A growable string for the generators below. */
static void buf_printf(Buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void buf_printf(Buf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    buf_splice(b, b->len, 0, tmp, (size_t)n);
}

/* Files far larger than anyone writes, each shaped to make one part of the
 * front end do a lookup per name, a check per pair, or a recursion per
 * block: every one must finish in well under a second or two, so nothing
 * may be quadratic in the file's size or recurse as deep as it is long. */
Test(robustness, large_generated_files, .timeout = 120) {
    enum { N = 100000 };
    Buf b = {0};
    for (int kind = 0; kind < 12; kind++) {
        b.len = 0;
        switch (kind) {
        case 0:   /* many bindings, all output: succeeds */
            buf_printf(&b, "network n {\n input x: [1]\n");
            for (int i = 0; i < N; i++)
                buf_printf(&b, " a%d = x\n", i);
            buf_printf(&b, " output a0");
            for (int i = 1; i < N; i++)
                buf_printf(&b, ", a%d", i);
            buf_printf(&b, "\n}\n");
            break;
        case 1:   /* a chain of blocks, each calling the next */
            for (int i = 0; i < N; i++)
                buf_printf(&b, "block b%d(x) { return x -> b%d }\n", i, i + 1);
            buf_printf(&b, "block b%d(x) { return x }\n", N);
            buf_printf(&b, "network n { input x: [1]\n y = x -> b0\n output y }\n");
            break;
        case 2:   /* a warning per line */
            buf_printf(&b, "network n {\n");
            for (int i = 0; i < N; i++)
                buf_printf(&b, " input i%d: [1]\n", i);
            buf_printf(&b, " output i0\n}\n");
            break;
        case 3:   /* one output, named over and over */
            buf_printf(&b, "network n {\n input x: [1]\n y = x -> relu\n output y");
            for (int i = 0; i < N; i++)
                buf_printf(&b, ", y");
            buf_printf(&b, "\n}\n");
            break;
        case 4:   /* an error per line */
            buf_printf(&b, "network n {\n input x: [1]\n");
            for (int i = 0; i < N; i++)
                buf_printf(&b, " y%d = z%d\n", i, i);
            buf_printf(&b, " output x\n}\n");
            break;
        case 5:   /* a block with very many parameters, most given by name */
            buf_printf(&b, "block b(x");
            for (int i = 0; i < N; i++)
                buf_printf(&b, ", p%d=1", i);
            buf_printf(&b, ") {\n return x -> relu * p%d\n}\n", N - 1);
            buf_printf(&b, "network n {\n input x: [1]\n y = x -> b(p%d=2", N - 1);
            for (int i = 0; i < N / 2; i++)
                buf_printf(&b, ", p%d=3", i);
            buf_printf(&b, ")\n output y\n}\n");
            break;
        case 6:   /* many blocks, each called once */
            for (int i = 0; i < N / 2; i++)
                buf_printf(&b, "block b%d(x) { return x -> relu }\n", i);
            buf_printf(&b, "network n {\n input x: [1]\n y = x");
            for (int i = 0; i < N / 2; i++)
                buf_printf(&b, " -> b%d", i);
            buf_printf(&b, "\n output y\n}\n");
            break;
        case 7:   /* blocks that add nothing, each calling the next twice */
            buf_printf(&b, "block b0(x) { return x }\n");
            for (int i = 1; i < 60; i++)
                buf_printf(&b, "block b%d(x) { return x -> b%d -> b%d }\n", i,
                           i - 1, i - 1);
            buf_printf(&b, "network n { input x: [1]\n y = x -> b59\n output y }\n");
            break;
        case 8:   /* a sum as deep as it is long */
            buf_printf(&b, "network n {\n input x: [1]\n y = x");
            for (int i = 0; i < N; i++)
                buf_printf(&b, " + x");
            buf_printf(&b, "\n output y\n}\n");
            break;
        case 9:   /* the same in an argument */
            buf_printf(&b, "network n {\n input x: [4]\n y = x -> dense(1");
            for (int i = 0; i < N; i++)
                buf_printf(&b, " * 1");
            buf_printf(&b, ")\n output y\n}\n");
            break;
        case 10:  /* a chain of stages longer than any network */
            buf_printf(&b, "network n {\n input x: [4]\n y = x");
            for (int i = 0; i < 2 * N; i++)
                buf_printf(&b, " -> relu");
            buf_printf(&b, "\n output y\n}\n");
            break;
        case 11:  /* one concat of very many tensors */
            buf_printf(&b, "network n {\n input x: [4]\n y = concat(x");
            for (int i = 0; i < N; i++)
                buf_printf(&b, ", x");
            buf_printf(&b, ")\n output y\n}\n");
            break;
        }
        char what[64];
        snprintf(what, sizeof what, "large generated file %d (%zu bytes)", kind,
                 b.len);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        check_input(what, b.p, b.len);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        cr_log_info("%s: %.2f s", what, s);
        cr_expect_lt(s, 10.0, "%s took %.1f s", what, s);
    }
    free(b.p);
}

/* Exit status of `build/cnnc-san check FILE`, or 128 + the signal; with the
 * sanitizers' own exit code moved to 86 so a report cannot pass for the
 * compiler's "errors found" (1). Its stderr lands in `err_path`. */
static int run_cnnc(const char *file, const char *err_path) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int null = open("/dev/null", O_WRONLY);
        dup2(err, 2);
        dup2(null, 1);
        setenv("ASAN_OPTIONS", "detect_leaks=1:exitcode=86", 1);
        setenv("UBSAN_OPTIONS", "halt_on_error=1:exitcode=86", 1);
        execl("build/cnnc-san", "cnnc", "check", file, (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void write_file(const char *path, const char *src, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL, "cannot write %s", path);
    fwrite(src, 1, len, f);
    fclose(f);
}

/* The program, not just the library: a signal, a sanitizer report or a
 * usage error (2) on a bad file is a bug. */
Test(robustness, sanitized_cli_exit_status, .timeout = 120) {
    cr_assert_eq(access("build/cnnc-san", X_OK), 0,
                 "build/cnnc-san is missing; run 'make test'");
    Corpus c;
    corpus_load(&c);
    char dir[] = "/tmp/cnnc-robust-XXXXXX";
    cr_assert(mkdtemp(dir) != NULL);
    char file[600], err[600];
    snprintf(file, sizeof file, "%s/net.cnn", dir);
    snprintf(err, sizeof err, "%s/stderr", dir);
    Buf b = {0};
    enum { CASES = 24 };
    for (int i = 0; i < CASES; i++) {
        int f = (i * 7) % c.n;
        if (i % 3 == 0) {            /* a prefix */
            b.len = 0;
            buf_splice(&b, 0, 0, c.src[f], c.len[f] * (size_t)(i + 1) / (CASES + 1));
        } else {                     /* a mutant */
            make_mutant(&b, c.src[f], c.len[f], 1000000u + (uint64_t)i);
        }
        write_file(file, b.p, b.len);
        int rc = run_cnnc(file, err);
        char *text = slurp(err, NULL);
        if (rc != 0 && rc != 1) {
            save_failure(b.p, b.len);
            cr_log_error("stderr:\n%s", text ? text : "");
        }
        cr_expect(rc == 0 || rc == 1, "case %d (from %s): cnnc exited with %d "
                  "(input saved to %s)", i, c.path[f], rc, FAILURE_FILE);
        cr_expect(rc != 1 || (text && strstr(text, ": error: ")),
                  "case %d: exit 1 without an error message", i);
        free(text);
    }
    /* A file of NUL bytes, an empty one, a missing one. */
    write_file(file, "\0\0\0network\0", 11);
    cr_expect_eq(run_cnnc(file, err), 1);
    write_file(file, "", 0);
    cr_expect_eq(run_cnnc(file, err), 1);
    unlink(file);
    cr_expect_eq(run_cnnc(file, err), 1);
    unlink(err);
    rmdir(dir);
    free(b.p);
    corpus_free(&c);
}
