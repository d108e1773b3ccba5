"""optim_cases.py — the optimiser cases that gen_optim_ref.py and optim_vs_torch.py share:
one parameter vector, one sequence of gradients, and the torch.optim settings to apply.

Gradients are kept away from zero (|g| in [0.1, 1], random sign): Adam divides the first moment
by the root of the second, so a gradient near zero is blown up to a full step and the comparison
would measure noise in the last bits rather than the update rule.
"""
import numpy as np
import torch

N = 16
STEPS = 10
KINDS = {"SGD": 0, "Adam": 1, "AdamW": 2}

# name, kind, torch keyword arguments
CASES = [
    ("sgd_plain", "SGD", dict(lr=0.1)),
    ("sgd_momentum", "SGD", dict(lr=0.1, momentum=0.9)),
    ("sgd_momentum_wd", "SGD", dict(lr=0.1, momentum=0.9, weight_decay=1e-4)),
    ("sgd_nesterov_wd", "SGD", dict(lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)),
    ("sgd_dampening", "SGD", dict(lr=0.1, momentum=0.9, dampening=0.5)),
    ("sgd_wd_big", "SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.1)),
    ("adam_default", "Adam", dict(lr=1e-3)),
    ("adam", "Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("adam_wd", "Adam", dict(lr=0.01, weight_decay=1e-2)),
    ("adamw", "AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("adamw_default", "AdamW", dict(lr=1e-3)),
]


def data(seed=1234, n=N, steps=STEPS):
    """The starting parameters and the gradient of each step, float32."""
    rng = np.random.default_rng(seed)
    p0 = rng.uniform(-1, 1, n).astype(np.float32)
    mag = rng.uniform(0.1, 1.0, (steps, n))
    sign = rng.choice([-1.0, 1.0], (steps, n))
    return p0, (mag * sign).astype(np.float32)


def settings(kind, kw):
    """All hyper-parameters, torch's defaults filled in, as the C optimiser holds them."""
    s = dict(lr=kw["lr"], momentum=0.0, dampening=0.0, nesterov=0, weight_decay=0.0,
             beta1=0.9, beta2=0.999, eps=1e-8)
    if kind == "AdamW":
        s["weight_decay"] = 1e-2
    for k, v in kw.items():
        if k == "betas":
            s["beta1"], s["beta2"] = v
        else:
            s[k] = int(v) if k == "nesterov" else v
    return s


def run_torch(kind, kw, p0, grads):
    """The parameters after each step, as torch.optim computes them: [steps][n] float32."""
    torch.set_num_threads(1)
    p = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = getattr(torch.optim, kind)([p], **kw)
    out = []
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        out.append(p.detach().numpy().copy())
    return np.array(out, dtype=np.float32)
