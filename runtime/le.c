/* le.c — files are little-endian whatever the host is: every multi-byte
 * value crosses a file boundary through these. */
#include <string.h>

#include "internal.h"

void rt_put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

void rt_put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

void rt_put_f64(unsigned char *p, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    rt_put_u64(p, bits);
}

uint32_t rt_get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

uint64_t rt_get_u64(const unsigned char *p) {
    return (uint64_t)rt_get_u32(p) | (uint64_t)rt_get_u32(p + 4) << 32;
}

double rt_get_f64(const unsigned char *p) {
    uint64_t bits = rt_get_u64(p);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* IDX files are big-endian. */
uint32_t rt_get_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

void rt_put_f32s(unsigned char *p, const float *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        rt_put_u32(p + 4 * i, bits);
    }
}

void rt_get_f32s(float *v, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = rt_get_u32(p + 4 * i);
        memcpy(&v[i], &bits, 4);
    }
}
