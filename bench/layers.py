#!/usr/bin/python3
"""Per-layer convolution speed (make bench): GFLOP/s and percent of one core's AVX2+FMA peak for
ResNet-style layers, cnnc's generated code beside PyTorch at one thread.

Each layer is a one-layer .cnn network built with `cnnc build` (batch 1) and timed through a
generated C harness (bench/benchlib.py). The builds (--target, default avx512,avx2,scalar):

  avx512      cnnc --target avx512 (the same kernels on AVX-512F 16-float vectors), compiled with
              $CC -O2 like avx2; left out with a note when the CPU lacks avx512f or cnnc the target
  avx2        cnnc --target avx2 (AVX2+FMA intrinsics), compiled with $CC -O2 as `cnnc run` does
  scalar      cnnc --target scalar (portable C), compiled with clang -O3 -march=native: what
              clang's auto-vectoriser makes of it on the host ISA
  scalar-gcc  cnnc --target scalar, $CC -O2 (no -march: SSE2 at most); not timed by default

PyTorch runs torch.nn.functional.conv2d on the same shapes with torch.set_num_threads(1); the
table names the backend it picks per shape (oneDNN, or im2col + BLAS sgemm). Every figure is the
median of --samples timed samples, each at least --min-time seconds of back-to-back calls after
one warm-up call.

GFLOP/s counts 2 x the multiply-accumulates of the direct convolution (whatever algorithm ran);
percent of peak is against bench/peak.c's single-core AVX2 figure, measured at the start (so
avx512 figures can exceed 100 %; the AVX-512 peak is printed under the table). The ratio column
is cnnc time / PyTorch time for the widest vector build measured (avx512, else avx2, else the
scalar build), plus a second one for avx2 when avx512 is measured too; > 1 means cnnc is slower.

    /usr/bin/python3 bench/layers.py [--samples 7] [--min-time 0.2] [--only NAME,...] [--peak GF]
                                     [--target avx512,avx2,scalar,scalar-gcc]
"""
import argparse
import os
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

# name, C_in, H (=W), C_out, kernel, stride, pad, groups
LAYERS = [
    ("conv3x3 64x56x56",     64, 56,   64, 3, 1, 1, 1),
    ("conv3x3 128x28x28",   128, 28,  128, 3, 1, 1, 1),
    ("conv3x3 256x14x14",   256, 14,  256, 3, 1, 1, 1),
    ("conv3x3 512x7x7",     512,  7,  512, 3, 1, 1, 1),
    ("conv1x1 64->256 56x56",   64, 56,  256, 1, 1, 0, 1),
    ("conv1x1 128->512 28x28", 128, 28,  512, 1, 1, 0, 1),
    ("conv1x1 256->1024 14x14", 256, 14, 1024, 1, 1, 0, 1),
    ("conv1x1 512->2048 7x7",  512,  7, 2048, 1, 1, 0, 1),
    ("depthwise3x3 144x56x56", 144, 56,  144, 3, 1, 1, 144),
    ("conv7x7/2 3->64 224",      3, 224,  64, 7, 2, 3, 1),
]


def cnnc_kernel(c_file):
    """Which kernel cnnc wrote for the layer, from the schedule line of its comment."""
    with open(c_file) as f:
        text = f.read()
    for tile in ("F(4x4,3x3)", "F(2x2,3x3)"):
        if "Winograd " + tile in text:
            return "Winograd " + tile
    if "depthwise, a channel at a time" in text:
        return "depthwise"
    if "1-D Winograd" in text:
        return "1-D Winograd F(2,4)+F(2,3)"
    if "tile MR=" in text:
        return "direct, positions in vectors"
    if "tile MP=" in text:
        return "direct, channels in vectors"
    return "scalar loops"


def out_size(h, k, s, p):
    return (h + 2 * p - k) // s + 1


def macs(ci, h, co, k, s, p, g):
    ho = out_size(h, k, s, p)
    return co * ho * ho * (ci // g) * k * k


def cnn_text(ci, h, co, k, s, p, g):
    args = "%d, %d" % (co, k)
    if s != 1:
        args += ", stride=%d" % s
    if p:
        args += ", pad=%d" % p
    if g != 1:
        args += ", groups=%d" % g
    return ("network layer {\n    input x: [%d, %d, %d]\n    y = x -> conv(%s, bias=false)\n"
            "    output y\n}\n" % (ci, h, h, args))


def torch_time(ci, h, co, k, s, p, g, samples, min_time):
    """Median seconds of F.conv2d at batch 1, and the convolution backend PyTorch picks for it."""
    torch.manual_seed(0)
    x = torch.randn(1, ci, h, h)
    w = torch.randn(co, ci // g, k, k) * 0.05
    try:
        be = str(torch._C._select_conv_backend(x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], g))
        be = be.split(".")[-1]
    except (AttributeError, RuntimeError, TypeError):
        be = "?"
    with torch.inference_mode():
        return B.time_py(lambda: F.conv2d(x, w, None, stride=s, padding=p, groups=g),
                         samples, min_time)[0], be


# what torch._C._select_conv_backend's names mean on this CPU build
BACKENDS = {"Mkldnn": "oneDNN", "Slow2d": "im2col + BLAS", "SlowDilated2d": "im2col + BLAS",
            "Empty": "empty"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per sample (default 0.2)")
    ap.add_argument("--only", default="", help="comma-separated substrings of layer names")
    ap.add_argument("--target", default=None,
                    help="comma-separated cnnc builds to time: avx512 (cnnc --target avx512, $CC -O2), "
                         "avx2 (cnnc --target avx2, $CC -O2), scalar (cnnc --target scalar, "
                         "clang -O3 -march=native), scalar-gcc (cnnc --target scalar, $CC -O2). "
                         "Default avx512,avx2,scalar; avx512 and avx2 are left out with a note "
                         "when cnnc or the CPU lacks them")
    ap.add_argument("--peak", type=float, default=0.0,
                    help="single-core AVX2 peak in GFLOP/s (default: measure with bench/peak.c)")
    ap.add_argument("--keep", action="store_true", help="keep the build directory")
    o = ap.parse_args()
    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="cnnc-layers-")
    cnnc_line = B.snapshot_cnnc(work)
    builds, target_notes = B.resolve_targets(o.target, list(B.BUILDS))
    pk512 = None        # bench/peak.c's single-core AVX-512 figure, when measured
    if o.peak > 0:
        pk = o.peak
        peak_note = "given with --peak"
    else:
        d, _ = B.peak(trials=5, workdir=work)
        pk = d["avx2_1core"]
        pk512 = d.get("avx512_1core")
        peak_note = "bench/peak.c, best of 5"
        if pk512:
            peak_note += "; AVX-512: %.1f, under the table" % pk512
    has512 = "avx512f" in B.cpu_flags()
    layers = [l for l in LAYERS if not o.only or any(s in l[0] for s in o.only.split(","))]
    cv = B.compiler_versions()
    # the ratio columns: the widest build measured (avx512, avx2, scalar, scalar-gcc), and avx2
    # besides when it is not that one (the AVX2 emitter against PyTorch)
    ref = B.fastest(builds)
    refs = [ref] + (["avx2"] if "avx2" in builds and ref != "avx2" else [])
    print("# Per-layer convolution speed, %s" % time.strftime("%Y-%m-%d %H:%M %Z"))
    print()
    print("- CPU: %s, %d cores; load average at start %s" % (B.cpu_name(), os.cpu_count(), B.loadavg()))
    print("- single-core AVX2+FMA peak: **%.1f GFLOP/s** (%s)" % (pk, peak_note))
    print("- cnnc, batch 1, one thread: %s" % "; ".join(
        "%s = `cnnc build --target %s`, `%s`" % (b, B.BUILDS[b][0], " ".join(B.COMPILERS[B.BUILDS[b][1]]))
        for b in builds))
    print("- compilers: %s (`%s`), %s (`clang`)" % (cv["gcc"], B.COMPILERS["gcc"][0], cv["clang"]))
    print("- cnnc binary: %s" % cnnc_line)
    for n in target_notes:
        print("- **%s**" % n)
    print("- F.conv2d with torch.set_num_threads(1); the kernel column is the backend PyTorch picks "
          "for the shape (torch._C._select_conv_backend): Mkldnn = oneDNN, Slow2d = im2col + BLAS sgemm")
    for line in B.torch_lines(torch):
        print("- " + line)
    print("- median of %d samples, each >= %.2f s of calls; GFLOP/s = 2 x direct-convolution MACs / time"
          " (a Winograd kernel does fewer multiplications, so its figure can pass the peak)"
          % (o.samples, o.min_time))
    if has512:
        print("- this CPU has AVX-512: %sPyTorch's oneDNN kernels and clang's -march=native may use "
              "it, so more than 100 %% of the AVX2 peak is possible"
              % ("cnnc's avx512 build, " if "avx512" in builds else ""))
    print("- ratio column%s: %s; above 1: cnnc slower"
          % ("s" if len(refs) > 1 else "", " and ".join(
              "cnnc %s time / PyTorch time (%s)" % (r, "the widest build measured" if r == ref
                                                    else "the AVX2 emitter") for r in refs)))
    busy = B.busy_warning()
    if busy:
        print("- **" + busy + "**")
    print(flush=True)
    rows = []
    for (name, ci, h, co, k, s, p, g) in layers:
        m = macs(ci, h, co, k, s, p, g)
        base = os.path.join(work, name.replace(" ", "_").replace(">", "").replace("/", "s"))
        os.makedirs(base, exist_ok=True)
        cnn = os.path.join(base, "layer.cnn")
        with open(cnn, "w") as f:
            f.write(cnn_text(ci, h, co, k, s, p, g))
        t = {}
        built = {}
        kernel = ""
        for b in builds:
            target, comp, _ = B.BUILDS[b]
            if target not in built:
                d = os.path.join(base, target)
                nm, _ = B.build(cnn, d, batch=1, target=target)
                B.harness(nm, d)
                built[target] = (nm, d)
                if b == ref:
                    kernel = cnnc_kernel(os.path.join(d, nm + ".c"))
            nm, d = built[target]
            exe, _ = B.compile_harness(nm, d, comp)
            t[b] = B.time_exe(exe, 1, o.samples, o.min_time)[0]
        t["torch"], be = torch_time(ci, h, co, k, s, p, g, o.samples, o.min_time)
        rows.append((name, m, t, be, kernel))
        print("  %-26s %8.1f MMAC  %s  torch %.2f ms (%s)  (load %s)"
              % (name, m / 1e6, "  ".join("%s %.2f ms" % (b, t[b] * 1e3) for b in builds),
                 t["torch"] * 1e3, be, B.loadavg()), file=sys.stderr, flush=True)
    print("| layer | MFLOP | %s | cnnc %s kernel | PyTorch 1T GFLOP/s (%% peak) | PyTorch kernel | %s |"
          % (" | ".join("%s GFLOP/s (%% peak)" % B.BUILDS[b][2] for b in builds), ref,
             " | ".join("cnnc %s / PyTorch time" % r for r in refs)))
    print("|---|---:|%s---|---:|---|%s" % ("---:|" * len(builds), "---:|" * len(refs)))

    def cell(fl, sec):
        gf = fl / sec / 1e9
        return "%.2f (%.1f %%)" % (gf, 100 * gf / pk)

    for name, m, t, be, kernel in rows:
        fl = 2.0 * m
        print("| %s | %.0f | %s | %s | %s | %s | %s |"
              % (name, fl / 1e6, " | ".join(cell(fl, t[b]) for b in builds), kernel,
                 cell(fl, t["torch"]), BACKENDS.get(be, be),
                 " | ".join("%.2fx" % (t[r] / t["torch"]) for r in refs)))
    print()
    # % peak above is against the AVX2 peak (the project's definition); the AVX-512 one for reading
    # the avx512 column (and oneDNN's AVX-512 kernels) against what the wider vectors could do
    if pk512:
        print("- %% peak is of the single-core AVX2+FMA peak, %.1f GFLOP/s. Single-core AVX-512 peak "
              "(bench/peak.c, 16-lane zmm FMA): **%.1f GFLOP/s** (%.2fx the AVX2 one), so avx512 "
              "figures (and PyTorch's oneDNN on AVX-512) can exceed 100 %%; of the AVX-512 peak "
              "they are %% peak x %.2f." % (pk, pk512, pk512 / pk, pk / pk512))
    elif has512:
        print("- %% peak is of the single-core AVX2+FMA peak, %.1f GFLOP/s (%s); the AVX-512 peak "
              "was not measured, run bench/peak.c for it. avx512 figures can exceed 100 %%."
              % (pk, peak_note))
    print()
    print("load average at end: %s" % B.loadavg())
    if o.keep:
        print("build directory kept: %s" % work, file=sys.stderr)
    else:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
