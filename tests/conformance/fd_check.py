#!/usr/bin/python3
"""Finite-difference check of every layer's backward pass.

The training code that `cnnc build --train` writes is compiled in double
precision (`-Dfloat=double`: every float in the generated file becomes a
double), so central differences with h = 1e-6 are accurate to ~1e-9 and the
analytic gradient of loss = sum(output * dout) must agree to a relative
error of 1e-6 (max |diff| / max |gradient|) for every learnable parameter;
each layer's input gradient is checked through the parameters of the layers
before it (every case starts with a layer that has some). Batch norm runs on batch statistics, dropout is off; inputs are
random normals, so no ReLU or max-pool sits at a kink.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CNNC = os.environ.get("CNNC", os.path.join(ROOT, "cnnc"))
sys.path.insert(0, HERE)
from layer_cases import CASES, network  # noqa: E402

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "NET.h"

/* loss = sum(out * dout) over every output, in double */
static double loss(float *params, float *x, float **outs, float **douts, void *arena, int batch) {
    static float keep[NET_PARAM_COUNT + 1];
    double sum = 0;
    memcpy(keep, params, sizeof keep);          /* running statistics move */
    NET_train_forward(params, x, OUTS batch, arena, 0ULL, 0);
    memcpy(params, keep, sizeof keep);
    for (int k = 0; k < NOUT; k++)
        for (long i = 0; i < (long)batch * OUTSIZE[k]; i++)
            sum += (double)outs[k][i] * douts[k][i];
    return sum;
}

int main(void) {
    const int batch = BATCH;
    float *params = malloc(sizeof(float) * (NET_PARAM_COUNT + 1));
    float *grads = malloc(sizeof(float) * (NET_PARAM_COUNT + 1));
    float *x = malloc(sizeof(float) * batch * NET_INPUT_SIZE);
    float *outs[NOUT], *douts[NOUT];
    void *arena = aligned_alloc(64, (2 * (size_t)NET_TRAIN_ARENA_BYTES + 64) / 64 * 64) /* doubles */;
    for (int i = 0; i < NET_PARAM_COUNT; i++) if (scanf("%lf", &params[i]) != 1) return 3;
    for (int i = 0; i < batch * NET_INPUT_SIZE; i++) if (scanf("%lf", &x[i]) != 1) return 3;
    for (int k = 0; k < NOUT; k++) {
        outs[k] = malloc(sizeof(float) * batch * OUTSIZE[k]);
        douts[k] = malloc(sizeof(float) * batch * OUTSIZE[k]);
        for (int i = 0; i < batch * OUTSIZE[k]; i++) if (scanf("%lf", &douts[k][i]) != 1) return 3;
    }
    loss(params, x, outs, douts, arena, batch);
    NET_backward(params, x, DOUTS grads, batch, arena);
    const double h = 1e-6;
    double worst = 0, scale = 1e-30;
    for (int i = 0; i < NET_PARAM_COUNT; i++) {
        const CnnrtParam *t = NULL;
        for (int k = 0; k < NET_PARAM_TENSORS; k++)
            if (i >= NET_param_table[k].offset && i < NET_param_table[k].offset + NET_param_table[k].count)
                t = &NET_param_table[k];
        if (!t->learnable) { if (grads[i] != 0) { printf("running statistic with a gradient\n"); return 1; } continue; }
        double v = params[i];
        params[i] = v + h; double up = loss(params, x, outs, douts, arena, batch);
        params[i] = v - h; double down = loss(params, x, outs, douts, arena, batch);
        params[i] = v;
        double fd = (up - down) / (2 * h);
        if (fabs(fd - grads[i]) > worst) worst = fabs(fd - grads[i]);
        if (fabs(fd) > scale) scale = fabs(fd);
    }
    printf("%.3e\n", worst / scale);
    return 0;
}
"""


def main():
    rng = np.random.default_rng(11)
    passed = failed = 0
    tmp = tempfile.mkdtemp(prefix="cnnc-fd-")
    for name, (dims, body) in CASES.items():
        src = os.path.join(tmp, name + ".cnn")
        open(src, "w").write(network(name, dims, body))
        out = os.path.join(tmp, name)
        # float defined as double needs the portable target: intrinsics are float-only
        subprocess.run([CNNC, "build", src, "--train", "--batch", "3", "--target", "scalar",
                        "-o", out], check=True)
        import json
        g = json.loads(subprocess.run([CNNC, "graph", src], capture_output=True, text=True, check=True).stdout)
        net = g["name"]
        outs = g["outputs"]
        sizes = [int(np.prod(o["shape"])) for o in outs]
        driver = (DRIVER.replace("NET", net).replace("BATCH", "3")
                  .replace("NOUT", str(len(outs)))
                  .replace("OUTSIZE[k]", "outsize[k]")
                  .replace("OUTS batch", "".join("outs[%d], " % k for k in range(len(outs))) + "batch")
                  .replace("DOUTS grads", "".join("douts[%d], " % k for k in range(len(outs))) + "grads"))
        driver = driver.replace("#include \"%s.h\"" % net,
                                "#include <math.h>\n#include \"%s.h\"\nstatic const long outsize[] = {%s};"
                                % (net, ", ".join(str(s) for s in sizes)))
        open(os.path.join(out, "fd.c"), "w").write(driver)
        exe = os.path.join(out, "fd")
        subprocess.run(["cc", "-std=c11", "-O1", "-Dfloat=double", "-I" + out,
                        "-I" + os.path.join(ROOT, "runtime"), os.path.join(out, net + ".c"),
                        os.path.join(out, "fd.c"), "-lm", "-o", exe], check=True)
        params = rng.uniform(-0.5, 0.5, g["param_count"])
        for n in g["nodes"]:
            for p in n["params"]:
                if p["name"] == "running_var":
                    o, c = p["offset"], int(np.prod(p["shape"]))
                    params[o:o + c] = rng.uniform(0.5, 1.5, c)
        x = rng.standard_normal(3 * int(np.prod(g["inputs"][0]["shape"])))
        douts = rng.standard_normal(3 * sum(sizes))
        text = " ".join("%.17g" % v for v in np.concatenate([params, x, douts]))
        r = subprocess.run([exe], input=text, capture_output=True, text=True)
        try:
            err = float(r.stdout.strip())
        except ValueError:
            err = float("inf")
        ok = r.returncode == 0 and err <= 1e-6
        passed += ok
        failed += not ok
        print("%s fd %-28s relerr %.2e %s" % ("PASS" if ok else "FAIL", name, err, r.stderr.strip()))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
