/* trainer.c — the training loop of `cnnc train`, for any compiled network:
 * options, data, the epochs (shuffle, augment, forward, loss, backward,
 * optimiser step), evaluation on the test set with the inference code,
 * checkpoints after every epoch, a CSV log and the final weights.
 *
 * A run is a pure function of its options and seed: the RNG state is saved
 * in each checkpoint and every dropout mask is derived from (seed, epoch,
 * step), so --resume continues exactly where an uninterrupted run would be.
 */
#include "cnnrt_train.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct TrainOptions {
    const char *data;          /* fashion-mnist, mnist, or a directory of IDX files */
    const char *train_x, *train_y, *test_x, *test_y;   /* own data: .f32 + int32 labels */
    int epochs, batch;
    CnnrtOptKind optimizer;
    double lr, momentum, weight_decay;
    int nesterov;
    CnnrtSchedule schedule;
    int step_size;
    double gamma;
    int augment;               /* random crop with padding 2, horizontal flip */
    uint64_t seed;
    const char *resume, *init, *out, *checkpoint, *log;
    const char *freeze;        /* comma-separated layer names or prefixes */
    int mse;                   /* mean squared error on one-hot labels */
    int64_t limit, test_limit; /* use only the first N samples (0: all) */
} TrainOptions;

static volatile sig_atomic_t interrupted = 0;

static void on_interrupt(int sig) {
    (void)sig;
    interrupted = 1;
}

static int fail(const char *fmt, const char *arg) {
    fprintf(stderr, "cnnc train: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 1;
}

/* ---- options ------------------------------------------------------------- */

static int parse_options(int argc, char **argv, const CnnrtNetwork *net, TrainOptions *o) {
    memset(o, 0, sizeof *o);
    o->data = "fashion-mnist";
    o->epochs = 1;
    o->batch = net->max_batch;
    o->optimizer = CNNRT_SGD;
    o->lr = -1;
    o->momentum = 0.9;
    o->schedule = CNNRT_CONSTANT;
    o->step_size = 1;
    o->gamma = 0.1;
    o->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "--nesterov")) { o->nesterov = 1; takes = 0; }
        else if (!strcmp(a, "--augment")) { o->augment = 1; takes = 0; }
        else if (!v) return fail("%s needs a value", a);
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--train-images")) o->train_x = v;
        else if (!strcmp(a, "--train-labels")) o->train_y = v;
        else if (!strcmp(a, "--test-images")) o->test_x = v;
        else if (!strcmp(a, "--test-labels")) o->test_y = v;
        else if (!strcmp(a, "--epochs")) o->epochs = atoi(v);
        else if (!strcmp(a, "--batch")) o->batch = atoi(v);
        else if (!strcmp(a, "--lr")) o->lr = atof(v);
        else if (!strcmp(a, "--momentum")) o->momentum = atof(v);
        else if (!strcmp(a, "--weight-decay")) o->weight_decay = atof(v);
        else if (!strcmp(a, "--step-size")) o->step_size = atoi(v);
        else if (!strcmp(a, "--gamma")) o->gamma = atof(v);
        else if (!strcmp(a, "--seed")) o->seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--resume")) o->resume = v;
        else if (!strcmp(a, "--init")) o->init = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--checkpoint")) o->checkpoint = v;
        else if (!strcmp(a, "--log")) o->log = v;
        else if (!strcmp(a, "--freeze")) o->freeze = v;
        else if (!strcmp(a, "--limit")) o->limit = atoll(v);
        else if (!strcmp(a, "--test-limit")) o->test_limit = atoll(v);
        else if (!strcmp(a, "--loss")) {
            if (strcmp(v, "xent") && strcmp(v, "mse"))
                return fail("--loss is xent or mse, not '%s'", v);
            o->mse = !strcmp(v, "mse");
        } else if (!strcmp(a, "--optimizer")) {
            if (!strcmp(v, "sgd")) o->optimizer = CNNRT_SGD;
            else if (!strcmp(v, "adam")) o->optimizer = CNNRT_ADAM;
            else if (!strcmp(v, "adamw")) o->optimizer = CNNRT_ADAMW;
            else return fail("--optimizer is sgd, adam or adamw, not '%s'", v);
        } else if (!strcmp(a, "--schedule")) {
            if (!strcmp(v, "constant")) o->schedule = CNNRT_CONSTANT;
            else if (!strcmp(v, "step")) o->schedule = CNNRT_STEP;
            else if (!strcmp(v, "cosine")) o->schedule = CNNRT_COSINE;
            else return fail("--schedule is constant, step or cosine, not '%s'", v);
        } else {
            return fail("unknown training option '%s'", a);
        }
        i += takes;
    }
    if (o->epochs < 1)
        return fail("--epochs must be at least 1%s", "");
    if (o->batch < 1 || o->batch > net->max_batch) {
        fprintf(stderr, "cnnc train: --batch must be 1 to %d (the batch the network "
                "was built for)\n", net->max_batch);
        return 1;
    }
    if (o->lr < 0)
        o->lr = o->optimizer == CNNRT_SGD ? 0.01 : 0.001;
    if (o->step_size < 1)
        o->step_size = 1;
    return 0;
}

/* ---- data -------------------------------------------------------------------- */

static int load_data(const TrainOptions *o, CnnrtDataset *train, CnnrtDataset *test,
                     const CnnrtNetwork *net) {
    char a[4096], b[4096];
    if (o->train_x || o->train_y || o->test_x || o->test_y) {
        if (!o->train_x || !o->train_y || !o->test_x || !o->test_y)
            return fail("own data needs --train-images, --train-labels, --test-images "
                        "and --test-labels%s", "");
        if (cnnrt_load_f32(o->train_x, o->train_y, net->channels, net->height,
                           net->width, train) ||
            cnnrt_load_f32(o->test_x, o->test_y, net->channels, net->height,
                           net->width, test))
            return fail("%s", cnnrt_error());
        return 0;
    }
    const char *dir = o->data;
    if (!strcmp(dir, "fashion-mnist"))
        dir = "/usr/share/datasets/fashion-mnist";
    else if (!strcmp(dir, "mnist"))
        dir = "/usr/share/datasets/mnist";
    snprintf(a, sizeof a, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(b, sizeof b, "%s/train-labels-idx1-ubyte.gz", dir);
    if (cnnrt_load_idx(a, b, train))
        return fail("%s (for Fashion-MNIST: apt-get install dataset-fashion-mnist)",
                    cnnrt_error());
    snprintf(a, sizeof a, "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(b, sizeof b, "%s/t10k-labels-idx1-ubyte.gz", dir);
    if (cnnrt_load_idx(a, b, test))
        return fail("%s", cnnrt_error());
    if (train->channels != net->channels || train->height != net->height ||
        train->width != net->width) {
        fprintf(stderr, "cnnc train: the images are [%d,%d,%d] but network '%s' takes "
                "[%d,%d,%d]\n", train->channels, train->height, train->width, net->name,
                net->channels, net->height, net->width);
        return 1;
    }
    return 0;
}

/* ---- parameters ------------------------------------------------------------- */

/* trainable[i]: learnable and not in a frozen layer. */
static unsigned char *trainable_mask(const CnnrtNetwork *net, const char *freeze) {
    unsigned char *m = calloc((size_t)net->param_count + 1, 1);
    if (!m)
        return NULL;
    for (int t = 0; t < net->ntensors; t++) {
        const CnnrtParam *p = &net->table[t];
        int frozen = 0;
        for (const char *s = freeze; s && *s && !frozen;) {
            const char *end = strchr(s, ',');
            size_t len = end ? (size_t)(end - s) : strlen(s);
            frozen = len > 0 && !strncmp(p->layer, s, len) &&
                     (p->layer[len] == 0 || p->layer[len] == '.');
            s = end ? end + 1 : s + len;
        }
        if (p->learnable && !frozen)
            memset(m + p->offset, 1, (size_t)p->count);
    }
    return m;
}

static int read_weights(const char *path, float *params, int64_t n, const char *net) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail("cannot open weights '%s'", path);
    size_t got = fread(params, sizeof(float), (size_t)n, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != (size_t)n || extra) {
        fprintf(stderr, "cnnc train: '%s' does not hold the %lld parameters of network "
                "'%s'\n", path, (long long)n, net);
        return 1;
    }
    return 0;
}

static void *aligned(int64_t bytes, void **raw) {
    *raw = malloc((size_t)bytes + 64);
    if (!*raw)
        return NULL;
    return (char *)*raw + (64 - (uintptr_t)*raw % 64) % 64;
}

/* ---- evaluation ---------------------------------------------------------------- */

/* Test accuracy with the inference code and packed weights, in batches. */
static double evaluate(const CnnrtNetwork *net, const CnnrtDataset *d, int64_t limit,
                       const float *params, float *packed, void *arena, float *x,
                       float *logits) {
    int64_t n = limit > 0 && limit < d->count ? limit : d->count;
    int64_t per = (int64_t)d->channels * d->height * d->width, correct = 0;
    net->pack(params, packed);
    for (int64_t first = 0; first < n; first += net->max_batch) {
        int b = (int)(n - first < net->max_batch ? n - first : net->max_batch);
        memcpy(x, d->images + first * per, sizeof(float) * (size_t)(b * per));
        if (net->forward(packed, x, logits, b, arena) != 0)
            return -1;
        for (int i = 0; i < b; i++) {
            const float *row = logits + (int64_t)i * net->out_size;
            int64_t best = 0;
            for (int64_t k = 1; k < net->out_size; k++)
                if (row[k] > row[best])
                    best = k;
            correct += best == d->labels[first + i];
        }
    }
    return (double)correct / (double)n;
}

/* ---- the loop ------------------------------------------------------------------ */

typedef struct Loop {
    const CnnrtNetwork *net;
    TrainOptions o;
    CnnrtDataset train, test;
    float *params, *grads, *packed, *x, *logits, *dlogits;
    int32_t *labels;
    unsigned char *trainable;
    void *train_arena, *arena, *raw1, *raw2;
    int64_t *order;
    CnnrtOptimizer opt;
    CnnrtRng rng;
    int64_t epoch;
    FILE *log;
} Loop;

/* One epoch; returns the mean loss and fills the training accuracy and the
 * images per second, or returns NAN after an interruption or a bad loss. */
static double run_epoch(Loop *L, double lr, double *accuracy, double *speed) {
    const CnnrtNetwork *net = L->net;
    const TrainOptions *o = &L->o;
    int64_t n = o->limit > 0 && o->limit < L->train.count ? o->limit : L->train.count;
    cnnrt_shuffle(L->order, L->train.count, &L->rng);
    char label[64];
    snprintf(label, sizeof label, "epoch %lld/%d", (long long)L->epoch + 1, o->epochs);
    CnnrtProgress bar;
    cnnrt_progress_start(&bar, label, n);
    double loss_sum = 0, start = cnnrt_now();
    int64_t correct = 0, seen = 0, step = 0;
    L->opt.lr = lr;
    for (int64_t first = 0; first < n; first += o->batch, step++) {
        int b = (int)(n - first < o->batch ? n - first : o->batch);
        cnnrt_gather(&L->train, L->order, first, b, L->x, L->labels);
        if (o->augment)
            cnnrt_augment(L->x, b, net->channels, net->height, net->width, 2, 1, &L->rng);
        unsigned long long seed = o->seed * 1000003ULL + (unsigned long long)L->epoch *
                                  1000000007ULL + (unsigned long long)step;
        net->train_forward(L->params, L->x, L->logits, b, L->train_arena, seed, 1);
        int right = 0;
        double loss;
        if (o->mse) {
            for (int i = 0; i < b; i++)
                for (int64_t k = 0; k < net->out_size; k++)
                    L->dlogits[i * net->out_size + k] = k == L->labels[i] ? 1.0f : 0.0f;
            loss = cnnrt_mse(L->logits, L->dlogits, b, net->out_size, L->dlogits);
            for (int i = 0; i < b; i++) {
                const float *row = L->logits + i * net->out_size;
                int64_t best = 0;
                for (int64_t k = 1; k < net->out_size; k++)
                    best = row[k] > row[best] ? k : best;
                right += best == L->labels[i];
            }
        } else {
            loss = cnnrt_softmax_xent(L->logits, L->labels, b, (int)net->out_size,
                                      L->dlogits, &right);
        }
        if (!isfinite(loss)) {
            cnnrt_progress_end(&bar);
            fprintf(stderr, "cnnc train: the loss became %g at epoch %lld, step %lld; "
                    "try a smaller --lr\n", loss, (long long)L->epoch + 1, (long long)step);
            return NAN;
        }
        net->backward(L->params, L->x, L->dlogits, L->grads, b, L->train_arena);
        cnnrt_opt_step(&L->opt, L->params, L->grads, L->trainable);
        loss_sum += loss * b;
        correct += right;
        seen += b;
        cnnrt_progress_update(&bar, seen, loss_sum / (double)seen);
        if (interrupted)
            break;
    }
    cnnrt_progress_end(&bar);
    if (interrupted)
        return NAN;
    *speed = (double)seen / (cnnrt_now() - start);
    *accuracy = (double)correct / (double)seen;
    return loss_sum / (double)seen;
}

static int save_checkpoint(Loop *L, const char *path) {
    CnnrtCheckpoint c = {
        .network = L->net->name,
        .identity = cnnrt_identity(L->net->table, L->net->ntensors),
        .n = L->net->param_count,
        .params = L->params,
        .opt = &L->opt,
        .epoch = L->epoch,
        .rng = L->rng,
    };
    if (cnnrt_save_checkpoint(path, &c) != 0)
        return fail("%s", cnnrt_error());
    return 0;
}

static int start_state(Loop *L, const char *ckpt) {
    const CnnrtNetwork *net = L->net;
    const TrainOptions *o = &L->o;
    cnnrt_rng_seed(&L->rng, o->seed, 54);
    if (o->resume) {
        CnnrtCheckpoint c = {
            .network = net->name,
            .identity = cnnrt_identity(net->table, net->ntensors),
            .n = net->param_count,
            .params = L->params,
            .opt = &L->opt,
        };
        if (cnnrt_load_checkpoint(o->resume, &c) != 0)
            return fail("%s", cnnrt_error());
        L->epoch = c.epoch;
        L->rng = c.rng;
        fprintf(stderr, "cnnc train: resuming from '%s' after epoch %lld\n", o->resume,
                (long long)c.epoch);
        return 0;
    }
    (void)ckpt;
    if (o->init)
        return read_weights(o->init, L->params, net->param_count, net->name);
    cnnrt_init_params(net->table, net->ntensors, L->params, &L->rng);
    return 0;
}

static int setup(Loop *L) {
    const CnnrtNetwork *net = L->net;
    int64_t per = (int64_t)net->channels * net->height * net->width;
    int64_t B = net->max_batch;
    L->params = malloc(sizeof(float) * (size_t)(net->param_count + 1));
    L->grads = malloc(sizeof(float) * (size_t)(net->param_count + 1));
    L->packed = malloc(sizeof(float) * (size_t)(net->packed_count + 1));
    L->x = malloc(sizeof(float) * (size_t)(B * per));
    L->logits = malloc(sizeof(float) * (size_t)(B * net->out_size));
    L->dlogits = malloc(sizeof(float) * (size_t)(B * net->out_size));
    L->labels = malloc(sizeof(int32_t) * (size_t)B);
    L->order = malloc(sizeof(int64_t) * (size_t)(L->train.count + 1));
    L->trainable = trainable_mask(net, L->o.freeze);
    L->train_arena = aligned(net->train_arena_bytes, &L->raw1);
    L->arena = aligned(net->arena_bytes, &L->raw2);
    if (!L->params || !L->grads || !L->packed || !L->x || !L->logits || !L->dlogits ||
        !L->labels || !L->order || !L->trainable || !L->train_arena || !L->arena)
        return fail("out of memory%s", "");
    if (cnnrt_opt_init(&L->opt, L->o.optimizer, net->param_count) != 0)
        return fail("%s", cnnrt_error());
    L->opt.momentum = L->o.optimizer == CNNRT_SGD ? L->o.momentum : L->opt.momentum;
    L->opt.nesterov = L->o.nesterov;
    L->opt.weight_decay = L->o.weight_decay;
    L->opt.lr = L->o.lr;
    return 0;
}

static void teardown(Loop *L) {
    free(L->params);
    free(L->grads);
    free(L->packed);
    free(L->x);
    free(L->logits);
    free(L->dlogits);
    free(L->labels);
    free(L->order);
    free(L->trainable);
    free(L->raw1);
    free(L->raw2);
    cnnrt_opt_free(&L->opt);
    cnnrt_dataset_free(&L->train);
    cnnrt_dataset_free(&L->test);
    if (L->log)
        fclose(L->log);
}

static int train(Loop *L) {
    const CnnrtNetwork *net = L->net;
    const TrainOptions *o = &L->o;
    char ckpt[4096];
    if (o->checkpoint)
        snprintf(ckpt, sizeof ckpt, "%s", o->checkpoint);
    else if (o->out)
        snprintf(ckpt, sizeof ckpt, "%s.ckpt", o->out);
    else
        snprintf(ckpt, sizeof ckpt, "%s.ckpt", net->name);
    if (start_state(L, ckpt))
        return 1;
    if (o->log) {
        L->log = fopen(o->log, L->epoch > 0 ? "a" : "w");
        if (!L->log)
            return fail("cannot write the log '%s'", o->log);
        if (L->epoch == 0)
            fprintf(L->log, "epoch,loss,train_accuracy,test_accuracy,images_per_second,lr\n");
    }
    signal(SIGINT, on_interrupt);
    for (; L->epoch < o->epochs; L->epoch++) {
        double lr = cnnrt_lr_at(o->schedule, o->lr, (int)L->epoch, o->epochs,
                                o->step_size, o->gamma);
        double acc = 0, speed = 0;
        double loss = run_epoch(L, lr, &acc, &speed);
        if (isnan(loss)) {
            if (interrupted)
                fprintf(stderr, "cnnc train: interrupted; '%s' holds the last completed "
                        "epoch (continue with --resume %s)\n", ckpt, ckpt);
            return interrupted ? 130 : 1;
        }
        double test = evaluate(net, &L->test, o->test_limit, L->params, L->packed,
                               L->arena, L->x, L->logits);
        printf("epoch %lld/%d: loss %.4f, train accuracy %.4f, %.0f images/s, lr %g, "
               "test accuracy %.4f\n", (long long)L->epoch + 1, o->epochs, loss, acc,
               speed, lr, test);
        fflush(stdout);
        if (L->log) {
            fprintf(L->log, "%lld,%.6f,%.6f,%.6f,%.1f,%g\n", (long long)L->epoch + 1, loss,
                    acc, test, speed, lr);
            fflush(L->log);
        }
        int64_t done = L->epoch;
        L->epoch = done + 1;          /* the checkpoint holds completed epochs */
        int rc = save_checkpoint(L, ckpt);
        L->epoch = done;
        if (rc)
            return 1;
    }
    if (o->out) {
        if (cnnrt_write_file(o->out, L->params, sizeof(float) * (size_t)net->param_count))
            return fail("%s", cnnrt_error());
        fprintf(stderr, "cnnc train: weights written to '%s'\n", o->out);
    }
    return 0;
}

int cnnrt_train_main(const CnnrtNetwork *net, int argc, char **argv) {
    Loop L;
    memset(&L, 0, sizeof L);
    L.net = net;
    if (parse_options(argc, argv, net, &L.o))
        return 2;
    if (load_data(&L.o, &L.train, &L.test, net))
        return 1;
    int64_t max_label = 0;
    for (int64_t i = 0; i < L.train.count; i++)
        max_label = L.train.labels[i] > max_label ? L.train.labels[i] : max_label;
    if (max_label >= net->out_size) {
        fprintf(stderr, "cnnc train: the labels go up to %lld but the first output of "
                "'%s' has only %lld values\n", (long long)max_label, net->name,
                (long long)net->out_size);
        cnnrt_dataset_free(&L.train);
        cnnrt_dataset_free(&L.test);
        return 1;
    }
    int rc = setup(&L);
    if (rc == 0)
        rc = train(&L);
    teardown(&L);
    return rc;
}
