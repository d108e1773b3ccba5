#!/usr/bin/python3
"""Random networks against the PyTorch twin: a seeded generator writes valid
.cnn programs (DSL.md) that mix the layers and arguments the kernels treat
apart (convolutions with strides, padding modes, dilation, groups and
depthwise multipliers, Winograd-shaped 3x3 layers, strided 1x1 layers,
7-wide stride-2 layers; max/avg/L2 pools of odd windows; dense heads;
residual sums and concatenations; several outputs) at channel counts and
plane sizes around the vector widths, and each goes through `cnnc run`
with every flag set given, compared with the twin at run.py's 1e-4.

A campaign of 333 such networks (3,330 runs) found maxpool(1, stride=2)
wrong on the vector targets; this suite keeps a small fixed-seed sample of
it in `make test`. Any seed is a new sample:

  /usr/bin/python3 tests/conformance/random_nets.py [--count N] [--seed S]
      [--flags "--target avx2"]... [-j 2]

A network that `cnnc check` rejects is a failure too: the generator only
writes programs the language allows.
"""
import argparse
import concurrent.futures
import os
import random
import shlex
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402

CNNC = os.environ.get("CNNC") or os.path.join(R.REPO, "cnnc")
CHANS = [1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 64]
SPAT = [1, 2, 3, 5, 7, 8, 13, 14, 16, 20, 28, 29, 32]


def tup(r, a, b):
    return a if a == b else "(%d, %d)" % (a, b)


class Gen:
    def __init__(self, rng):
        self.r = rng
        self.names = 0
        self.lines = []
        self.shape = {}       # name -> shape list
        self.used = set()
        self.order = []       # bound names in order
        self.winner_weight = 1.0

    def fresh(self, p="t"):
        self.names += 1
        return "%s%d" % (p, self.names)

    def chan(self, maxc=64):
        return self.r.choice([c for c in CHANS if c <= maxc])

    # ---- one image layer: returns (text, new_shape) or None
    def conv(self, s, kind=None):
        r = self.r
        C, H, W = s
        for _ in range(50):
            k = kind or r.choice(["any", "any", "wino", "1x1s2", "dw", "same", "tuple", "mode", "rows7"])
            K = self.chan()
            kh = kw = r.choice([1, 2, 3, 3, 3, 4, 5, 7])
            stride = (1, 1)
            pad = None
            dil = (1, 1)
            groups = 1
            mode = None
            if k == "any":
                stride = (r.choice([1, 1, 2, 3]),) * 2
                dil = (r.choice([1, 1, 1, 2, 3]),) * 2
                p = r.randint(0, kh)
                pad = (p, p)
                if C > 1 and r.random() < 0.3:
                    divs = [g for g in range(2, C + 1) if C % g == 0]
                    g = r.choice(divs)
                    K = g * r.choice([1, 1, 2, 3])
                    if K > 96:
                        K = g
                    groups = g
            elif k == "wino":
                if C < 16:
                    C2 = None
                kh = kw = 3
                K = r.choice([16, 17, 18, 20, 24, 31, 32, 33, 40, 48, 64])
                pad = r.choice([(1, 1), (1, 1), (0, 0)])
            elif k == "1x1s2":
                kh = kw = 1
                stride = (2, 2)
                pad = (0, 0)
            elif k == "dw":
                kh = kw = r.choice([3, 3, 5, 7])
                mult = r.choice([1, 1, 1, 2, 3])
                K = C * mult
                if K > 128:
                    continue
                groups = C
                stride = (r.choice([1, 1, 2]),) * 2
                pad = ((kh // 2),) * 2 if r.random() < 0.8 else (0, 0)
                if r.random() < 0.2:
                    dil = (2, 2)
                    pad = (kh // 2 * 2,) * 2
            elif k == "same":
                kh = r.choice([1, 2, 3, 4, 5, 6, 7])
                kw = r.choice([kh, kh, r.choice([1, 2, 3, 4, 5])])
                pad = "same"
                dil = (r.choice([1, 1, 2, 3]),) * 2
                if r.random() < 0.3:
                    mode = r.choice(["reflect", "replicate", "circular"])
            elif k == "tuple":
                kh, kw = r.randint(1, 7), r.randint(1, 7)
                stride = (r.randint(1, 3), r.randint(1, 3))
                pad = (r.randint(0, kh // 2 + 1), r.randint(0, kw // 2 + 1))
                dil = (r.choice([1, 1, 2]), r.choice([1, 1, 3]))
            elif k == "mode":
                kh = kw = r.choice([2, 3, 5])
                p = r.randint(1, kh)
                pad = (p, p) if r.random() < 0.7 else (r.randint(0, kh), r.randint(0, kh))
                stride = (r.choice([1, 1, 2]),) * 2
                mode = r.choice(["reflect", "replicate", "circular"])
            elif k == "rows7":
                kh = r.choice([7, 7, 3, 5])
                kw = 7
                stride = (2, 2)
                pad = (kh // 2, 3) if r.random() < 0.8 else (0, 0)
                K = r.choice([6, 8, 9, 16, 20, 24, 32])
            # validity
            if pad == "same":
                ph = dil[0] * (kh - 1)
                pw = dil[1] * (kw - 1)
                lo = (ph // 2, pw // 2)
                hi = (ph - lo[0], pw - lo[1])
                Ho, Wo = H, W
                if mode in ("reflect",) and (max(hi) >= min(H, W) or hi[0] >= H or hi[1] >= W):
                    mode = None
                if mode == "circular" and (hi[0] > H or hi[1] > W):
                    mode = None
            else:
                if mode == "reflect" and (pad[0] >= H or pad[1] >= W):
                    continue
                if mode == "circular" and (pad[0] > H or pad[1] > W):
                    continue
                Ho = (H + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
                Wo = (W + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
                if Ho < 1 or Wo < 1:
                    continue
            if C % groups or K % groups:
                continue
            if K * (C // groups) * kh * kw > 200000:
                continue
            args = ["%d" % K, str(tup(r, kh, kw))]
            if stride != (1, 1):
                args.append("stride=%s" % tup(r, *stride))
            if pad == "same":
                args.append("pad=same")
            elif pad != (0, 0) or r.random() < 0.1:
                args.append("pad=%s" % tup(r, *pad))
            if dil != (1, 1):
                args.append("dilation=%s" % tup(r, *dil))
            if groups != 1:
                args.append("groups=%d" % groups)
            if r.random() < 0.3:
                args.append("bias=false")
            if mode:
                args.append("pad_mode=%s" % mode)
            return "conv(%s)" % ", ".join(args), [K, Ho, Wo]
        return None

    def pool(self, s):
        r = self.r
        C, H, W = s
        for _ in range(30):
            op = r.choice(["maxpool", "maxpool", "avgpool", "l2pool"])
            kh = r.choice([1, 2, 2, 3, 3, 4, 5])
            kw = kh if r.random() < 0.8 else r.choice([1, 2, 3])
            st = (kh, kw) if r.random() < 0.5 else (r.randint(1, 3), r.randint(1, 3))
            pad = (0, 0)
            if op != "l2pool" and r.random() < 0.4:
                pad = (r.randint(0, kh // 2), r.randint(0, kw // 2))
            Ho = (H + 2 * pad[0] - kh) // st[0] + 1
            Wo = (W + 2 * pad[1] - kw) // st[1] + 1
            if Ho < 1 or Wo < 1:
                continue
            args = [str(tup(r, kh, kw))]
            if st != (kh, kw) or r.random() < 0.2:
                args.append("stride=%s" % tup(r, *st))
            if pad != (0, 0):
                args.append("pad=%s" % tup(r, *pad))
            return "%s(%s)" % (op, ", ".join(args)), [C, Ho, Wo]
        return None

    def act(self, s):
        r = self.r
        a = r.choice(["relu", "relu", "relu6", "leakyrelu", "leakyrelu(0.2)", "leakyrelu(-0.1)",
                      "prelu", "elu", "elu(0.5)", "sigmoid", "tanh"])
        return a, list(s)

    def image_layer(self, s):
        r = self.r
        C, H, W = s
        w = [("conv", 10), ("pool", 3), ("act", 4), ("bn", 2), ("lrn", 1), ("local", 1),
             ("maxout", 1), ("softmax", 1), ("dropout", 1), ("bias", 1), ("gpool", 1),
             ("fused", 3), ("convbnrelu", 3)]
        k = r.choices([a for a, _ in w], [b for _, b in w])[0]
        if k == "conv":
            return self.conv(s)
        if k == "pool":
            return self.pool(s)
        if k == "act":
            return self.act(s)
        if k == "bn":
            return r.choice(["bn", "bn", "bn(eps=0.001)"]), list(s)
        if k == "lrn":
            size = r.randint(1, 6)
            return "lrn(%d, alpha=%s, beta=%s, k=%s)" % (size, r.choice(["1e-4", "0.1", "0.5"]),
                                                         r.choice(["0.75", "0.5", "1.0"]),
                                                         r.choice(["1", "2", "0.5"])), list(s)
        if k == "local":
            if C * H * W > 3000:
                return None
            kk = r.randint(1, min(4, H, W))
            st = r.randint(1, 2)
            Ho = (H - kk) // st + 1
            Wo = (W - kk) // st + 1
            K = r.choice([1, 2, 3, 5, 8])
            if Ho * Wo * K * C * kk * kk > 100000:
                return None
            return "local(%d, %d%s)" % (K, kk, ", stride=%d" % st if st > 1 else ""), [K, Ho, Wo]
        if k == "maxout":
            divs = [p for p in range(1, min(C, 8) + 1) if C % p == 0]
            p = r.choice(divs)
            return "maxout(%d)" % p, [C // p, H, W]
        if k == "softmax":
            return "softmax", list(s)
        if k == "dropout":
            return r.choice(["dropout", "dropout(0.3)"]), list(s)
        if k == "bias":
            return "bias", list(s)
        if k == "gpool":
            return r.choice(["globalavgpool", "globalmaxpool"]), [C, 1, 1]
        if k == "fused":
            c = self.conv(s, r.choice(["wino", "any", "dw", "same"]))
            if not c:
                return None
            t, s2 = c
            if s2[1] >= 2 and s2[2] >= 2:
                a = r.choice(["relu", "relu6", "leakyrelu(0.1)", "tanh", None])
                t2 = t + (" -> %s" % a if a else "") + " -> maxpool(2)"
                return t2, [s2[0], s2[1] // 2, s2[2] // 2]
            return c
        if k == "convbnrelu":
            c = self.conv(s)
            if not c:
                return None
            t, s2 = c
            return t + " -> bn -> " + r.choice(["relu", "relu6", "leakyrelu(0.1)"]), s2
        return None

    def vec_layer(self, s):
        r = self.r
        N = s[0]
        k = r.choice(["dense", "dense", "dense", "bn", "act", "act", "prelu", "maxout", "softmax",
                      "dropout", "bias", "flatten"])
        if k == "dense":
            u = r.choice([1, 3, 7, 8, 9, 10, 16, 17, 24, 33, 48, 64, 100])
            return "dense(%d%s)" % (u, ", bias=false" if r.random() < 0.2 else ""), [u]
        if k == "bn":
            return "bn", [N]
        if k == "act":
            return self.act(s)
        if k == "prelu":
            return "prelu", [N]
        if k == "maxout":
            divs = [p for p in range(1, min(N, 6) + 1) if N % p == 0]
            p = r.choice(divs)
            return "maxout(%d)" % p, [N // p]
        if k == "softmax":
            return "softmax", [N]
        if k == "dropout":
            return "dropout", [N]
        if k == "bias":
            return "bias", [N]
        return "flatten", [N]

    def chain(self, s, n):
        stages, cur = [], list(s)
        for _ in range(n):
            if len(cur) == 3:
                if self.r.random() < 0.08 or cur[0] * cur[1] * cur[2] > 70000:
                    if self.r.random() < 0.5:
                        res = ("flatten", [cur[0] * cur[1] * cur[2]])
                    else:
                        u = self.r.choice([5, 10, 16, 33])
                        res = ("dense(%d)" % u, [u])
                else:
                    res = None
                    for _ in range(10):
                        res = self.image_layer(cur)
                        if res and res[1][0] * res[1][1] * res[1][2] <= 70000:
                            break
                        res = None
            else:
                res = self.vec_layer(cur)
            if not res:
                continue
            stages.append(res[0])
            cur = res[1]
        return stages, cur

    def bind(self, text, shape):
        n = self.fresh()
        self.lines.append("    %s = %s" % (n, text))
        self.shape[n] = shape
        self.order.append(n)
        return n

    def use(self, n):
        self.used.add(n)
        return n

    def pick_src(self):
        # prefer recent tensors
        r = self.r
        if r.random() < 0.6:
            return self.order[-1]
        return r.choice(self.order)

    def network(self):
        r = self.r
        ninputs = 1 if r.random() < 0.85 else 2
        for i in range(ninputs):
            if r.random() < 0.85:
                C = self.chan(33)
                H = r.choice(SPAT)
                W = H if r.random() < 0.7 else r.choice(SPAT)
                shp = [C, H, W]
            else:
                shp = [r.choice([1, 5, 7, 16, 17, 33, 64])]
            n = "x%d" % i
            self.lines.append("    input %s: [%s]" % (n, ", ".join(map(str, shp))))
            self.shape[n] = shp
            self.order.append(n)
        nstmt = r.randint(1, 5)
        for _ in range(nstmt):
            k = r.choices(["chain", "residual", "add2", "concat", "addout"], [5, 2, 2, 2, 1])[0]
            src = self.pick_src()
            s = self.shape[src]
            if k == "chain" or len(s) == 1 and k in ("residual", "concat"):
                stages, sh = self.chain(s, r.randint(1, 4))
                if not stages:
                    continue
                self.use(src)
                self.bind(src + " -> " + "\n        -> ".join(stages), sh)
            elif k == "residual":
                C, H, W = s
                kk = r.choice([1, 3, 3, 5])
                body = ["conv(%d, %d, pad=%s, bias=false)" % (C, kk, r.choice([str(kk // 2), "same"])),
                        "bn", r.choice(["relu", "relu6", "leakyrelu(0.1)"])]
                if r.random() < 0.6:
                    body += ["conv(%d, 3, pad=1%s)" % (C, r.choice(["", ", bias=false"])), "bn"]
                if r.random() < 0.3 and C > 1:
                    body = ["conv(%d, 3, pad=1, groups=%d)" % (C, C)] + body
                self.use(src)
                y = self.bind(src + " -> " + " -> ".join(body), [C, H, W])
                self.use(y)
                tail = r.choice(["", " -> relu", " -> relu6"])
                self.bind("%s + %s%s" % (y, src, tail), [C, H, W])
            elif k == "add2":
                if len(s) == 1:
                    u = r.choice([8, 16, 17])
                    a = self.bind("%s -> dense(%d)" % (self.use(src), u), [u])
                    b = self.bind("%s -> dense(%d) -> relu" % (src, u), [u])
                    self.use(a), self.use(b)
                    self.bind("%s + %s" % (a, b), [u])
                    continue
                C, H, W = s
                K = self.chan()
                st = r.choice([1, 1, 2])
                Ho, Wo = (H - 1) // st + 1, (W - 1) // st + 1
                a = self.bind("%s -> conv(%d, 1%s)" % (self.use(src), K, ", stride=%d" % st if st > 1 else ""), [K, Ho, Wo])
                b = self.bind("%s -> conv(%d, 3, stride=%d, pad=1) -> %s" % (src, K, st, r.choice(["relu", "bn", "tanh"])), [K, Ho, Wo])
                parts = [a, b]
                if r.random() < 0.3:
                    c = self.bind("%s -> conv(%d, 3, pad=1, stride=%d, bias=false)" % (src, K, st), [K, Ho, Wo])
                    parts.append(c)
                for p in parts:
                    self.use(p)
                expr = " + ".join(parts)
                if r.random() < 0.4:
                    expr = "(%s) -> %s" % (expr, r.choice(["relu", "maxpool(2)" if Ho >= 2 and Wo >= 2 else "relu", "conv(8, 3, pad=1)"]))
                    if "maxpool" in expr:
                        Ho, Wo = Ho // 2, Wo // 2
                    if "conv(8" in expr:
                        K = 8
                self.bind(expr, [K, Ho, Wo])
            elif k == "concat":
                C, H, W = s
                parts = []
                tot = 0
                for _ in range(r.randint(2, 4)):
                    c = r.choice(["1x1", "same", "pool", "raw", "dw"])
                    if c == "1x1":
                        K = self.chan()
                        t = "%s -> conv(%d, 1) -> relu" % (src, K)
                    elif c == "same":
                        K = self.chan()
                        kk = r.choice([2, 3, 4, 5])
                        t = "%s -> conv(%d, %d, pad=same)" % (src, K, kk)
                    elif c == "pool":
                        K = C
                        t = "%s -> maxpool(3, stride=1, pad=1)" % src
                    elif c == "dw":
                        K = C
                        t = "%s -> conv(%d, 3, pad=1, groups=%d) -> relu6" % (src, C, C)
                    else:
                        K = C
                        parts.append(src)
                        tot += K
                        continue
                    p = self.bind(t, [K, H, W])
                    parts.append(p)
                    tot += K
                self.use(src)
                for p in parts:
                    self.use(p)
                expr = "concat(%s)" % ", ".join(parts)
                if r.random() < 0.5:
                    K = self.chan()
                    expr += " -> conv(%d, %s)" % (K, r.choice(["1", "3, pad=1"]))
                    tot = K
                self.bind(expr, [tot, H, W])
            elif k == "addout":
                # an intermediate that is also an output and consumed further
                stages, sh = self.chain(s, r.randint(1, 2))
                if not stages:
                    continue
                self.use(src)
                self.bind(src + " -> " + " -> ".join(stages), sh)
        # make sure every input is used
        for i in range(ninputs):
            n = "x%d" % i
            if n not in self.used:
                stages, sh = self.chain(self.shape[n], r.randint(1, 3))
                if not stages:
                    stages = ["relu"]
                    sh = self.shape[n]
                self.use(n)
                self.bind(n + " -> " + " -> ".join(stages), sh)
        outs = [n for n in self.order if n not in self.used and not n.startswith("x")]
        # sometimes also output a used intermediate
        extra = [n for n in self.order if n in self.used and not n.startswith("x")]
        if extra and r.random() < 0.25:
            outs.append(r.choice(extra))
        text = "network f {\n" + "\n".join(self.lines) + "\n    output %s\n}\n" % ", ".join(outs)
        self.out_shapes = [self.shape[o] for o in outs]
        return text


def cfg_for(flags):
    c = R.Cfg()
    c.cnnc = shlex.split(CNNC)
    c.graph_cnnc = c.cnnc[0]
    c.flags = shlex.split(os.environ.get("CNNC_FLAGS", "")) + shlex.split(flags)
    c.timeout = int(os.environ.get("CNNC_TIMEOUT", "600"))
    c.ref, c.seed, c.keep, c.verbose, c.tmpdir = "float64", 0, False, False, None
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=12, help="networks (default 12)")
    ap.add_argument("--seed", type=int, default=1, help="the sample (default 1)")
    ap.add_argument("--flags", action="append", default=[],
                    help="a flag set for cnnc run, repeatable (default: each target)")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="runs at a time (default 2)")
    args = ap.parse_args()
    flagsets = args.flags or ["--target scalar", "--target avx2", "--target avx512"]
    passed = failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        for i in range(args.count):
            seed = args.seed * 100000 + i
            text = Gen(random.Random(seed)).network()
            name = "random%d" % seed
            rng = random.Random(seed)
            batch = rng.choice([1, 3])
            scale = rng.choice([0.3, 1.0, 1.0, 3.0])
            with tempfile.NamedTemporaryFile("w", suffix=".cnn", delete=False) as f:
                f.write(text)
            p = subprocess.run([CNNC, "check", f.name], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
            os.remove(f.name)
            if p.returncode != 0:
                failed += 1
                print("FAIL %s: cnnc check rejects it: %s\n%s" % (name, p.stderr.strip(), text),
                      flush=True)
                continue
            futs = [(f, ex.submit(R.run_case, R.Case(name, text, batch=batch, scale=scale),
                                  cfg_for(f))) for f in flagsets]
            for f, fu in futs:
                ok, msg, dt = fu.result()
                passed += ok
                failed += not ok
                print("%s %s @b%d [%s] %s [%.1fs]" % ("PASS" if ok else "FAIL", name, batch, f,
                                                      msg, dt), flush=True)
                if not ok:
                    print(text, flush=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
