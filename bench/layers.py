#!/usr/bin/python3
"""Per-layer convolution speed (make bench): GFLOP/s and percent of one core's AVX2+FMA peak for
ResNet-style layers, cnnc's generated code beside PyTorch at one thread.

Each layer is a one-layer .cnn network built with `cnnc build` (batch 1) and timed through a
generated C harness (bench/benchlib.py), compiled twice: $CC -O2 (the project's default, as
`cnnc run` compiles) and clang -O3 -march=native (the scalar C with clang's auto-vectoriser on
the host ISA). PyTorch runs torch.nn.functional.conv2d on the same shapes with
torch.set_num_threads(1). Every figure is the median of --samples timed samples, each at least
--min-time seconds of back-to-back calls after one warm-up call.

GFLOP/s counts 2 x the multiply-accumulates of the direct convolution (whatever algorithm ran);
percent of peak is against bench/peak.c's single-core AVX2 figure, measured at the start. The
ratio column is cnnc time / PyTorch time (clang build; > 1 means cnnc is slower).

    /usr/bin/python3 bench/layers.py [--samples 7] [--min-time 0.2] [--only NAME,...] [--peak GF]
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
    torch.manual_seed(0)
    x = torch.randn(1, ci, h, h)
    w = torch.randn(co, ci // g, k, k) * 0.05
    with torch.inference_mode():
        return B.time_py(lambda: F.conv2d(x, w, None, stride=s, padding=p, groups=g),
                         samples, min_time)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per sample (default 0.2)")
    ap.add_argument("--only", default="", help="comma-separated substrings of layer names")
    ap.add_argument("--peak", type=float, default=0.0,
                    help="single-core AVX2 peak in GFLOP/s (default: measure with bench/peak.c)")
    ap.add_argument("--keep", action="store_true", help="keep the build directory")
    o = ap.parse_args()
    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="cnnc-layers-")
    if o.peak > 0:
        pk = o.peak
        peak_note = "given with --peak"
    else:
        d, _ = B.peak(trials=5, workdir=work)
        pk = d["avx2_1core"]
        peak_note = "bench/peak.c, best of 5"
        if "avx512_1core" in d:
            peak_note += "; AVX-512 would be %.1f" % d["avx512_1core"]
    has512 = "avx512" in open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else False
    layers = [l for l in LAYERS if not o.only or any(s in l[0] for s in o.only.split(","))]
    cv = B.compiler_versions()
    cnnc_line = B.snapshot_cnnc(work)
    print("# Per-layer convolution speed, %s" % time.strftime("%Y-%m-%d %H:%M %Z"))
    print()
    print("- CPU: %s, %d cores; load average at start %s" % (B.cpu_name(), os.cpu_count(), B.loadavg()))
    print("- single-core AVX2+FMA peak: **%.1f GFLOP/s** (%s)" % (pk, peak_note))
    print("- cnnc: scalar target, batch 1, one thread; gcc = `%s` (%s), clang = `%s` (%s)"
          % (" ".join(B.COMPILERS["gcc"]), cv["gcc"], " ".join(B.COMPILERS["clang"]), cv["clang"]))
    print("- cnnc binary: %s" % cnnc_line)
    print("- PyTorch %s (oneDNN %s, BLAS %s), F.conv2d, torch.set_num_threads(1)"
          % (torch.__version__, "on" if torch.backends.mkldnn.is_available() else "off", B.blas()))
    print("- median of %d samples, each >= %.2f s of calls; GFLOP/s = 2 x direct-convolution MACs / time"
          % (o.samples, o.min_time))
    if has512:
        print("- this CPU has AVX-512: PyTorch's oneDNN kernels and clang's -march=native may use it, "
              "so more than 100 % of the AVX2 peak is possible")
    busy = B.busy_warning()
    if busy:
        print("- **" + busy + "**")
    print(flush=True)
    rows = []
    for (name, ci, h, co, k, s, p, g) in layers:
        m = macs(ci, h, co, k, s, p, g)
        d = os.path.join(work, name.replace(" ", "_").replace(">", "").replace("/", "s"))
        os.makedirs(d, exist_ok=True)
        cnn = os.path.join(d, "layer.cnn")
        with open(cnn, "w") as f:
            f.write(cnn_text(ci, h, co, k, s, p, g))
        nm, _ = B.build(cnn, d, batch=1)
        B.harness(nm, d)
        t = {}
        for comp in ("gcc", "clang"):
            exe, _ = B.compile_harness(nm, d, comp)
            t[comp] = B.time_exe(exe, 1, o.samples, o.min_time)[0]
        t["torch"] = torch_time(ci, h, co, k, s, p, g, o.samples, o.min_time)
        rows.append((name, m, t))
        print("  %-26s %8.1f MMAC  gcc %.2f ms  clang %.2f ms  torch %.2f ms  (load %s)"
              % (name, m / 1e6, t["gcc"] * 1e3, t["clang"] * 1e3, t["torch"] * 1e3, B.loadavg()),
              file=sys.stderr, flush=True)
    print("| layer | MFLOP | cnnc gcc -O2 GFLOP/s (% peak) | cnnc clang -O3 native GFLOP/s (% peak) "
          "| PyTorch 1T GFLOP/s (% peak) | cnnc clang / PyTorch time |")
    print("|---|---:|---:|---:|---:|---:|")

    def cell(fl, sec):
        gf = fl / sec / 1e9
        return "%.2f (%.1f %%)" % (gf, 100 * gf / pk)

    for name, m, t in rows:
        fl = 2.0 * m
        print("| %s | %.0f | %s | %s | %s | %.1fx |" % (name, fl / 1e6, cell(fl, t["gcc"]), cell(fl, t["clang"]),
                                                      cell(fl, t["torch"]), t["clang"] / t["torch"]))
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
