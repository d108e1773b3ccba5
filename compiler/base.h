/* base.h — what every part of cnnc stands on: an arena for memory, growable
 * vectors inside it, source locations and the diagnostics that print them.
 *
 * Nothing here knows about networks. The language (dsl/ast.h) and the
 * compiler (compiler/ir.h) both include this header.
 */
#ifndef CNNC_BASE_H
#define CNNC_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- arena.c ----------------------------------------------------------
 * One arena per compilation. Everything the compiler builds (source text,
 * AST, graph, strings) lives in it and dies with it, so error paths never
 * leak and no pass frees anything by hand. */
typedef struct ArenaChunk ArenaChunk;
typedef struct Arena {
    ArenaChunk *chunks;   /* newest first */
    size_t total;         /* bytes handed out, for the "memory is absurd" guard */
} Arena;

void  arena_init(Arena *a);
void  arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t size);            /* zeroed, 16-byte aligned */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A vector of pointers that grows inside the arena (old storage is simply
 * abandoned there). */
typedef struct Vec {
    void **items;
    int len, cap;
} Vec;

void vec_push(Arena *a, Vec *v, void *item);

/* A map from names to pointers, open addressing inside the arena: lookups
 * stay constant-time on a generated file with a hundred thousand names. */
typedef struct Map {
    const char **keys;
    void **vals;
    int cap, len;         /* cap is 0 or a power of two */
} Map;

void *map_get(const Map *m, const char *key);                 /* NULL if absent */
void map_put(Arena *a, Map *m, const char *key, void *val);   /* val not NULL */

/* ---- diag.c ------------------------------------------------------------
 * A location is where a token starts: line and column count from 1, and a
 * column counts bytes (a tab is one). Line 0 means "no location". */
typedef struct Loc {
    int line, col;
} Loc;

enum { DIAG_MAX_ERRORS = 20 };

typedef struct Diags {
    const char *filename;     /* as given on the command line */
    const char *src;          /* the whole source text, for quoting lines */
    size_t src_len;
    FILE *out;                /* stderr, or a memory stream in tests */
    int errors, warnings;
    bool too_many;            /* the error limit was reached */
    bool last_dropped;        /* the last error/warning was a repeat: drop its notes */
    Arena *arena;
    Vec seen;                 /* printed messages, so none is printed twice */
} Diags;

void diags_init(Diags *d, Arena *a, const char *filename, const char *src,
                size_t len, FILE *out);
void diag_error(Diags *d, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_warning(Diags *d, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_note(Diags *d, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A note belongs to the error or warning printed just before it; when that
 * one was a repeat (and so not printed), its notes are dropped as well. */

/* ---- checked arithmetic -------------------------------------------------
 * Sizes are int64_t. These return false on overflow instead of wrapping. */
static inline bool mul_ok(int64_t a, int64_t b, int64_t *r) {
    return !__builtin_mul_overflow(a, b, r);
}
static inline bool add_ok(int64_t a, int64_t b, int64_t *r) {
    return !__builtin_add_overflow(a, b, r);
}
/* Saturating versions, for counts that are shown but never allocated. */
static inline int64_t sat_mul(int64_t a, int64_t b) {
    int64_t r;
    return mul_ok(a, b, &r) ? r : INT64_MAX;
}
static inline int64_t sat_add(int64_t a, int64_t b) {
    int64_t r;
    return add_ok(a, b, &r) ? r : INT64_MAX;
}

#endif
