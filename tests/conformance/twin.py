#!/usr/bin/python3
"""twin.py — a PyTorch twin of any .cnn network, built from `cnnc graph` JSON.

The twin reads exactly what the compiler understood (`cnnc graph NET.cnn` prints the typed graph:
nodes in canonical/evaluation order, per-sample shapes, resolved attributes including the padding
the shape rule settled on, and every parameter tensor with its offset in the canonical vector)
and evaluates it with torch.nn.functional in inference mode, following the PyTorch semantics that
DSL.md's layer table promises.

Library use:

    import twin
    g = twin.graph_of_file("examples/lenet5.cnn")           # or twin.graph_of_text(text)
    outs = twin.run(g, params, [x], dtype="float32")        # list of numpy arrays, one per output
    # params: flat canonical float32 vector (numpy); x: numpy array [batch, *per-sample shape]
    #         (a flat array of batch * size values is accepted too, given batch=N)

Command line (for poking at a network, and as a stand-in for `cnnc run` in run.py --self-test):

    /usr/bin/python3 tests/conformance/twin.py [run] NET.cnn [--network N] [--weights P.f32]
        [--input X.f32 ...] [--output Y.f32 ...] [--batch N] [--float64] [--report]

Without --weights / --input, random ones are drawn (seed 0, see random_params); a summary of the
outputs is printed, and with --report every node's RMS.
Must run under /usr/bin/python3 (Debian's python3-torch is visible only there).
"""
import json
import re
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def default_cnnc():
    """The cnnc binary whose `graph` command the twin trusts: $CNNC_GRAPH, else $CNNC, else
    ./cnnc at the repository root."""
    return os.environ.get("CNNC_GRAPH") or os.environ.get("CNNC") or os.path.join(REPO, "cnnc")


# --------------------------------------------------------------------------------------------
# Getting the graph

def graph_of_file(path, network=None, cnnc=None):
    """Runs `cnnc graph` on a file and returns the parsed JSON."""
    cmd = [cnnc or default_cnnc(), "graph", path]
    if network:
        cmd += ["--network", network]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s failed (exit %d):\n%s" % (" ".join(cmd), p.returncode, p.stderr))
    return json.loads(p.stdout)


def graph_of_text(text, network=None, cnnc=None, name="net"):
    """Writes `text` to a temporary .cnn file and returns its graph."""
    with tempfile.TemporaryDirectory(prefix="twin_") as d:
        path = os.path.join(d, name + ".cnn")
        with open(path, "w") as f:
            f.write(text)
        return graph_of_file(path, network, cnnc)


def with_input_size(text, size):
    """Rewrites the first `input NAME: [C, H, W]` line of a .cnn text to H = W = size (or to
    (h, w) for a tuple), to run a network at a reduced input size."""
    h, w = (size, size) if isinstance(size, int) else size
    new, k = re.subn(r"(input\s+\w+\s*:\s*\[\s*\d+\s*,)\s*[^,\]]+,\s*[^\]]+\]",
                     lambda m: "%s %d, %d]" % (m.group(1), h, w), text, count=1)
    if k != 1:
        raise ValueError("no `input NAME: [C, H, W]` line to rewrite")
    return new


def size_of(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


# --------------------------------------------------------------------------------------------
# Evaluating it

def _pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))


def _pad(x, a, mode="zeros", value=0.0):
    """Pads H and W of an NCHW tensor by the resolved pad_lo/pad_hi (asymmetric for pad=same with
    an even kernel). F.pad takes (w_lo, w_hi, h_lo, h_hi)."""
    lo, hi = _pair(a.get("pad_lo", [0, 0])), _pair(a.get("pad_hi", [0, 0]))
    p = (lo[1], hi[1], lo[0], hi[0])
    if not any(p):
        return x
    if mode == "zeros":
        return F.pad(x, p, mode="constant", value=value)
    return F.pad(x, p, mode=mode)     # reflect, replicate, circular: as Conv2d's padding_mode


def _symmetric_pad(a):
    lo, hi = _pair(a.get("pad_lo", [0, 0])), _pair(a.get("pad_hi", [0, 0]))
    return lo if lo == hi else None


def _conv(x, a, P):
    w = P["weight"]
    b = P.get("bias")
    x = _pad(x, a, a.get("pad_mode", "zeros"))
    return F.conv2d(x, w, b, stride=_pair(a["stride"]), padding=0,
                    dilation=_pair(a.get("dilation", [1, 1])), groups=int(a.get("groups", 1)))


def _local(x, a, P, out_shape):
    """Locally connected: a convolution whose weights differ at every output position.
    weight [H', W', K, C, kh, kw], bias [K, H', W']."""
    K, Ho, Wo = out_shape
    kh, kw = _pair(a["kernel"])
    x = _pad(x, a, "zeros")
    B, C = x.shape[0], x.shape[1]
    cols = F.unfold(x, (kh, kw), dilation=1, padding=0, stride=_pair(a["stride"]))  # [B, C*kh*kw, L]
    assert cols.shape[2] == Ho * Wo, (cols.shape, out_shape)
    w = P["weight"].reshape(Ho * Wo, K, C * kh * kw)                                 # [L, K, CKK]
    y = torch.einsum("bjl,lkj->bkl", cols, w).reshape(B, K, Ho, Wo)
    if "bias" in P:
        y = y + P["bias"].reshape(1, K, Ho, Wo)
    return y


def _maxpool(x, a):
    k, s = _pair(a["kernel"]), _pair(a["stride"])
    sp = _symmetric_pad(a)
    if sp is not None:
        return F.max_pool2d(x, k, s, padding=sp)     # PyTorch pads with -inf
    return F.max_pool2d(_pad(x, a, "zeros", value=-float("inf")), k, s)


def _avgpool(x, a):
    k, s = _pair(a["kernel"]), _pair(a["stride"])
    sp = _symmetric_pad(a)
    if sp is not None:
        return F.avg_pool2d(x, k, s, padding=sp, count_include_pad=True)
    return F.avg_pool2d(_pad(x, a, "zeros"), k, s)   # zeros counted, as count_include_pad=True


def _l2pool(x, a):
    k, s = _pair(a["kernel"]), _pair(a["stride"])
    x = _pad(x, a, "zeros")          # l2pool has no padding argument; pad_lo/hi are 0
    return F.lp_pool2d(x, 2, k, s)   # sqrt(sum x^2) over the window


def evaluate(graph, params, inputs, dtype=torch.float32, keep_all=False, hook=None,
             training=False):
    """Evaluates the network. params: 1-D torch tensor (canonical vector), inputs: list of torch
    tensors [B, *shape]. Returns the list of output tensors (and the dict of every node's value
    when keep_all). hook(node, input_values), when given, runs before each node is computed; it
    may write into `params` (the parameter slices are taken after it returns).
    training: batch norm on batch statistics (running statistics left alone), as `cnnc grad`
    computes; dropout stays off either way."""
    vals = {}
    in_nodes = [i["node"] for i in graph["inputs"]]
    if len(inputs) != len(in_nodes):
        raise ValueError("network has %d inputs, got %d" % (len(in_nodes), len(inputs)))
    for nid, x in zip(in_nodes, inputs):
        vals[nid] = x.to(dtype)
    params = params.to(dtype)
    if params.numel() != graph["param_count"]:
        raise ValueError("network has %d parameters, got %d" % (graph["param_count"], params.numel()))
    consumers = {}
    for n in graph["nodes"]:
        for i in n["inputs"]:
            consumers[i] = consumers.get(i, 0) + 1
    outs_needed = set(o["node"] for o in graph["outputs"])

    for n in graph["nodes"]:
        op, a, nid = n["op"], n["attrs"], n["id"]
        if op == "input":
            continue
        if hook is not None:
            hook(n, [vals[i] for i in n["inputs"]])
        P = {}
        for p in n["params"]:
            o, shp = p["offset"], p["shape"]
            P[p["name"]] = params[o:o + size_of(shp)].reshape(shp)
        xs = [vals[i] for i in n["inputs"]]
        x = xs[0]
        B = x.shape[0]
        if op == "conv":
            y = _conv(x, a, P)
        elif op == "local":
            y = _local(x, a, P, n["shape"])
        elif op in ("dense", "fc"):
            y = F.linear(x.reshape(B, -1), P["weight"], P.get("bias"))   # flattens C,H,W order
        elif op == "bn" and training:
            y = F.batch_norm(x, P["running_mean"].detach().clone(),
                             P["running_var"].detach().clone(), P["gamma"], P["beta"],
                             training=True, momentum=float(a.get("momentum", 0.1)),
                             eps=float(a.get("eps", 1e-5)))
        elif op == "bn":
            y = F.batch_norm(x, P["running_mean"], P["running_var"], P["gamma"], P["beta"],
                             training=False, momentum=float(a.get("momentum", 0.1)),
                             eps=float(a.get("eps", 1e-5)))
        elif op == "maxpool":
            y = _maxpool(x, a)
        elif op == "avgpool":
            y = _avgpool(x, a)
        elif op == "l2pool":
            y = _l2pool(x, a)
        elif op == "globalavgpool":
            y = x.mean(dim=(2, 3), keepdim=True)
        elif op == "globalmaxpool":
            y = x.amax(dim=(2, 3), keepdim=True)
        elif op == "lrn":
            y = F.local_response_norm(x, int(a["size"]), alpha=float(a["alpha"]),
                                      beta=float(a["beta"]), k=float(a["k"]))
        elif op == "relu":
            y = F.relu(x)
        elif op == "relu6":
            y = F.hardtanh(x, 0.0, 6.0)
        elif op == "sigmoid":
            y = torch.sigmoid(x)
        elif op == "tanh":
            y = torch.tanh(x)
        elif op == "leakyrelu":
            y = F.leaky_relu(x, float(a["alpha"]))
        elif op == "elu":
            y = F.elu(x, float(a["alpha"]))
        elif op == "prelu":
            y = F.prelu(x, P["alpha"])     # dim 1: channels of [C,H,W], features of [N]
        elif op == "maxout":
            p = int(a["pieces"])
            y = x.reshape(B, x.shape[1] // p, p, *x.shape[2:]).amax(dim=2)
        elif op == "softmax":
            y = F.softmax(x, dim=1)        # over channels of [C,H,W] / all features of [N]
        elif op == "dropout":
            y = x                          # inference
        elif op == "flatten":
            y = x.reshape(B, -1)
        elif op == "bias":
            y = x + P["bias"].unsqueeze(0)
        elif op == "concat":
            y = torch.cat(xs, dim=1)
        elif op == "add":
            y = xs[0]
            for t in xs[1:]:
                y = y + t
        else:
            raise NotImplementedError("twin: no implementation of op '%s' (node %s)" % (op, n["name"]))
        want = (B,) + tuple(n["shape"])
        if tuple(y.shape) != want:
            raise RuntimeError("twin: node %s (%s) gave shape %s, graph says %s"
                               % (n["name"], op, tuple(y.shape), want))
        vals[nid] = y
        if not keep_all:   # free what nothing else needs
            for i in n["inputs"]:
                consumers[i] -= 1
                if consumers[i] == 0 and i not in outs_needed:
                    vals.pop(i, None)
    outs = [vals[o["node"]] for o in graph["outputs"]]
    return (outs, vals) if keep_all else outs


def _dtype(d):
    if d in (None, "float32", "f32", torch.float32, np.float32):
        return torch.float32
    if d in ("float64", "f64", "double", torch.float64, np.float64):
        return torch.float64
    raise ValueError("dtype must be float32 or float64, got %r" % (d,))


def run(graph, params, inputs, dtype="float32", batch=None):
    """numpy in, numpy out. params: flat canonical vector; inputs: list of arrays, each
    [B, *per-sample shape] or flat (B * size values, B = batch or deduced). Returns the outputs as
    numpy arrays [B, *per-sample shape] of the dtype computed in (float32 by default, like
    PyTorch; "float64" computes everything in double)."""
    dt = _dtype(dtype)
    if len(inputs) != len(graph["inputs"]):
        raise ValueError("network has %d inputs, got %d" % (len(graph["inputs"]), len(inputs)))
    ts = []
    for spec, x in zip(graph["inputs"], inputs):
        x = np.asarray(x)
        n = size_of(spec["shape"])
        b = batch if batch is not None else x.size // n
        if x.size != b * n:
            raise ValueError("input %s: %d values are not %d samples of %s"
                             % (spec["name"], x.size, b, spec["shape"]))
        ts.append(torch.from_numpy(np.ascontiguousarray(x).reshape([b] + list(spec["shape"]))).to(dt))
    p = torch.from_numpy(np.ascontiguousarray(np.asarray(params).reshape(-1)))
    with torch.inference_mode():
        outs = evaluate(graph, p, ts, dt)
    return [o.numpy() for o in outs]


# --------------------------------------------------------------------------------------------
# Random parameters and inputs with sensible scales
#
# A 1e-4 relative comparison (max|diff| / max|ref|) is only meaningful when every layer's
# contribution is visible in the output: activations that explode make biases and BN shifts
# negligible and saturate relu6/sigmoid/tanh; activations that vanish leave only the last biases.
# So the draws aim at unit-scale activations everywhere:
#
#  * inputs ~ N(0, 1);
#  * conv / local / dense weights: Kaiming-uniform U(-sqrt(6/fan_in), +sqrt(6/fan_in)),
#    variance 2/fan_in, fan_in = (C/groups)*kh*kw, C*kh*kw, or the flattened input size. After a
#    ReLU E[x^2] = Var(z)/2, so conv -> relu chains keep their variance (He et al., 2015) through
#    VGG-depth networks; a linear layer without a ReLU before it doubles the variance, which is
#    harmless once or twice;
#  * biases (conv, local, dense, the `bias` layer) ~ U(-0.2, 0.2): small against unit activations,
#    yet 2000x the 1e-4 tolerance, so a dropped or misplaced bias fails;
#  * bn: gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1), running_mean ~ N(0, 0.1), running_var ~
#    U(0.5, 1.5) -- never the 0/1 identity, so mixing up the four tensors or ignoring one fails;
#  * prelu slopes ~ U(-0.25, 0.5), both signs.
#
# With calibration (calib_inputs given), each bn's running statistics are additionally scaled to
# the size its input really has, the way a trained network's are: with m2 = E[x^2] per channel,
# measured on a few calibration samples drawn like the real inputs, running_var = m2 * U(0.5, 1.5)
# and running_mean = N(0, 0.1) * sqrt(m2). This keeps deep BN networks (the linear bottlenecks
# and residual sums of MobileNetV2 and ResNets double the variance per block: the final
# activations of ResNet-50 reach 1e4 without it, so that its last blocks hardly show in the
# output) at unit scale, so relu6 does not saturate and beta/mean still matter.
# The mean is deliberately NOT centred on the input's true mean: (x - mu)/sigma with mu close to
# a channel's large mean and a small sigma cancels catastrophically and amplifies float32 rounding;
# measured on ResNet-50 at 64x64, a float32 evaluation then lands 3-6e-5 from float64, too close
# to the 1e-4 tolerance. The measured m2 is floored at 0.1 of the layer's mean: near-dead
# channels are the ones whose conv sums cancel most, and normalising them up to unit scale
# amplifies their rounding (a floor of 0.01 doubles the float32 error of MobileNet v1/v2).
# With these choices a float32 evaluation of the deepest examples at 64x64 (ResNet-50,
# MobileNet v1/v2) lands 4e-6..1.1e-5 from float64, ~10x under the tolerance; a plain float32
# implementation of any example should pass, and an error in any layer shows.

def _fan_in(node, p):
    shp = p["shape"]
    if node["op"] == "conv":
        return size_of(shp[1:])            # C/groups * kh * kw
    if node["op"] == "local":
        return size_of(shp[3:])            # C * kh * kw
    if node["op"] in ("dense", "fc"):
        return int(shp[1])
    raise ValueError(node["op"])


def random_params(graph, rng, calib_inputs=None):
    """The canonical vector (float32 numpy) drawn as described above. rng: numpy Generator.
    calib_inputs: list of numpy arrays [B, *shape] (B >= 2) to calibrate bn statistics on, or
    None for plain draws."""
    v = np.empty(graph["param_count"], dtype=np.float32)
    filled = np.zeros(graph["param_count"], dtype=bool)
    for n in graph["nodes"]:
        for p in n["params"]:
            o, cnt, name = p["offset"], size_of(p["shape"]), p["name"]
            if name == "weight":
                b = np.sqrt(6.0 / _fan_in(n, p))
                x = rng.uniform(-b, b, cnt)
            elif name == "bias":
                x = rng.uniform(-0.2, 0.2, cnt)
            elif name == "gamma":
                x = rng.uniform(0.5, 1.5, cnt)
            elif name in ("beta", "running_mean"):
                x = rng.normal(0.0, 0.1, cnt)
            elif name == "running_var":
                x = rng.uniform(0.5, 1.5, cnt)
            elif name == "alpha":
                x = rng.uniform(-0.25, 0.5, cnt)
            else:
                raise ValueError("no initialiser for %s.%s" % (n["op"], name))
            v[o:o + cnt] = x
            filled[o:o + cnt] = True
    if not filled.all():
        raise RuntimeError("parameter vector has holes: offsets do not tile it")
    if calib_inputs is None:
        return v
    # one float32 pass; the hook sees each bn's input before the bn reads its (shared) slices
    pt = torch.from_numpy(v)          # shares memory with v

    def hook(n, xs):
        if n["op"] != "bn":
            return
        x = xs[0].to(torch.float64)
        dims = [0] + list(range(2, x.dim()))
        m2 = x.pow(2).mean(dim=dims)
        m2 = torch.clamp(m2, min=0.1 * float(m2.mean()) + 1e-12).numpy()
        C = m2.size
        off = {p["name"]: p["offset"] for p in n["params"]}
        rm = rng.normal(0.0, 0.1, C) * np.sqrt(m2)
        rv = m2 * rng.uniform(0.5, 1.5, C)
        v[off["running_mean"]:off["running_mean"] + C] = rm
        v[off["running_var"]:off["running_var"] + C] = rv

    ts = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in calib_inputs]
    with torch.inference_mode():
        evaluate(graph, pt, ts, torch.float32, hook=hook)
    return v


def random_inputs(graph, batch, rng):
    """N(0, 1) inputs, one float32 array [batch, *shape] per network input."""
    return [rng.standard_normal([batch] + list(i["shape"])).astype(np.float32)
            for i in graph["inputs"]]


def activation_report(graph, params, inputs):
    """(name, op, rms) of every node, float64: to see that scales stay sensible."""
    ts = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in inputs]
    with torch.inference_mode():
        _, vals = evaluate(graph, torch.from_numpy(np.asarray(params)), ts, torch.float64,
                           keep_all=True)
    return [(n["name"], n["op"], float(vals[n["id"]].pow(2).mean().sqrt()))
            for n in graph["nodes"]]


# --------------------------------------------------------------------------------------------
# .f32 files

def read_f32(path):
    return np.fromfile(path, dtype="<f4")


def write_f32(path, arr):
    np.ascontiguousarray(arr, dtype="<f4").tofile(path)


def main(argv):
    """`twin.py [run] NET.cnn --weights P.f32 --input X.f32 ... --output Y.f32 ... --batch N`:
    the command line of `cnnc run`, so that run.py --self-test can put the twin in cnnc's place
    (options it does not know, such as --target, are ignored)."""
    import argparse
    if argv and argv[0] == "run":
        argv = argv[1:]
    ap = argparse.ArgumentParser(description="evaluate a .cnn network with its PyTorch twin")
    ap.add_argument("net")
    ap.add_argument("--network")
    ap.add_argument("--weights")
    ap.add_argument("--input", action="append", default=[])
    ap.add_argument("--output", action="append", default=[])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--float64", action="store_true")
    ap.add_argument("--cnnc")
    ap.add_argument("--report", action="store_true", help="print every node's RMS (float64)")
    args, _ignored = ap.parse_known_args(argv)
    g = graph_of_file(args.net, args.network, args.cnnc)
    rng = np.random.default_rng(0)
    if args.input:
        xs = [read_f32(p) for p in args.input]
    else:
        xs = random_inputs(g, args.batch, rng)
    if args.weights:
        params = read_f32(args.weights)
    else:
        params = random_params(g, rng, calib_inputs=random_inputs(g, 4, rng))
    if args.report:
        xr = [np.asarray(x).reshape([-1] + i["shape"]) for x, i in zip(xs, g["inputs"])]
        for name, op, rms in activation_report(g, params, xr):
            print("  %-24s %-14s rms %.4g" % (name, op, rms))
    outs = run(g, params, xs, "float64" if args.float64 else "float32", batch=args.batch)
    for i, (spec, y) in enumerate(zip(g["outputs"], outs)):
        if i < len(args.output):
            write_f32(args.output[i], y)
        print("%s: shape %s, max|y| %.6g, mean %.6g" % (spec["name"], list(y.shape),
                                                         float(np.abs(y).max()), float(y.mean())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
