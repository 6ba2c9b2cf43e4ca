"""coursekit vs its references, torch-CPU and hand-written NumPy: one run, one subprocess per
measurement, a table of paired ratios.

    python benchmarks/run.py            # full run (5 rounds, several minutes)
    python benchmarks/run.py --quick    # smaller repeat counts (~1 minute)
    python benchmarks/run.py --only selu,selu_np --rounds 5

Two kinds of reference. *torch-CPU* (``torch.nn``/``torch.optim`` builtins, autograd) is what a
practitioner would use instead. *Hand-written NumPy* is what a student writes from the lecture
(the CS231n-style ``batchnorm_forward``/``batchnorm_backward``, ``np.where`` SELU, an MLP step
with its backward written out): it is the limit for the NumPy backend, whose ufuncs run on one
core where torch uses all of them.

Every measurement runs in a fresh Python process with 2 threads (``torch.set_num_threads(2)``,
``OMP/OPENBLAS/MKL_NUM_THREADS=2``; coursekit's NumPy fast paths take the same budget), so the
sides do not share caches, thread pools or allocator state. A worker warms up, then times
``repeats`` blocks of ``iters`` calls and reports the median time per call. The coordinator runs
``rounds`` rounds, alternating the order of the two sides, and reports the median over rounds.
Ratios are coursekit time / reference time; lower is better. ``paired`` pairs the fastest block of
each side within a round (adjacent in time) and takes the median over rounds: on a shared
machine whole processes get slowed down, and this is the most stable figure (the one ``ok``
judges). Use ``--threads 1`` when the machine is oversubscribed.

This is not a test: targets are printed next to the ratios, and nothing fails.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2

# name -> (description, coursekit worker, reference worker, target ratio)
BENCHES = {
    "mlp_numpy": ("MLP 64-256-256-10, batch 256: fwd+bwd+SGD, NumPy backend vs the same step hand-written in NumPy",
                  "ck_mlp_numpy", "numpy_mlp", 1.05),
    "mlp_torch": ("MLP train step, coursekit on torch backend vs plain torch", "ck_mlp_torch", "torch_mlp", 1.1),
    "batchnorm": ("BatchNorm1d fwd+bwd, 4096x1024 float32 (NumPy) vs torch", "ck_batchnorm", "torch_batchnorm", 2.0),
    "batchnorm_np": ("BatchNorm1d fwd+bwd, 4096x1024 float32 (NumPy) vs CS231n-style NumPy", "ck_batchnorm",
                     "numpy_batchnorm", 0.5),
    "selu": ("SELU fwd+bwd, 4096x1024 float32 (NumPy) vs torch", "ck_selu", "torch_selu", 2.0),
    "selu_np": ("SELU fwd+bwd, 4096x1024 float32 (NumPy) vs np.where SELU", "ck_selu", "numpy_selu", 0.5),
    "dropout": ("dropout p=0.5 fwd+bwd, 4096x1024 float32 (NumPy) vs torch", "ck_dropout", "torch_dropout", 0.5),
    "sgd_momentum": ("SGD momentum=0.9 step, MLP params (NumPy) vs torch foreach", "ck_sgd", "torch_sgd", 1.2),
    "adagrad": ("Adagrad step, MLP params (NumPy) vs torch foreach", "ck_adagrad", "torch_adagrad", 1.2),
}


# --------------------------------------------------------------------------------------------
# workers: each returns a zero-argument callable doing one unit of work
# --------------------------------------------------------------------------------------------
def _data_np(shape, seed=0):
    import numpy as np
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def _mlp_data(backend):
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 64), dtype=np.float32)
    y = rng.integers(0, 10, 256)
    if backend == "torch":
        import torch
        return torch.from_numpy(x), torch.from_numpy(y)
    return x, y


def _ck_mlp(backend):
    from coursekit import nn
    from coursekit.backend import Generator
    from coursekit.optim import SGD
    g = Generator(0, backend=backend)
    model = nn.Sequential(nn.Linear(64, 256, backend=backend, generator=g), nn.ReLU(),
                          nn.Linear(256, 256, backend=backend, generator=g), nn.ReLU(),
                          nn.Linear(256, 10, backend=backend, generator=g))
    loss_fn = nn.CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=0.01)
    x, y = _mlp_data(backend)

    def run():
        opt.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
    return run


def ck_mlp_numpy():
    return _ck_mlp("numpy")


def ck_mlp_torch():
    import torch
    run = _ck_mlp("torch")

    def guarded():
        with torch.no_grad():  # coursekit needs no autograd graph
            run()
    return guarded


def torch_mlp():
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, foreach=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = _mlp_data("torch")

    def run():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return run


def numpy_mlp():
    """The same train step written out in NumPy, as a student would from the lecture."""
    import numpy as np
    rng = np.random.default_rng(0)
    sizes = [(256, 64), (256, 256), (10, 256)]
    params = []
    for out_f, in_f in sizes:
        bound = 1.0 / np.sqrt(in_f)
        params += [rng.uniform(-bound, bound, (out_f, in_f)).astype(np.float32),
                   rng.uniform(-bound, bound, out_f).astype(np.float32)]
    W1, b1, W2, b2, W3, b3 = params
    x, y = _mlp_data("numpy")
    n, rows = x.shape[0], np.arange(x.shape[0])

    def run():
        h1 = x @ W1.T + b1
        a1 = np.maximum(h1, 0)
        h2 = a1 @ W2.T + b2
        a2 = np.maximum(h2, 0)
        z = a2 @ W3.T + b3
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.log(p[rows, y]).mean()
        dz = p
        dz[rows, y] -= 1
        dz /= n
        dh2 = (dz @ W3) * (h2 > 0)
        dh1 = (dh2 @ W2) * (h1 > 0)
        grads = [dh1.T @ x, dh1.sum(0), dh2.T @ a1, dh2.sum(0), dz.T @ a2, dz.sum(0)]
        for w, dw in zip(params, grads):
            w -= 0.01 * dw
        return loss
    return run


def ck_batchnorm():
    import numpy as np
    from coursekit import functional as F
    x = _data_np((4096, 1024))
    g = _data_np((4096, 1024), 1)
    w, b = np.ones(1024, np.float32), np.zeros(1024, np.float32)
    rm, rv = np.zeros(1024, np.float32), np.ones(1024, np.float32)

    def run():
        res = F.batch_norm(x, rm, rv, w, b, training=True)
        F.batch_norm_backward(g, res.cache)
    return run


def torch_batchnorm():
    import torch
    x = torch.from_numpy(_data_np((4096, 1024))).requires_grad_()
    g = torch.from_numpy(_data_np((4096, 1024), 1))
    w, b = torch.ones(1024, requires_grad=True), torch.zeros(1024, requires_grad=True)
    rm, rv = torch.zeros(1024), torch.ones(1024)

    def run():
        x.grad = w.grad = b.grad = None
        torch.nn.functional.batch_norm(x, rm, rv, w, b, training=True).backward(g)
    return run


def numpy_batchnorm():
    """CS231n's ``batchnorm_forward`` (train) and ``batchnorm_backward_alt``, written out."""
    import numpy as np
    x = _data_np((4096, 1024))
    g = _data_np((4096, 1024), 1)
    gamma, beta = np.ones(1024, np.float32), np.zeros(1024, np.float32)
    state = {"running_mean": np.zeros(1024, np.float32), "running_var": np.ones(1024, np.float32)}
    eps, momentum, n = 1e-5, 0.9, x.shape[0]

    def run():
        mu = x.mean(axis=0)
        var = x.var(axis=0)
        std = np.sqrt(var + eps)
        x_hat = (x - mu) / std
        out = gamma * x_hat + beta
        state["running_mean"] = momentum * state["running_mean"] + (1 - momentum) * mu
        state["running_var"] = momentum * state["running_var"] + (1 - momentum) * var
        dbeta = g.sum(axis=0)
        dgamma = (g * x_hat).sum(axis=0)
        dx_hat = g * gamma
        dx = (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0)) / (n * std)
        return out, dx, dgamma, dbeta
    return run


def ck_dropout():
    from coursekit import functional as F
    from coursekit.backend import Generator
    x = _data_np((4096, 1024))
    g = _data_np((4096, 1024), 1)
    gen = Generator(0, backend="numpy")

    def run():
        _, mask = F.dropout(x, 0.5, generator=gen, return_mask=True)
        F.dropout_backward(g, mask, 0.5)
    return run


def torch_dropout():
    import torch
    x = torch.from_numpy(_data_np((4096, 1024))).requires_grad_()
    g = torch.from_numpy(_data_np((4096, 1024), 1))

    def run():
        x.grad = None
        torch.nn.functional.dropout(x, 0.5, training=True).backward(g)
    return run


def ck_selu():
    from coursekit import functional as F
    x = _data_np((4096, 1024))
    g = _data_np((4096, 1024), 1)

    def run():  # as nn.SELU does: the backward reuses the forward output
        F.selu_backward(g, x, out=F.selu(x))
    return run


def torch_selu():
    import torch
    x = torch.from_numpy(_data_np((4096, 1024))).requires_grad_()
    g = torch.from_numpy(_data_np((4096, 1024), 1))

    def run():
        x.grad = None
        torch.nn.functional.selu(x).backward(g)
    return run


def numpy_selu():
    """SELU and its derivative with ``np.where``, as usually written."""
    import numpy as np
    from coursekit.functional import ALPHA, LAMBDA
    x = _data_np((4096, 1024))
    g = _data_np((4096, 1024), 1)

    def run():
        out = LAMBDA * np.where(x > 0, x, ALPHA * (np.exp(x) - 1))
        dx = g * LAMBDA * np.where(x > 0, 1, ALPHA * np.exp(x))
        return out, dx
    return run


_MLP_SHAPES = [(256, 64), (256,), (256, 256), (256,), (10, 256), (10,)]


def _ck_opt(kind):
    from coursekit import nn, optim
    params = []
    for i, s in enumerate(_MLP_SHAPES):
        p = nn.Parameter(_data_np(s, i))
        p.grad = _data_np(s, 100 + i)
        params.append(p)
    opt = optim.SGD(params, lr=0.01, momentum=0.9) if kind == "sgd" else optim.Adagrad(params, lr=0.01)
    return opt.step


def _torch_opt(kind):
    import torch
    params = []
    for i, s in enumerate(_MLP_SHAPES):
        p = torch.nn.Parameter(torch.from_numpy(_data_np(s, i)))
        p.grad = torch.from_numpy(_data_np(s, 100 + i))
        params.append(p)
    if kind == "sgd":
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, foreach=True)
    else:
        opt = torch.optim.Adagrad(params, lr=0.01, foreach=True)

    def run():
        with torch.no_grad():
            opt.step()
    return run


def ck_sgd():
    return _ck_opt("sgd")


def ck_adagrad():
    return _ck_opt("adagrad")


def torch_sgd():
    return _torch_opt("sgd")


def torch_adagrad():
    return _torch_opt("adagrad")


WORKERS = {f.__name__: f for f in [ck_mlp_numpy, numpy_mlp, ck_mlp_torch, torch_mlp, ck_batchnorm,
                                   torch_batchnorm, numpy_batchnorm, ck_dropout, torch_dropout, ck_selu,
                                   torch_selu, numpy_selu, ck_sgd, ck_adagrad, torch_sgd, torch_adagrad]}


def worker_main(name: str, quick: bool, threads: int) -> None:
    import torch
    torch.set_num_threads(threads)
    run = WORKERS[name]()
    # calibrate: a block lasts ~0.1 s (quick) / 0.25 s
    budget = 0.1 if quick else 0.25
    for _ in range(3):  # the first calls pay for lazy initialization (thread pools, allocator, caches)
        run()
    t0 = time.perf_counter()
    run()
    run()
    one = max((time.perf_counter() - t0) / 2, 1e-6)
    iters = max(1, int(budget / one))
    for _ in range(max(1, iters // 2)):  # warm-up
        run()
    times = []
    for _ in range(5 if quick else 9):
        t = time.perf_counter()
        for _ in range(iters):
            run()
        times.append((time.perf_counter() - t) / iters)
    print(json.dumps({"median_s": statistics.median(times), "min_s": min(times), "times": times,
                      "iters": iters}))


# --------------------------------------------------------------------------------------------
# coordinator
# --------------------------------------------------------------------------------------------
def measure(name: str, quick: bool, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--threads", str(threads)]
    args += ["--quick"] if quick else []
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark worker {name} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and rounds")
    ap.add_argument("--rounds", type=int, default=None, help="coordinator rounds per benchmark (default 5, quick 1)")
    ap.add_argument("--only", default="", help="comma-separated benchmark names: " + ",".join(BENCHES))
    ap.add_argument("--threads", type=int, default=THREADS, help=f"threads per process (default {THREADS})")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.quick, args.threads)
        return 0
    names = [n for n in args.only.split(",") if n] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHES)}")
    rounds = args.rounds or (1 if args.quick else 5)
    print(f"coursekit vs references {'(quick) ' if args.quick else ''}— {args.threads} thread(s), median of {rounds} "
          f"round(s), each a separate process per side\n'ratio' = median/median; 'paired' = median over rounds of "
          f"(fastest coursekit block / fastest reference block); 'ok' judges 'paired'\n")
    header = (f"{'benchmark':<14} {'coursekit ms':>12} {'ref ms':>10} {'ratio':>7} {'paired':>6} {'target':>7}  ok  "
              f"description")
    print(header)
    print("-" * len(header))
    results = {}
    for name in names:
        desc, ours, ref, target = BENCHES[name]
        m_ours, m_ref = [], []
        for r in range(rounds):
            pair = [(ours, m_ours), (ref, m_ref)]
            for worker, acc in (pair if r % 2 == 0 else pair[::-1]):
                acc.append(measure(worker, args.quick, args.threads))
        a = statistics.median(m["median_s"] for m in m_ours)
        b = statistics.median(m["median_s"] for m in m_ref)
        # paired: per round, fastest block of each side (the least disturbed by other load), then
        # the median over rounds; robust on a shared machine, where whole processes get slowed down
        paired = statistics.median(o["min_s"] / r["min_s"] for o, r in zip(m_ours, m_ref))
        ratio = a / b
        results[name] = dict(coursekit_s=a, reference_s=b, reference=ref, ratio=ratio, paired_ratio=paired,
                             target=target, rounds_ck=m_ours, rounds_ref=m_ref)
        print(f"{name:<14} {_fmt(a):>12} {_fmt(b):>10} {ratio:7.2f} {paired:6.2f} {target:7.2f}  "
              f"{'yes' if paired <= target else 'NO ':<3} {desc}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
