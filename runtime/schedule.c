/* schedule.c — learning rate per epoch, in the closed forms of StepLR and
 * CosineAnnealingLR (eta_min 0). Degenerate arguments (step_size or epochs
 * not positive) keep the base rate. */
#include <math.h>

#include "internal.h"

static const double pi = 3.14159265358979323846;

double cnnrt_lr_at(CnnrtSchedule s, double base_lr, int epoch, int epochs,
                   int step_size, double gamma) {
    switch (s) {
    case CNNRT_STEP:
        if (step_size <= 0 || epoch < 0)
            return base_lr;
        return base_lr * pow(gamma, (double)(epoch / step_size));
    case CNNRT_COSINE:
        if (epochs <= 0)
            return base_lr;
        return base_lr * (1 + cos(pi * epoch / epochs)) / 2;
    case CNNRT_CONSTANT:
    default:
        return base_lr;
    }
}
