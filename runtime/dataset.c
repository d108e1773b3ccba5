/* dataset.c — what is done with a loaded data set: freeing it, shuffling the
 * sample order, and gathering a batch. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void cnnrt_dataset_free(CnnrtDataset *d) {
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

/* Unbiased in [0, n) for any n up to 2^63: one u32 draw when n fits. */
static uint64_t below64(CnnrtRng *rng, uint64_t n) {
    if (n <= UINT32_MAX)
        return cnnrt_rng_below(rng, (uint32_t)n);
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = (uint64_t)cnnrt_rng_u32(rng) << 32 | cnnrt_rng_u32(rng);
        if (x >= threshold)
            return x % n;
    }
}

/* Fills order with 0..n-1 and shuffles it (Fisher-Yates, from the end). */
void cnnrt_shuffle(int64_t *order, int64_t n, CnnrtRng *rng) {
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)below64(rng, (uint64_t)i + 1);
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* A sample index outside the data set gives a zero image and label -1 (which
 * cnnrt_softmax_xent turns into a NaN loss) rather than a wild read. */
void cnnrt_gather(const CnnrtDataset *d, const int64_t *order, int64_t first,
                  int batch, float *x, int32_t *y) {
    size_t sample = (size_t)d->channels * (size_t)d->height * (size_t)d->width;
    for (int b = 0; b < batch; b++) {
        int64_t k = order[first + b];
        float *dst = x + (size_t)b * sample;
        if (k < 0 || k >= d->count) {
            memset(dst, 0, sample * sizeof *dst);
            if (y)
                y[b] = -1;
            continue;
        }
        memcpy(dst, d->images + (size_t)k * sample, sample * sizeof *dst);
        if (y)
            y[b] = d->labels[k];
    }
}
