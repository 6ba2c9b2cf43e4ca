"""Fast paths for :mod:`coursekit.functional`: the same maths, arranged for the machine.

The kernels in ``functional`` are written as the lecture writes them (a few array-API lines each).
Two backends need help for the same formulas to run fast:

* **NumPy** evaluates one operation at a time: every ufunc makes a full pass over memory, runs on
  one core, and a chain of k operations on a large array streams it k times from DRAM. The fast
  versions below cut a large array into blocks of ~1 MiB (so a chain of operations stays in
  the L2 cache; measured on 4096×1024 float32: 1 MiB beat 64 KiB, 256 KiB and 4 MiB blocks), update temporaries in place, and hand the blocks to a few threads (NumPy's
  ufuncs, reductions and ``einsum`` release the GIL while they loop, so threads run truly in
  parallel); per-block column sums are ``einsum`` contractions (no temporaries).
* **torch** has fused kernels for some of the formulas: ``relu`` and ``threshold_backward`` (ReLU's
  forward and backward), ``addmm`` (a linear layer: the bias is added inside the matrix product),
  ``softmax``/``log_softmax`` (one pass instead of five); calling them saves passes over the data
  and a Python call per operation, which is what a small network's step is made of.

:func:`wanted` decides, from the backend and the size only, whether a fast path applies; each
function here is tested on large arrays against the plain kernel (``tests/test_fast.py``, which
also forces several blocks and several threads). Nothing here looks at array values.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: ``min_bytes``: arrays smaller than this take the plain kernel; ``block_bytes``: bytes of one
#: input block; ``threads``: worker threads for NumPy blocks (None: ``OMP_NUM_THREADS`` if set,
#: else the number of CPUs) — the same budget BLAS and torch take from the environment.
config = {"min_bytes": 1 << 20, "block_bytes": 1 << 20, "threads": None}

_pool: list = [None, 0]   # [ThreadPoolExecutor, its size]
_pool_lock = threading.Lock()


def _forget_pool_after_fork() -> None:
    """A forked child has none of the parent's threads: start a new pool there when needed."""
    global _pool_lock
    _pool[0], _pool[1] = None, 0
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def threads() -> int:
    n = config["threads"]
    if n is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        n = int(env) if env.isdigit() else (os.cpu_count() or 1)
    return max(1, int(n))


def wanted(*arrays) -> bool:
    """Whether the NumPy fast path applies: C-contiguous NumPy arrays of at least ``min_bytes``."""
    first = arrays[0]
    return (type(first) is np.ndarray and first.nbytes >= config["min_bytes"]
            and all(type(a) is np.ndarray and a.flags.c_contiguous for a in arrays))


def is_torch(x) -> bool:
    t = type(x)
    return t.__name__ == "Tensor" and t.__module__ == "torch"


def _slices(n: int, unit_bytes: int) -> list:
    """Consecutive slices of ``range(n)``, each covering about ``block_bytes`` (``unit_bytes`` per index)."""
    step = max(1, config["block_bytes"] // max(1, unit_bytes))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _run(work, slices) -> list:
    """``[work(s) for s in slices]``, the slices split into one contiguous run per thread."""
    k = min(threads(), len(slices))
    if k <= 1:
        return [work(s) for s in slices]
    with _pool_lock:
        if _pool[0] is None or _pool[1] != k:
            if _pool[0] is not None:
                _pool[0].shutdown(wait=True)
            _pool[0], _pool[1] = ThreadPoolExecutor(max_workers=k, thread_name_prefix="coursekit"), k
        pool = _pool[0]
    bounds = np.linspace(0, len(slices), k + 1).astype(int)
    runs = [slices[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    parts = pool.map(lambda run: [work(s) for s in run], runs)
    return [r for part in parts for r in part]


# --------------------------------------------------------------------------------------------
# element-wise: SELU
# --------------------------------------------------------------------------------------------
def selu(x, lam: float, alpha: float):
    """``λ max(x, 0) + λα (exp(min(x, 0)) − 1)``, block by block, in place on block temporaries.

    ``exp(m) − 1`` instead of ``expm1``: NumPy's float32 ``exp`` is vectorized and several times
    faster; the absolute error stays a few units of roundoff times ``λα``.
    """
    out = np.empty_like(x)
    xf, of = x.reshape(-1), out.reshape(-1)

    def work(s):
        m = np.minimum(xf[s], 0.0)
        e = np.exp(m)
        e -= 1.0                               # exactly 0 where x > 0
        e *= lam * alpha
        o = np.subtract(xf[s], m, out=of[s])   # max(x, 0), exactly
        o *= lam
        o += e
    _run(work, _slices(xf.size, x.itemsize))
    return out


def selu_backward(grad_out, x, out, lam: float, alpha: float):
    """``g · λ`` for ``x > 0``, ``g · λα eˣ`` otherwise; from ``out = selu(x)`` when given
    (``λα eˣ = out + λα`` for ``x ≤ 0``: no exponential)."""
    gx = np.empty_like(grad_out)
    gf, xf, df = grad_out.reshape(-1), x.reshape(-1), gx.reshape(-1)
    of = None if out is None else out.reshape(-1)

    def work(s):
        d = df[s]
        if of is None:
            np.exp(np.minimum(xf[s], 0.0), out=d)
            d *= lam * alpha
            step = xf[s] > 0
            d += step.astype(d.dtype) * (lam * (1.0 - alpha))
        else:
            np.add(of[s], lam * alpha - lam, out=d)
            d *= xf[s] <= 0
            d += lam                           # exactly λ where x > 0, out + λα elsewhere
        d *= gf[s]
    _run(work, _slices(xf.size, x.itemsize))
    return gx


# --------------------------------------------------------------------------------------------
# batch normalization, (N, C) float arrays
# --------------------------------------------------------------------------------------------
def batch_norm_train(x, weight, bias, eps: float):
    """Training-mode batch norm of an (N, C) array: ``(out, mean, var, x − mean, 1/sqrt(var + eps))``.

    Three blocked passes over the data, each split over the threads: column sums for the mean; one
    that writes ``x − μ`` and sums its squares (``einsum``: no temporary); one for ``(x − μ)·γ/σ + β``.
    (Not ``ones @ x``: BLAS threads keep spinning after the call and then compete with these.)
    """
    n = x.shape[0]
    rows = _slices(n, x.shape[1] * x.itemsize)
    mean = np.sum(_run(lambda s: np.einsum("ij->j", x[s]), rows), axis=0) * (1.0 / n)
    xc = np.empty_like(x)

    def center(s):
        c = np.subtract(x[s], mean, out=xc[s])
        return np.einsum("ij,ij->j", c, c)     # Σ (x − μ)² of the block, no temporary
    var = np.sum(_run(center, rows), axis=0) * (1.0 / n)
    inv_std = 1.0 / np.sqrt(var + eps)
    scale = inv_std if weight is None else inv_std * weight
    out = np.empty_like(x)

    def affine(s):
        o = np.multiply(xc[s], scale, out=out[s])
        if bias is not None:
            o += bias
    _run(affine, rows)
    return out, mean, var, xc, inv_std


def batch_norm_backward(grad_out, xc, inv_std, weight, training: bool):
    """``(grad_x, grad_weight, grad_bias)`` of an (N, C) batch norm (see ``F.batch_norm_backward``):
    one blocked pass for ``Σ g`` and ``Σ g (x − μ)``, one for ``grad_x``."""
    n = xc.shape[0]
    rows = _slices(n, xc.shape[1] * xc.itemsize)

    def sums(s):
        g = grad_out[s]
        return np.einsum("ij->j", g), np.einsum("ij,ij->j", g, xc[s])
    parts = _run(sums, rows)
    g_bias = np.sum([p[0] for p in parts], axis=0).astype(xc.dtype, copy=False)
    g_weight = np.sum([p[1] for p in parts], axis=0).astype(xc.dtype, copy=False) * inv_std
    scale = inv_std if weight is None else inv_std * weight
    gx = np.empty_like(grad_out)
    if training:
        k_x = scale * g_weight * inv_std * (-1.0 / n)          # −γ/σ · x̂ · Σ(g x̂)/M, per (x − μ)
        k_0 = scale * g_bias * (-1.0 / n)                      # −γ/σ · Σg/M

    def grad_x(s):
        d = np.multiply(grad_out[s], scale, out=gx[s])
        if training:
            t = xc[s] * k_x
            t += k_0
            d += t
    _run(grad_x, rows)
    return gx, g_weight, g_bias


# --------------------------------------------------------------------------------------------
# torch: fused backward kernels
# --------------------------------------------------------------------------------------------
def relu(x):
    """torch's own ReLU kernel (no tensor made for the scalar 0)."""
    import torch
    return torch.relu(x)


def relu_backward(grad_out, x):
    """torch's own ReLU backward kernel: ``grad_out`` where ``x > 0``, else 0."""
    import torch
    return torch.ops.aten.threshold_backward(grad_out, x, 0)


def linear(x, weight, bias):
    """torch's own linear layer: ``x Wᵀ + b`` as one ``addmm`` for 2-d ``x``."""
    import torch
    return torch.nn.functional.linear(x, weight, bias)


def softmax(x, dim: int):
    import torch
    return torch.softmax(x, dim)


def log_softmax(x, dim: int):
    import torch
    return torch.log_softmax(x, dim)
