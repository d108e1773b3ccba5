#!/usr/bin/python3
"""End-to-end inference speed (make bench): latency at batch 1 and throughput at a larger batch
for the example networks, cnnc's generated code (scalar target, compiled with clang -O3
-march=native, one thread) beside PyTorch at one thread and at all threads.

PyTorch runs the network's twin (tests/conformance/twin.py: evaluate() on the `cnnc graph`
JSON, in torch.inference_mode), which is exactly the network cnnc compiled, with the same
parameters (twin.random_params, bn statistics calibrated so activations stay at unit scale and
no denormals slow either side) and the same inputs. cnnc's output at batch 1 is checked against
the twin's (max|diff| / max|ref|, column "rel. diff") so the timing is of a correct computation.

cnnc builds each network once, with --batch equal to the throughput batch, and times calls at
batch 1 (latency) and at that batch (throughput); the generated code is the same for every
--batch but for the arena offsets. Every figure is the median of the samples listed per network
(each sample at least --min-time seconds of calls after one warm-up call). Throughput batches
below 64 and skipped runs are chosen to keep the whole script near 10 minutes on a 2-core
machine with the scalar target; they are printed with the results.

    /usr/bin/python3 bench/networks.py [--only resnet18,...] [--min-time 0.2] [--quick]
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

sys.path.insert(0, os.path.join(B.ROOT, "tests", "conformance"))
import twin  # noqa: E402

# name, latency samples (cnnc, torch), throughput batch (0: skipped), throughput samples
# (batches below 64 keep the script near 10 minutes with today's scalar target: measured on a
# 2-core Xeon, one resnet50 image takes ~0.47 s and one vgg16 image ~1 s in cnnc's code)
NETS = [
    ("mnist",       7, 64, 5),
    ("lenet5",      7, 64, 5),
    ("resnet18",    5, 64, 3),
    ("resnet50",    3, 16, 3),
    ("vgg16",       3, 8, 3),
    ("mobilenetv2", 5, 64, 3),
    ("googlenet",   5, 64, 3),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated network names")
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per sample (default 0.2)")
    ap.add_argument("--batch", type=int, default=0,
                    help="throughput batch for every network (default: the per-network table)")
    ap.add_argument("--quick", action="store_true", help="3 samples everywhere, 0.1 s each")
    ap.add_argument("--keep", action="store_true", help="keep the build directory")
    o = ap.parse_args()
    if o.quick:
        o.min_time = 0.1
    nets = [n for n in NETS if not o.only or n[0] in o.only.split(",")]
    allt = os.cpu_count() or 1
    work = tempfile.mkdtemp(prefix="cnnc-networks-")
    cv = B.compiler_versions()
    cnnc_line = B.snapshot_cnnc(work)
    t_start = time.perf_counter()
    print("# End-to-end inference, %s" % time.strftime("%Y-%m-%d %H:%M %Z"))
    print()
    print("- CPU: %s, %d cores; load average at start %s" % (B.cpu_name(), allt, B.loadavg()))
    print("- cnnc: scalar target, `%s` (%s), one thread" % (" ".join(B.COMPILERS["clang"]), cv["clang"]))
    print("- cnnc binary: %s" % cnnc_line)
    print("- PyTorch %s (oneDNN %s, BLAS %s): the twin (tests/conformance/twin.py evaluate() on "
          "`cnnc graph`), inference_mode, 1 thread and %d threads"
          % (torch.__version__, "on" if torch.backends.mkldnn.is_available() else "off", B.blas(), allt))
    print("- same parameters and inputs on both sides; medians of the samples given per row, each "
          ">= %.2f s of calls" % o.min_time)
    busy = B.busy_warning()
    if busy:
        print("- **" + busy + "**")
    print(flush=True)
    lat, thr = [], []
    for name, ls, tb, ts in nets:
        if o.batch:
            tb = o.batch
            ts = ts or 3
        if o.quick:
            ls, ts = 3, min(ts, 3)
        cnn = os.path.join(B.ROOT, "examples", name + ".cnn")
        g = twin.graph_of_file(cnn, cnnc=B.CNNC)
        rng = np.random.default_rng(0)
        calib = twin.random_inputs(g, 2, rng)
        params = twin.random_params(g, rng, calib)
        nb = max(tb, 1)
        xs = twin.random_inputs(g, nb, rng)
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        pf, xf, yf = os.path.join(d, "p.f32"), os.path.join(d, "x.f32"), os.path.join(d, "y.f32")
        params.astype(np.float32).tofile(pf)
        np.concatenate([x.reshape(-1) for x in xs]).astype(np.float32).tofile(xf)
        nm, _ = B.build(cnn, d, batch=nb)
        B.harness(nm, d)
        exe, ctime = B.compile_harness(nm, d, "clang")
        # --- cnnc
        x1f = xf
        if len(xs) > 1 and nb > 1:   # batch-1 file: the first sample of each input
            x1f = os.path.join(d, "x1.f32")
            np.concatenate([x[:1].reshape(-1) for x in xs]).astype(np.float32).tofile(x1f)
        c_lat = B.time_exe(exe, 1, ls, o.min_time, pf, x1f, yf)[0]
        y = np.fromfile(yf, dtype=np.float32)
        c_thr = B.time_exe(exe, tb, ts, o.min_time, pf, xf)[0] if tb else None
        # --- PyTorch twin
        pt = torch.from_numpy(params)
        x1 = [torch.from_numpy(np.ascontiguousarray(x[:1])) for x in xs]
        xb = [torch.from_numpy(np.ascontiguousarray(x)) for x in xs]
        with torch.inference_mode():
            ref = torch.cat([r.reshape(-1) for r in twin.evaluate(g, pt, x1)]).numpy()
            rel = float(np.abs(y - ref).max() / max(np.abs(ref).max(), 1e-30))
            r = {}
            for th in sorted({1, allt}):
                torch.set_num_threads(th)
                r[("lat", th)] = B.time_py(lambda: twin.evaluate(g, pt, x1), ls, o.min_time)[0]
                if tb:
                    r[("thr", th)] = B.time_py(lambda: twin.evaluate(g, pt, xb), ts, o.min_time)[0]
        lat.append((name, ls, c_lat, r[("lat", 1)], r[("lat", allt)], rel))
        if tb:
            thr.append((name, tb, ts, tb / c_thr, tb / r[("thr", 1)], tb / r[("thr", allt)]))
        else:
            thr.append((name, 0, 0, None, None, None))
        print("  %-12s compile %.0f s; cnnc %.1f ms, torch 1T %.1f ms, %dT %.1f ms; rel. diff %.1e; "
              "elapsed %.0f s, load %s"
              % (name, ctime, c_lat * 1e3, r[("lat", 1)] * 1e3, allt, r[("lat", allt)] * 1e3, rel,
                 time.perf_counter() - t_start, B.loadavg()), file=sys.stderr, flush=True)
    print("## Latency, batch 1 (ms)")
    print()
    print("| network | samples | cnnc clang -O3 native, 1T | PyTorch 1T | PyTorch %dT | cnnc / PyTorch 1T "
          "| cnnc / PyTorch %dT | rel. diff |" % (allt, allt))
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, ls, c, p1, pn, rel in lat:
        print("| %s | %d | %.2f | %.2f | %.2f | %.1fx | %.1fx | %.1e |"
              % (name, ls, c * 1e3, p1 * 1e3, pn * 1e3, c / p1, c / pn, rel))
    print()
    print("## Throughput (images/s)")
    print()
    print("| network | batch | samples | cnnc clang -O3 native, 1T | PyTorch 1T | PyTorch %dT "
          "| cnnc / PyTorch 1T time | cnnc / PyTorch %dT time |" % (allt, allt))
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    notes = []
    for name, tb, ts, c, p1, pn in thr:
        if not tb:
            print("| %s | skipped | | | | | | |" % name)
            notes.append("%s: throughput skipped (too slow on the scalar target for this script's "
                         "time budget; run with --only %s --batch N)" % (name, name))
            continue
        if tb < 64:
            notes.append("%s: batch %d instead of 64 (time budget)" % (name, tb))
        print("| %s | %d | %d | %.1f | %.1f | %.1f | %.1fx | %.1fx |" % (name, tb, ts, c, p1, pn, p1 / c, pn / c))
    print()
    for n in notes:
        print("- " + n)
    print()
    print("total %.0f s; load average at end: %s" % (time.perf_counter() - t_start, B.loadavg()))
    if o.keep:
        print("build directory kept: %s" % work, file=sys.stderr)
    else:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
