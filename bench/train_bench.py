#!/usr/bin/python3
"""Training benchmark (make bench): the MNIST network of DSL.md on
Fashion-MNIST at batch 64 with SGD (lr 0.01, momentum 0.9), cnnc against
PyTorch in the same run: images per second of training and test accuracy
after each epoch. PyTorch runs with the threads given (2 by default, the
machine's cores) and cnnc's generated code on one thread (it has no
multi-threading yet); both figures are printed with the thread counts.

    bench/train_bench.py [--epochs 5] [--threads 2] [--limit N]
"""
import argparse
import csv
import gzip
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CNNC = os.environ.get("CNNC", os.path.join(ROOT, "cnnc"))
DATA = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path) as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class Mnist(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 32, 3, padding=1)
        self.d1 = nn.Linear(32 * 7 * 7, 500)
        self.d2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.d2(F.relu(self.d1(x.flatten(1))))


def torch_run(epochs, threads, limit, seed=1):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    xtr = torch.from_numpy(idx(DATA + "/train-images-idx3-ubyte.gz").astype(np.float32) / 255).unsqueeze(1)
    ytr = torch.from_numpy(idx(DATA + "/train-labels-idx1-ubyte.gz").astype(np.int64))
    xte = torch.from_numpy(idx(DATA + "/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255).unsqueeze(1)
    yte = torch.from_numpy(idx(DATA + "/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    model = Mnist()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rows = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xtr))
        t0 = time.perf_counter()
        for first in range(0, len(xtr), 64):
            i = order[first:first + 64]
            opt.zero_grad()
            F.cross_entropy(model(xtr[i]), ytr[i]).backward()
            opt.step()
        speed = len(xtr) / (time.perf_counter() - t0)
        model.eval()
        with torch.no_grad():
            acc = float((model(xte).argmax(1) == yte).float().mean())
        rows.append((speed, acc))
        print("  pytorch epoch %d: %.0f images/s, test accuracy %.4f" % (epoch + 1, speed, acc), flush=True)
    return rows


def cnnc_run(epochs, limit):
    tmp = tempfile.mkdtemp(prefix="cnnc-bench-")
    log = os.path.join(tmp, "log.csv")
    args = [CNNC, "train", os.path.join(ROOT, "examples", "mnist.cnn"), "--data", "fashion-mnist",
            "--epochs", str(epochs), "--batch", "64", "--optimizer", "sgd", "--lr", "0.01",
            "--momentum", "0.9", "--seed", "1", "--log", log, "--checkpoint", os.path.join(tmp, "c.ckpt")]
    if limit:
        args += ["--limit", str(limit)]
    subprocess.run(args, check=True, stderr=subprocess.DEVNULL)
    rows = []
    with open(log) as f:
        for r in csv.DictReader(f):
            rows.append((float(r["images_per_second"]), float(r["test_accuracy"])))
            print("  cnnc    epoch %s: %.0f images/s, test accuracy %.4f" % (r["epoch"], rows[-1][0], rows[-1][1]),
                  flush=True)
    return rows


def blas():
    """Debian's torch links the system BLAS; which one the alternatives
    system selects is what it runs."""
    path = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    return "BLAS " + ("OpenBLAS (OpenMP)" if "openblas-openmp" in path else path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    o = ap.parse_args()
    print("training benchmark, %s: MNIST network on Fashion-MNIST, batch 64, SGD lr 0.01 momentum 0.9"
          % time.strftime("%Y-%m-%d"))
    print("PyTorch %s, %s, %d threads; cnnc: one thread" % (torch.__version__, blas(), o.threads))
    c = cnnc_run(o.epochs, o.limit)
    t = torch_run(o.epochs, o.threads, o.limit)
    cs, ts = np.median([r[0] for r in c]), np.median([r[0] for r in t])
    print()
    print("| epoch | cnnc test accuracy | PyTorch test accuracy |")
    print("|---|---|---|")
    for i, (a, b) in enumerate(zip(c, t)):
        print("| %d | %.4f | %.4f |" % (i + 1, a[1], b[1]))
    print()
    print("median images/s: cnnc %.0f (1 thread), PyTorch %.0f (%d threads): cnnc/PyTorch = %.2f"
          % (cs, ts, o.threads, cs / ts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
