/* Runs tests/api/poolbands.cnn on inputs with NaNs, infinities, signed
 * zeros and many ties, with weights of -0.5 to 0.5 in steps of 0.25 (so
 * sums tie and come out as signed zeros too), and writes the outputs' bits
 * to stdout, every NaN as one NaN (see poolbands.cnn). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "poolbands.h"

static float bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Values from a linear congruential generator, so that no two rows of a
 * plane repeat each other (a chunk's rows read in the wrong place show);
 * NaNs rare enough that most of the 150-term sums stay numbers. */
static void fill(float *v, uint32_t n, uint32_t seed) {
    for (uint32_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        uint32_t k = seed >> 8;
        v[i] = k % 4099 == 0 ? bits(0x7fc00000u | k % 4096)   /* a few NaNs */
             : k % 3989 == 0 ? bits(0xff800000u)               /* -infinity */
             : k % 7 == 0 ? -0.0f : k % 5 == 0 ? 0.0f
             : (float)((int)(k % 17) - 8) * 0.25f;          /* many ties */
    }
}

static void put(float *v, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (v[i] != v[i])
            v[i] = bits(0x7fc00000u);
    fwrite(v, sizeof *v, n, stdout);
}

int main(void) {
    static float params[poolbands_PARAM_COUNT], packed[poolbands_PACKED_COUNT];
    static float x[poolbands_IN_x_SIZE], y[poolbands_IN_y_SIZE], z[poolbands_IN_z_SIZE],
                 u[poolbands_IN_u_SIZE];
    static float a[poolbands_OUT_a_SIZE], b[poolbands_OUT_b_SIZE], c[poolbands_OUT_c_SIZE],
                 d[poolbands_OUT_d_SIZE], e[poolbands_OUT_e_SIZE], f[poolbands_OUT_f_SIZE],
                 g[poolbands_OUT_g_SIZE];
    static _Alignas(64) unsigned char arena[poolbands_ARENA_BYTES + 1];
    uint32_t seed = 99;
    for (uint32_t i = 0; i < poolbands_PARAM_COUNT; i++) {
        seed = seed * 1664525u + 1013904223u;
        params[i] = (float)((int)(seed >> 8) % 5 - 2) * 0.25f;
    }
    fill(x, poolbands_IN_x_SIZE, 0);
    fill(y, poolbands_IN_y_SIZE, 11);
    fill(z, poolbands_IN_z_SIZE, 23);
    fill(u, poolbands_IN_u_SIZE, 37);
    poolbands_pack(params, packed);
    if (poolbands_forward(packed, x, y, z, u, a, b, c, d, e, f, g, 1, arena))
        return 1;
    put(a, poolbands_OUT_a_SIZE);
    put(b, poolbands_OUT_b_SIZE);
    put(c, poolbands_OUT_c_SIZE);
    put(d, poolbands_OUT_d_SIZE);
    put(e, poolbands_OUT_e_SIZE);
    put(f, poolbands_OUT_f_SIZE);
    put(g, poolbands_OUT_g_SIZE);
    return 0;
}
