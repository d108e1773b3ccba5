#!/usr/bin/python3
"""check_twins.py — proves that twin.py builds the right PyTorch twin of a .cnn network.

Two kinds of independent references:

1. torchvision (weights=None): resnet18, resnet50, vgg16, alexnet and mobilenet_v2. Each model is
   filled with random weights and random BN statistics, its state_dict is concatenated in order
   (less num_batches_tracked) into the canonical vector, and the twin of examples/<net>.cnn run
   with that vector must match model.eval() to max|diff|/max|ref| <= 1e-5 in float32 (and
   <= 1e-12 in float64, with model.double()). The shapes of the state_dict tensors must equal the
   graph's parameter tensors one by one, in offset order. The networks run at a reduced input
   size (the `input` line of the .cnn text rewritten into a temporary file):
     - resnet18, resnet50, mobilenet_v2: 64x64 (their adaptive pools are global, any size works);
     - alexnet at 95x95 and vgg16 at 32x32: the .cnn files leave out torchvision's
       AdaptiveAvgPool2d (the identity at 224), so the torchvision model gets avgpool = Identity
       and its classifier's first Linear resized to the smaller flattened size (alexnet 256*2*2,
       vgg16 512*1*1);
     - alexnet also at its full 224x224, unmodified (cheap), which checks that leaving out the
       adaptive pool is right; with --full, vgg16 and the resnets at 224x224 too.
2. Small networks covering the layers torchvision does not have, or options it does not use
   (local, l2pool, lrn with odd/even sizes, maxout, prelu on [N] and [C,H,W], softmax on both,
   conv pad modes, pad=same with even kernels, dilation, groups, pooling with padding, the other
   activations, bias, concat, bn on [N], dense on [C,H,W]). The references are nn.Module stacks
   (nn.Conv2d with padding_mode / padding='same', nn.LocalResponseNorm, nn.PReLU, ...) and, for
   what torch has no module for, straightforward loops written from DSL.md's definitions (local,
   l2pool, maxout) or from PyTorch's documented formula (lrn). Their state_dicts, concatenated,
   are the canonical vector, so the canonical order of each layer is checked too. Compared in
   float64 (<= 1e-12).

Usage: /usr/bin/python3 tests/conformance/check_twins.py [--full] [-k SUBSTR] [--cnnc PATH]
Prints one line per check and `N passed, M failed`; exits 1 if any failed.
"""
import argparse
import math
import os
import sys
import time

import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True   # leave no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twin  # noqa: E402

REPO = twin.REPO
TOL32 = 1e-5
TOL64 = 1e-12
warnings.filterwarnings("ignore", message=".*padding=.same.*")


def relerr(out, ref):
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if out.shape != ref.shape:
        return float("inf")
    m = np.abs(ref).max()
    d = np.abs(out - ref).max()
    if not np.isfinite(d):
        return float("inf")
    return float(d / m) if m > 0 else float(d)


# ---------------------------------------------------------------------------------------------
# Filling a torch module with random values, independently of twin.random_params

def fill_module(model, gen):
    """Kaiming-uniform weights for Conv2d/Linear (variance 2/fan_in), biases U(-0.2, 0.2),
    BN gamma U(0.5,1.5), beta N(0,0.1), running_mean N(0,0.1), running_var U(0.5,1.5);
    any other parameter (PReLU slopes, custom modules) U(-0.5, 0.5)."""
    def u(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo)

    def n(t, sd):
        t.copy_(torch.randn(t.shape, generator=gen, dtype=torch.float64) * sd)

    with torch.no_grad():
        done = set()
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                b = math.sqrt(6.0 / fan_in)
                u(m.weight, -b, b)
                if m.bias is not None:
                    u(m.bias, -0.2, 0.2)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                u(m.weight, 0.5, 1.5)
                n(m.bias, 0.1)
                n(m.running_mean, 0.1)
                u(m.running_var, 0.5, 1.5)
            else:
                continue
            done.update(id(p) for p in m.parameters(recurse=False))
        for p in model.parameters():
            if id(p) not in done:
                if p.dim() >= 2:   # a custom layer's weight: Kaiming over all but the first dims
                    b = math.sqrt(6.0 / p[0].numel())
                    u(p, -b, b)
                else:
                    u(p, -0.5, 0.5)


def canonical_from_state_dict(model):
    """[(name, shape)], flat float32 vector: the state_dict in order, less num_batches_tracked."""
    names, parts = [], []
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        names.append((k, tuple(v.shape)))
        parts.append(v.detach().to(torch.float64).reshape(-1).numpy())
    vec = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    return names, vec


def graph_tensors(g):
    ts = []
    for n in g["nodes"]:
        for p in n["params"]:
            ts.append((p["offset"], n["name"] + "." + p["name"], tuple(p["shape"])))
    ts.sort()
    return ts


def structure_mismatch(g, names):
    gt = graph_tensors(g)
    if len(gt) != len(names):
        return "graph has %d parameter tensors, the module %d" % (len(gt), len(names))
    for (off, gname, gshape), (mname, mshape) in zip(gt, names):
        if gshape != mshape:
            return "tensor at offset %d: graph %s %s vs module %s %s" % (off, gname, gshape,
                                                                          mname, mshape)
    return None


# ---------------------------------------------------------------------------------------------
# Part 1: torchvision

def tv_cases(full):
    import torchvision.models as tvm

    def plain(ctor):
        def make():
            return ctor(weights=None)
        return make

    def resized(ctor, lin_index, in_features):
        def make():
            m = ctor(weights=None)
            m.avgpool = nn.Identity()
            old = m.classifier[lin_index]
            m.classifier[lin_index] = nn.Linear(in_features, old.out_features)
            return m
        return make

    cases = [
        ("resnet18@64", "resnet18", 64, plain(tvm.resnet18)),
        ("resnet50@64", "resnet50", 64, plain(tvm.resnet50)),
        ("mobilenet_v2@64", "mobilenetv2", 64, plain(tvm.mobilenet_v2)),
        # 95: conv11/4 pad 2 -> 23, pool -> 11, conv5 -> 11, pool -> 5, convs -> 5, pool -> 2
        ("alexnet@95", "alexnet", 95, resized(tvm.alexnet, 1, 256 * 2 * 2)),
        ("alexnet@224", "alexnet", 224, plain(tvm.alexnet)),
        ("vgg16@32", "vgg16", 32, resized(tvm.vgg16, 0, 512 * 1 * 1)),
    ]
    if full:
        cases += [
            ("resnet18@224", "resnet18", 224, plain(tvm.resnet18)),
            ("resnet50@224", "resnet50", 224, plain(tvm.resnet50)),
            ("mobilenet_v2@224", "mobilenetv2", 224, plain(tvm.mobilenet_v2)),
            ("vgg16@224", "vgg16", 224, plain(tvm.vgg16)),
        ]
    return cases


def check_tv(name, net, size, make, seed, cnnc):
    gen = torch.Generator().manual_seed(seed)
    model = make()
    fill_module(model, gen)
    model.eval()
    names, vec = canonical_from_state_dict(model)
    text = open(os.path.join(REPO, "examples", net + ".cnn")).read()
    g = twin.graph_of_text(twin.with_input_size(text, size), cnnc=cnnc, name=net)
    if g["param_count"] != vec.size:
        return False, "param_count %d vs state_dict %d" % (g["param_count"], vec.size)
    bad = structure_mismatch(g, names)
    if bad:
        return False, bad
    x = torch.randn((2, 3, size, size), generator=gen, dtype=torch.float32)
    # the module holds float32 values; the twin gets exactly them through the canonical vector
    with torch.inference_mode():
        ref32 = model(x).numpy()
        model64 = model.double()
        ref64 = model64(x.double()).numpy()
    out32 = twin.run(g, vec, [x.numpy()], "float32")[0]
    out64 = twin.run(g, vec, [x.numpy()], "float64")[0]
    e32, e64 = relerr(out32, ref32), relerr(out64, ref64)
    ok = e32 <= TOL32 and e64 <= TOL64
    return ok, "float32 %.3g (tol %g), float64 %.3g (tol %g), max|ref| %.3g" % (
        e32, TOL32, e64, TOL64, float(np.abs(ref64).max()))


# ---------------------------------------------------------------------------------------------
# Part 2: reference modules for single layers, written from the definitions

def _pad_hw(x, lo, hi, value=0.0):
    return F.pad(x, (lo[1], hi[1], lo[0], hi[0]), value=value)


class Local(nn.Module):
    """Locally connected layer, straight from its definition: at each output position (i, j)
    its own filter bank W[i, j] : [K, C, kh, kw] over the zero-padded window. bias [K, H', W']."""
    def __init__(self, C, K, Ho, Wo, k, s, p, bias=True):
        super().__init__()
        self.k, self.s, self.p = k, s, p
        self.weight = nn.Parameter(torch.zeros(Ho, Wo, K, C, k[0], k[1]))
        self.bias = nn.Parameter(torch.zeros(K, Ho, Wo)) if bias else None

    def forward(self, x):
        x = _pad_hw(x, self.p, self.p)
        Ho, Wo, K = self.weight.shape[:3]
        y = x.new_zeros(x.shape[0], K, Ho, Wo)
        for i in range(Ho):
            for j in range(Wo):
                win = x[:, :, i * self.s[0]:i * self.s[0] + self.k[0],
                        j * self.s[1]:j * self.s[1] + self.k[1]]           # [B, C, kh, kw]
                y[:, :, i, j] = (win.unsqueeze(1) * self.weight[i, j].unsqueeze(0)).sum((2, 3, 4))
        if self.bias is not None:
            y = y + self.bias.unsqueeze(0)
        return y


class L2Pool(nn.Module):
    def __init__(self, k, s):
        super().__init__()
        self.k, self.s = k, s

    def forward(self, x):
        B, C, H, W = x.shape
        Ho = (H - self.k[0]) // self.s[0] + 1
        Wo = (W - self.k[1]) // self.s[1] + 1
        y = x.new_zeros(B, C, Ho, Wo)
        for i in range(Ho):
            for j in range(Wo):
                win = x[:, :, i * self.s[0]:i * self.s[0] + self.k[0],
                        j * self.s[1]:j * self.s[1] + self.k[1]]
                y[:, :, i, j] = (win * win).sum((2, 3)).sqrt()
        return y


class LRN(nn.Module):
    """b_c = a_c / (k + alpha/n * sum_{c' = c - n//2}^{c + (n-1)//2} a_c'^2)^beta, out-of-range
    channels counting as zero (PyTorch's local_response_norm: it pads n//2 channels before and
    (n-1)//2 after and average-pools n of them)."""
    def __init__(self, n, alpha, beta, k):
        super().__init__()
        self.n, self.alpha, self.beta, self.kk = n, alpha, beta, k

    def forward(self, x):
        C = x.shape[1]
        y = torch.empty_like(x)
        for c in range(C):
            lo, hi = max(0, c - self.n // 2), min(C - 1, c + (self.n - 1) // 2)
            s = (x[:, lo:hi + 1] ** 2).sum(1)
            y[:, c] = x[:, c] / (self.kk + self.alpha / self.n * s) ** self.beta
        return y


class Maxout(nn.Module):
    def __init__(self, pieces):
        super().__init__()
        self.p = pieces

    def forward(self, x):
        C = x.shape[1] // self.p
        return torch.stack([torch.stack([x[:, c * self.p + i] for i in range(self.p)]).max(0)[0]
                            for c in range(C)], 1)


class Softmax1(nn.Module):
    def forward(self, x):
        e = torch.exp(x - x.max(1, keepdim=True)[0])
        return e / e.sum(1, keepdim=True)


class Bias(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(*shape))

    def forward(self, x):
        return x + self.bias.unsqueeze(0)


class Branches(nn.Module):
    """concat(b0(x), b1(x), ...) or sum."""
    def __init__(self, *branches, how="concat"):
        super().__init__()
        self.b = nn.ModuleList(branches)
        self.how = how

    def forward(self, x):
        ys = [b(x) for b in self.b]
        if self.how == "concat":
            return torch.cat(ys, 1)
        out = ys[0]
        for y in ys[1:]:
            out = out + y
        return out


class Flat(nn.Module):
    def forward(self, x):
        return x.reshape(x.shape[0], -1)


def S(*m):
    return nn.Sequential(*m)


def layer_cases():
    """(name, input shape, .cnn body, reference module)."""
    C = 4
    cases = [
        ("conv_reflect", [C, 7, 6], "conv(5, 3, pad=2, pad_mode=reflect)",
         S(nn.Conv2d(C, 5, 3, padding=2, padding_mode="reflect"))),
        ("conv_replicate", [C, 7, 6], "conv(5, (3, 2), pad=(1, 2), pad_mode=replicate)",
         S(nn.Conv2d(C, 5, (3, 2), padding=(1, 2), padding_mode="replicate"))),
        ("conv_circular", [C, 7, 6], "conv(5, 3, stride=2, pad=2, pad_mode=circular)",
         S(nn.Conv2d(C, 5, 3, stride=2, padding=2, padding_mode="circular"))),
        ("conv_same_even", [C, 7, 6], "conv(5, (4, 2), pad=same)",
         S(nn.Conv2d(C, 5, (4, 2), padding="same"))),
        ("conv_same_dil_even", [C, 9, 8], "conv(6, 4, pad=same, dilation=2, groups=2, bias=false)",
         S(nn.Conv2d(C, 6, 4, padding="same", dilation=2, groups=2, bias=False))),
        ("conv_same_reflect", [C, 7, 6], "conv(5, 4, pad=same, pad_mode=reflect)",
         S(nn.Conv2d(C, 5, 4, padding="same", padding_mode="reflect"))),
        ("conv_depthwise_s3", [C, 11, 10], "conv(8, 3, stride=3, pad=1, groups=4)",
         S(nn.Conv2d(C, 8, 3, stride=3, padding=1, groups=4))),
        ("local", [C, 7, 6], "local(3, 3, stride=2, pad=1)", S(Local(C, 3, 4, 3, (3, 3), (2, 2), (1, 1)))),
        ("local_tuple_nobias", [C, 6, 7], "local(2, (2, 3), stride=(1, 2), bias=false)",
         S(Local(C, 2, 5, 3, (2, 3), (1, 2), (0, 0), bias=False))),
        ("l2pool", [C, 7, 6], "l2pool(2)", S(L2Pool((2, 2), (2, 2)))),
        ("l2pool_s1_tuple", [C, 7, 6], "l2pool((3, 2), stride=1)", S(L2Pool((3, 2), (1, 1)))),
        ("lrn3", [7, 3, 4], "lrn(3, alpha=0.5, beta=0.75, k=2)",
         S(LRN(3, 0.5, 0.75, 2.0))),
        ("lrn4", [7, 3, 4], "lrn(4, alpha=0.3, beta=0.6, k=1)", S(LRN(4, 0.3, 0.6, 1.0))),
        ("lrn4_module", [7, 3, 4], "lrn(4, alpha=0.3, beta=0.6, k=1)",
         S(nn.LocalResponseNorm(4, alpha=0.3, beta=0.6, k=1.0))),
        ("lrn_size_gt_C", [3, 2, 2], "lrn(6, alpha=1, beta=1.5, k=0.5)", S(LRN(6, 1.0, 1.5, 0.5))),
        ("maxout", [6, 3, 4], "maxout(3)", S(Maxout(3))),
        ("maxout_vec", [8], "maxout(2)", S(Maxout(2))),
        ("prelu_chw", [C, 3, 4], "prelu", S(nn.PReLU(C))),
        ("prelu_vec", [10], "prelu", S(nn.PReLU(10))),
        ("softmax_chw", [5, 3, 4], "softmax", S(Softmax1())),
        ("softmax_vec", [9], "softmax", S(Softmax1())),
        ("maxpool_pad", [C, 7, 6], "maxpool(3, stride=2, pad=1)", S(nn.MaxPool2d(3, 2, 1))),
        ("maxpool_tuple", [C, 7, 6], "maxpool((3, 2), stride=(2, 1), pad=(1, 1))",
         S(nn.MaxPool2d((3, 2), (2, 1), (1, 1)))),
        ("avgpool_pad", [C, 7, 6], "avgpool(3, stride=2, pad=1)", S(nn.AvgPool2d(3, 2, 1))),
        ("globalmaxpool", [C, 5, 3], "globalmaxpool", S(nn.AdaptiveMaxPool2d(1))),
        ("globalavgpool", [C, 5, 3], "globalavgpool", S(nn.AdaptiveAvgPool2d(1))),
        ("acts", [C, 3, 4], "leakyrelu(0.2) -> elu(0.7) -> relu6 -> sigmoid -> tanh",
         S(nn.LeakyReLU(0.2), nn.ELU(0.7), nn.ReLU6(), nn.Sigmoid(), nn.Tanh())),
        ("leakyrelu_neg", [C, 3, 4], "leakyrelu(-0.3)", S(nn.LeakyReLU(-0.3))),
        ("bias_chw", [C, 3, 4], "bias", S(Bias([C, 3, 4]))),
        ("bias_vec", [7], "bias", S(Bias([7]))),
        ("bn_vec", [6], "bn(eps=0.001)", S(nn.BatchNorm1d(6, eps=1e-3))),
        ("bn_chw", [C, 3, 4], "bn", S(nn.BatchNorm2d(C))),
        ("dense_chw", [C, 3, 4], "dense(5)", S(Flat(), nn.Linear(C * 12, 5))),
        ("flatten_dropout", [C, 3, 4], "flatten -> dropout(0.3)", S(Flat(), nn.Dropout(0.3))),
    ]
    # networks with branches, written in full
    nets = [
        ("concat3", [C, 5, 5],
         "network t {\n input x: [%d, 5, 5]\n a = x -> conv(2, 1)\n b = x -> conv(3, 3, pad=1)\n"
         " c = x -> maxpool(3, stride=1, pad=1)\n y = concat(a, b, c)\n output y\n}\n" % C,
         S(Branches(nn.Conv2d(C, 2, 1), nn.Conv2d(C, 3, 3, padding=1), nn.MaxPool2d(3, 1, 1)))),
        ("add3", [C, 5, 5],
         "network t {\n input x: [%d, 5, 5]\n a = x -> conv(3, 1)\n b = x -> conv(3, 3, pad=1)\n"
         " c = x -> conv(3, 1, bias=false)\n y = a + b + c\n output y\n}\n" % C,
         S(Branches(nn.Conv2d(C, 3, 1), nn.Conv2d(C, 3, 3, padding=1),
                    nn.Conv2d(C, 3, 1, bias=False), how="sum"))),
    ]
    out = []
    for name, shape, body, ref in cases:
        text = "network t {\n input x: [%s]\n y = x -> %s\n output y\n}\n" % (
            ", ".join(map(str, shape)), body)
        out.append((name, shape, text, ref))
    for name, shape, text, ref in nets:
        out.append((name, shape, text, ref))
    return out


def check_layer(name, shape, text, ref, seed, cnnc):
    gen = torch.Generator().manual_seed(seed)
    fill_module(ref, gen)
    ref.eval()
    names, vec = canonical_from_state_dict(ref)
    g = twin.graph_of_text(text, cnnc=cnnc, name=name)
    if g["param_count"] != vec.size:
        return False, "param_count %d vs module %d" % (g["param_count"], vec.size)
    bad = structure_mismatch(g, names)
    if bad:
        return False, bad
    x = torch.randn([3] + shape, generator=gen, dtype=torch.float64) * 1.5
    ref64 = ref.double()   # holds the float32 values the canonical vector holds
    with torch.inference_mode():
        r = ref64(x).numpy()
    o = twin.run(g, vec, [x.numpy()], "float64")[0]
    e = relerr(o, r)
    return e <= TOL64, "float64 %.3g (tol %g)" % (e, TOL64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="also the 224x224 runs of vgg16/resnets")
    ap.add_argument("-k", dest="substr", default="", help="only checks whose name contains this")
    ap.add_argument("--cnnc", help="cnnc binary for `graph` (default $CNNC or ./cnnc)")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    passed = failed = 0
    checks = [("tv:" + c[0], lambda c=c: check_tv(*c, args.seed, args.cnnc)) for c in tv_cases(args.full)]
    checks += [("layer:" + c[0], lambda c=c: check_layer(*c, args.seed, args.cnnc))
               for c in layer_cases()]
    for name, fn in checks:
        if args.substr not in name:
            continue
        t0 = time.time()
        try:
            ok, msg = fn()
        except Exception as e:  # a crash is a failure, with its reason
            ok, msg = False, "%s: %s" % (type(e).__name__, e)
        print("%s %s %s [%.1fs]" % ("PASS" if ok else "FAIL", name, msg, time.time() - t0),
              flush=True)
        passed += ok
        failed += not ok
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
