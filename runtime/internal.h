/* internal.h — what the files of libcnnrt share and users do not see:
 * setting the error message, the allocation hook, little-endian encoding,
 * whole-file reading and the atomic file writer. */
#ifndef CNNRT_INTERNAL_H
#define CNNRT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <zlib.h>

#include "cnnrt.h"

/* Per-thread state (the error message, the fault hooks): C11's keyword, or
 * the GNU one when cnnc compiles these sources with -std=c99. */
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define RT_THREAD_LOCAL _Thread_local
#elif defined(__GNUC__)
#define RT_THREAD_LOCAL __thread
#else
#define RT_THREAD_LOCAL
#endif

/* ---- error.c ---------------------------------------------------------------
 * Sets the message cnnrt_error() returns and returns -1, so a failing
 * function ends with `return rt_fail(...)`; the message names the file. */
int rt_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* ---- alloc.c ---------------------------------------------------------------
 * Every allocation of the runtime goes through these, so a test can make the
 * N-th one fail (cnnrt_test_fail_alloc). rt_alloc_array returns NULL when
 * count * size overflows. */
void *rt_malloc(size_t size);
void *rt_calloc(size_t count, size_t size);
void *rt_alloc_array(size_t count, size_t size);
void *rt_realloc(void *p, size_t size);
/* rt_write_budget: how many of `want` bytes the atomic writer may write before
 * the injected failure (cnnrt_test_fail_write); -1 when none is armed. */
int64_t rt_write_budget(size_t want);

/* ---- le.c: little-endian encoding, whatever the host --------------------- */
void rt_put_u32(unsigned char *p, uint32_t v);
void rt_put_u64(unsigned char *p, uint64_t v);
void rt_put_f64(unsigned char *p, double v);
uint32_t rt_get_u32(const unsigned char *p);
uint64_t rt_get_u64(const unsigned char *p);
double rt_get_f64(const unsigned char *p);
uint32_t rt_get_be32(const unsigned char *p);
/* n floats <-> 4n little-endian bytes */
void rt_put_f32s(unsigned char *p, const float *v, size_t n);
void rt_get_f32s(float *v, const unsigned char *p, size_t n);

/* ---- readfile.c: reading through zlib, which reads plain files too -------- */
int rt_gz_open(const char *path, gzFile *gz);
/* Reads from gz until end of file or `limit` bytes into *buf, grown as data
 * arrives (so a header that promises gigabytes costs nothing until they come),
 * with *got the count. -1 on a read error or a damaged gzip stream. */
int rt_gz_read(gzFile gz, const char *path, size_t limit, unsigned char **buf,
               size_t *got);
/* Reads all of a file, gzip-compressed or not, into malloc'd memory. */
int rt_read_all(const char *path, unsigned char **data, size_t *size);

/* ---- atomic.c: a file written under a temporary name and renamed --------- */
typedef struct RtAtomic {
    const char *path;   /* the final name */
    char *tmp;          /* the temporary one, in the same directory */
    FILE *f;
    int failed;         /* a write failed: commit refuses */
    int err;            /* its errno */
} RtAtomic;

int rt_atomic_open(RtAtomic *a, const char *path);
/* Appends; errors are remembered and reported by rt_atomic_commit. */
void rt_atomic_write(RtAtomic *a, const void *data, size_t size);
/* fflush, fsync, close, rename, fsync the directory; on any failure removes
 * the temporary file and leaves whatever was at `path` before. */
int rt_atomic_commit(RtAtomic *a);
void rt_atomic_abort(RtAtomic *a);

/* ---- ckpt_format.c: the checkpoint header (layout in cnnrt.h) ------------- */
#define CKPT_MAGIC "CNNCKPT"        /* 8 bytes with its NUL */
#define CKPT_VERSION 1u
#define CKPT_HEADER_BYTES 152u
#define CKPT_MAX_NAME 4096u
#define CKPT_NO_OPTIMIZER 0xffffffffu

typedef struct CkptHeader {
    uint32_t version, header_bytes;
    uint64_t total_bytes, identity;
    int64_t n, step, epoch;
    CnnrtRng rng;
    uint32_t opt_kind, nstate, nesterov, name_len;
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps;
} CkptHeader;

/* State vectors of n floats an optimiser keeps: SGD 1, Adam/AdamW 2. */
uint32_t rt_ckpt_nstate(const CnnrtOptimizer *o);
/* The size of a whole checkpoint file; 0 when it overflows. */
uint64_t rt_ckpt_size(uint32_t name_len, int64_t n, uint32_t nstate);
void rt_ckpt_header_from(CkptHeader *h, const CnnrtCheckpoint *c);
/* Encodes into CKPT_HEADER_BYTES bytes, its own CRC-32 last. */
void rt_ckpt_encode(const CkptHeader *h, unsigned char *p);
/* Decodes; returns whether the header's own CRC-32 matches. */
int rt_ckpt_decode(CkptHeader *h, const unsigned char *p);

#endif
