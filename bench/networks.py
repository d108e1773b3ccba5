#!/usr/bin/python3
"""End-to-end inference speed (make bench): latency at batch 1 on one and on all threads and
throughput at batch 64 on one and on all threads, for the example networks, cnnc's generated
code beside PyTorch.

Latency (batch 1, one thread), one column per cnnc build (--target, default avx512,avx2,scalar):

  avx512  cnnc build --target avx512 (the same kernels on AVX-512F 16-float vectors), compiled
          with $CC -O2 like avx2; left out with a note when the CPU lacks avx512f or cnnc the target
  avx2    cnnc build --target avx2 (AVX2+FMA intrinsics), compiled with $CC -O2 as `cnnc run` does
  scalar  cnnc build --target scalar (portable C), compiled with clang -O3 -march=native

The latency ratio is the widest build measured (avx512, else avx2, else scalar) over PyTorch.
With `cnnc tune` in cnnc and a vector build (and no --no-tune), the widest vector build is also
measured tuned: `cnnc tune NET.cnn --target T -o NET.tune` (its seconds are reported), then
`cnnc build --tune NET.tune`, in columns of its own beside the default build.
With --openmp in cnnc and more than one CPU, the all-thread latency is the throughput build
below called with one sample (NAME_forward takes any batch up to NAME_BATCH) at
OMP_NUM_THREADS=all, beside PyTorch at torch.set_num_threads(all), in a table of its own.

Throughput (images/s at batch 64): only the widest vector build measured (avx512, else avx2),
with --openmp, compiled and linked with $CC -O2 -fopenmp, run with OMP_NUM_THREADS=1 and
OMP_NUM_THREADS=all CPUs (nproc). Without a vector build (--target scalar, or a cnnc/CPU without
one) the scalar build takes its place, compiled with clang -O3 -march=native (-fopenmp); without
--openmp in cnnc, one thread only. The header says which build it is.

PyTorch runs the network's twin (tests/conformance/twin.py: evaluate() on the `cnnc graph`
JSON, in torch.inference_mode), which is exactly the network cnnc compiled, with the same
parameters (twin.random_params, bn statistics calibrated so activations stay at unit scale and
no denormals slow either side) and the same inputs, at 1 thread and at all threads
(torch.set_num_threads). Every cnnc output is checked against the twin's (max|diff| / max|ref|,
the "rel. diff" columns; batch 1 for the latency builds, the whole batch for the throughput
build), so the timing is of a correct computation.

The weight-read floor (a table of its own, after the one-thread latencies): at batch 1 every
weight tensor of the network (its `weight` parameters, float32) is read once a call, and one
core brings data in no faster than bench/peak.c --read measures (its L2 rate for the first
L2-size bytes, the rate from beyond L2 for the rest), so no code on this core can take less
time than those bytes at those rates: the table sets it beside cnnc's and PyTorch's times.

Every figure is the median of the samples listed per network, each sample at least --min-time
seconds of calls after one warm-up call. Samples are taken in turns, round after round (the
latencies: one of each cnnc build, then one of PyTorch; the throughputs: one of cnnc at each
thread count, then one of PyTorch at each), so that a spell of other work on the machine slows
both sides of a ratio alike, the 2T/1T ratios included. The throughput batch is 64 unless the throughput
measurements of a network (cnnc and PyTorch, 1 and all threads, warm-up included), estimated
from the batch-1 latencies, would take more than --budget seconds: then it is halved until they
fit, and the table's notes say so. --batch N fixes the batch for every network.

    /usr/bin/python3 bench/networks.py [--only resnet18,...] [--target avx512,avx2,scalar]
                                       [--min-time 0.2] [--budget 120] [--batch N] [--quick]
"""
import argparse
import os
import sys
import subprocess
import tempfile
import time

import numpy as np
import torch

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

sys.path.insert(0, os.path.join(B.ROOT, "tests", "conformance"))
import twin  # noqa: E402

# name, latency samples, throughput batch (the largest; --budget may halve it; 0: skipped),
# throughput samples. Fewer samples on the big networks keep the script near 10 minutes on a
# 2-core machine.
NETS = [
    ("mnist",       7, 64, 5),
    ("lenet5",      7, 64, 5),
    ("resnet18",    5, 64, 3),
    ("resnet50",    5, 64, 3),
    ("vgg16",       3, 64, 3),
    ("mobilenetv2", 5, 64, 3),
    ("googlenet",   5, 64, 3),
]

TARGETS = ("avx512", "avx2", "scalar")
BUSY = 0.3      # cores of other work that make an all-thread figure unreliable
MARK = "(busy)"


def weight_floor(g, rates):
    """(MB, seconds): the bytes of the network's weight tensors (float32) and the time one
    core takes to read them once at the measured rates: the first L2-size bytes at the L2
    rate, the rest at the rate from beyond L2. At batch 1 each weight is read at least once a
    call, so this bounds any implementation's latency from below."""
    n = sum(twin.size_of(p["shape"]) for nd in g["nodes"] for p in nd["params"] if p["name"] == "weight")
    b = 4.0 * n
    l2 = rates["l2_bytes"]
    s = min(b, l2) / (rates["l2_gbs"] * 1e9) + max(0.0, b - l2) / (rates["beyond_l2_gbs"] * 1e9)
    return b / 1e6, s


def rel_diff(y, ref):
    return float(np.abs(y - ref).max() / max(np.abs(ref).max(), 1e-30))


def fmt_rel(r):
    """Relative difference; bold when far above float rounding (a wrong result)."""
    return ("**%.1e**" if not r <= 1e-4 else "%.1e") % r


def choose_batch(tb, ts, per_image, min_time, runs, budget):
    """The largest of tb, tb/2, ... (at least 1) whose throughput runs fit the budget: `runs`
    timed runs of ts samples each, a sample being one warm-up call and then calls for at least
    min_time, per_image seconds per image in all (summed over the runs). Returns (batch,
    estimated seconds at tb)."""
    def est(b):
        return 2 * ts * b * per_image + runs * ts * min_time
    b = tb
    while b > 1 and est(b) > budget:
        b //= 2
    return b, est(tb)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated network names")
    ap.add_argument("--target", default=None,
                    help="comma-separated cnnc builds for the latency table: avx512, avx2, scalar "
                         "(default all three; avx512 and avx2 are left out with a note when cnnc or "
                         "the CPU lacks them). The throughput build is the widest measured: "
                         "avx512, else avx2, else scalar")
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per sample (default 0.2)")
    ap.add_argument("--batch", type=int, default=0,
                    help="throughput batch for every network (default: 64, less where --budget says)")
    ap.add_argument("--budget", type=float, default=120.0,
                    help="seconds the throughput runs of one network may take, estimated from its "
                         "batch-1 latencies; the batch is halved until they fit (default 120)")
    ap.add_argument("--quick", action="store_true", help="3 samples everywhere, 0.1 s each")
    ap.add_argument("--keep", action="store_true", help="keep the build directory")
    ap.add_argument("--no-tune", action="store_true",
                    help="leave out the tuned latency build (cnnc tune, then build --tune)")
    o = ap.parse_args()
    if o.quick:
        o.min_time = 0.1
    nets = [n for n in NETS if not o.only or n[0] in o.only.split(",")]
    unknown = set(o.only.split(",")) - {n[0] for n in NETS} - {""}
    if unknown:
        raise SystemExit("--only: unknown network(s) %s" % ", ".join(sorted(unknown)))
    allt = B.threads_all()
    work = tempfile.mkdtemp(prefix="cnnc-networks-")
    cv = B.compiler_versions()
    cnnc_line = B.snapshot_cnnc(work)
    builds, target_notes = B.resolve_targets(o.target, TARGETS)
    feats = B.cnnc_features()
    thr_build = B.fastest(builds)     # avx512, else avx2, else scalar: one build, a short run
    thr_target, thr_comp, _ = B.BUILDS[thr_build]
    omp = feats["openmp"]
    thr_threads = sorted({1, allt}) if omp else [1]
    thr_label = "cnnc %s%s" % (thr_build, " --openmp" if omp else "")
    tuned = None if o.no_tune or not feats.get("tune") or thr_build not in B.VECTOR else thr_build
    if not omp:
        target_notes.append("this cnnc has no `--openmp`: cnnc's throughput is on one thread only")
    t_start = time.perf_counter()
    print("# End-to-end inference, %s" % time.strftime("%Y-%m-%d %H:%M %Z"))
    print()
    print("- CPU: %s, %d CPUs; load average at start %s" % (B.cpu_name(), allt, B.loadavg()))
    print("- cnnc latency builds, batch 1, one thread: %s" % "; ".join(
        "%s = `cnnc build --target %s`, `%s`" % (b, B.BUILDS[b][0], " ".join(B.COMPILERS[B.BUILDS[b][1]]))
        for b in builds))
    print("- cnnc throughput build (the widest vector build measured, %s, only): "
          "`cnnc build --target %s%s "
          "--batch N`, `%s`, %s"
          % (thr_build, thr_target, " --openmp" if omp else "", " ".join(B.compile_cmd(thr_comp, omp)),
             "run with OMP_NUM_THREADS=%s" % " and =".join(str(t) for t in thr_threads) if omp
             else "one thread"))
    if tuned:
        print("- cnnc tuned latency build: `cnnc tune NET.cnn --target %s -o NET.tune` (register "
              "tiles of the direct convolutions timed in the network on this machine), then the "
              "%s build with `--tune NET.tune`" % (B.BUILDS[tuned][0], tuned))
    print("- OpenMP environment at start: %s (the scripts set OMP_NUM_THREADS per cnnc run and "
          "torch.set_num_threads for PyTorch)" % B.omp_env())
    print("- compilers: %s (`%s`), %s (`clang`)" % (cv["gcc"], B.COMPILERS["gcc"][0], cv["clang"]))
    print("- cnnc binary: %s" % cnnc_line)
    for n in target_notes:
        print("- **%s**" % n)
    print("- PyTorch: the twin (tests/conformance/twin.py evaluate() on `cnnc graph`), eager, "
          "inference_mode, torch.set_num_threads(1) and (%d)" % allt)
    for line in B.torch_lines(torch):
        print("- " + line)
    print("- same parameters and inputs on both sides; medians of the samples given per row, each "
          ">= %.2f s of calls after one warm-up call; samples taken in turns (latency: each cnnc "
          "build, then PyTorch; throughput: cnnc and then PyTorch at each thread count; round "
          "after round)" % o.min_time)
    busy = B.busy_warning()
    if busy:
        print("- **" + busy + "**")
    print(flush=True)
    rates = B.read_rates(work)
    lat, lat_all, thr, notes = [], [], [], []
    floors = {}
    for name, ls, tb, ts in nets:
        if o.batch:
            tb = o.batch
            ts = ts or 3
        if o.quick:
            ls, ts = 3, min(ts, 3)
        cnn = os.path.join(B.ROOT, "examples", name + ".cnn")
        g = twin.graph_of_file(cnn, cnnc=B.CNNC)
        floors[name] = weight_floor(g, rates)
        rng = np.random.default_rng(0)
        calib = twin.random_inputs(g, 2, rng)
        params = twin.random_params(g, rng, calib)
        xs = twin.random_inputs(g, max(tb, 1), rng)
        base = os.path.join(work, name)
        os.makedirs(base, exist_ok=True)
        pf, x1f = os.path.join(base, "p.f32"), os.path.join(base, "x1.f32")
        params.astype(np.float32).tofile(pf)
        # batch-1 file: the first sample of each input, inputs one after the other
        np.concatenate([x[:1].reshape(-1) for x in xs]).astype(np.float32).tofile(x1f)
        pt = torch.from_numpy(params)
        x1 = [torch.from_numpy(np.ascontiguousarray(x[:1])) for x in xs]
        with torch.inference_mode():
            ref1 = torch.cat([r.reshape(-1) for r in twin.evaluate(g, pt, x1)]).numpy()
        # --- latency: each cnnc build at batch 1, one thread, and PyTorch, in turns
        rels, ctimes, exes = {}, [], {}
        for b in builds:
            target, comp, _ = B.BUILDS[b]
            d = os.path.join(base, b)
            nm, _ = B.build(cnn, d, batch=1, target=target)
            B.harness(nm, d)
            exe, ct = B.compile_harness(nm, d, comp)
            ctimes.append("%s %.0f s" % (b, ct))
            exes[b] = (exe, os.path.join(d, "y.f32"))
        tune_s = None
        if tuned:
            target, comp, _ = B.BUILDS[tuned]
            d = os.path.join(base, tuned + "-tuned")
            os.makedirs(d, exist_ok=True)
            tf = os.path.join(d, name + ".tune")
            t0 = time.perf_counter()
            with open(os.path.join(d, "tune.log"), "w") as log:
                subprocess.run([B.CNNC, "tune", cnn, "--target", target, "-o", tf], check=True,
                               stdout=log, stderr=log)
            tune_s = time.perf_counter() - t0
            nm, _ = B.build(cnn, d, batch=1, target=target, tune=tf)
            B.harness(nm, d)
            exe, ct = B.compile_harness(nm, d, comp)
            exes["tuned"] = (exe, os.path.join(d, "y.f32"))
        def torch_sample(threads):
            """One PyTorch latency sample at `threads` threads."""
            with torch.inference_mode():
                torch.set_num_threads(threads)
                return B.time_py(lambda: twin.evaluate(g, pt, x1), 1, o.min_time)[0]
        timers = {b: (lambda exe=exe, yf=yf: B.time_exe(exe, 1, 1, o.min_time, pf, x1f, yf)[0])
                  for b, (exe, yf) in exes.items()}
        timers["torch"] = lambda: torch_sample(1)
        c_lat = B.in_turns(timers, ls)
        t_lat = c_lat.pop("torch")
        for b, (exe, yf) in exes.items():
            rels[b] = rel_diff(np.fromfile(yf, dtype=np.float32), ref1)
        if tuned:
            c_lat["tune_s"] = tune_s
        lat.append((name, ls, c_lat, t_lat, rels))
        print("  %-12s latency: %s; torch 1T %.2f ms; rel. diff %s; compile %s; elapsed %.0f s, load %s"
              % (name, ", ".join("%s %.2f ms" % (b, c_lat[b] * 1e3) for b in builds), t_lat * 1e3,
                 ", ".join("%s %.1e" % (b, rels[b]) for b in builds), ", ".join(ctimes),
                 time.perf_counter() - t_start, B.loadavg()), file=sys.stderr, flush=True)
        if not tb:
            thr.append((name, 0, 0, None, None, None, False))
            notes.append("%s: throughput skipped (NETS table; run with --only %s --batch N)" % (name, name))
            continue
        # --- throughput: the batch, within the budget
        nb = tb
        if not o.batch:
            # seconds per image summed over the runs: cnnc and PyTorch at 1 thread and at all
            # (taken as 1/threads of the 1-thread time)
            c_runs = sum(1.0 / t for t in thr_threads)
            t_runs = sum(1.0 / t for t in sorted({1, allt}))
            per_image = c_lat[thr_build] * c_runs + t_lat * t_runs
            nb, est = choose_batch(tb, ts, per_image, o.min_time, len(thr_threads) + len(sorted({1, allt})),
                                   o.budget)
            if nb < tb:
                notes.append("%s: batch %d instead of %d: at %d the throughput runs would take about "
                             "%.0f s, over --budget %.0f s (estimated from the batch-1 latencies)"
                             % (name, nb, tb, tb, est, o.budget))
        elif nb < 64:
            notes.append("%s: batch %d (--batch)" % (name, nb))
        xf = os.path.join(base, "x.f32")
        np.concatenate([x[:nb].reshape(-1) for x in xs]).astype(np.float32).tofile(xf)
        d = os.path.join(base, thr_build + ("-omp" if omp else "") + "-b%d" % nb)
        nm, _ = B.build(cnn, d, batch=nb, target=thr_target, openmp=omp)
        B.harness(nm, d)
        exe, ct = B.compile_harness(nm, d, thr_comp, openmp=omp)
        yf = os.path.join(d, "y.f32")
        # other work on the machine just before an all-thread run: those figures get a mark
        busy = []

        def check_busy(th):
            if th > 1:
                c = B.busy_cores()
                if c is not None:
                    busy.append(c)
        # all-thread latency: the same binary called with one sample (within NAME_BATCH)
        if allt > 1 and omp:
            y1f = os.path.join(d, "y1.f32")
            before = B.busy_cores()
            lat_busy = before is not None and before >= BUSY
            if lat_busy:
                notes.append("%s: %s other work used %.1f cores just before the %d-thread latency "
                             "runs: those figures are unreliable" % (name, MARK, before, allt))
            both = B.in_turns({"cnnc": lambda: B.time_exe(exe, 1, 1, o.min_time, pf, x1f, y1f,
                                                          threads=allt)[0],
                               "torch": lambda: torch_sample(allt)}, ls)
            c_lat_all, t_lat_all = both["cnnc"], both["torch"]
            rel_all = rel_diff(np.fromfile(y1f, dtype=np.float32), ref1)
            lat_all.append((name, ls, c_lat[thr_build], c_lat_all, t_lat, t_lat_all, rel_all, lat_busy))
        # one sample of each (cnnc and PyTorch at each thread count) a round, as the latencies
        xb = [torch.from_numpy(np.ascontiguousarray(x[:nb])) for x in xs]
        refb = {}

        def cnnc_batch(th):
            check_busy(th)
            return B.time_exe(exe, nb, 1, o.min_time, pf, xf, yf if th == thr_threads[-1] else None,
                              threads=th if omp else None)[0]

        def torch_batch(th):
            def run_twin():
                refb["y"] = twin.evaluate(g, pt, xb)
            with torch.inference_mode():
                torch.set_num_threads(th)
                check_busy(th)
                return B.time_py(run_twin, 1, o.min_time)[0]
        timers = {("cnnc", th): (lambda th=th: cnnc_batch(th)) for th in thr_threads}
        timers.update({("torch", th): (lambda th=th: torch_batch(th)) for th in sorted({1, allt})})
        per_call = B.in_turns(timers, ts)
        c_thr = {th: nb / per_call[("cnnc", th)] for th in thr_threads}
        t_thr = {th: nb / per_call[("torch", th)] for th in sorted({1, allt})}
        busy = max(busy) if busy else 0.0
        if busy >= BUSY:
            notes.append("%s: %s other work used up to %.1f cores just before the %d-thread runs: "
                         "those figures are unreliable" % (name, MARK, busy, allt))
        refb = torch.cat([r.reshape(-1) for r in refb["y"]]).numpy()
        rel_b = rel_diff(np.fromfile(yf, dtype=np.float32), refb)
        thr.append((name, nb, ts, c_thr, t_thr, rel_b, busy >= BUSY))
        print("  %-12s throughput, batch %d: cnnc %s; torch %s images/s; rel. diff %.1e; compile %.0f s; "
              "elapsed %.0f s, load %s"
              % (name, nb, ", ".join("%dT %.1f" % (t, v) for t, v in c_thr.items()),
                 ", ".join("%dT %.1f" % (t, v) for t, v in t_thr.items()), rel_b, ct,
                 time.perf_counter() - t_start, B.loadavg()), file=sys.stderr, flush=True)
    torch.set_num_threads(1)

    ref = B.fastest(builds)
    print("## Latency, batch 1, one thread (ms)")
    print()
    cols = list(builds) + (["tuned"] if tuned else [])
    print("| network | samples | %s%s | PyTorch 1T | cnnc %s / PyTorch time%s | rel. diff (%s) |"
          % (" | ".join(B.BUILDS[b][2] for b in builds),
             " | cnnc %s --tune | cnnc tune s" % tuned if tuned else "", ref,
             " | cnnc %s --tune / PyTorch time" % tuned if tuned else "", ", ".join(cols)))
    print("|---|---:|%s---:|---:|---:|" % ("---:|" * (len(builds) + (3 if tuned else 0))))
    for name, ls, c, p1, rels in lat:
        print("| %s | %d | %s%s | %.2f | %.2fx%s | %s |"
              % (name, ls, " | ".join("%.2f" % (c[b] * 1e3) for b in builds),
                 " | %.2f | %.0f" % (c["tuned"] * 1e3, c["tune_s"]) if tuned else "", p1 * 1e3,
                 c[ref] / p1, " | %.2fx" % (c["tuned"] / p1) if tuned else "",
                 ", ".join(fmt_rel(rels[b]) for b in cols)))
    print()
    print("## The weight-read floor, batch 1, one thread")
    print()
    print("Each network's weight tensors, read once a call at the rates one core reads here "
          "(bench/peak.c --read: %.1f GB/s for the first %d KiB, from L2; %.1f GB/s for the rest, "
          "from beyond L2): no code that reads them as float32 takes less time on this core."
          % (rates["l2_gbs"], rates["l2_bytes"] / 1024, rates["beyond_l2_gbs"]))
    print()
    print("| network | weights, MB | floor, ms | cnnc %s, ms | cnnc / floor | PyTorch 1T, ms "
          "| floor / PyTorch time |" % ref)
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, ls, c, p1, rels in lat:
        mb, fl = floors[name]
        print("| %s | %.2f | %.4f | %.4f | %.1fx | %.4f | %.3fx |"
              % (name, mb, fl * 1e3, c[ref] * 1e3, c[ref] / fl, p1 * 1e3, fl / p1))
    print()
    if lat_all:
        print("## Latency, batch 1, one thread and all %d (ms)" % allt)
        print()
        print("%s, called with one sample; PyTorch with torch.set_num_threads. The %dT/1T "
              "columns are speed-ups (1T time over %dT time)." % (thr_label, allt, allt))
        print()
        print("| network | samples | cnnc %s 1T | cnnc %dT | cnnc %dT / 1T | PyTorch 1T | PyTorch %dT "
              "| cnnc / PyTorch time, %dT | rel. diff |" % (thr_build, allt, allt, allt, allt))
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, ls, c1, cn, p1, pn, rel, marked in lat_all:
            mk = " " + MARK if marked else ""
            print("| %s | %d | %.2f | %.2f%s | %.2fx%s | %.2f | %.2f%s | %.2fx%s | %s |"
                  % (name, ls, c1 * 1e3, cn * 1e3, mk, c1 / cn, mk, p1 * 1e3, pn * 1e3, mk, cn / pn,
                     mk, fmt_rel(rel)))
        print()
    print("## Throughput (images/s)")
    print()
    hdr = ["network", "batch", "samples"]
    hdr += ["%s, %dT" % (thr_label, t) for t in thr_threads]
    if len(thr_threads) > 1:
        hdr.append("cnnc %dT / 1T" % allt)
    pthreads = sorted({1, allt})
    hdr += ["PyTorch %dT" % t for t in pthreads]
    hdr += ["cnnc %s / PyTorch time, %dT" % (thr_build, t) for t in thr_threads]
    hdr.append("rel. diff")
    print("| " + " | ".join(hdr) + " |")
    print("|---|" + "---:|" * (len(hdr) - 1))
    for name, nb, ts, c, p, rel, marked in thr:
        if not nb:
            print("| %s | skipped |%s" % (name, " |" * (len(hdr) - 2)))
            continue

        def mk(t):      # the mark on all-thread figures measured while the machine was busy
            return " " + MARK if marked and t > 1 else ""
        cells = [name, str(nb), str(ts)]
        cells += ["%.1f%s" % (c[t], mk(t)) for t in thr_threads]
        if len(thr_threads) > 1:
            cells.append("%.2fx%s" % (c[allt] / c[1], mk(allt)))
        cells += ["%.1f%s" % (p[t], mk(t)) for t in pthreads]
        cells += ["%.2fx%s" % (p[t] / c[t], mk(t)) for t in thr_threads]
        cells.append(fmt_rel(rel))
        print("| " + " | ".join(cells) + " |")
    print()
    for n in notes:
        print("- " + n)
    if notes:
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
