#!/usr/bin/python3
"""Training benchmark (make bench): the MNIST network of DSL.md on
Fashion-MNIST at batch 64 with SGD (lr 0.01, momentum 0.9), cnnc against
PyTorch in the same run: images per second of training and test accuracy
after each epoch. cnnc trains with `cnnc train --openmp` and PyTorch with
its own threads, each at every thread count given (1 and 2 by default, the
machine's cores): OMP_NUM_THREADS for cnnc, torch.set_num_threads for
PyTorch.

The runs take turns epoch by epoch (cnnc continues each of its runs with
--resume), so that a change in the machine's load during the benchmark
falls on all of them alike; the order turns round every epoch. The speed of
a run is its median over the epochs.

    bench/train_bench.py [--epochs 5] [--threads 1,2] [--limit N]
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


class TorchRun:
    """One PyTorch training run, an epoch at a time."""

    def __init__(self, data, threads, limit, seed=1):
        self.threads = threads
        torch.manual_seed(seed)
        self.model = Mnist()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.order = torch.Generator().manual_seed(seed)
        self.xtr, self.ytr, self.xte, self.yte = data
        if limit:
            self.xtr, self.ytr = self.xtr[:limit], self.ytr[:limit]

    def epoch(self):
        torch.set_num_threads(self.threads)
        model, opt = self.model, self.opt
        model.train()
        order = torch.randperm(len(self.xtr), generator=self.order)
        t0 = time.perf_counter()
        for first in range(0, len(self.xtr), 64):
            i = order[first:first + 64]
            opt.zero_grad()
            F.cross_entropy(model(self.xtr[i]), self.ytr[i]).backward()
            opt.step()
        speed = len(self.xtr) / (time.perf_counter() - t0)
        model.eval()
        with torch.no_grad():
            acc = float((model(self.xte).argmax(1) == self.yte).float().mean())
        return speed, acc


def torch_data():
    xtr = torch.from_numpy(idx(DATA + "/train-images-idx3-ubyte.gz").astype(np.float32) / 255).unsqueeze(1)
    ytr = torch.from_numpy(idx(DATA + "/train-labels-idx1-ubyte.gz").astype(np.int64))
    xte = torch.from_numpy(idx(DATA + "/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255).unsqueeze(1)
    yte = torch.from_numpy(idx(DATA + "/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    return xtr, ytr, xte, yte


class CnncRun:
    """One `cnnc train --openmp` run at OMP_NUM_THREADS=threads, an epoch at
    a time: each call trains one more epoch from the last checkpoint."""

    def __init__(self, threads, limit):
        self.threads = threads
        self.limit = limit
        self.done = 0
        self.tmp = tempfile.mkdtemp(prefix="cnnc-bench-")
        self.log = os.path.join(self.tmp, "log.csv")
        self.ckpt = os.path.join(self.tmp, "c.ckpt")

    def epoch(self):
        args = [CNNC, "train", os.path.join(ROOT, "examples", "mnist.cnn"), "--openmp",
                "--data", "fashion-mnist", "--epochs", str(self.done + 1), "--batch", "64",
                "--optimizer", "sgd", "--lr", "0.01", "--momentum", "0.9", "--seed", "1",
                "--log", self.log, "--checkpoint", self.ckpt]
        if self.done:
            args += ["--resume", self.ckpt]
        if self.limit:
            args += ["--limit", str(self.limit)]
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads))
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        self.done += 1
        with open(self.log) as f:
            last = list(csv.DictReader(f))[-1]
        return float(last["images_per_second"]), float(last["test_accuracy"])


def blas():
    """Debian's torch links the system BLAS; which one the alternatives
    system selects is what it runs."""
    path = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    return "BLAS " + ("OpenBLAS (OpenMP)" if "openblas-openmp" in path else path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--limit", type=int, default=0)
    o = ap.parse_args()
    threads = [int(t) for t in o.threads.split(",")]
    print("training benchmark, %s: MNIST network on Fashion-MNIST, batch 64, SGD lr 0.01 momentum 0.9"
          % time.strftime("%Y-%m-%d %H:%M %Z"))
    print("PyTorch %s, %s; cnnc train --openmp; threads %s; load average at start %.2f"
          % (torch.__version__, blas(), ", ".join(map(str, threads)), os.getloadavg()[0]))
    data = torch_data()
    runs = []
    for t in threads:
        runs.append(("cnnc", t, CnncRun(t, o.limit)))
        runs.append(("PyTorch", t, TorchRun(data, t, o.limit)))
    rows = {(name, t): [] for name, t, _ in runs}
    for epoch in range(o.epochs):
        turn = runs if epoch % 2 == 0 else runs[::-1]
        for name, t, run in turn:
            speed, acc = run.epoch()
            rows[(name, t)].append((speed, acc))
            print("  %-7s %dT epoch %d: %.0f images/s, test accuracy %.4f" % (name, t, epoch + 1, speed, acc),
                  flush=True)
    print("finished %s; load average %.2f" % (time.strftime("%H:%M %Z"), os.getloadavg()[0]))
    print()
    print("| epoch | " + " | ".join("%s %dT test accuracy" % (n, t) for n, t, _ in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for e in range(o.epochs):
        print("| %d | " % (e + 1) + " | ".join("%.4f" % rows[(n, t)][e][1] for n, t, _ in runs) + " |")
    print()
    print("| threads | cnnc images/s | PyTorch images/s | cnnc / PyTorch |")
    print("|---:|---:|---:|---:|")
    for t in threads:
        cs = np.median([r[0] for r in rows[("cnnc", t)]])
        ts = np.median([r[0] for r in rows[("PyTorch", t)]])
        print("| %d | %.0f | %.0f | %.2fx |" % (t, cs, ts, cs / ts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
