/* helpers.h — what the Criterion tests share: run the front end on a
 * string and capture its diagnostics. */
#ifndef CNNC_TEST_HELPERS_H
#define CNNC_TEST_HELPERS_H

#define _GNU_SOURCE   /* open_memstream */

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* The result of compiling one source text. `diags` holds everything the
 * compiler printed (malloc'd); `c` stays alive until front_done(). */
typedef struct FrontResult {
    Compilation c;
    bool ok;
    char *diags;
    size_t diags_len;
} FrontResult;

static inline void front_run(FrontResult *r, const char *filename,
                             const char *src, size_t len, const char *network) {
    FILE *out = open_memstream(&r->diags, &r->diags_len);
    cr_assert(out != NULL);
    r->ok = compile_front(&r->c, filename, src, len, network, out);
    fclose(out);
}

static inline void front_done(FrontResult *r) {
    comp_free(&r->c);
    free(r->diags);
    r->diags = NULL;
}

/* Compiles `src` (named "t.cnn") and returns the graph, failing the test
 * with the diagnostics if it does not compile. */
static inline Graph *must_compile(FrontResult *r, const char *src) {
    front_run(r, "t.cnn", src, strlen(src), NULL);
    cr_assert(r->ok, "expected to compile, got:\n%s", r->diags);
    return r->c.graph;
}

/* Reads a whole file into malloc'd memory (NUL-terminated); NULL if missing. */
static inline char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = 0;
    if (len)
        *len = got;
    return buf;
}

static inline Node *node_named(Graph *g, const char *name) {
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        if (!strcmp(n->name, name))
            return n;
    }
    return NULL;
}

#endif
