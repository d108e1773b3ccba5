/* cnnrt.h — libcnnrt, the small runtime that trains networks compiled by
 * cnnc. Inference needs none of it; training links it beside the generated
 * NAME.c. It knows nothing of any particular network: it works on the flat
 * canonical parameter vector (DSL.md order) and the table of parameter
 * tensors the generated code exports (NAME_param_table).
 *
 * Sections: parameter tensors and initialisers; losses; optimisers and
 * learning-rate schedules; data sets, shuffling and augmentation;
 * checkpoints; random numbers; progress output.
 *
 * Errors: functions that can fail return 0 on success and -1 on failure,
 * with a one-line message in the user's terms (naming the file) available
 * from cnnrt_error().
 */
#ifndef CNNRT_H
#define CNNRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The last error message, or "" when there was none. */
const char *cnnrt_error(void);

/* ---- random numbers -------------------------------------------------------
 * PCG32 (O'Neill): small, fast, and the same sequence on every machine, so a
 * seed fixes a whole training run. */
typedef struct CnnrtRng {
    uint64_t state, inc;
} CnnrtRng;

void cnnrt_rng_seed(CnnrtRng *r, uint64_t seed, uint64_t stream);
uint32_t cnnrt_rng_u32(CnnrtRng *r);
double cnnrt_rng_uniform(CnnrtRng *r);             /* [0, 1) */
uint32_t cnnrt_rng_below(CnnrtRng *r, uint32_t n); /* [0, n), unbiased */

/* ---- parameter tensors and initialisers ---------------------------------- */
typedef enum CnnrtParamKind {
    CNNRT_WEIGHT,        /* conv, local, dense weights */
    CNNRT_BIAS,          /* conv, local, dense biases */
    CNNRT_GAMMA, CNNRT_BETA,
    CNNRT_RUNNING_MEAN, CNNRT_RUNNING_VAR,
    CNNRT_PRELU_ALPHA,
    CNNRT_LEARNED_BIAS,  /* the `bias` layer: one value per element */
} CnnrtParamKind;

/* One parameter tensor of a network, as NAME_param_table lists them. */
typedef struct CnnrtParam {
    const char *layer;   /* the node's name: "conv1", "basic2.bn1" */
    const char *name;    /* "weight", "bias", "gamma", ... */
    CnnrtParamKind kind;
    int64_t offset;      /* first float in the canonical vector */
    int64_t count;
    int64_t fan_in;      /* inputs feeding one output: C/groups*kh*kw, in */
    int learnable;       /* 0 for BN running statistics */
} CnnrtParam;

/* PyTorch's default initialisation: weights and biases uniform in
 * +-1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5), and the bias rule of
 * nn.Conv2d / nn.Linear), gamma 1, beta 0, running mean 0, running var 1,
 * PReLU slopes 0.25, learned biases 0. */
void cnnrt_init_params(const CnnrtParam *table, int n, float *params, CnnrtRng *rng);

/* ---- losses ----------------------------------------------------------------
 * Both return the mean loss over the batch and write the gradient of that
 * mean with respect to their input (dinput may be NULL). */

/* Softmax cross-entropy on logits [batch][classes] against integer labels,
 * fused and stable (log-sum-exp shifted by the maximum). Also counts the
 * samples whose arg-max equals the label into *correct when not NULL. */
double cnnrt_softmax_xent(const float *logits, const int32_t *labels, int batch,
                          int classes, float *dlogits, int *correct);

/* Mean squared error over batch * n values (PyTorch's MSELoss, 'mean'). */
double cnnrt_mse(const float *out, const float *target, int batch, int64_t n,
                 float *dout);

/* ---- optimisers --------------------------------------------------------------- */
typedef enum CnnrtOptKind { CNNRT_SGD, CNNRT_ADAM, CNNRT_ADAMW } CnnrtOptKind;

typedef struct CnnrtOptimizer {
    CnnrtOptKind kind;
    double lr;
    double momentum;       /* SGD */
    double dampening;      /* SGD, as torch.optim.SGD (default 0) */
    int nesterov;          /* SGD */
    double weight_decay;   /* SGD and Adam: added to the gradient; AdamW: decoupled */
    double beta1, beta2, eps;  /* Adam, AdamW (defaults 0.9, 0.999, 1e-8) */
    int64_t n;             /* floats in the parameter vector */
    float *m, *v;          /* state: momentum buffer / first and second moments */
    int64_t step;          /* updates done so far */
} CnnrtOptimizer;

/* Sets defaults for `kind` (lr 0.01 for SGD, 0.001 for Adam/AdamW; the rest as
 * torch.optim) and allocates zeroed state for n floats. -1 if out of memory. */
int cnnrt_opt_init(CnnrtOptimizer *o, CnnrtOptKind kind, int64_t n);
void cnnrt_opt_free(CnnrtOptimizer *o);

/* One update of params with grads, exactly as torch.optim does it (SGD:
 * momentum buffer seeded with the first gradient; Adam: bias-corrected
 * moments). Only floats whose trainable[i] is non-zero change; trainable
 * may be NULL (all). */
void cnnrt_opt_step(CnnrtOptimizer *o, float *params, const float *grads,
                    const unsigned char *trainable);

/* torch.optim's constructor checks (lr, weight decay, momentum, betas, eps
 * non-negative and betas below 1; nesterov needs momentum and no dampening):
 * -1 with a message if the settings are invalid. cnnrt_opt_step does not
 * check; call this once after setting the hyper-parameters. */
int cnnrt_opt_check(const CnnrtOptimizer *o);
/* "SGD", "Adam", "AdamW" */
const char *cnnrt_opt_name(CnnrtOptKind kind);

/* ---- learning-rate schedules ------------------------------------------------ */
typedef enum CnnrtSchedule {
    CNNRT_CONSTANT,
    CNNRT_STEP,     /* lr * gamma^(epoch / step_size) (StepLR) */
    CNNRT_COSINE,   /* lr * (1 + cos(pi * epoch / epochs)) / 2 (CosineAnnealingLR, eta_min 0) */
} CnnrtSchedule;

double cnnrt_lr_at(CnnrtSchedule s, double base_lr, int epoch, int epochs,
                   int step_size, double gamma);

/* ---- data sets --------------------------------------------------------------- */
typedef struct CnnrtDataset {
    int64_t count;         /* samples */
    int channels, height, width;
    float *images;         /* count * channels * height * width, NCHW */
    int32_t *labels;       /* count */
    int classes;           /* 1 + the largest label */
} CnnrtDataset;

/* Reads an IDX image file and its IDX label file (MNIST, Fashion-MNIST),
 * gzip-compressed or not, pixels scaled to [0, 1]. Checks the magic numbers,
 * the sizes against each other and against the file lengths. */
int cnnrt_load_idx(const char *images_path, const char *labels_path, CnnrtDataset *d);

/* A user's own data: raw float32 samples (NCHW, C*H*W floats each) and a
 * labels file of int32 little-endian, one per sample. */
int cnnrt_load_f32(const char *images_path, const char *labels_path, int channels,
                   int height, int width, CnnrtDataset *d);

void cnnrt_dataset_free(CnnrtDataset *d);

/* Writes a random permutation of 0..n-1 into order, whatever it held
 * (Fisher-Yates from the end, cnnrt_rng_below for each swap). */
void cnnrt_shuffle(int64_t *order, int64_t n, CnnrtRng *rng);

/* Copies samples order[first .. first+batch) into x (NCHW) and y. */
void cnnrt_gather(const CnnrtDataset *d, const int64_t *order, int64_t first,
                  int batch, float *x, int32_t *y);

/* In place on a batch of NCHW images: a random crop of the image padded by
 * `pad` zeros on each side (pad 0: none), then a horizontal flip with
 * probability 1/2 when flip is non-zero. */
void cnnrt_augment(float *x, int batch, int channels, int height, int width,
                   int pad, int flip, CnnrtRng *rng);

/* ---- checkpoints ---------------------------------------------------------------
 * A header (magic "CNNCKPT", format version, the network's name, parameter
 * count and an identity hash of its parameter shapes, the step, epoch and RNG
 * state, optimiser kind and hyper-parameters), then the parameters and the
 * optimiser state, then a CRC-32 of everything before it. Written to a
 * temporary file in the same directory, flushed, fsync'ed and renamed, so a
 * crash leaves the old checkpoint or the new one, never half of one. */
typedef struct CnnrtCheckpoint {
    const char *network;   /* the network's name */
    uint64_t identity;     /* cnnrt_identity() of its parameter table */
    int64_t n;             /* floats in the parameter vector */
    float *params;         /* n */
    CnnrtOptimizer *opt;   /* its state is saved and restored too */
    int64_t epoch;         /* completed epochs */
    CnnrtRng rng;
} CnnrtCheckpoint;

/* A hash of the parameter table (names, kinds, counts): a checkpoint made for
 * another network, or another layout of it, does not match. */
uint64_t cnnrt_identity(const CnnrtParam *table, int n);

/* The file, all little-endian (format version 1):
 *     0  "CNNCKPT\0"        magic, 8 bytes
 *     8  u32 version         1
 *    12  u32 header bytes    152
 *    16  u64 file bytes      the whole file, CRC included
 *    24  u64 identity        cnnrt_identity()
 *    32  i64 n               floats in the parameter vector
 *    40  i64 step            opt->step
 *    48  i64 epoch
 *    56  u64 rng.state, 64 u64 rng.inc
 *    72  u32 optimiser kind  CnnrtOptKind, 0xffffffff for none (opt NULL)
 *    76  u32 state vectors   0 (no optimiser), 1 (SGD: m), 2 (Adam, AdamW: m, v)
 *    80  u32 nesterov, 84 u32 name length L (1..4096)
 *    88  f64 lr, momentum, dampening, weight_decay, beta1, beta2, eps
 *   144  u32 reserved (0), 148 u32 CRC-32 of bytes 0..147
 *   152  the network's name, L bytes, no NUL
 *        params (n f32), then m (n f32) and v (n f32) as the state count says
 *  last  u32 CRC-32 (zlib crc32) of every byte before it
 * Every later version keeps the magic, the version at 8 and the CRC-32 of
 * everything at the end, so a newer file is recognised as such. */
int cnnrt_save_checkpoint(const char *path, const CnnrtCheckpoint *c);
/* Reads into c, whose network, identity, n, params and opt (initialised with
 * cnnrt_opt_init for the same n) describe what is expected. A truncated,
 * corrupted or foreign file is refused with a message naming what is wrong.
 * On success it sets params, epoch and rng and, when both c->opt and the file
 * hold optimiser state, that state, its step and its hyper-parameters (as
 * torch's Optimizer.load_state_dict does; set lr again afterwards to change
 * it). opt may be NULL: the parameters alone are loaded. Everything is
 * checked before c is touched; only a file changing during the load (an
 * error too) can leave c half-written. */
int cnnrt_load_checkpoint(const char *path, CnnrtCheckpoint *c);

/* Writes a whole file atomically (temporary name, fsync, rename). */
int cnnrt_write_file(const char *path, const void *data, size_t size);

/* ---- progress output ---------------------------------------------------------- */
typedef struct CnnrtProgress {
    const char *label;     /* "epoch 3/10" */
    int64_t total, done;   /* samples */
    double start;          /* seconds, from cnnrt_now() */
    double last_draw;
    int tty;               /* draw a bar in place, or print sparse lines */
    double loss;           /* the last one given to cnnrt_progress_update */
    int tenths;            /* without a tty: tenths of `total` reported so far */
} CnnrtProgress;

double cnnrt_now(void);    /* monotonic seconds */
void cnnrt_progress_start(CnnrtProgress *p, const char *label, int64_t total);
/* Redraws at most ten times a second: bar, samples, loss, images/s, time left.
 * When stderr is not a terminal (or TERM is "dumb"): one line each time
 * another tenth of `total` is done, and one at the end. */
void cnnrt_progress_update(CnnrtProgress *p, int64_t done, double loss);
void cnnrt_progress_end(CnnrtProgress *p);

/* ---- fault injection, for tests --------------------------------------------------
 * Per thread. cnnrt_test_fail_alloc(n): the n-th allocation of the runtime from
 * now on fails (once); 0 disarms. cnnrt_test_fail_write(b): the atomic writer
 * (checkpoints, cnnrt_write_file) fails as with ENOSPC after b more bytes;
 * -1 disarms. */
void cnnrt_test_fail_alloc(long n);
void cnnrt_test_fail_write(int64_t bytes);

#ifdef __cplusplus
}
#endif

#endif
