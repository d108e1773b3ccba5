/* rng.c — PCG32 (O'Neill, pcg-random.org, the pcg32_random_r of the basic C
 * implementation): 64-bit LCG state, xorshift-high + random rotation output.
 * Integer arithmetic only, so a seed gives the same numbers everywhere. */
#include "internal.h"

#define PCG_MULT 6364136223846793005ULL

uint32_t cnnrt_rng_u32(CnnrtRng *r) {
    uint64_t old = r->state;
    r->state = old * PCG_MULT + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((32 - rot) & 31));
}

/* pcg32_srandom_r: `stream` picks one of 2^63 independent sequences. */
void cnnrt_rng_seed(CnnrtRng *r, uint64_t seed, uint64_t stream) {
    r->state = 0;
    r->inc = (stream << 1) | 1;
    cnnrt_rng_u32(r);
    r->state += seed;
    cnnrt_rng_u32(r);
}

/* 53 random bits, as MT19937's genrand_res53: every double in [0, 1) that is
 * a multiple of 2^-53, equally likely. */
double cnnrt_rng_uniform(CnnrtRng *r) {
    uint32_t a = cnnrt_rng_u32(r) >> 5, b = cnnrt_rng_u32(r) >> 6;
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

/* pcg32_boundedrand_r: reject the 2^32 mod n lowest values so each residue is
 * equally likely. n = 0 gives 0. */
uint32_t cnnrt_rng_below(CnnrtRng *r, uint32_t n) {
    if (n == 0)
        return 0;
    uint32_t threshold = (uint32_t)(-n) % n;
    for (;;) {
        uint32_t x = cnnrt_rng_u32(r);
        if (x >= threshold)
            return x % n;
    }
}
