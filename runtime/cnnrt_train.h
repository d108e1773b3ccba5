/* cnnrt_train.h — the training program behind `cnnc train`. cnnc writes a
 * few lines that describe the compiled network (CnnrtNetwork) and a main()
 * that calls cnnrt_train_main(); everything else lives here, the same for
 * every network. */
#ifndef CNNRT_TRAIN_H
#define CNNRT_TRAIN_H

#include "cnnrt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the trainer needs to know of a network built with --train: one input
 * (images [C,H,W], or vectors [N] with channels = N and height = width = 1)
 * and its first output, trained as logits. Extra outputs get a zero
 * gradient: the generated shim takes care of them. */
typedef struct CnnrtNetwork {
    const char *name;
    int max_batch;                 /* NAME_BATCH */
    int64_t param_count, packed_count;
    const CnnrtParam *table;
    int ntensors;
    int64_t train_arena_bytes, arena_bytes;
    int channels, height, width;   /* the input sample */
    int64_t out_size;              /* floats of the first output per sample */
    int (*train_forward)(float *params, const float *x, float *y, int batch,
                         void *arena, unsigned long long seed, int dropout);
    int (*backward)(const float *params, const float *x, const float *dy,
                    float *grads, int batch, void *arena);
    void (*pack)(const float *params, float *packed);
    int (*forward)(const float *packed, const float *x, float *y, int batch,
                   void *arena);
} CnnrtNetwork;

/* Parses the training options (see `cnnc --help`), trains, prints one line
 * per epoch ending in "test accuracy 0.XXXX", writes checkpoints and the
 * final weights. Returns the process exit status. */
int cnnrt_train_main(const CnnrtNetwork *net, int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif
