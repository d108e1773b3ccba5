/* ckpt_save.c — writing a checkpoint: header, network name, parameters,
 * optimiser state, CRC-32 of all of it; through the atomic writer, so the
 * previous checkpoint survives anything short of a finished save. */
#include <string.h>

#include "internal.h"

typedef struct Writer {
    RtAtomic file;
    uLong crc;
} Writer;

static void put(Writer *w, const void *data, size_t n) {
    w->crc = crc32(w->crc, data, (uInt)n);
    rt_atomic_write(&w->file, data, n);
}

/* n floats as little-endian bytes, 4 Ki floats at a time. */
static void put_floats(Writer *w, const float *v, int64_t n) {
    unsigned char buf[1 << 14];
    const int64_t per = sizeof buf / 4;
    for (int64_t i = 0; i < n; i += per) {
        size_t k = (size_t)(n - i < per ? n - i : per);
        rt_put_f32s(buf, v + i, k);
        put(w, buf, 4 * k);
    }
}

/* What a checkpoint must describe before it is worth writing. */
static int check_request(const char *path, const CnnrtCheckpoint *c) {
    if (!c->network || !*c->network || strlen(c->network) > CKPT_MAX_NAME)
        return rt_fail("cannot write %s: the checkpoint has no network name, or one "
                       "over %u bytes", path, CKPT_MAX_NAME);
    if (c->n < 0 || rt_ckpt_size((uint32_t)strlen(c->network), c->n, 2) == 0 ||
        (c->n > 0 && !c->params))
        return rt_fail("cannot write %s: no parameter vector of %lld floats", path,
                       (long long)c->n);
    const CnnrtOptimizer *o = c->opt;
    if (o && ((unsigned)o->kind > CNNRT_ADAMW || o->n != c->n ||
              (c->n > 0 && (!o->m || (o->kind != CNNRT_SGD && !o->v)))))
        return rt_fail("cannot write %s: the optimiser was not set up for these %lld "
                       "parameters (cnnrt_opt_init)", path, (long long)c->n);
    return 0;
}

int cnnrt_save_checkpoint(const char *path, const CnnrtCheckpoint *c) {
    if (check_request(path, c) < 0)
        return -1;
    CkptHeader h;
    unsigned char head[CKPT_HEADER_BYTES], tail[4];
    rt_ckpt_header_from(&h, c);
    rt_ckpt_encode(&h, head);
    Writer w = {.crc = crc32(0L, Z_NULL, 0)};
    if (rt_atomic_open(&w.file, path) < 0)
        return -1;
    put(&w, head, sizeof head);
    put(&w, c->network, h.name_len);
    put_floats(&w, c->params, c->n);
    if (h.nstate >= 1)
        put_floats(&w, c->opt->m, c->n);
    if (h.nstate >= 2)
        put_floats(&w, c->opt->v, c->n);
    rt_put_u32(tail, (uint32_t)w.crc);
    rt_atomic_write(&w.file, tail, 4);
    return rt_atomic_commit(&w.file);
}
