/* f32data.c — a user's own data set: raw little-endian float32 samples
 * (NCHW, channels*height*width floats each) and int32 little-endian labels,
 * one per sample. Either file may be gzip-compressed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Checks sizes and values; on success the dataset owns both buffers. */
static int check_f32(const char *images_path, const char *labels_path, size_t nimg,
                     size_t nlab, size_t sample, CnnrtDataset *d) {
    if (nimg == 0)
        return rt_fail("%s: holds no samples", images_path);
    if (nimg % (sample * 4))
        return rt_fail("%s: %zu bytes is not a whole number of %dx%dx%d float32 "
                       "samples (%zu bytes each)", images_path, nimg, d->channels,
                       d->height, d->width, sample * 4);
    if (nlab % 4)
        return rt_fail("%s: %zu bytes is not a whole number of int32 labels",
                       labels_path, nlab);
    size_t count = nimg / (sample * 4);
    if (nlab / 4 != count)
        return rt_fail("%s holds %zu samples but %s holds %zu labels", images_path,
                       count, labels_path, nlab / 4);
    d->count = (int64_t)count;
    for (size_t i = 0; i < count * sample; i++)
        if (!isfinite(d->images[i]))
            return rt_fail("%s: sample %zu holds a value that is not a finite number",
                           images_path, i / sample);
    for (size_t i = 0; i < count; i++) {
        if (d->labels[i] < 0)
            return rt_fail("%s: the label of sample %zu is %d, below 0", labels_path, i,
                           (int)d->labels[i]);
        if (d->labels[i] >= d->classes)
            d->classes = d->labels[i] + 1;
    }
    return 0;
}

int cnnrt_load_f32(const char *images_path, const char *labels_path, int channels,
                   int height, int width, CnnrtDataset *d) {
    memset(d, 0, sizeof *d);
    if (channels <= 0 || height <= 0 || width <= 0)
        return rt_fail("%s: a sample shape of %dx%dx%d is not a shape", images_path,
                       channels, height, width);
    d->channels = channels;
    d->height = height;
    d->width = width;
    size_t sample = (size_t)channels * (size_t)height * (size_t)width;
    unsigned char *img = NULL, *lab = NULL;
    size_t nimg = 0, nlab = 0;
    if (rt_read_all(images_path, &img, &nimg) < 0 || rt_read_all(labels_path, &lab, &nlab) < 0) {
        free(img);
        return -1;
    }
    /* Decode in place: element i is read before it is written, and no two
     * elements overlap. malloc'd memory is aligned for float and int32. */
    d->images = (float *)(void *)img;
    d->labels = (int32_t *)(void *)lab;
    rt_get_f32s(d->images, img, nimg / 4);
    for (size_t i = 0; i < nlab / 4; i++)
        d->labels[i] = (int32_t)rt_get_u32(lab + 4 * i);
    if (check_f32(images_path, labels_path, nimg, nlab, sample, d) < 0) {
        cnnrt_dataset_free(d);
        return -1;
    }
    return 0;
}
