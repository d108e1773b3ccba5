/* ckpt_format.c — the fixed checkpoint header: encoding, decoding and the
 * size arithmetic that save and load share. The layout is in cnnrt.h. */
#include <string.h>

#include "internal.h"

uint32_t rt_ckpt_nstate(const CnnrtOptimizer *o) {
    if (!o)
        return 0;
    return o->kind == CNNRT_SGD ? 1 : 2;
}

uint64_t rt_ckpt_size(uint32_t name_len, int64_t n, uint32_t nstate) {
    if (n < 0 || (uint64_t)n > (UINT64_MAX / 4 - 1024 - CKPT_MAX_NAME) / (1 + nstate))
        return 0;
    return CKPT_HEADER_BYTES + (uint64_t)name_len + 4 * (uint64_t)n * (1 + nstate) + 4;
}

void rt_ckpt_header_from(CkptHeader *h, const CnnrtCheckpoint *c) {
    const CnnrtOptimizer *o = c->opt;
    memset(h, 0, sizeof *h);
    h->version = CKPT_VERSION;
    h->header_bytes = CKPT_HEADER_BYTES;
    h->name_len = (uint32_t)strlen(c->network);
    h->nstate = rt_ckpt_nstate(o);
    h->total_bytes = rt_ckpt_size(h->name_len, c->n, h->nstate);
    h->identity = c->identity;
    h->n = c->n;
    h->epoch = c->epoch;
    h->rng = c->rng;
    h->opt_kind = o ? (uint32_t)o->kind : CKPT_NO_OPTIMIZER;
    if (!o)
        return;
    h->step = o->step;
    h->nesterov = o->nesterov != 0;
    h->lr = o->lr;
    h->momentum = o->momentum;
    h->dampening = o->dampening;
    h->weight_decay = o->weight_decay;
    h->beta1 = o->beta1;
    h->beta2 = o->beta2;
    h->eps = o->eps;
}

void rt_ckpt_encode(const CkptHeader *h, unsigned char *p) {
    memset(p, 0, CKPT_HEADER_BYTES);
    memcpy(p, CKPT_MAGIC, 8);
    rt_put_u32(p + 8, h->version);
    rt_put_u32(p + 12, h->header_bytes);
    rt_put_u64(p + 16, h->total_bytes);
    rt_put_u64(p + 24, h->identity);
    rt_put_u64(p + 32, (uint64_t)h->n);
    rt_put_u64(p + 40, (uint64_t)h->step);
    rt_put_u64(p + 48, (uint64_t)h->epoch);
    rt_put_u64(p + 56, h->rng.state);
    rt_put_u64(p + 64, h->rng.inc);
    rt_put_u32(p + 72, h->opt_kind);
    rt_put_u32(p + 76, h->nstate);
    rt_put_u32(p + 80, h->nesterov);
    rt_put_u32(p + 84, h->name_len);
    const double *hyper[] = {&h->lr, &h->momentum, &h->dampening, &h->weight_decay,
                             &h->beta1, &h->beta2, &h->eps};
    for (int i = 0; i < 7; i++)
        rt_put_f64(p + 88 + 8 * i, *hyper[i]);
    /* 144..147 reserved, zero */
    rt_put_u32(p + 148, (uint32_t)crc32(0L, p, 148));
}

int rt_ckpt_decode(CkptHeader *h, const unsigned char *p) {
    h->version = rt_get_u32(p + 8);
    h->header_bytes = rt_get_u32(p + 12);
    h->total_bytes = rt_get_u64(p + 16);
    h->identity = rt_get_u64(p + 24);
    h->n = (int64_t)rt_get_u64(p + 32);
    h->step = (int64_t)rt_get_u64(p + 40);
    h->epoch = (int64_t)rt_get_u64(p + 48);
    h->rng.state = rt_get_u64(p + 56);
    h->rng.inc = rt_get_u64(p + 64);
    h->opt_kind = rt_get_u32(p + 72);
    h->nstate = rt_get_u32(p + 76);
    h->nesterov = rt_get_u32(p + 80);
    h->name_len = rt_get_u32(p + 84);
    double *hyper[] = {&h->lr, &h->momentum, &h->dampening, &h->weight_decay,
                       &h->beta1, &h->beta2, &h->eps};
    for (int i = 0; i < 7; i++)
        *hyper[i] = rt_get_f64(p + 88 + 8 * i);
    return rt_get_u32(p + 148) == (uint32_t)crc32(0L, p, 148);
}
