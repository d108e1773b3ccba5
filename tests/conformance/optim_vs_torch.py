#!/usr/bin/python3
"""optim_vs_torch.py — libcnnrt's SGD, Adam and AdamW against torch.optim.

Compiles tests/conformance/optim_driver.c with the runtime's optimiser sources ($CC, default cc),
then for every case of optim_cases.py (SGD plain, with momentum 0.9, weight decay 1e-4,
nesterov on and off, dampening; Adam and AdamW, with and without weight decay) and two data sets
(16 floats and 4096 floats, gradients |g| in [0.1, 1]) applies 10 steps in C and in torch.optim
to the same parameters and gradients, and compares the parameters after every step.

Tolerance: max |diff| <= 1e-6 * max |param|. Both sides are float32 and perform the same
operations in the same order (optim.c mirrors torch's _single_tensor_* code line by line), so
they can differ only where torch's vectorised CPU kernels fuse a multiply and an add into one FMA
and C rounds twice: one rounding (2^-24, 6e-8 relative) per operation, a few ulp over 10 steps.
1e-6 leaves room for that and is still far below any real mistake: a wrong bias correction, a
missing dampening or weight decay in the wrong place moves parameters by 1e-4 or more.

Usage: /usr/bin/python3 tests/conformance/optim_vs_torch.py [-v] [--keep]
Prints one line per case and `N passed, M failed`; exits 1 if any failed.
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import optim_cases as oc  # noqa: E402

TOL = 1e-6
RUNTIME = ["optim.c", "alloc.c", "error.c"]   # what the optimiser needs of libcnnrt
DATASETS = [(1234, 16), (7, 4096)]


def build(tmp):
    exe = os.path.join(tmp, "optim_driver")
    cc = shlex.split(os.environ.get("CC", "cc"))
    cmd = cc + ["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror",
                "-I" + os.path.join(REPO, "runtime"),
                os.path.join(HERE, "optim_driver.c")]
    cmd += [os.path.join(REPO, "runtime", f) for f in RUNTIME] + ["-lz", "-lm", "-o", exe]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("optim_vs_torch: building the driver failed:\n%s\n%s" % (" ".join(cmd),
                                                                         r.stderr))
    return exe


def run_c(exe, tmp, kind, s, p0, grads):
    n, steps = p0.size, grads.shape[0]
    paths = [os.path.join(tmp, f) for f in ("p0.f32", "grads.f32", "out.f32")]
    p0.astype("<f4").tofile(paths[0])
    grads.astype("<f4").tofile(paths[1])
    args = [exe, kind] + [repr(s[k]) for k in ("lr", "momentum", "dampening")]
    args += [str(s["nesterov"])] + [repr(s[k]) for k in ("weight_decay", "beta1", "beta2", "eps")]
    args += [str(n), str(steps)] + paths
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("optim_driver failed: %s" % r.stderr.strip())
    return np.fromfile(paths[2], dtype="<f4").reshape(steps, n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-v", action="store_true", help="print the error after every step")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="optim-vs-torch-")
    exe = build(tmp)
    passed = failed = 0
    for seed, n in DATASETS:
        p0, grads = oc.data(seed, n)
        for name, kind, kw in oc.CASES:
            label = "%s n=%d" % (name, n)
            try:
                got = run_c(exe, tmp, kind, oc.settings(kind, kw), p0, grads)
            except RuntimeError as e:
                print("FAIL %-28s %s" % (label, e))
                failed += 1
                continue
            want = oc.run_torch(kind, kw, p0, grads)
            worst = 0.0
            for step in range(oc.STEPS):
                diff = np.max(np.abs(got[step].astype(np.float64) - want[step]))
                rel = diff / np.max(np.abs(want[step]))
                worst = max(worst, rel)
                if args.v:
                    print("     %-28s step %2d: max|diff| %.3g, relative %.3g"
                          % (label, step + 1, diff, rel))
            exact = np.array_equal(got, want)
            ok = worst <= TOL
            print("%s %-28s max|diff|/max|param| %.3g over %d steps%s"
                  % ("ok  " if ok else "FAIL", label, worst, oc.STEPS,
                     " (bit-identical)" if exact else ""))
            passed += ok
            failed += not ok
    if not args.keep:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
