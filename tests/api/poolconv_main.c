/* Runs tests/api/poolconv.cnn on inputs with NaNs of distinct payloads,
 * infinities, signed zeros and many ties, with weights of -0.5, 0 and 0.5
 * (so sums tie and come out as signed zeros too), and writes the outputs'
 * bits to stdout, w's NaNs as one NaN (see poolconv.cnn). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "poolconv.h"

static float bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int main(void) {
    static float params[poolconv_PARAM_COUNT], packed[poolconv_PACKED_COUNT],
                 x[poolconv_IN_x_SIZE], a[poolconv_OUT_a_SIZE], b[poolconv_OUT_b_SIZE],
                 w[poolconv_OUT_w_SIZE], z[poolconv_IN_z_SIZE], v[poolconv_OUT_v_SIZE];
    static _Alignas(64) unsigned char arena[poolconv_ARENA_BYTES + 1];
    for (uint32_t i = 0; i < poolconv_PARAM_COUNT; i++)
        params[i] = (float)((int)(i * 7 % 3) - 1) * 0.5f;
    for (uint32_t i = 0; i < poolconv_IN_x_SIZE; i++)
        x[i] = i % 97 == 0 ? bits(0x7fc00000u | i)           /* NaN, payload i */
             : i % 89 == 0 ? bits(0xff800000u)                /* -infinity */
             : i % 7 == 0 ? -0.0f : i % 5 == 0 ? 0.0f
             : (float)((int)(i * 37 % 17) - 8) * 0.25f;    /* many ties */
    for (uint32_t i = 0; i < poolconv_IN_z_SIZE; i++)
        z[i] = i % 29 == 0 ? bits(0xffc00000u | i)          /* -NaN, payload i */
             : i % 31 == 0 ? bits(0x7f800000u)                /* infinity */
             : i % 3 == 0 ? -0.0f : (float)((int)(i * 13 % 9) - 4) * 0.5f;
    poolconv_pack(params, packed);
    if (poolconv_forward(packed, x, z, a, b, w, v, 1, arena))
        return 1;
    fwrite(a, sizeof a, 1, stdout);
    fwrite(b, sizeof b, 1, stdout);
    for (uint32_t i = 0; i < poolconv_OUT_w_SIZE; i++)
        if (w[i] != w[i])
            w[i] = bits(0x7fc00000u);
    fwrite(w, sizeof w, 1, stdout);
    fwrite(v, sizeof v, 1, stdout);
    return 0;
}
