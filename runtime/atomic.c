/* atomic.c — a file is written under a temporary name in its own directory,
 * flushed, fsync'ed and renamed over the old one, and the directory is
 * fsync'ed: a crash at any moment leaves the old file or the new one, never
 * part of one (rename is atomic within a file system, which is why the
 * temporary file lives beside the target). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static RT_THREAD_LOCAL unsigned long tmp_counter;

/* "<path>.tmp.<pid>.<counter>", created exclusively; umask applies. */
static int open_tmp(RtAtomic *a) {
    size_t len = strlen(a->path) + 64;
    a->tmp = rt_malloc(len);
    if (!a->tmp)
        return rt_fail("cannot write %s: out of memory", a->path);
    for (int tries = 0; tries < 100; tries++) {
        snprintf(a->tmp, len, "%s.tmp.%ld.%lu", a->path, (long)getpid(), tmp_counter++);
        int fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0)
            break;
        a->f = fdopen(fd, "wb");
        if (a->f)
            return 0;
        close(fd);
        unlink(a->tmp);
        break;
    }
    int err = errno;
    free(a->tmp);
    a->tmp = NULL;
    return rt_fail("cannot write %s: %s", a->path, strerror(err));
}

int rt_atomic_open(RtAtomic *a, const char *path) {
    memset(a, 0, sizeof *a);
    a->path = path;
    return open_tmp(a);
}

void rt_atomic_write(RtAtomic *a, const void *data, size_t size) {
    if (a->failed || size == 0)
        return;
    int64_t allowed = rt_write_budget(size);  /* an injected ENOSPC, in tests */
    size_t n = allowed < 0 ? size : (size_t)allowed;
    if (fwrite(data, 1, n, a->f) != n || n != size) {
        a->failed = 1;
        a->err = n != size ? ENOSPC : errno;
    }
}

void rt_atomic_abort(RtAtomic *a) {
    if (a->f)
        fclose(a->f);
    if (a->tmp)
        unlink(a->tmp);
    free(a->tmp);
    memset(a, 0, sizeof *a);
}

/* fsync the directory holding path, so the rename itself is durable. */
static int sync_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 0;
    if (len >= sizeof dir)
        return 0;  /* longer than any path open() takes: nothing to sync */
    if (!slash)
        strcpy(dir, ".");
    else if (len == 0)
        strcpy(dir, "/");
    else {
        memcpy(dir, path, len);
        dir[len] = 0;
    }
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    /* some file systems refuse fsync on a directory; the data is safe anyway */
    if (rc < 0 && (errno == EINVAL || errno == EBADF || errno == ENOTSUP))
        rc = 0;
    close(fd);
    return rc;
}

int rt_atomic_commit(RtAtomic *a) {
    int err = 0;
    if (a->failed)
        err = a->err ? a->err : EIO;
    else if (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0)
        err = errno;
    if (fclose(a->f) != 0 && !err)
        err = errno;
    a->f = NULL;
    if (!err && rename(a->tmp, a->path) != 0)
        err = errno;
    if (err) {
        const char *path = a->path;
        rt_atomic_abort(a);
        return rt_fail("cannot write %s: %s (the old file, if any, is unchanged)", path,
                       strerror(err));
    }
    free(a->tmp);
    a->tmp = NULL;
    if (sync_dir(a->path) < 0)
        return rt_fail("%s: written, but syncing its directory failed: %s", a->path,
                       strerror(errno));
    return 0;
}

int cnnrt_write_file(const char *path, const void *data, size_t size) {
    RtAtomic a;
    if (rt_atomic_open(&a, path) < 0)
        return -1;
    rt_atomic_write(&a, data, size);
    return rt_atomic_commit(&a);
}
