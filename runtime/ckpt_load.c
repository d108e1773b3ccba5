/* ckpt_load.c — reading a checkpoint back, refusing anything that is not
 * exactly what was saved for this network.
 *
 * The checks run in an order that names the real problem: the magic (not a
 * checkpoint at all), the format version (only believed when the file's CRC
 * holds), the length (truncated), the header's and the file's CRC-32
 * (corrupted), and last what it was made for (another network). Only then
 * is anything copied into the caller's buffers, in a second pass that checks
 * the CRC again in case the file changed in between. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

typedef struct Reader {
    const char *path;
    FILE *f;
    uint64_t size;                       /* bytes in the file */
    unsigned char head[CKPT_HEADER_BYTES];
    size_t head_got;                     /* bytes of head read */
    uint32_t stored_crc;                 /* its last four bytes */
    int crc_ok;                          /* they are the CRC of the rest */
} Reader;

static int read_fail(Reader *r) {
    return rt_fail("cannot read %s: %s", r->path,
                   ferror(r->f) ? strerror(errno) : "the file changed while being read");
}

/* CRC-32 of bytes [0, size - 4) against the last four, read once through. */
static int check_crc(Reader *r) {
    unsigned char buf[1 << 14];
    uLong crc = crc32(0L, Z_NULL, 0);
    uint64_t left = r->size - 4;
    if (fseek(r->f, 0, SEEK_SET) != 0)
        return read_fail(r);
    while (left > 0) {
        size_t k = left < sizeof buf ? (size_t)left : sizeof buf;
        if (fread(buf, 1, k, r->f) != k)
            return read_fail(r);
        crc = crc32(crc, buf, (uInt)k);
        left -= k;
    }
    if (fread(buf, 1, 4, r->f) != 4)
        return read_fail(r);
    r->stored_crc = rt_get_u32(buf);
    r->crc_ok = r->stored_crc == (uint32_t)crc;
    return 0;
}

static int open_reader(Reader *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->f = fopen(path, "rb");
    struct stat st;
    if (!r->f)
        return rt_fail("cannot open checkpoint %s: %s", path, strerror(errno));
    if (fstat(fileno(r->f), &st) != 0 || !S_ISREG(st.st_mode))
        return rt_fail("%s: not a regular file", path);
    r->size = (uint64_t)st.st_size;
    r->head_got = fread(r->head, 1, sizeof r->head, r->f);
    if (r->size >= 12 && check_crc(r) < 0)
        return -1;
    return 0;
}

static int version_message(const Reader *r, uint32_t version) {
    if (version > CKPT_VERSION)
        return rt_fail("%s: written by a newer cnnc (checkpoint format version %u; this "
                       "one reads version %u)", r->path, version, CKPT_VERSION);
    return rt_fail("%s: checkpoint format version %u is older than this cnnc reads "
                   "(version %u)", r->path, version, CKPT_VERSION);
}

/* Everything about the file itself: is it an intact checkpoint? `expect` is
 * the size a checkpoint for the caller's network has, for the message when
 * the file is too short to say its own. */
static int check_file(Reader *r, CkptHeader *h, uint64_t expect) {
    size_t m = r->head_got < 8 ? r->head_got : 8;
    if (memcmp(r->head, CKPT_MAGIC, m) != 0)
        return rt_fail("%s: not a cnnc checkpoint", r->path);
    uint32_t version = r->size >= 12 ? rt_get_u32(r->head + 8) : CKPT_VERSION;
    if (version != CKPT_VERSION && r->crc_ok)
        return version_message(r, version);
    if (r->size < CKPT_HEADER_BYTES)
        return rt_fail("%s: truncated: %llu of %llu bytes", r->path,
                       (unsigned long long)r->size, (unsigned long long)expect);
    if (!rt_ckpt_decode(h, r->head))
        return rt_fail("%s: corrupted (the header's CRC-32 does not match)", r->path);
    if (h->version != CKPT_VERSION)
        return version_message(r, h->version);
    if (h->header_bytes != CKPT_HEADER_BYTES || h->name_len > CKPT_MAX_NAME ||
        h->nstate > 2 || h->total_bytes != rt_ckpt_size(h->name_len, h->n, h->nstate))
        return rt_fail("%s: corrupted (its header is inconsistent)", r->path);
    if (r->size < h->total_bytes)
        return rt_fail("%s: truncated: %llu of %llu bytes", r->path,
                       (unsigned long long)r->size, (unsigned long long)h->total_bytes);
    if (r->size > h->total_bytes)
        return rt_fail("%s: corrupted (%llu bytes, but its header says %llu)", r->path,
                       (unsigned long long)r->size, (unsigned long long)h->total_bytes);
    if (!r->crc_ok)
        return rt_fail("%s: corrupted (CRC-32 mismatch: the file changed after it was "
                       "written)", r->path);
    return 0;
}

/* Is it a checkpoint of the caller's network, with a usable optimiser? */
static int check_match(Reader *r, const CkptHeader *h, const CnnrtCheckpoint *c) {
    char name[CKPT_MAX_NAME + 1];
    if (fseek(r->f, CKPT_HEADER_BYTES, SEEK_SET) != 0 ||
        fread(name, 1, h->name_len, r->f) != h->name_len)
        return read_fail(r);
    name[h->name_len] = 0;
    if (strcmp(name, c->network) != 0 || h->n != c->n)
        return rt_fail("%s: made for network %s with %lld parameters, not %s (%lld "
                       "parameters)", r->path, name, (long long)h->n, c->network,
                       (long long)c->n);
    if (h->identity != c->identity)
        return rt_fail("%s: made for network %s with %lld parameters, not this layout of "
                       "%s (its parameter shapes differ)", r->path, name, (long long)h->n,
                       c->network);
    const CnnrtOptimizer *o = c->opt;
    if (!o || h->nstate == 0)
        return 0;
    if (h->opt_kind != (uint32_t)o->kind)
        return rt_fail("%s: saved with the %s optimiser, not %s", r->path,
                       cnnrt_opt_name((CnnrtOptKind)h->opt_kind), cnnrt_opt_name(o->kind));
    if (o->n != c->n || !o->m || (o->kind != CNNRT_SGD && !o->v))
        return rt_fail("%s: the optimiser was not set up for these %lld parameters "
                       "(cnnrt_opt_init)", r->path, (long long)c->n);
    return 0;
}

/* Second pass: the floats into the caller's arrays, CRC-checked again. */
static int read_floats(Reader *r, float *dst, int64_t n, uLong *crc) {
    unsigned char buf[1 << 14];
    const int64_t per = sizeof buf / 4;
    for (int64_t i = 0; i < n; i += per) {
        size_t k = (size_t)(n - i < per ? n - i : per);
        if (fread(buf, 1, 4 * k, r->f) != 4 * k)
            return read_fail(r);
        *crc = crc32(*crc, buf, (uInt)(4 * k));
        if (dst)
            rt_get_f32s(dst + i, buf, k);
    }
    return 0;
}

static int read_payload(Reader *r, const CkptHeader *h, CnnrtCheckpoint *c) {
    CnnrtOptimizer *o = h->nstate ? c->opt : NULL;
    uLong crc = crc32(0L, Z_NULL, 0);
    unsigned char name[CKPT_MAX_NAME];
    if (fseek(r->f, 0, SEEK_SET) != 0 || fread(r->head, 1, CKPT_HEADER_BYTES, r->f) !=
        CKPT_HEADER_BYTES || fread(name, 1, h->name_len, r->f) != h->name_len)
        return read_fail(r);
    crc = crc32(crc, r->head, CKPT_HEADER_BYTES);
    crc = crc32(crc, name, h->name_len);
    if (read_floats(r, c->params, h->n, &crc) < 0 ||
        (h->nstate >= 1 && read_floats(r, o ? o->m : NULL, h->n, &crc) < 0) ||
        (h->nstate >= 2 && read_floats(r, o ? o->v : NULL, h->n, &crc) < 0))
        return -1;
    if ((uint32_t)crc != r->stored_crc)
        return rt_fail("%s: changed while being read", r->path);
    return 0;
}

/* The header's scalars into the caller's structures, as torch's
 * load_state_dict restores an optimiser's hyper-parameters with its state. */
static void restore(const CkptHeader *h, CnnrtCheckpoint *c) {
    c->epoch = h->epoch;
    c->rng = h->rng;
    CnnrtOptimizer *o = c->opt;
    if (!o || h->nstate == 0)
        return;
    o->step = h->step;
    o->nesterov = (int)h->nesterov;
    o->lr = h->lr;
    o->momentum = h->momentum;
    o->dampening = h->dampening;
    o->weight_decay = h->weight_decay;
    o->beta1 = h->beta1;
    o->beta2 = h->beta2;
    o->eps = h->eps;
}

int cnnrt_load_checkpoint(const char *path, CnnrtCheckpoint *c) {
    if (!c->network || strlen(c->network) > CKPT_MAX_NAME || c->n < 0 ||
        (c->n > 0 && !c->params))
        return rt_fail("cannot load %s: no network name or parameter vector to load "
                       "into", path);
    uint64_t expect = rt_ckpt_size((uint32_t)strlen(c->network), c->n,
                                   rt_ckpt_nstate(c->opt));
    Reader r;
    CkptHeader h;
    int rc = -1;
    if (open_reader(&r, path) == 0 && check_file(&r, &h, expect) == 0 &&
        check_match(&r, &h, c) == 0 && read_payload(&r, &h, c) == 0) {
        restore(&h, c);
        rc = 0;
    }
    if (r.f)
        fclose(r.f);
    return rc;
}
