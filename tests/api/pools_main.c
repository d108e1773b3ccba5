/* Runs tests/api/pools.cnn on an input full of ties, signed zeros, -infinity
 * and NaNs with distinct payloads, and writes the outputs' bits to stdout: every
 * target must write the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pools.h"

static float bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int main(void) {
    static float x[pools_IN_x_SIZE], a[pools_OUT_a_SIZE], b[pools_OUT_b_SIZE],
                 c[pools_OUT_c_SIZE], n[pools_OUT_n_SIZE], m[pools_OUT_m_SIZE],
                 w[pools_OUT_w_SIZE], d[pools_OUT_d_SIZE], s[pools_OUT_s_SIZE],
                 t[pools_OUT_t_SIZE], r[pools_OUT_r_SIZE], q[pools_OUT_q_SIZE];
    static _Alignas(64) unsigned char arena[pools_ARENA_BYTES + 1];
    for (uint32_t i = 0; i < pools_IN_x_SIZE; i++)
        x[i] = i % 29 == 0 ? bits(0x7fc00000u | i)           /* NaN, payload i */
             : i % 31 == 0 ? bits(0xff800000u)                /* -infinity */
             : i % 7 == 0 ? -0.0f : i % 5 == 0 ? 0.0f
             : (float)((int)(i * 37 % 17) - 8) * 0.25f;    /* many ties */
    if (pools_forward(NULL, x, a, b, c, n, m, w, d, s, t, r, q, 1, arena))
        return 1;
    fwrite(a, sizeof a, 1, stdout);
    fwrite(b, sizeof b, 1, stdout);
    fwrite(c, sizeof c, 1, stdout);
    fwrite(n, sizeof n, 1, stdout);
    fwrite(m, sizeof m, 1, stdout);
    fwrite(w, sizeof w, 1, stdout);
    fwrite(d, sizeof d, 1, stdout);
    fwrite(s, sizeof s, 1, stdout);
    fwrite(t, sizeof t, 1, stdout);
    fwrite(r, sizeof r, 1, stdout);
    fwrite(q, sizeof q, 1, stdout);
    return 0;
}
