#!/usr/bin/python3
"""Ten training steps of `cnnc train` against torch.optim on the same small
network, data and starting weights: SGD with momentum (and Nesterov, and
weight decay), Adam and AdamW, and SGD again with `--openmp` at two threads
(the batch of 8 in 8 lanes of the convolution's backward). Each step is one epoch over one batch, so the
trainer's shuffling only permutes the batch (the mean loss and batch-norm
statistics do not depend on the order).

Tolerance (the issue's): max |difference| <= 1e-4 * max |parameter| after ten
steps. Both sides compute in float32 but sum in different orders, so
gradients differ in the last bits (~1e-7 relative) and Adam, which divides by
sqrt(v), amplifies nothing as long as gradients are not near zero: the data
and weights are chosen so they are not (losses around 1-2, gradients ~1e-2).

Also: a run of 2 epochs equals 1 epoch + --resume 1 epoch bit for bit; a
truncated, corrupted or foreign checkpoint is refused with a message; and
Ctrl-C in the middle of an epoch leaves the last checkpoint intact.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CNNC = os.environ.get("CNNC", os.path.join(ROOT, "cnnc"))

NET = """network small {
    input img: [2, 6, 6]
    x = img -> conv(4, 3, pad=1, bias=false) -> bn -> relu -> maxpool(2)
    logits = x -> dense(5)
    output logits
}
"""


class Small(nn.Module):
    """The same network in PyTorch, registering its layers in the same order,
    so state_dict order (less num_batches_tracked) is the canonical order."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1, bias=False)   # a bias before bn has zero gradient
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(x.flatten(1))


def load_canonical(model, vec):
    at = 0
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            n = t.numel()
            t.copy_(torch.from_numpy(vec[at:at + n]).reshape(t.shape))
            at += n
    assert at == len(vec)


def canonical(model):
    return np.concatenate([t.detach().numpy().ravel() for name, t in model.state_dict().items()
                           if not name.endswith("num_batches_tracked")]).astype(np.float32)


def run(args, check=True):
    # two threads for the --openmp case (the others ignore it)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    r = subprocess.run([CNNC] + args, capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise RuntimeError("cnnc %s failed:\n%s" % (" ".join(args), r.stderr))
    return r


def main():
    rng = np.random.default_rng(7)
    tmp = tempfile.mkdtemp(prefix="cnnc-train-")
    net = os.path.join(tmp, "small.cnn")
    open(net, "w").write(NET)
    batch = 8
    x = rng.standard_normal((batch, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 5, batch).astype(np.int32)
    x.tofile(os.path.join(tmp, "x.f32"))
    y.tofile(os.path.join(tmp, "y.i32"))
    torch.manual_seed(3)
    ref = Small()
    with torch.no_grad():   # statistics not at 0 and 1, weights big enough to matter
        ref.bn.running_mean.uniform_(-0.5, 0.5)
        ref.bn.running_var.uniform_(0.5, 1.5)
        ref.bn.weight.uniform_(0.5, 1.5)
        ref.bn.bias.uniform_(-0.2, 0.2)
    w0 = canonical(ref)
    w0.tofile(os.path.join(tmp, "w0.f32"))
    data = ["--train-images", os.path.join(tmp, "x.f32"), "--train-labels", os.path.join(tmp, "y.i32"),
            "--test-images", os.path.join(tmp, "x.f32"), "--test-labels", os.path.join(tmp, "y.i32")]

    cases = [
        ("sgd momentum", ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9"],
         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
        ("sgd nesterov + weight decay", ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9",
                                         "--nesterov", "--weight-decay", "0.01"],
         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
        ("adam", ["--optimizer", "adam", "--lr", "0.01"],
         lambda p: torch.optim.Adam(p, lr=0.01)),
        ("adamw", ["--optimizer", "adamw", "--lr", "0.01", "--weight-decay", "0.05"],
         lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05)),
        ("sgd momentum, --openmp 2T", ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9",
                                       "--openmp"],
         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    ]
    passed = failed = 0
    for name, flags, make_opt in cases:
        out = os.path.join(tmp, "w10.f32")
        run(["train", net, "--batch", str(batch), "--epochs", "10", "--init", os.path.join(tmp, "w0.f32"),
             "--out", out, "--checkpoint", os.path.join(tmp, "c.ckpt")] + data + flags)
        got = np.fromfile(out, dtype=np.float32)
        model = Small()
        load_canonical(model, w0)
        model.train()
        opt = make_opt(model.parameters())
        xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
        for _ in range(10):
            opt.zero_grad()
            F.cross_entropy(model(xt), yt).backward()
            opt.step()
        want = canonical(model)
        err = np.abs(got - want).max() / np.abs(want).max()
        ok = err <= 1e-4
        passed += ok
        failed += not ok
        print("%s train %-28s max|diff|/max|param| = %.2e" % ("PASS" if ok else "FAIL", name, err))

    # resuming continues bit for bit
    common = ["train", net, "--batch", "4", "--init", os.path.join(tmp, "w0.f32"), "--optimizer", "adam",
              "--lr", "0.01", "--limit", "8"] + data
    a_ck, b_ck = os.path.join(tmp, "a.ckpt"), os.path.join(tmp, "b.ckpt")
    run(common + ["--epochs", "2", "--checkpoint", a_ck, "--out", os.path.join(tmp, "straight.f32")])
    run(common + ["--epochs", "1", "--checkpoint", b_ck])
    run(common + ["--epochs", "2", "--checkpoint", b_ck, "--resume", b_ck,
                  "--out", os.path.join(tmp, "resumed.f32")])
    same = open(os.path.join(tmp, "straight.f32"), "rb").read() == open(os.path.join(tmp, "resumed.f32"), "rb").read()
    passed += same
    failed += not same
    print("%s resume: 2 epochs straight == 1 epoch + resume, bit for bit" % ("PASS" if same else "FAIL"))

    # damaged and foreign checkpoints are refused with a message
    blob = open(a_ck, "rb").read()
    damaged = {
        "truncated": blob[:len(blob) // 2],
        "bit-flipped": blob[:40] + bytes([blob[40] ^ 0x10]) + blob[41:],
        "empty": b"",
    }
    for what, content in damaged.items():
        path = os.path.join(tmp, what + ".ckpt")
        open(path, "wb").write(content)
        r = run(common + ["--epochs", "3", "--resume", path, "--checkpoint", os.path.join(tmp, "x.ckpt")],
                check=False)
        ok = r.returncode != 0 and "cnnc train:" in r.stderr and "Traceback" not in r.stderr
        passed += ok
        failed += not ok
        print("%s refuse a %s checkpoint: %s" % ("PASS" if ok else "FAIL", what, r.stderr.strip().splitlines()[-1:] ))
    other = os.path.join(tmp, "other.cnn")
    open(other, "w").write(NET.replace("dense(5)", "dense(6)").replace("network small", "network other"))
    r = run(["train", other, "--batch", "4", "--optimizer", "adam", "--limit", "8", "--epochs", "3",
             "--resume", a_ck, "--checkpoint", os.path.join(tmp, "y.ckpt")] +
            [d.replace("y.i32", "y.i32") for d in data], check=False)
    ok = r.returncode != 0 and "cnnc train:" in r.stderr
    passed += ok
    failed += not ok
    print("%s refuse a checkpoint of another network: %s" % ("PASS" if ok else "FAIL",
                                                            r.stderr.strip().splitlines()[-1:]))
    ok, msg = interrupt(tmp)
    passed += ok
    failed += not ok
    print("%s Ctrl-C keeps the last checkpoint: %s" % ("PASS" if ok else "FAIL", msg))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def interrupt(tmp):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) in
    the middle of epoch 2: exit status 130, a message, the checkpoint of
    epoch 1 untouched and no temporary file left; --resume then goes on."""
    ckpt = os.path.join(tmp, "int.ckpt")
    args = [CNNC, "train", os.path.join(ROOT, "examples", "mnist.cnn"), "--data", "fashion-mnist",
            "--epochs", "3", "--limit", "20000", "--test-limit", "200", "--checkpoint", ckpt]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    start = time.time()
    while not os.path.exists(ckpt) and p.poll() is None and time.time() - start < 300:
        time.sleep(0.2)
    if not os.path.exists(ckpt):
        p.kill()
        return False, "no checkpoint after epoch 1"
    before = open(ckpt, "rb").read()
    time.sleep(1.0)   # an epoch of 20000 images takes several seconds: this is mid-epoch
    os.killpg(p.pid, signal.SIGINT)
    out = p.communicate(timeout=120)[0]
    leftovers = [f for f in os.listdir(tmp) if f.startswith("int.ckpt") and f != "int.ckpt"]
    if p.returncode != 130 or "interrupted" not in out:
        return False, "exit status %s, output %r" % (p.returncode, out.strip().splitlines()[-1:])
    if open(ckpt, "rb").read() != before or leftovers:
        return False, "the checkpoint changed or temporary files remain: %s" % leftovers
    r = run(args[1:] + ["--resume", ckpt, "--epochs", "2"], check=False)
    if r.returncode != 0 or "after epoch 1" not in r.stderr:
        return False, "resume failed: " + r.stderr.strip()[-200:]
    return True, "exit 130, epoch-1 checkpoint intact, resumed"


if __name__ == "__main__":
    sys.exit(main())
