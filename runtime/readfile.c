/* readfile.c — reading files through zlib's gz* functions, which read a
 * gzip-compressed file and a plain one alike. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int rt_gz_open(const char *path, gzFile *gz) {
    errno = 0;
    *gz = gzopen(path, "rb");
    if (!*gz)
        return rt_fail("cannot open %s: %s", path,
                       errno ? strerror(errno) : "out of memory");
    return 0;
}

/* Doubles the buffer, up to limit; starts at 1 MiB. */
static int grow(unsigned char **buf, size_t *cap, size_t limit, const char *path) {
    size_t want = *cap ? *cap * 2 : (size_t)1 << 20;
    if (want < *cap || want > limit)
        want = limit;
    unsigned char *p = rt_realloc(*buf, want);
    if (!p)
        return rt_fail("%s: out of memory reading %zu bytes", path, want);
    *buf = p;
    *cap = want;
    return 0;
}

int rt_gz_read(gzFile gz, const char *path, size_t limit, unsigned char **buf,
               size_t *got) {
    size_t cap = 0;
    *buf = NULL;
    *got = 0;
    for (;;) {
        if (*got == limit)
            return 0;
        if (*got == cap && grow(buf, &cap, limit, path) < 0)
            break;
        size_t chunk = cap - *got < (size_t)1 << 30 ? cap - *got : (size_t)1 << 30;
        int r = gzread(gz, *buf + *got, (unsigned)chunk);
        if (r == 0)
            return 0;
        if (r < 0) {
            int errnum;
            const char *msg = gzerror(gz, &errnum);
            if (errnum == Z_BUF_ERROR)
                rt_fail("%s: truncated: the compressed data ends after %zu bytes",
                        path, *got);
            else
                rt_fail("%s: %s", path, errnum == Z_ERRNO ? strerror(errno)
                                        : msg && *msg ? msg : "read error");
            break;
        }
        *got += (size_t)r;
    }
    free(*buf);
    *buf = NULL;
    return -1;
}

int rt_read_all(const char *path, unsigned char **data, size_t *size) {
    gzFile gz;
    if (rt_gz_open(path, &gz) < 0)
        return -1;
    int rc = rt_gz_read(gz, path, SIZE_MAX, data, size);
    gzclose(gz);
    return rc;
}
