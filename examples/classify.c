/* classify.c — the last step of `make demo`: a host program that uses the
 * trained network exactly as an app or firmware would, through the pair
 * that `cnnc build --weights W.f32 --embed` wrote. No weights file, no
 * runtime: NAME_forward with the weights compiled in. It reads a handful of
 * Fashion-MNIST test images (with libcnnrt's IDX reader, the host's
 * business) and prints what the network sees in each.
 *
 *   classify TEST-IMAGES.gz TEST-LABELS.gz [COUNT]
 */
#include <stdio.h>
#include <stdlib.h>

#include "cnnrt.h"
#include "fashion_bn.h"

static const char *const names[10] = {
    "T-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
};

/* A 28x28 image as text, two characters a pixel, darker is denser. */
static void draw(const float *img) {
    static const char shades[] = " .:-=+*#%@";
    for (int r = 0; r < 28; r += 2) {
        printf("    ");
        for (int c = 0; c < 28; c++) {
            float v = (img[r * 28 + c] + img[(r + 1) * 28 + c]) / 2;
            putchar(shades[(int)(v * 9.99f)]);
        }
        putchar('\n');
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: classify TEST-IMAGES.gz TEST-LABELS.gz [COUNT]\n");
        return 2;
    }
    int count = argc > 3 ? atoi(argv[3]) : 8;
    CnnrtDataset test;
    if (cnnrt_load_idx(argv[1], argv[2], &test) != 0) {
        fprintf(stderr, "classify: %s\n", cnnrt_error());
        return 1;
    }
    static _Alignas(64) unsigned char arena[fashion_bn_ARENA_BYTES];
    float logits[10];
    int right = 0;
    for (int i = 0; i < count && i < test.count; i++) {
        /* spread over the test set, not just its first images */
        int64_t k = (int64_t)i * (test.count / count);
        const float *img = test.images + k * fashion_bn_INPUT_SIZE;
        if (fashion_bn_forward(NULL, img, logits, 1, arena) != 0)
            return 1;
        int best = 0;
        for (int c = 1; c < 10; c++)
            best = logits[c] > logits[best] ? c : best;
        right += best == test.labels[k];
        if (i < 3)
            draw(img);
        printf("test image %5lld: predicted %-12s true %-12s %s\n", (long long)k,
               names[best], names[test.labels[k]], best == test.labels[k] ? "" : "(wrong)");
    }
    printf("%d of %d right\n", right, count);
    cnnrt_dataset_free(&test);
    return 0;
}
