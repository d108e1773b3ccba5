/* optim.c — SGD, Adam and AdamW, step for step as torch.optim computes them
 * (torch 1.13, _single_tensor_sgd / _single_tensor_adam / _single_tensor_adamw).
 *
 * The state and the arithmetic are float32, as PyTorch's parameter tensors
 * are: every torch tensor operation rounds to float, and a Python scalar
 * (lr, momentum, alpha=1-beta1, ...) is computed in double and rounded to
 * float when the kernel applies it. Each line below is one torch operation,
 * in the same order, so the results agree to the rounding of each operation
 * (torch's vectorised kernels may fuse a*b+c into one FMA; C here does not). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const kind_names[] = {"SGD", "Adam", "AdamW"};

int cnnrt_opt_init(CnnrtOptimizer *o, CnnrtOptKind kind, int64_t n) {
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->n = n;
    o->lr = kind == CNNRT_SGD ? 0.01 : 0.001;
    o->weight_decay = kind == CNNRT_ADAMW ? 0.01 : 0.0;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(float))
        return rt_fail("optimiser: %lld parameters is not a size", (long long)n);
    o->m = rt_calloc((size_t)n, sizeof(float));
    if (kind != CNNRT_SGD)
        o->v = rt_calloc((size_t)n, sizeof(float));
    if (!o->m || (kind != CNNRT_SGD && !o->v)) {
        cnnrt_opt_free(o);
        return rt_fail("optimiser: out of memory for the state of %lld parameters",
                       (long long)n);
    }
    return 0;
}

void cnnrt_opt_free(CnnrtOptimizer *o) {
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

const char *cnnrt_opt_name(CnnrtOptKind kind) {
    return (unsigned)kind < 3 ? kind_names[kind] : "unknown";
}

/* torch.optim's constructor checks, with its messages' meaning. */
int cnnrt_opt_check(const CnnrtOptimizer *o) {
    const char *k = cnnrt_opt_name(o->kind);
    if ((unsigned)o->kind > CNNRT_ADAMW)
        return rt_fail("unknown optimiser kind %d", (int)o->kind);
    if (!(o->lr >= 0))
        return rt_fail("%s: invalid learning rate %g", k, o->lr);
    if (!(o->weight_decay >= 0))
        return rt_fail("%s: invalid weight decay %g", k, o->weight_decay);
    if (o->kind == CNNRT_SGD) {
        if (!(o->momentum >= 0))
            return rt_fail("SGD: invalid momentum %g", o->momentum);
        if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
            return rt_fail("SGD: nesterov needs a momentum and zero dampening");
        return 0;
    }
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return rt_fail("%s: invalid betas (%g, %g): each must be in [0, 1)", k,
                       o->beta1, o->beta2);
    if (!(o->eps >= 0))
        return rt_fail("%s: invalid epsilon %g", k, o->eps);
    return 0;
}

#define TRAINABLE(i) (!trainable || trainable[i])

static void sgd_step(CnnrtOptimizer *o, float *p, const float *g,
                     const unsigned char *trainable) {
    const float wd = (float)o->weight_decay, mom = (float)o->momentum;
    const float keep = (float)(1.0 - o->dampening), neg_lr = (float)-o->lr;
    const int first = o->step == 0, has_wd = o->weight_decay != 0;
    const int has_mom = o->momentum != 0;
    float *buf = o->m;
    for (int64_t i = 0; i < o->n; i++) {
        if (!TRAINABLE(i))
            continue;
        float d = g[i];
        if (has_wd)
            d = d + wd * p[i];                  /* d_p = d_p.add(param, alpha=wd) */
        if (has_mom) {
            if (first)
                buf[i] = d;                     /* buf = clone(d_p) */
            else
                buf[i] = buf[i] * mom + keep * d;  /* buf.mul_(m).add_(d_p, 1-damp) */
            d = o->nesterov ? d + mom * buf[i] : buf[i];
        }
        p[i] = p[i] + neg_lr * d;               /* param.add_(d_p, alpha=-lr) */
    }
}

/* Adam and AdamW differ only in where the weight decay goes. */
static void adam_step(CnnrtOptimizer *o, float *p, const float *g,
                      const unsigned char *trainable) {
    const double t = (double)o->step;           /* already incremented */
    const double bc1 = 1 - pow(o->beta1, t), bc2 = 1 - pow(o->beta2, t);
    const float neg_step = (float)-(o->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float b1 = (float)o->beta1, b2 = (float)o->beta2;
    const float a1 = (float)(1 - o->beta1), a2 = (float)(1 - o->beta2);
    const float eps = (float)o->eps, wd = (float)o->weight_decay;
    const float decay = (float)(1 - o->lr * o->weight_decay);
    const int adamw = o->kind == CNNRT_ADAMW, has_wd = o->weight_decay != 0;
    for (int64_t i = 0; i < o->n; i++) {
        if (!TRAINABLE(i))
            continue;
        float d = g[i];
        if (adamw)
            p[i] = p[i] * decay;                /* param.mul_(1 - lr * wd) */
        else if (has_wd)
            d = d + wd * p[i];                  /* grad.add(param, alpha=wd) */
        o->m[i] = o->m[i] * b1 + a1 * d;        /* exp_avg.mul_(b1).add_(g, 1-b1) */
        o->v[i] = o->v[i] * b2 + a2 * d * d;    /* exp_avg_sq.mul_(b2).addcmul_(g, g, 1-b2) */
        float denom = sqrtf(o->v[i]) / bc2_sqrt + eps;  /* (v.sqrt() / bc2_sqrt).add_(eps) */
        p[i] = p[i] + neg_step * o->m[i] / denom;  /* addcdiv_(m, denom, -step_size) */
    }
}

void cnnrt_opt_step(CnnrtOptimizer *o, float *params, const float *grads,
                    const unsigned char *trainable) {
    if (o->kind == CNNRT_SGD) {
        sgd_step(o, params, grads, trainable);
        o->step++;
    } else {
        o->step++;
        adam_step(o, params, grads, trainable);
    }
}
