/* init.c — PyTorch's default initialisation of every parameter tensor.
 *
 * nn.Conv2d and nn.Linear call kaiming_uniform_(w, a=sqrt(5)): gain
 * sqrt(2 / (1 + a^2)) = sqrt(1/3), bound = gain * sqrt(3 / fan_in)
 * = 1 / sqrt(fan_in); their bias is uniform in the same +-1/sqrt(fan_in).
 * The draws go tensor by tensor in table order, element by element, so one
 * seed gives one network. */
#include <math.h>

#include "internal.h"

static void fill(float *p, int64_t count, float value) {
    for (int64_t i = 0; i < count; i++)
        p[i] = value;
}

/* Uniform in [-bound, bound); bound 0 (no fan-in) gives zeros. */
static void fill_uniform(float *p, int64_t count, double bound, CnnrtRng *rng) {
    for (int64_t i = 0; i < count; i++) {
        float v = (float)((2.0 * cnnrt_rng_uniform(rng) - 1.0) * bound);
        p[i] = v < (float)bound ? v : -(float)bound;  /* rounding up to +bound */
    }
}

void cnnrt_init_params(const CnnrtParam *table, int n, float *params, CnnrtRng *rng) {
    for (int t = 0; t < n; t++) {
        const CnnrtParam *q = &table[t];
        float *p = params + q->offset;
        double bound = q->fan_in > 0 ? 1.0 / sqrt((double)q->fan_in) : 0.0;
        switch (q->kind) {
        case CNNRT_WEIGHT:
        case CNNRT_BIAS:
            fill_uniform(p, q->count, bound, rng);
            break;
        case CNNRT_GAMMA:
        case CNNRT_RUNNING_VAR:
            fill(p, q->count, 1.0f);
            break;
        case CNNRT_PRELU_ALPHA:
            fill(p, q->count, 0.25f);
            break;
        case CNNRT_BETA:
        case CNNRT_RUNNING_MEAN:
        case CNNRT_LEARNED_BIAS:
        default:
            fill(p, q->count, 0.0f);
            break;
        }
    }
}
