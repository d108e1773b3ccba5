/* idx.c — IDX files (MNIST, Fashion-MNIST), gzip-compressed or not.
 *
 * An IDX file is a big-endian header, magic 0x0000TTNN (TT the element type,
 * 0x08 unsigned byte; NN the number of dimensions), one u32 per dimension,
 * then the elements. Images are 0x00000803 [count][rows][cols], labels
 * 0x00000801 [count]. Everything about the header is checked before the
 * data is trusted, and the data must be exactly as long as the header says. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define IDX_IMAGES 0x00000803u
#define IDX_LABELS 0x00000801u

typedef struct IdxFile {
    const char *path;
    gzFile gz;
    uint32_t dims[3];
    size_t header_bytes, data_bytes;
} IdxFile;

static const char *kind_of(uint32_t magic) {
    return magic == IDX_IMAGES ? "image" : "label";
}

/* Reads exactly n header bytes; a short read is a truncated header. */
static int read_header_bytes(IdxFile *f, unsigned char *p, size_t n, size_t at) {
    int r = gzread(f->gz, p, (unsigned)n);
    if (r < 0 || (size_t)r < n)
        return rt_fail("%s: truncated: the IDX header ends after %zu bytes", f->path,
                       at + (r > 0 ? (size_t)r : 0));
    return 0;
}

/* Opens the file, checks the magic and dimensions and sets data_bytes. */
static int idx_open(IdxFile *f, const char *path, uint32_t magic) {
    memset(f, 0, sizeof *f);
    f->path = path;
    if (rt_gz_open(path, &f->gz) < 0)
        return -1;
    unsigned char h[16];
    if (read_header_bytes(f, h, 4, 0) < 0)
        return -1;
    uint32_t got = rt_get_be32(h);
    if (got == (magic ^ IDX_IMAGES ^ IDX_LABELS))
        return rt_fail("%s: an IDX %s file where the %s file was expected", path,
                       kind_of(got), kind_of(magic));
    if (got != magic)
        return rt_fail("%s: not an IDX %s file (magic 0x%08x, expected 0x%08x)", path,
                       kind_of(magic), got, magic);
    int ndims = (int)(magic & 0xff);
    if (read_header_bytes(f, h + 4, 4 * (size_t)ndims, 4) < 0)
        return -1;
    size_t total = 1;
    for (int i = 0; i < ndims; i++) {
        f->dims[i] = rt_get_be32(h + 4 + 4 * i);
        if (f->dims[i] == 0 || f->dims[i] > 0x7fffffffu)
            return rt_fail("%s: dimension %d of the IDX header is %u", path, i + 1,
                           f->dims[i]);
        if (total > SIZE_MAX / 4 / f->dims[i])
            return rt_fail("%s: the IDX header's sizes overflow memory", path);
        total *= f->dims[i];
    }
    f->header_bytes = 4 + 4 * (size_t)ndims;
    f->data_bytes = total;
    return 0;
}

/* Reads the data, exactly data_bytes of them and nothing after. */
static int idx_read(IdxFile *f, unsigned char **data) {
    size_t got;
    if (rt_gz_read(f->gz, f->path, f->data_bytes, data, &got) < 0)
        return -1;
    const char *after = gzdirect(f->gz) ? "" : " (decompressed)";
    if (got < f->data_bytes) {
        free(*data);
        *data = NULL;
        return rt_fail("%s: truncated: %zu of %zu bytes%s", f->path, f->header_bytes + got,
                       f->header_bytes + f->data_bytes, after);
    }
    unsigned char extra;
    if (gzread(f->gz, &extra, 1) != 0) {
        free(*data);
        *data = NULL;
        return rt_fail("%s: longer than its IDX header says (%zu bytes%s)", f->path,
                       f->header_bytes + f->data_bytes, after);
    }
    return 0;
}

static void idx_close(IdxFile *f) {
    if (f->gz)
        gzclose(f->gz);
    f->gz = NULL;
}

/* Bytes 0..255 to floats 0..1, and the labels to int32. */
static int convert(const unsigned char *pixels, const unsigned char *labels,
                   CnnrtDataset *d, const char *images_path) {
    size_t n = (size_t)d->count * (size_t)d->height * (size_t)d->width;
    d->images = rt_alloc_array(n, sizeof(float));
    d->labels = rt_alloc_array((size_t)d->count, sizeof(int32_t));
    if (!d->images || !d->labels) {
        cnnrt_dataset_free(d);
        return rt_fail("%s: out of memory for %zu pixels", images_path, n);
    }
    for (size_t i = 0; i < n; i++)
        d->images[i] = pixels[i] / 255.0f;
    d->classes = 0;
    for (int64_t i = 0; i < d->count; i++) {
        d->labels[i] = labels[i];
        if (labels[i] >= d->classes)
            d->classes = labels[i] + 1;
    }
    return 0;
}

int cnnrt_load_idx(const char *images_path, const char *labels_path, CnnrtDataset *d) {
    memset(d, 0, sizeof *d);
    IdxFile im, lb;
    unsigned char *pixels = NULL, *labels = NULL;
    int rc = -1;
    memset(&lb, 0, sizeof lb);
    if (idx_open(&im, images_path, IDX_IMAGES) < 0 || idx_open(&lb, labels_path, IDX_LABELS) < 0)
        goto out;
    if (im.dims[0] != lb.dims[0]) {
        rt_fail("%s holds %u images but %s holds %u labels", images_path, im.dims[0],
                labels_path, lb.dims[0]);
        goto out;
    }
    if (idx_read(&lb, &labels) < 0 || idx_read(&im, &pixels) < 0)
        goto out;
    d->count = im.dims[0];
    d->channels = 1;
    d->height = (int)im.dims[1];
    d->width = (int)im.dims[2];
    rc = convert(pixels, labels, d, images_path);
out:
    idx_close(&im);
    idx_close(&lb);
    free(pixels);
    free(labels);
    return rc;
}
