/* loss.c — the two losses, each fused with its gradient.
 *
 * Sums run in double: a batch mean of thousands of float terms loses
 * nothing that way, and the returned value is what a user reads in logs. */
#include <math.h>

#include "internal.h"

/* Index of the largest logit; the first on ties, as torch.argmax. */
static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* One sample: -log softmax(x)[label], stable by shifting by the maximum,
 * and (softmax(x) - onehot(label)) * scale into dx when not NULL. A label
 * outside 0..n-1 gives NaN and a zero gradient rather than a wild read. */
static double xent_row(const float *x, int32_t label, int n, float *dx, double scale) {
    if (label < 0 || label >= n) {
        for (int i = 0; dx && i < n; i++)
            dx[i] = 0.0f;
        return NAN;
    }
    double mx = x[argmax(x, n)], sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += exp((double)x[i] - mx);
    double lse = mx + log(sum);
    for (int i = 0; dx && i < n; i++) {
        double p = exp((double)x[i] - lse);
        dx[i] = (float)((p - (i == label)) * scale);
    }
    return lse - x[label];
}

double cnnrt_softmax_xent(const float *logits, const int32_t *labels, int batch,
                          int classes, float *dlogits, int *correct) {
    if (correct)
        *correct = 0;
    if (batch <= 0 || classes <= 0)
        return 0.0;
    double total = 0.0, scale = 1.0 / batch;
    for (int b = 0; b < batch; b++) {
        const float *x = logits + (int64_t)b * classes;
        float *dx = dlogits ? dlogits + (int64_t)b * classes : NULL;
        total += xent_row(x, labels[b], classes, dx, scale);
        if (correct && argmax(x, classes) == labels[b])
            (*correct)++;
    }
    return total / batch;
}

double cnnrt_mse(const float *out, const float *target, int batch, int64_t n,
                 float *dout) {
    int64_t total = (int64_t)batch * n;
    if (batch <= 0 || n <= 0)
        return 0.0;
    double sum = 0.0, scale = 2.0 / (double)total;
    for (int64_t i = 0; i < total; i++) {
        double d = (double)out[i] - (double)target[i];
        sum += d * d;
        if (dout)
            dout[i] = (float)(d * scale);
    }
    return sum / (double)total;
}
