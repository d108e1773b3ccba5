/* test_runtime.c — libcnnrt: random numbers, initialisers, losses and their
 * gradients, the optimisers against torch.optim (tests/data/optim_ref.h,
 * from tests/conformance/gen_optim_ref.py), schedules, data sets (the real
 * Fashion-MNIST files and broken synthetic ones), shuffling, augmentation,
 * checkpoints (round trip, and refusal of every truncation, every flipped
 * bit, foreign networks and other format versions), atomic writes,
 * injected allocation and write failures, and progress output. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cnnrt.h"
#include "data/optim_ref.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"

/* ---- helpers --------------------------------------------------------------- */

/* A fresh directory under /tmp for one test (Criterion runs tests in
 * parallel processes), removed with everything in it by rm_dir. */
static void make_dir(char *dir) {
    strcpy(dir, "/tmp/cnnrt-test-XXXXXX");
    cr_assert(mkdtemp(dir), "mkdtemp failed");
}

static void rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* Files in dir, "." and ".." aside. */
static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static char *path_in(char *buf, const char *dir, const char *name) {
    snprintf(buf, 512, "%s/%s", dir, name);
    return buf;
}

/* Unlinks first: ext4 flushes a file truncated and rewritten in place on
 * close (auto_da_alloc), which made the thousands of rewrites here slow. */
static void write_bytes(const char *path, const void *data, size_t n) {
    unlink(path);
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void write_gz(const char *path, const void *data, size_t n) {
    gzFile g = gzopen(path, "wb");
    cr_assert(g);
    cr_assert_eq(gzwrite(g, data, (unsigned)n), (int)n);
    gzclose(g);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(*n + 1);
    cr_assert_eq(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

/* The last error contains `want` (printf-formatted). */
static void expect_error(const char *fmt, ...) {
    char want[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    cr_expect(strstr(cnnrt_error(), want), "expected an error containing \"%s\", got \"%s\"",
              want, cnnrt_error());
}

static double max_abs(const float *v, int n) {
    double m = 0;
    for (int i = 0; i < n; i++)
        m = fmax(m, fabs(v[i]));
    return m;
}

/* ---- random numbers ------------------------------------------------------------ */

Test(rng, pcg32_reference_sequence) {
    /* pcg32-global-demo of the PCG reference C implementation: seed 42, stream 54 */
    static const uint32_t want[6] = {0xa15c02b7, 0x7b47f409, 0xba1d3330,
                                     0x83d2f293, 0xbfa4784b, 0xcbed606e};
    CnnrtRng r;
    cnnrt_rng_seed(&r, 42, 54);
    for (int i = 0; i < 6; i++)
        cr_expect_eq(cnnrt_rng_u32(&r), want[i], "output %d", i);
}

Test(rng, reproducible_and_streams_differ) {
    CnnrtRng a, b, c;
    cnnrt_rng_seed(&a, 7, 1);
    cnnrt_rng_seed(&b, 7, 1);
    cnnrt_rng_seed(&c, 7, 2);
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = cnnrt_rng_u32(&a);
        cr_assert_eq(x, cnnrt_rng_u32(&b));
        same_c += x == cnnrt_rng_u32(&c);
    }
    cr_expect_lt(same_c, 3);
}

Test(rng, uniform_and_below) {
    CnnrtRng r;
    cnnrt_rng_seed(&r, 1, 0);
    double sum = 0;
    int hist[10] = {0};
    for (int i = 0; i < 100000; i++) {
        double u = cnnrt_rng_uniform(&r);
        cr_assert(u >= 0 && u < 1);
        sum += u;
        uint32_t k = cnnrt_rng_below(&r, 10);
        cr_assert_lt(k, 10u);
        hist[k]++;
    }
    cr_expect_float_eq(sum / 100000, 0.5, 0.005);
    double chi2 = 0;
    for (int k = 0; k < 10; k++)
        chi2 += (hist[k] - 10000.0) * (hist[k] - 10000.0) / 10000.0;
    cr_expect_lt(chi2, 27.9, "chi-square %g over 9 degrees of freedom (p 0.001)", chi2);
    cr_expect_eq(cnnrt_rng_below(&r, 1), 0u);
    cr_expect_eq(cnnrt_rng_below(&r, 0), 0u);
}

/* ---- initialisers ----------------------------------------------------------------- */

/* A small network's table: conv(2, 3) over 1 channel, bn, prelu, dense, bias. */
static const CnnrtParam tiny_table[] = {
    {"conv1", "weight", CNNRT_WEIGHT, 0, 18, 9, 1},
    {"conv1", "bias", CNNRT_BIAS, 18, 2, 9, 1},
    {"bn1", "gamma", CNNRT_GAMMA, 20, 2, 0, 1},
    {"bn1", "beta", CNNRT_BETA, 22, 2, 0, 1},
    {"bn1", "running_mean", CNNRT_RUNNING_MEAN, 24, 2, 0, 0},
    {"bn1", "running_var", CNNRT_RUNNING_VAR, 26, 2, 0, 0},
    {"act", "alpha", CNNRT_PRELU_ALPHA, 28, 2, 0, 1},
    {"fc", "weight", CNNRT_WEIGHT, 30, 400, 100, 1},
    {"fc", "bias", CNNRT_BIAS, 430, 4, 100, 1},
    {"shift", "bias", CNNRT_LEARNED_BIAS, 434, 6, 0, 1},
};
#define TINY_N 440
#define TINY_T ((int)(sizeof tiny_table / sizeof tiny_table[0]))

Test(init, values_per_kind) {
    float p[TINY_N];
    CnnrtRng r;
    cnnrt_rng_seed(&r, 3, 0);
    for (int i = 0; i < TINY_N; i++)
        p[i] = NAN;
    cnnrt_init_params(tiny_table, TINY_T, p, &r);
    for (int t = 0; t < TINY_T; t++) {
        const CnnrtParam *q = &tiny_table[t];
        float bound = q->fan_in ? 1.0f / sqrtf((float)q->fan_in) : 0;
        double lo = 1, hi = -1;
        for (int64_t i = q->offset; i < q->offset + q->count; i++) {
            switch (q->kind) {
            case CNNRT_WEIGHT:
            case CNNRT_BIAS:
                cr_assert(p[i] >= -bound && p[i] <= bound, "%s.%s[%ld] = %g outside +-%g",
                          q->layer, q->name, (long)(i - q->offset), p[i], bound);
                lo = fmin(lo, p[i] / bound);
                hi = fmax(hi, p[i] / bound);
                break;
            case CNNRT_GAMMA:
            case CNNRT_RUNNING_VAR:
                cr_expect_eq(p[i], 1.0f);
                break;
            case CNNRT_PRELU_ALPHA:
                cr_expect_eq(p[i], 0.25f);
                break;
            default:
                cr_expect_eq(p[i], 0.0f, "%s.%s", q->layer, q->name);
            }
        }
        if (q->kind == CNNRT_WEIGHT) /* the draws span the interval */
            cr_expect(lo < -0.7 && hi > 0.7, "%s.%s spans %g..%g of its bound", q->layer,
                      q->name, lo, hi);
    }
}

Test(init, same_seed_same_values_and_no_fan_in_gives_zero) {
    float a[TINY_N], b[TINY_N];
    CnnrtRng r1, r2;
    cnnrt_rng_seed(&r1, 9, 0);
    cnnrt_rng_seed(&r2, 9, 0);
    cnnrt_init_params(tiny_table, TINY_T, a, &r1);
    cnnrt_init_params(tiny_table, TINY_T, b, &r2);
    cr_expect_eq(memcmp(a, b, sizeof a), 0);
    CnnrtParam zero = {"z", "weight", CNNRT_WEIGHT, 0, 4, 0, 1};
    float z[4] = {1, 1, 1, 1};
    cnnrt_init_params(&zero, 1, z, &r1);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(z[i], 0.0f);
}

/* ---- losses ----------------------------------------------------------------------- */

/* -log softmax(x)[label] and its gradient, in double, the plain way. */
static double ref_xent(const float *x, int label, int n, double *g) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < n; i++)
        mx = fmax(mx, x[i]);
    for (int i = 0; i < n; i++)
        s += exp(x[i] - mx);
    for (int i = 0; g && i < n; i++)
        g[i] = exp(x[i] - mx) / s - (i == label);
    return mx + log(s) - x[label];
}

Test(loss, xent_matches_double_reference) {
    enum { B = 5, C = 10 };
    float x[B * C], dx[B * C];
    int32_t y[B] = {3, 0, 9, 3, 7};
    CnnrtRng r;
    cnnrt_rng_seed(&r, 11, 0);
    for (int i = 0; i < B * C; i++)
        x[i] = (float)(4 * cnnrt_rng_uniform(&r) - 2);
    x[0 * C + 3] = 5;  /* sample 0: label 3 is the arg-max */
    x[3 * C + 3] = 6;
    int correct = -1;
    double loss = cnnrt_softmax_xent(x, y, B, C, dx, &correct);
    double want = 0, g[C];
    int want_correct = 0;
    for (int b = 0; b < B; b++) {
        want += ref_xent(x + b * C, y[b], C, g) / B;
        int am = 0;
        for (int i = 1; i < C; i++)
            am = x[b * C + i] > x[b * C + am] ? i : am;
        want_correct += am == y[b];
        for (int i = 0; i < C; i++)
            cr_expect_float_eq(dx[b * C + i], g[i] / B, 1e-7, "dx[%d][%d]", b, i);
    }
    cr_expect_float_eq(loss, want, 1e-12 * want);
    cr_expect_eq(correct, want_correct);
    cr_expect_geq(correct, 2);
}

Test(loss, xent_is_stable_for_large_logits) {
    float small[4] = {0, 1, 2, 3}, big[4], neg[4], dsmall[4], dbig[4];
    int32_t y = 1;
    for (int i = 0; i < 4; i++) {
        big[i] = small[i] + 1000;
        neg[i] = small[i] - 1000;
    }
    double a = cnnrt_softmax_xent(small, &y, 1, 4, dsmall, NULL);
    double b = cnnrt_softmax_xent(big, &y, 1, 4, dbig, NULL);
    double c = cnnrt_softmax_xent(neg, &y, 1, 4, NULL, NULL);
    cr_expect(isfinite(b) && isfinite(c));
    cr_expect_float_eq(a, ref_xent(small, 1, 4, NULL), 1e-12);
    cr_expect_float_eq(b, a, 1e-9);
    cr_expect_float_eq(c, a, 1e-9);
    for (int i = 0; i < 4; i++)
        cr_expect_float_eq(dbig[i], dsmall[i], 1e-6);
    float huge[2] = {3e38f, -3e38f};
    int32_t y0 = 0, y1 = 1;
    cr_expect_float_eq(cnnrt_softmax_xent(huge, &y0, 1, 2, NULL, NULL), 0.0, 1e-12);
    cr_expect_float_eq(cnnrt_softmax_xent(huge, &y1, 1, 2, NULL, NULL), 6e38, 1e32);
}

Test(loss, xent_gradient_matches_finite_differences) {
    enum { B = 3, C = 6 };
    float x[B * C], dx[B * C];
    int32_t y[B] = {0, 5, 2};
    CnnrtRng r;
    cnnrt_rng_seed(&r, 5, 0);
    for (int i = 0; i < B * C; i++)
        x[i] = (float)(6 * cnnrt_rng_uniform(&r) - 3);
    cnnrt_softmax_xent(x, y, B, C, dx, NULL);
    for (int i = 0; i < B * C; i++) {
        float keep = x[i], up = keep + 1e-2f, down = keep - 1e-2f;
        x[i] = up;
        double lu = cnnrt_softmax_xent(x, y, B, C, NULL, NULL);
        x[i] = down;
        double ld = cnnrt_softmax_xent(x, y, B, C, NULL, NULL);
        x[i] = keep;
        double fd = (lu - ld) / ((double)up - (double)down);
        cr_expect(fabs(fd - dx[i]) <= 1e-4 + 1e-3 * fabs(fd), "d/dx[%d]: %g vs %g", i,
                  dx[i], fd);
    }
}

Test(loss, xent_bad_label_is_nan_not_a_crash) {
    float x[3] = {1, 2, 3}, dx[3] = {9, 9, 9};
    int32_t y = 3;
    int correct = 5;
    cr_expect(isnan(cnnrt_softmax_xent(x, &y, 1, 3, dx, &correct)));
    cr_expect_eq(correct, 0);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(dx[i], 0.0f);
    cr_expect_eq(cnnrt_softmax_xent(x, &y, 0, 3, dx, &correct), 0.0);
}

Test(loss, mse_value_and_gradient) {
    enum { B = 2, N = 5 };
    float out[B * N], target[B * N], d[B * N];
    CnnrtRng r;
    cnnrt_rng_seed(&r, 6, 0);
    double want = 0;
    for (int i = 0; i < B * N; i++) {
        out[i] = (float)(2 * cnnrt_rng_uniform(&r) - 1);
        target[i] = (float)(2 * cnnrt_rng_uniform(&r) - 1);
        want += ((double)out[i] - target[i]) * ((double)out[i] - target[i]) / (B * N);
    }
    double loss = cnnrt_mse(out, target, B, N, d);
    cr_expect_float_eq(loss, want, 1e-12);
    for (int i = 0; i < B * N; i++) {
        cr_expect_float_eq(d[i], 2.0 * ((double)out[i] - target[i]) / (B * N), 1e-7);
        float keep = out[i], up = keep + 1e-2f, down = keep - 1e-2f;
        out[i] = up;
        double lu = cnnrt_mse(out, target, B, N, NULL);
        out[i] = down;
        double ld = cnnrt_mse(out, target, B, N, NULL);
        out[i] = keep;
        cr_expect_float_eq((lu - ld) / ((double)up - down), d[i], 1e-5);
    }
}

/* ---- optimisers -------------------------------------------------------------------- */

static void setup_case(CnnrtOptimizer *o, const OptimRefCase *c) {
    cr_assert_eq(cnnrt_opt_init(o, (CnnrtOptKind)c->kind, OPTIM_REF_N), 0);
    o->lr = c->lr;
    o->momentum = c->momentum;
    o->dampening = c->dampening;
    o->nesterov = c->nesterov;
    o->weight_decay = c->weight_decay;
    o->beta1 = c->beta1;
    o->beta2 = c->beta2;
    o->eps = c->eps;
    cr_assert_eq(cnnrt_opt_check(o), 0, "%s: %s", c->name, cnnrt_error());
}

/* Every case, every step: max |diff| <= 1e-6 * max |param| (float32 on both
 * sides, the same operations in the same order: only the rounding of a fused
 * multiply-add in torch's vector kernels can differ, a few ulp at most). */
Test(optim, matches_torch_step_by_step) {
    int ncases = (int)(sizeof optim_ref_cases / sizeof optim_ref_cases[0]);
    for (int k = 0; k < ncases; k++) {
        const OptimRefCase *c = &optim_ref_cases[k];
        CnnrtOptimizer o;
        setup_case(&o, c);
        float p[OPTIM_REF_N];
        memcpy(p, optim_ref_p0, sizeof p);
        for (int s = 0; s < OPTIM_REF_STEPS; s++) {
            cnnrt_opt_step(&o, p, optim_ref_grads[s], NULL);
            double err = 0;
            for (int i = 0; i < OPTIM_REF_N; i++)
                err = fmax(err, fabs((double)p[i] - c->expect[s][i]));
            double tol = 1e-6 * max_abs(c->expect[s], OPTIM_REF_N);
            cr_expect_leq(err, tol, "%s step %d: max |diff| %g > %g", c->name, s + 1, err, tol);
        }
        cr_expect_eq(o.step, OPTIM_REF_STEPS);
        cnnrt_opt_free(&o);
    }
}

Test(optim, frozen_floats_do_not_move) {
    unsigned char mask[OPTIM_REF_N];
    for (int i = 0; i < OPTIM_REF_N; i++)
        mask[i] = i % 3 != 0;
    int ncases = (int)(sizeof optim_ref_cases / sizeof optim_ref_cases[0]);
    for (int k = 0; k < ncases; k++) {
        CnnrtOptimizer o;
        setup_case(&o, &optim_ref_cases[k]);
        float p[OPTIM_REF_N];
        memcpy(p, optim_ref_p0, sizeof p);
        for (int s = 0; s < OPTIM_REF_STEPS; s++)
            cnnrt_opt_step(&o, p, optim_ref_grads[s], mask);
        const float *last = optim_ref_cases[k].expect[OPTIM_REF_STEPS - 1];
        for (int i = 0; i < OPTIM_REF_N; i++)
            if (mask[i])
                cr_expect_float_eq(p[i], last[i], 1e-6, "%s [%d]", optim_ref_cases[k].name, i);
            else
                cr_expect_eq(p[i], optim_ref_p0[i], "%s [%d]", optim_ref_cases[k].name, i);
        cnnrt_opt_free(&o);
    }
}

Test(optim, defaults_and_checks) {
    CnnrtOptimizer o;
    cr_assert_eq(cnnrt_opt_init(&o, CNNRT_SGD, 3), 0);
    cr_expect(o.lr == 0.01 && o.momentum == 0 && o.dampening == 0 && !o.nesterov &&
              o.weight_decay == 0 && o.step == 0 && o.m && !o.v);
    cr_expect_eq(cnnrt_opt_check(&o), 0);
    o.nesterov = 1;
    cr_expect_eq(cnnrt_opt_check(&o), -1);
    expect_error("nesterov");
    o.momentum = 0.9;
    cr_expect_eq(cnnrt_opt_check(&o), 0);
    o.lr = -1;
    cr_expect_eq(cnnrt_opt_check(&o), -1);
    expect_error("learning rate");
    cnnrt_opt_free(&o);
    cr_assert_eq(cnnrt_opt_init(&o, CNNRT_ADAM, 3), 0);
    cr_expect(o.lr == 0.001 && o.beta1 == 0.9 && o.beta2 == 0.999 && o.eps == 1e-8 &&
              o.weight_decay == 0 && o.m && o.v);
    o.beta2 = 1;
    cr_expect_eq(cnnrt_opt_check(&o), -1);
    expect_error("betas");
    cnnrt_opt_free(&o);
    cr_assert_eq(cnnrt_opt_init(&o, CNNRT_ADAMW, 3), 0);
    cr_expect(o.lr == 0.001 && o.weight_decay == 0.01);
    for (int i = 0; i < 3; i++)
        cr_expect(o.m[i] == 0 && o.v[i] == 0);
    cnnrt_opt_free(&o);
    cr_expect_str_eq(cnnrt_opt_name(CNNRT_ADAMW), "AdamW");
}

Test(optim, allocation_failure_is_clean) {
    CnnrtOptimizer o;
    for (long n = 1; n <= 2; n++) {
        cnnrt_test_fail_alloc(n);
        cr_expect_eq(cnnrt_opt_init(&o, CNNRT_ADAM, 100), -1, "allocation %ld", n);
        expect_error("out of memory");
        cr_expect(!o.m && !o.v);
    }
    cnnrt_test_fail_alloc(0);
    cr_expect_eq(cnnrt_opt_init(&o, CNNRT_ADAM, 100), 0);
    cnnrt_opt_free(&o);
}

/* ---- schedules ------------------------------------------------------------------ */

Test(schedule, match_torch_schedulers) {
    for (int e = 0; e < SCHED_REF_EPOCHS; e++) {
        double s = cnnrt_lr_at(CNNRT_STEP, 0.1, e, 10, 3, 0.1);
        double c = cnnrt_lr_at(CNNRT_COSINE, 0.1, e, 10, 0, 0);
        cr_expect(fabs(s - sched_step_ref[e]) <= 1e-12 * sched_step_ref[e], "StepLR epoch %d: "
                  "%.17g vs %.17g", e, s, sched_step_ref[e]);
        cr_expect(fabs(c - sched_cos_ref[e]) <= 1e-12 * 0.1, "cosine epoch %d: %.17g vs %.17g",
                  e, c, sched_cos_ref[e]);
        cr_expect_eq(cnnrt_lr_at(CNNRT_CONSTANT, 0.1, e, 10, 3, 0.1), 0.1);
    }
    cr_expect_eq(cnnrt_lr_at(CNNRT_COSINE, 0.1, 5, 0, 0, 0), 0.1);
    cr_expect_eq(cnnrt_lr_at(CNNRT_STEP, 0.1, 5, 10, 0, 0.5), 0.1);
}

/* ---- IDX files ------------------------------------------------------------------ */

Test(idx, fashion_mnist_train_and_test, .timeout = 120) {
    static const int32_t train_first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    static const int32_t test_first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    struct { const char *img, *lab; int64_t count; const int32_t *first; } sets[2] = {
        {FMNIST "train-images-idx3-ubyte.gz", FMNIST "train-labels-idx1-ubyte.gz", 60000,
         train_first},
        {FMNIST "t10k-images-idx3-ubyte.gz", FMNIST "t10k-labels-idx1-ubyte.gz", 10000,
         test_first},
    };
    for (int s = 0; s < 2; s++) {
        CnnrtDataset d;
        cr_assert_eq(cnnrt_load_idx(sets[s].img, sets[s].lab, &d), 0,
                     "%s (apt-get install dataset-fashion-mnist)", cnnrt_error());
        cr_expect_eq(d.count, sets[s].count);
        cr_expect(d.channels == 1 && d.height == 28 && d.width == 28);
        cr_expect_eq(d.classes, 10);
        for (int i = 0; i < 10; i++)
            cr_expect_eq(d.labels[i], sets[s].first[i], "label %d", i);
        float lo = 1, hi = 0;
        for (int64_t i = 0; i < d.count * 784; i++) {
            lo = fminf(lo, d.images[i]);
            hi = fmaxf(hi, d.images[i]);
        }
        cr_expect(lo == 0.0f && hi == 1.0f);
        if (s == 0) { /* the first training image: its bytes sum to 76247 */
            double sum = 0;
            for (int i = 0; i < 784; i++)
                sum += d.images[i];
            cr_expect_float_eq(sum, 76247 / 255.0, 1e-3);
        }
        cnnrt_dataset_free(&d);
        cr_expect(!d.images && !d.labels && d.count == 0);
    }
}

/* An IDX file: magic, dims, then data. */
static size_t idx_bytes(unsigned char *buf, uint32_t magic, const uint32_t *dims, int nd,
                        const unsigned char *data, size_t n) {
    size_t k = 0;
    uint32_t words[4] = {magic, dims[0], nd > 1 ? dims[1] : 0, nd > 2 ? dims[2] : 0};
    for (int w = 0; w <= nd; w++)
        for (int b = 3; b >= 0; b--)
            buf[k++] = (unsigned char)(words[w] >> (8 * b));
    memcpy(buf + k, data, n);
    return k + n;
}

/* 3 images of 2x4 and their labels, in dir as img/lab (gzip'ed when gz). */
static void synthetic_idx(const char *dir, int gz, char *img, char *lab, size_t *isize) {
    unsigned char pix[24], lbl[3] = {4, 0, 2}, buf[64];
    for (int i = 0; i < 24; i++)
        pix[i] = (unsigned char)(i * 11);
    pix[5] = 255;
    uint32_t di[3] = {3, 2, 4}, dl[1] = {3};
    path_in(img, dir, gz ? "img.gz" : "img");
    path_in(lab, dir, gz ? "lab.gz" : "lab");
    size_t n = idx_bytes(buf, 0x803, di, 3, pix, 24);
    (gz ? write_gz : write_bytes)(img, buf, n);
    if (isize)
        *isize = n;
    n = idx_bytes(buf, 0x801, dl, 1, lbl, 3);
    (gz ? write_gz : write_bytes)(lab, buf, n);
}

Test(idx, synthetic_plain_and_gzip) {
    char dir[64], img[512], lab[512];
    make_dir(dir);
    for (int gz = 0; gz < 2; gz++) {
        synthetic_idx(dir, gz, img, lab, NULL);
        CnnrtDataset d;
        cr_assert_eq(cnnrt_load_idx(img, lab, &d), 0, "%s", cnnrt_error());
        cr_expect(d.count == 3 && d.channels == 1 && d.height == 2 && d.width == 4);
        cr_expect_eq(d.classes, 5);
        cr_expect(d.labels[0] == 4 && d.labels[1] == 0 && d.labels[2] == 2);
        cr_expect_eq(d.images[5], 1.0f);
        cr_expect_eq(d.images[3], 33 / 255.0f);
        cnnrt_dataset_free(&d);
    }
    rm_dir(dir);
}

Test(idx, refuses_bad_files_naming_them) {
    char dir[64], img[512], lab[512], bad[512];
    make_dir(dir);
    size_t isize;
    synthetic_idx(dir, 0, img, lab, &isize);
    CnnrtDataset d;
    cr_expect_eq(cnnrt_load_idx(lab, lab, &d), -1);
    expect_error("%s: an IDX label file where the image file was expected", lab);
    cr_expect_eq(cnnrt_load_idx(img, img, &d), -1);
    expect_error("%s: an IDX image file where the label file was expected", img);
    path_in(bad, dir, "bad");
    unsigned char junk[32] = "PK\x03\x04 this is a zip file....";
    write_bytes(bad, junk, sizeof junk);
    cr_expect_eq(cnnrt_load_idx(bad, lab, &d), -1);
    expect_error("%s: not an IDX image file (magic 0x504b0304, expected 0x00000803)", bad);
    path_in(bad, dir, "missing");
    cr_expect_eq(cnnrt_load_idx(bad, lab, &d), -1);
    expect_error("cannot open %s: No such file or directory", bad);
    /* a count that disagrees with the labels, and a zero dimension */
    unsigned char buf[64], pix[24] = {0};
    uint32_t four[3] = {4, 2, 3}, zero[3] = {3, 0, 4};
    path_in(bad, dir, "bad");
    write_bytes(bad, buf, idx_bytes(buf, 0x803, four, 3, pix, 24));
    cr_expect_eq(cnnrt_load_idx(bad, lab, &d), -1);
    expect_error("%s holds 4 images but %s holds 3 labels", bad, lab);
    write_bytes(bad, buf, idx_bytes(buf, 0x803, zero, 3, pix, 0));
    cr_expect_eq(cnnrt_load_idx(bad, lab, &d), -1);
    expect_error("%s: dimension 2 of the IDX header is 0", bad);
    /* one byte too many */
    size_t n;
    unsigned char *good = read_bytes(img, &n);
    good = realloc(good, n + 1);
    good[n] = 7;
    write_bytes(bad, good, n + 1);
    cr_expect_eq(cnnrt_load_idx(bad, lab, &d), -1);
    expect_error("%s: longer than its IDX header says (%zu bytes)", bad, n);
    free(good);
    rm_dir(dir);
}

Test(idx, refuses_every_truncation) {
    char dir[64], img[512], lab[512], cut[512];
    make_dir(dir);
    size_t n;
    synthetic_idx(dir, 0, img, lab, NULL);
    unsigned char *whole = read_bytes(img, &n);
    path_in(cut, dir, "cut");
    for (size_t len = 0; len < n; len++) {
        write_bytes(cut, whole, len);
        CnnrtDataset d;
        cr_expect_eq(cnnrt_load_idx(cut, lab, &d), -1, "length %zu", len);
        if (len >= 16)
            expect_error("%s: truncated: %zu of %zu bytes", cut, len, n);
        else
            expect_error("%s: truncated: the IDX header ends after %zu bytes", cut, len);
        cr_expect(!d.images && !d.labels);
    }
    /* a gzip stream cut short */
    size_t gn;
    synthetic_idx(dir, 1, img, lab, NULL);
    unsigned char *gz = read_bytes(img, &gn);
    write_bytes(cut, gz, gn - 12);
    CnnrtDataset d;
    cr_expect_eq(cnnrt_load_idx(cut, lab, &d), -1);
    expect_error("%s: truncated", cut);
    free(gz);
    free(whole);
    rm_dir(dir);
}

Test(idx, allocation_failures_end_cleanly) {
    char dir[64], img[512], lab[512];
    make_dir(dir);
    synthetic_idx(dir, 1, img, lab, NULL);
    CnnrtDataset d;
    long n = 1;
    for (;; n++) {
        cnnrt_test_fail_alloc(n);
        if (cnnrt_load_idx(img, lab, &d) == 0)
            break;
        cr_assert_lt(n, 100);
        cr_expect(!d.images && !d.labels);
    }
    cnnrt_test_fail_alloc(0);
    cr_expect_gt(n, 2, "the loader allocates: failures were injected");
    cr_expect_eq(d.count, 3);
    cnnrt_dataset_free(&d);
    rm_dir(dir);
}

/* ---- .f32 data sets -------------------------------------------------------------- */

Test(f32, loads_and_refuses) {
    char dir[64], img[512], lab[512];
    make_dir(dir);
    path_in(img, dir, "x.f32");
    path_in(lab, dir, "y.i32");
    float x[2 * 3 * 2 * 2];
    for (int i = 0; i < 24; i++)
        x[i] = i * 0.5f - 3;
    int32_t y[2] = {1, 6};
    write_bytes(img, x, sizeof x);
    write_bytes(lab, y, sizeof y);
    CnnrtDataset d;
    cr_assert_eq(cnnrt_load_f32(img, lab, 3, 2, 2, &d), 0, "%s", cnnrt_error());
    cr_expect(d.count == 2 && d.channels == 3 && d.height == 2 && d.width == 2);
    cr_expect_eq(d.classes, 7);
    cr_expect_eq(memcmp(d.images, x, sizeof x), 0);
    cr_expect(d.labels[0] == 1 && d.labels[1] == 6);
    cnnrt_dataset_free(&d);
    cr_expect_eq(cnnrt_load_f32(img, lab, 5, 2, 2, &d), -1);
    expect_error("%s: 96 bytes is not a whole number of 5x2x2 float32 samples", img);
    cr_expect_eq(cnnrt_load_f32(img, lab, 3, 2, 1, &d), -1);
    expect_error("%s holds 4 samples but %s holds 2 labels", img, lab);
    int32_t neg[2] = {1, -2};
    write_bytes(lab, neg, sizeof neg);
    cr_expect_eq(cnnrt_load_f32(img, lab, 3, 2, 2, &d), -1);
    expect_error("%s: the label of sample 1 is -2", lab);
    write_bytes(lab, y, sizeof y);
    x[13] = NAN;
    write_bytes(img, x, sizeof x);
    cr_expect_eq(cnnrt_load_f32(img, lab, 3, 2, 2, &d), -1);
    expect_error("%s: sample 1 holds a value that is not a finite number", img);
    write_bytes(img, x, 0);
    cr_expect_eq(cnnrt_load_f32(img, lab, 3, 2, 2, &d), -1);
    expect_error("%s: holds no samples", img);
    cr_expect(!d.images && !d.labels);
    rm_dir(dir);
}

/* ---- shuffling, gathering, augmentation ---------------------------------------- */

Test(data, shuffle_is_a_reproducible_permutation) {
    enum { N = 1000 };
    int64_t a[N], b[N];
    CnnrtRng r1, r2;
    cnnrt_rng_seed(&r1, 4, 0);
    cnnrt_rng_seed(&r2, 4, 0);
    cnnrt_shuffle(a, N, &r1);
    cnnrt_shuffle(b, N, &r2);
    cr_expect_eq(memcmp(a, b, sizeof a), 0);
    char seen[N] = {0};
    int fixed = 0;
    for (int i = 0; i < N; i++) {
        cr_assert(a[i] >= 0 && a[i] < N);
        cr_expect_eq(seen[a[i]], 0, "%ld twice", (long)a[i]);
        seen[a[i]] = 1;
        fixed += a[i] == i;
    }
    cr_expect_lt(fixed, 10);
    cnnrt_shuffle(a, N, &r1); /* the next epoch: another order */
    cr_expect_neq(memcmp(a, b, sizeof a), 0);
    int64_t one = 99;
    cnnrt_shuffle(&one, 1, &r1);
    cr_expect_eq(one, 0);
    cnnrt_shuffle(NULL, 0, &r1);
}

Test(data, gather_copies_the_chosen_samples) {
    float images[4 * 2] = {0, 1, 10, 11, 20, 21, 30, 31};
    int32_t labels[4] = {5, 6, 7, 8};
    CnnrtDataset d = {4, 1, 1, 2, images, labels, 9};
    int64_t order[5] = {3, 1, 2, 0, 77};
    float x[3 * 2];
    int32_t y[3];
    cnnrt_gather(&d, order, 1, 3, x, y);
    float want[6] = {10, 11, 20, 21, 0, 1};
    cr_expect_eq(memcmp(x, want, sizeof want), 0);
    cr_expect(y[0] == 6 && y[1] == 7 && y[2] == 5);
    cnnrt_gather(&d, order, 4, 1, x, y); /* out of range: zeros, label -1 */
    cr_expect(x[0] == 0 && x[1] == 0 && y[0] == -1);
}

enum { AB = 6, AC = 2, AH = 5, AW = 7, AS = AC * AH * AW };

static void distinct_images(float *x) {
    for (int i = 0; i < AB * AS; i++)
        x[i] = 1.0f + (float)i;
}

Test(augment, no_pad_no_flip_is_identity) {
    float x[AB * AS], y[AB * AS];
    distinct_images(x);
    memcpy(y, x, sizeof x);
    CnnrtRng r, before;
    cnnrt_rng_seed(&r, 2, 0);
    before = r;
    cnnrt_augment(y, AB, AC, AH, AW, 0, 0, &r);
    cr_expect_eq(memcmp(x, y, sizeof x), 0);
    cr_expect(r.state == before.state, "nothing to draw, nothing drawn");
}

Test(augment, flipping_twice_is_identity) {
    float x[AB * AS], y[AB * AS];
    distinct_images(x);
    memcpy(y, x, sizeof x);
    CnnrtRng r1, r2;
    cnnrt_rng_seed(&r1, 8, 0);
    r2 = r1;
    cnnrt_augment(y, AB, AC, AH, AW, 0, 1, &r1);
    int flipped = 0;
    for (int b = 0; b < AB; b++) { /* each image is itself or its mirror */
        const float *s = x + b * AS, *t = y + b * AS;
        int same = !memcmp(s, t, AS * sizeof *s), mirror = 1;
        for (int c = 0; c < AC * AH; c++)
            for (int i = 0; i < AW; i++)
                mirror &= t[c * AW + i] == s[c * AW + AW - 1 - i];
        cr_expect(same ^ mirror, "image %d", b);
        flipped += mirror;
    }
    cr_expect(flipped > 0 && flipped < AB, "%d of %d flipped", flipped, AB);
    cnnrt_augment(y, AB, AC, AH, AW, 0, 1, &r2); /* the same coins */
    cr_expect_eq(memcmp(x, y, sizeof x), 0);
}

/* Every image is its source shifted by one (dy, dx) in [-pad, pad], zeros
 * coming in, the same shift for all its channels. */
Test(augment, crop_keeps_source_values) {
    const int pad = 2;
    float x[AB * AS], y[AB * AS];
    distinct_images(x);
    memcpy(y, x, sizeof x);
    CnnrtRng r;
    cnnrt_rng_seed(&r, 12, 0);
    cnnrt_augment(y, AB, AC, AH, AW, pad, 0, &r);
    int shifted = 0;
    for (int b = 0; b < AB; b++) {
        int found = 0;
        for (int oy = -pad; oy <= pad && !found; oy++)
            for (int ox = -pad; ox <= pad && !found; ox++) {
                int ok = 1;
                for (int c = 0; c < AC; c++)
                    for (int i = 0; i < AH; i++)
                        for (int j = 0; j < AW; j++) {
                            int si = i + oy, sj = j + ox;
                            float want = si < 0 || si >= AH || sj < 0 || sj >= AW
                                             ? 0 : x[b * AS + (c * AH + si) * AW + sj];
                            ok &= y[b * AS + (c * AH + i) * AW + j] == want;
                        }
                if (ok) {
                    found = 1;
                    shifted += oy || ox;
                }
            }
        cr_expect(found, "image %d is not a shifted copy of its source", b);
    }
    cr_expect_gt(shifted, 0);
}

/* ---- checkpoints ---------------------------------------------------------------- */

typedef struct Saved {
    float params[TINY_N];
    CnnrtOptimizer opt;
    CnnrtCheckpoint c;
} Saved;

/* The tiny network after a few Adam (or SGD) steps, epoch 3. */
static void trained(Saved *s, CnnrtOptKind kind, const char *name) {
    CnnrtRng r;
    cnnrt_rng_seed(&r, 21, 0);
    cnnrt_init_params(tiny_table, TINY_T, s->params, &r);
    cr_assert_eq(cnnrt_opt_init(&s->opt, kind, TINY_N), 0);
    s->opt.momentum = 0.9;
    float g[TINY_N];
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < TINY_N; i++)
            g[i] = (float)(cnnrt_rng_uniform(&r) - 0.5);
        cnnrt_opt_step(&s->opt, s->params, g, NULL);
    }
    s->c = (CnnrtCheckpoint){name, cnnrt_identity(tiny_table, TINY_T), TINY_N, s->params,
                             &s->opt, 3, r};
}

/* Expectations for loading into: zeros, a fresh optimiser. */
static void blank(Saved *s, CnnrtOptKind kind, const char *name, int64_t n,
                  uint64_t identity) {
    memset(s->params, 0, sizeof s->params);
    cr_assert_eq(cnnrt_opt_init(&s->opt, kind, n), 0);
    s->c = (CnnrtCheckpoint){name, identity, n, s->params, &s->opt, 0, {0, 0}};
}

static uint64_t tiny_identity(void) {
    return cnnrt_identity(tiny_table, TINY_T);
}

Test(checkpoint, round_trip_is_bit_exact) {
    char dir[64], path[512];
    make_dir(dir);
    path_in(path, dir, "tiny.ckpt");
    CnnrtOptKind kinds[3] = {CNNRT_SGD, CNNRT_ADAM, CNNRT_ADAMW};
    for (int k = 0; k < 3; k++) {
        Saved a, b;
        trained(&a, kinds[k], "tiny");
        a.opt.lr = 0.0123;
        a.opt.nesterov = kinds[k] == CNNRT_SGD;
        cr_assert_eq(cnnrt_save_checkpoint(path, &a.c), 0, "%s", cnnrt_error());
        blank(&b, kinds[k], "tiny", TINY_N, tiny_identity());
        cr_assert_eq(cnnrt_load_checkpoint(path, &b.c), 0, "%s", cnnrt_error());
        cr_expect_eq(memcmp(a.params, b.params, sizeof a.params), 0);
        cr_expect_eq(memcmp(a.opt.m, b.opt.m, TINY_N * sizeof(float)), 0);
        if (kinds[k] != CNNRT_SGD)
            cr_expect_eq(memcmp(a.opt.v, b.opt.v, TINY_N * sizeof(float)), 0);
        cr_expect_eq(b.opt.step, 4);
        cr_expect(b.opt.lr == 0.0123 && b.opt.momentum == 0.9 &&
                  b.opt.nesterov == a.opt.nesterov && b.opt.eps == a.opt.eps &&
                  b.opt.weight_decay == a.opt.weight_decay);
        cr_expect_eq(b.c.epoch, 3);
        cr_expect(b.c.rng.state == a.c.rng.state && b.c.rng.inc == a.c.rng.inc);
        cnnrt_opt_free(&a.opt);
        cnnrt_opt_free(&b.opt);
    }
    /* without an optimiser on either side: the parameters alone */
    Saved a, b;
    trained(&a, CNNRT_SGD, "tiny");
    a.c.opt = NULL;
    cr_assert_eq(cnnrt_save_checkpoint(path, &a.c), 0, "%s", cnnrt_error());
    blank(&b, CNNRT_ADAM, "tiny", TINY_N, tiny_identity());
    cr_assert_eq(cnnrt_load_checkpoint(path, &b.c), 0, "%s", cnnrt_error());
    cr_expect_eq(memcmp(a.params, b.params, sizeof a.params), 0);
    cr_expect_eq(b.opt.step, 0, "a file without optimiser state leaves the optimiser be");
    cnnrt_opt_free(&a.opt);
    cnnrt_opt_free(&b.opt);
    cr_expect_eq(count_files(dir), 1, "no temporary file left behind");
    rm_dir(dir);
}

/* 2N steps straight, or N, save, load into fresh state, N: the same bits. */
Test(checkpoint, resume_gives_identical_training) {
    char dir[64], path[512];
    make_dir(dir);
    path_in(path, dir, "resume.ckpt");
    Saved straight, first, resumed;
    trained(&straight, CNNRT_ADAM, "tiny");
    trained(&first, CNNRT_ADAM, "tiny");
    cr_assert_eq(cnnrt_save_checkpoint(path, &first.c), 0);
    blank(&resumed, CNNRT_ADAM, "tiny", TINY_N, tiny_identity());
    cr_assert_eq(cnnrt_load_checkpoint(path, &resumed.c), 0, "%s", cnnrt_error());
    CnnrtRng r1 = straight.c.rng, r2 = resumed.c.rng;
    float g1[TINY_N], g2[TINY_N];
    for (int k = 0; k < 5; k++) {
        for (int i = 0; i < TINY_N; i++) {
            g1[i] = (float)(cnnrt_rng_uniform(&r1) - 0.5);
            g2[i] = (float)(cnnrt_rng_uniform(&r2) - 0.5);
        }
        cnnrt_opt_step(&straight.opt, straight.params, g1, NULL);
        cnnrt_opt_step(&resumed.opt, resumed.params, g2, NULL);
    }
    cr_expect_eq(memcmp(straight.params, resumed.params, sizeof straight.params), 0);
    cnnrt_opt_free(&straight.opt);
    cnnrt_opt_free(&first.opt);
    cnnrt_opt_free(&resumed.opt);
    rm_dir(dir);
}

/* Saves the Adam checkpoint of the tiny network to dir/tiny.ckpt and returns
 * its bytes. */
static unsigned char *saved_bytes(const char *dir, char *path, size_t *n) {
    Saved a;
    trained(&a, CNNRT_ADAM, "tiny");
    path_in(path, dir, "tiny.ckpt");
    cr_assert_eq(cnnrt_save_checkpoint(path, &a.c), 0, "%s", cnnrt_error());
    cnnrt_opt_free(&a.opt);
    return read_bytes(path, n);
}

/* Loads `bytes` as dir/bad.ckpt into the tiny network; -1 expected. */
static int load_bad(const char *dir, char *bad, const void *bytes, size_t n) {
    Saved b;
    path_in(bad, dir, "bad.ckpt");
    write_bytes(bad, bytes, n);
    blank(&b, CNNRT_ADAM, "tiny", TINY_N, tiny_identity());
    int rc = cnnrt_load_checkpoint(bad, &b.c);
    int untouched = 1;
    for (int i = 0; i < TINY_N; i++)
        untouched &= b.params[i] == 0 && b.opt.m[i] == 0;
    cr_expect(rc == 0 || (untouched && b.opt.step == 0 && b.c.epoch == 0),
              "a refused load changed the caller's state");
    cnnrt_opt_free(&b.opt);
    return rc;
}

Test(checkpoint, refuses_every_truncation) {
    char dir[64], path[512], bad[512];
    make_dir(dir);
    size_t n;
    unsigned char *whole = saved_bytes(dir, path, &n);
    cr_assert_eq(n, 152 + 4 + 3 * 4 * TINY_N + 4, "the layout in cnnrt.h");
    for (size_t len = 0; len < n; len++) {
        cr_expect_eq(load_bad(dir, bad, whole, len), -1, "length %zu", len);
        expect_error("%s: truncated: %zu of %zu bytes", bad, len, n);
    }
    free(whole);
    rm_dir(dir);
}

Test(checkpoint, refuses_every_flipped_bit) {
    char dir[64], path[512], bad[512];
    make_dir(dir);
    size_t n;
    unsigned char *whole = saved_bytes(dir, path, &n);
    for (size_t bit = 0; bit < 8 * n; bit++) {
        whole[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        cr_expect_eq(load_bad(dir, bad, whole, n), -1, "bit %zu", bit);
        if (bit < 64)
            expect_error("%s: not a cnnc checkpoint", bad);
        else
            expect_error("%s: corrupted", bad);
        whole[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    cr_expect_eq(load_bad(dir, bad, whole, n), 0, "the unflipped file loads");
    free(whole);
    rm_dir(dir);
}

Test(checkpoint, refuses_a_foreign_file) {
    char dir[64], bad[512];
    make_dir(dir);
    path_in(bad, dir, "notes.txt");
    write_bytes(bad, "hello, world, this is not a checkpoint at all", 45);
    Saved b;
    blank(&b, CNNRT_ADAM, "tiny", TINY_N, tiny_identity());
    cr_expect_eq(cnnrt_load_checkpoint(bad, &b.c), -1);
    expect_error("%s: not a cnnc checkpoint", bad);
    path_in(bad, dir, "missing.ckpt");
    cr_expect_eq(cnnrt_load_checkpoint(bad, &b.c), -1);
    expect_error("cannot open checkpoint %s: No such file or directory", bad);
    cnnrt_opt_free(&b.opt);
    rm_dir(dir);
}

Test(checkpoint, refuses_another_network) {
    char dir[64], path[512];
    make_dir(dir);
    size_t n;
    free(saved_bytes(dir, path, &n));
    Saved b;
    blank(&b, CNNRT_ADAM, "lenet5", TINY_N, tiny_identity());
    cr_expect_eq(cnnrt_load_checkpoint(path, &b.c), -1);
    expect_error("%s: made for network tiny with %d parameters, not lenet5", path, TINY_N);
    cnnrt_opt_free(&b.opt);
    blank(&b, CNNRT_ADAM, "tiny", TINY_N - 4, tiny_identity());
    cr_expect_eq(cnnrt_load_checkpoint(path, &b.c), -1);
    expect_error("made for network tiny with %d parameters, not tiny (%d parameters)", TINY_N,
                 TINY_N - 4);
    cnnrt_opt_free(&b.opt);
    CnnrtParam other[TINY_T];
    memcpy(other, tiny_table, sizeof other);
    other[0].fan_in = 10; /* same sizes, another layout */
    blank(&b, CNNRT_ADAM, "tiny", TINY_N, cnnrt_identity(other, TINY_T));
    cr_expect_neq(b.c.identity, tiny_identity());
    cr_expect_eq(cnnrt_load_checkpoint(path, &b.c), -1);
    expect_error("made for network tiny with %d parameters, not this layout of tiny", TINY_N);
    cnnrt_opt_free(&b.opt);
    blank(&b, CNNRT_SGD, "tiny", TINY_N, tiny_identity());
    cr_expect_eq(cnnrt_load_checkpoint(path, &b.c), -1);
    expect_error("%s: saved with the Adam optimiser, not SGD", path);
    cnnrt_opt_free(&b.opt);
    rm_dir(dir);
}

/* Rewrites the version field and both CRCs, as another cnnc would write. */
static void set_version(unsigned char *p, size_t n, uint32_t version) {
    for (int i = 0; i < 4; i++)
        p[8 + i] = (unsigned char)(version >> (8 * i));
    uint32_t h = (uint32_t)crc32(0L, p, 148), w;
    for (int i = 0; i < 4; i++)
        p[148 + i] = (unsigned char)(h >> (8 * i));
    w = (uint32_t)crc32(0L, p, (uInt)(n - 4));
    for (int i = 0; i < 4; i++)
        p[n - 4 + i] = (unsigned char)(w >> (8 * i));
}

Test(checkpoint, refuses_other_format_versions) {
    char dir[64], path[512], bad[512];
    make_dir(dir);
    size_t n;
    unsigned char *p = saved_bytes(dir, path, &n);
    set_version(p, n, 2);
    cr_expect_eq(load_bad(dir, bad, p, n), -1);
    expect_error("%s: written by a newer cnnc (checkpoint format version 2; this one reads "
                 "version 1)", bad);
    set_version(p, n, 0);
    cr_expect_eq(load_bad(dir, bad, p, n), -1);
    expect_error("%s: checkpoint format version 0 is older than this cnnc reads", bad);
    set_version(p, n, 1);
    cr_expect_eq(load_bad(dir, bad, p, n), 0, "%s", cnnrt_error());
    free(p);
    rm_dir(dir);
}

Test(checkpoint, failed_write_keeps_the_old_file) {
    char dir[64], path[512];
    make_dir(dir);
    size_t n, m;
    unsigned char *before = saved_bytes(dir, path, &n);
    Saved a;
    trained(&a, CNNRT_ADAM, "tiny");
    a.params[0] += 1;
    for (int64_t budget = 0; budget < (int64_t)n; budget += 37) {
        cnnrt_test_fail_write(budget);
        cr_expect_eq(cnnrt_save_checkpoint(path, &a.c), -1, "budget %ld", (long)budget);
        expect_error("cannot write %s: No space left on device", path);
        unsigned char *after = read_bytes(path, &m);
        cr_expect(m == n && !memcmp(before, after, n), "the old checkpoint was changed");
        free(after);
        cr_expect_eq(count_files(dir), 1, "a temporary file was left behind");
    }
    cnnrt_test_fail_write(-1);
    cr_expect_eq(cnnrt_save_checkpoint(path, &a.c), 0);
    cr_expect_eq(count_files(dir), 1);
    cnnrt_opt_free(&a.opt);
    /* allocation failures while saving end cleanly too */
    for (long k = 1; k <= 3; k++) {
        Saved s;
        trained(&s, CNNRT_SGD, "tiny");
        cnnrt_test_fail_alloc(k);
        int rc = cnnrt_save_checkpoint(path, &s.c);
        cnnrt_test_fail_alloc(0);
        cr_expect(rc == 0 || strstr(cnnrt_error(), "out of memory"), "%s", cnnrt_error());
        cnnrt_opt_free(&s.opt);
    }
    cr_expect_eq(count_files(dir), 1);
    free(before);
    rm_dir(dir);
}

Test(checkpoint, write_file_is_atomic_and_reports_errors) {
    char dir[64], path[512];
    make_dir(dir);
    path_in(path, dir, "w.bin");
    for (int k = 0; k < 5; k++)
        cr_assert_eq(cnnrt_write_file(path, "abcdef", 3 + (size_t)k), 0, "%s", cnnrt_error());
    size_t n;
    unsigned char *p = read_bytes(path, &n);
    cr_expect(n == 7 && !memcmp(p, "abcdef", 7), "the last write wins, whole");
    free(p);
    cr_expect_eq(count_files(dir), 1);
    path_in(path, dir, "no/such/dir/w.bin");
    cr_expect_eq(cnnrt_write_file(path, "x", 1), -1);
    expect_error("cannot write %s: No such file or directory", path);
    rm_dir(dir);
}

Test(checkpoint, identity_tells_layouts_apart) {
    CnnrtParam t[TINY_T];
    memcpy(t, tiny_table, sizeof t);
    uint64_t base = cnnrt_identity(t, TINY_T);
    cr_expect_eq(base, cnnrt_identity(tiny_table, TINY_T));
    cr_expect_neq(base, cnnrt_identity(t, TINY_T - 1));
    t[3].name = "gamma";
    cr_expect_neq(base, cnnrt_identity(t, TINY_T));
    memcpy(t, tiny_table, sizeof t);
    t[7].count = 399;
    cr_expect_neq(base, cnnrt_identity(t, TINY_T));
    memcpy(t, tiny_table, sizeof t);
    t[2].kind = CNNRT_BETA;
    cr_expect_neq(base, cnnrt_identity(t, TINY_T));
}

/* ---- progress --------------------------------------------------------------------- */

Test(progress, sparse_lines_without_a_tty) {
    char dir[64], path[512];
    make_dir(dir);
    path_in(path, dir, "log");
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    dup2(fileno(f), STDERR_FILENO);
    CnnrtProgress p;
    cnnrt_progress_start(&p, "epoch 2/5", 60000);
    cr_expect_eq(p.tty, 0);
    for (int64_t done = 64; done <= 60000; done += 64)
        cnnrt_progress_update(&p, done, 0.5);
    cnnrt_progress_update(&p, 60000, 0.25);
    cnnrt_progress_end(&p);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    fclose(f);
    size_t n;
    char *log = (char *)read_bytes(path, &n);
    log[n] = 0;
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += log[i] == '\n';
    cr_expect(lines >= 9 && lines <= 11, "%d lines:\n%s", lines, log);
    cr_expect(!strchr(log, '\r'), "no carriage returns in a log");
    cr_expect(strstr(log, "epoch 2/5: 100% 60000/60000 loss 0.2500"), "%s", log);
    free(log);
    rm_dir(dir);
}

Test(progress, clock_is_monotonic) {
    double a = cnnrt_now(), b = cnnrt_now();
    cr_expect(a > 0 && b >= a);
}
