/* Runs tests/api/poolconv.cnn on an input with NaNs of distinct payloads,
 * infinities, signed zeros and many ties, with weights of -0.5, 0 and 0.5
 * (so sums tie and come out as signed zeros too), and writes the outputs'
 * bits to stdout. */
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
                 w[poolconv_OUT_w_SIZE];
    static _Alignas(64) unsigned char arena[poolconv_ARENA_BYTES + 1];
    for (uint32_t i = 0; i < poolconv_PARAM_COUNT; i++)
        params[i] = (float)((int)(i * 7 % 3) - 1) * 0.5f;
    for (uint32_t i = 0; i < poolconv_IN_x_SIZE; i++)
        x[i] = i % 97 == 0 ? bits(0x7fc00000u | i)           /* NaN, payload i */
             : i % 89 == 0 ? bits(0xff800000u)                /* -infinity */
             : i % 7 == 0 ? -0.0f : i % 5 == 0 ? 0.0f
             : (float)((int)(i * 37 % 17) - 8) * 0.25f;    /* many ties */
    poolconv_pack(params, packed);
    if (poolconv_forward(packed, x, a, b, w, 1, arena))
        return 1;
    fwrite(a, sizeof a, 1, stdout);
    fwrite(b, sizeof b, 1, stdout);
    fwrite(w, sizeof w, 1, stdout);
    return 0;
}
