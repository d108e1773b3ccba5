/* augment.c — torchvision's RandomCrop(size, padding=pad) followed by
 * RandomHorizontalFlip(), in place on a batch of NCHW images.
 *
 * A crop of the zero-padded image at offset (dy, dx), each uniform in
 * [0, 2*pad], is the image shifted by (dy - pad, dx - pad) with zeros coming
 * in: done in place by walking the rows away from the ones still to be read.
 * Draws per image, in order: dy, dx (when pad > 0), then the flip coin (when
 * flip), so a seed gives the same augmentation everywhere. */
#include <string.h>

#include "internal.h"

/* out[y][x] = in[y + oy][x + ox], zero outside, for one h x w plane. */
static void shift_plane(float *p, int h, int w, int oy, int ox) {
    int ax = ox < 0 ? -ox : ox;
    for (int i = 0; i < h; i++) {
        int y = oy > 0 ? i : h - 1 - i;  /* read rows ahead of the writes */
        float *row = p + (size_t)y * w;
        int src = y + oy;
        if (src < 0 || src >= h || ax >= w) {
            memset(row, 0, (size_t)w * sizeof *row);
            continue;
        }
        const float *from = p + (size_t)src * w;
        if (ox >= 0) {
            memmove(row, from + ox, (size_t)(w - ox) * sizeof *row);
            memset(row + w - ox, 0, (size_t)ox * sizeof *row);
        } else {
            memmove(row + ax, from, (size_t)(w - ax) * sizeof *row);
            memset(row, 0, (size_t)ax * sizeof *row);
        }
    }
}

static void flip_plane(float *p, int h, int w) {
    for (int y = 0; y < h; y++) {
        float *row = p + (size_t)y * w;
        for (int a = 0, b = w - 1; a < b; a++, b--) {
            float t = row[a];
            row[a] = row[b];
            row[b] = t;
        }
    }
}

void cnnrt_augment(float *x, int batch, int channels, int height, int width,
                   int pad, int flip, CnnrtRng *rng) {
    size_t plane = (size_t)height * width;
    for (int b = 0; b < batch; b++) {
        float *img = x + (size_t)b * channels * plane;
        if (pad > 0) {
            int oy = (int)cnnrt_rng_below(rng, 2u * (uint32_t)pad + 1) - pad;
            int ox = (int)cnnrt_rng_below(rng, 2u * (uint32_t)pad + 1) - pad;
            for (int c = 0; c < channels && (oy || ox); c++)
                shift_plane(img + c * plane, height, width, oy, ox);
        }
        if (flip && (cnnrt_rng_u32(rng) & 1))
            for (int c = 0; c < channels; c++)
                flip_plane(img + c * plane, height, width);
    }
}
