/* arena.c — the compiler's only allocator. */
#include "base.h"

#include <stdlib.h>
#include <string.h>

struct ArenaChunk {
    ArenaChunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

enum { CHUNK_MIN = 64 * 1024 };

void arena_init(Arena *a) {
    a->chunks = NULL;
    a->total = 0;
}

void arena_free(Arena *a) {
    ArenaChunk *c = a->chunks;
    while (c) {
        ArenaChunk *next = c->next;
        free(c);
        c = next;
    }
    a->chunks = NULL;
    a->total = 0;
}

void *arena_alloc(Arena *a, size_t size) {
    size = (size + 15) & ~(size_t)15;
    ArenaChunk *c = a->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > CHUNK_MIN ? size : CHUNK_MIN;
        c = malloc(sizeof *c + cap);
        if (!c) {
            /* The compiler cannot do anything useful without memory, and
             * every input that could ask for a lot is bounded before it
             * gets here; so this is a plain, clear exit. */
            fprintf(stderr, "cnnc: out of memory\n");
            exit(2);
        }
        c->used = 0;
        c->cap = cap;
        c->next = a->chunks;
        a->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    a->total += size;
    memset(p, 0, size);
    return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *arena_strdup(Arena *a, const char *s) {
    return arena_strndup(a, s, strlen(s));
}

char *arena_printf(Arena *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void vec_push(Arena *a, Vec *v, void *item) {
    if (v->len == v->cap) {
        int cap = v->cap ? v->cap * 2 : 8;
        void **items = arena_alloc(a, sizeof(void *) * (size_t)cap);
        if (v->len)
            memcpy(items, v->items, sizeof(void *) * (size_t)v->len);
        v->items = items;
        v->cap = cap;
    }
    v->items[v->len++] = item;
}

static uint32_t hash_name(const char *s) {
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

void *map_get(const Map *m, const char *key) {
    if (!m->cap)
        return NULL;
    uint32_t mask = (uint32_t)m->cap - 1;
    for (uint32_t i = hash_name(key) & mask; m->keys[i]; i = (i + 1) & mask)
        if (!strcmp(m->keys[i], key))
            return m->vals[i];
    return NULL;
}

void map_put(Arena *a, Map *m, const char *key, void *val) {
    if (2 * (m->len + 1) > m->cap) {
        Map bigger = {.cap = m->cap ? 2 * m->cap : 16};
        bigger.keys = arena_alloc(a, sizeof(char *) * (size_t)bigger.cap);
        bigger.vals = arena_alloc(a, sizeof(void *) * (size_t)bigger.cap);
        for (int i = 0; i < m->cap; i++)
            if (m->keys[i])
                map_put(a, &bigger, m->keys[i], m->vals[i]);
        *m = bigger;
    }
    uint32_t mask = (uint32_t)m->cap - 1, i = hash_name(key) & mask;
    while (m->keys[i] && strcmp(m->keys[i], key))
        i = (i + 1) & mask;
    if (!m->keys[i]) {
        m->keys[i] = key;
        m->len++;
    }
    m->vals[i] = val;
}
