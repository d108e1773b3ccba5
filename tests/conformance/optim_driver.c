/* optim_driver.c — applies libcnnrt's optimiser to a parameter vector, one
 * gradient per step, for tests/conformance/optim_vs_torch.py.
 *
 *   optim_driver KIND LR MOMENTUM DAMPENING NESTEROV WEIGHT_DECAY BETA1 BETA2 EPS
 *                N STEPS P0.f32 GRADS.f32 OUT.f32
 *
 * KIND is SGD, Adam or AdamW; P0 holds N floats, GRADS STEPS*N; OUT gets the
 * parameters after each step, STEPS*N floats. Files are raw float32 in the
 * host's byte order (the script runs on the same machine). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnrt.h"

static int read_floats(const char *path, float *v, size_t n) {
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(v, sizeof *v, n, f) : 0;
    if (f)
        fclose(f);
    if (got != n)
        fprintf(stderr, "optim_driver: %s: expected %zu floats\n", path, n);
    return got == n ? 0 : -1;
}

static int parse_kind(const char *s, CnnrtOptKind *k) {
    static const char *const names[] = {"SGD", "Adam", "AdamW"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *k = (CnnrtOptKind)i;
            return 0;
        }
    fprintf(stderr, "optim_driver: unknown optimiser '%s'\n", s);
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 15) {
        fprintf(stderr, "usage: optim_driver KIND LR MOMENTUM DAMPENING NESTEROV WD BETA1 "
                        "BETA2 EPS N STEPS P0.f32 GRADS.f32 OUT.f32\n");
        return 2;
    }
    CnnrtOptKind kind;
    long n = atol(argv[10]), steps = atol(argv[11]);
    if (parse_kind(argv[1], &kind) < 0 || n <= 0 || steps <= 0)
        return 2;
    CnnrtOptimizer o;
    if (cnnrt_opt_init(&o, kind, n) < 0) {
        fprintf(stderr, "optim_driver: %s\n", cnnrt_error());
        return 1;
    }
    o.lr = atof(argv[2]);
    o.momentum = atof(argv[3]);
    o.dampening = atof(argv[4]);
    o.nesterov = atoi(argv[5]);
    o.weight_decay = atof(argv[6]);
    o.beta1 = atof(argv[7]);
    o.beta2 = atof(argv[8]);
    o.eps = atof(argv[9]);
    if (cnnrt_opt_check(&o) < 0) {
        fprintf(stderr, "optim_driver: %s\n", cnnrt_error());
        return 1;
    }
    float *p = malloc(sizeof *p * (size_t)n), *g = malloc(sizeof *g * (size_t)(n * steps));
    float *out = malloc(sizeof *out * (size_t)(n * steps));
    int rc = 1;
    if (!p || !g || !out || read_floats(argv[12], p, (size_t)n) < 0 ||
        read_floats(argv[13], g, (size_t)(n * steps)) < 0)
        goto done;
    for (long s = 0; s < steps; s++) {
        cnnrt_opt_step(&o, p, g + s * n, NULL);
        memcpy(out + s * n, p, sizeof *p * (size_t)n);
    }
    FILE *f = fopen(argv[14], "wb");
    rc = !f || fwrite(out, sizeof *out, (size_t)(n * steps), f) != (size_t)(n * steps);
    if (f && fclose(f) != 0)
        rc = 1;
done:
    free(p);
    free(g);
    free(out);
    cnnrt_opt_free(&o);
    return rc;
}
