/* identity.c — a 64-bit FNV-1a hash of a parameter table: every tensor's
 * layer and name, kind, element count and fan-in, in order. Two networks
 * with the same hash have the same parameter layout, so a checkpoint made
 * for one fits the other; anything else is refused by name. */
#include <string.h>

#include "internal.h"

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t fnv(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

/* Strings with their NUL, so "ab"+"c" differs from "a"+"bc". */
static uint64_t fnv_str(uint64_t h, const char *s) {
    return fnv(h, s ? s : "", strlen(s ? s : "") + 1);
}

static uint64_t fnv_u64(uint64_t h, uint64_t v) {
    unsigned char b[8];
    rt_put_u64(b, v);
    return fnv(h, b, 8);
}

uint64_t cnnrt_identity(const CnnrtParam *table, int n) {
    uint64_t h = fnv_u64(FNV_OFFSET, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        h = fnv_str(h, table[i].layer);
        h = fnv_str(h, table[i].name);
        h = fnv_u64(h, (uint64_t)table[i].kind);
        h = fnv_u64(h, (uint64_t)table[i].count);
        h = fnv_u64(h, (uint64_t)table[i].fan_in);
        h = fnv_u64(h, (uint64_t)table[i].learnable);
    }
    return h;
}
