"""Gradient checking: compare a hand-derived gradient with central finite differences.

For a function ``y = f(x₀, x₁, …)`` and a fixed random "upstream gradient" ``g`` (shape of
``y``), the scalar ``L = Σ g ⊙ f(…)`` has ``∂L/∂xᵢ = backward(g, …)``, the quantity every
``*_backward`` function returns. Its numerical estimate for element ``k`` of input ``i``::

    n_k = Σ g ⊙ (f(…, xᵢ + ε e_k, …) − f(…, xᵢ − ε e_k, …)) / 2ε

has error ``O(ε²)`` (truncation) plus ``O(u/ε)`` (rounding, ``u`` the machine epsilon), so
everything is done in float64, where ``ε = 1e-6`` balances the two; in float32 the rounding
term alone would be ~1e-2. Differences of outputs are taken *before* summing with ``g``, so
outputs that do not depend on element ``k`` contribute exactly 0.

The comparison, per element, is the relative error (CS231n) with a floor::

    err_k = |a_k − n_k| / max(|a_k|, |n_k|, floor · S)

where ``S`` is the largest gradient magnitude among all checked elements (every input and
parameter of the check). Rounding leaves an absolute error of roughly ``u·|y|/ε ≈ 1e-10`` in
every numerical derivative, so a derivative that is truly 0 (a Linear bias in front of a
BatchNorm) or tiny must not be divided by itself: elements below ``floor · S`` (default
``floor = 1e-3``) are compared with that scale instead, i.e. absolutely. A correct backward
gives ~1e-7 or less; ~1e-2 or more is a bug, or a kink (ReLU at 0, maxout ties) where the
function is not differentiable and the finite difference straddles the corner.

Two entry points::

    from coursekit.gradcheck import gradcheck, gradcheck_module
    r = gradcheck(F.elu, x, F.elu_backward)                   # f(x), backward(g, x)
    r = gradcheck(F.linear, (x, w, b), F.linear_backward)     # several inputs, tuple of grads
    r = gradcheck_module(nn.Linear(4, 3, dtype="float64"), x) # input and every parameter
    assert r < 1e-6; print(r)                                 # usable as a float; readable report
"""
from __future__ import annotations

import numbers
from typing import Callable, Sequence

import numpy as np

from . import _checks as check
from .backend import backend_of, device_of, dtype_name, to_numpy
from .nn import Module

__all__ = ["GradcheckResult", "gradcheck", "gradcheck_module", "numerical_gradient"]


# --------------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------------
class GradcheckResult(float):
    """The maximum relative error (a ``float``) with the details of the check.

    Attributes: ``max_rel_error``; ``names`` (one per checked array); ``errors`` (max relative
    error per name); ``worst`` = ``(name, index)`` of the worst element with its
    ``analytic_value`` and ``numeric_value``; ``analytic``/``numeric`` (NumPy float64 arrays per
    name; unchecked elements of ``numeric`` are NaN when ``samples`` was used); ``tol`` and
    ``ok`` (``max_rel_error < tol``); ``str(result)`` is a readable report.
    """

    def __new__(cls, value, **details):
        self = super().__new__(cls, value)
        self.__dict__.update(details)
        return self

    @property
    def max_rel_error(self) -> float:
        return float(self)

    @property
    def ok(self) -> bool:
        return float(self) < self.tol

    def __repr__(self):
        return (f"GradcheckResult(max_rel_error={float(self):.3e}, worst={self.worst!r}, "
                f"ok={self.ok})")

    def __str__(self):
        status = "PASS" if self.ok else "FAIL"
        lines = [f"gradcheck {status}: max relative error {float(self):.3e} (tol {self.tol:.0e}, "
                 f"eps {self.eps:.0e}, floor {self.floor:g} x scale {self.scale:.2e}, float64)"]
        width = max(len(n) for n in self.names) if self.names else 0
        for name in self.names:
            a = self.analytic[name]
            checked = int(np.sum(~np.isnan(self.numeric[name])))
            lines.append(f"  {name:<{width}}  shape {str(tuple(a.shape)):<14} checked {checked:>6}  "
                         f"max rel error {self.errors[name]:.3e}")
        if self.worst is not None:
            name, idx = self.worst
            lines.append(f"  worst: {name}[{', '.join(map(str, idx))}]  analytic {self.analytic_value:+.10e}"
                         f"  numeric {self.numeric_value:+.10e}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _is_array(a) -> bool:
    return check.kind(a) is not None


def _is_float_array(a) -> bool:
    return _is_array(a) and "float" in dtype_name(a)


def _like(arr_np, ref):
    """NumPy float64 ``arr_np`` as an array of ``ref``'s backend and device (float64)."""
    if backend_of(ref) == "numpy":
        return np.array(arr_np, dtype=np.float64)
    import torch
    return torch.tensor(np.asarray(arr_np, dtype=np.float64), dtype=torch.float64, device=device_of(ref))


def _to64(a):
    """A float64 copy of a floating array (same backend and device)."""
    return _like(to_numpy(a), a)


def _out_np(y, fn):
    if isinstance(y, numbers.Real):
        return np.asarray(float(y), dtype=np.float64)
    if not _is_array(y):
        raise TypeError(f"{fn}: f must return an array (or a float), got {type(y).__name__}")
    return to_numpy(y).astype(np.float64)


def _numeric(evaluate, base, g_np, eps, indices):
    """Central differences of ``Σ g ⊙ evaluate(a)`` over the elements ``indices`` of ``base``."""
    a = np.array(base, dtype=np.float64)
    out = np.full(a.shape, np.nan)
    flat = a.reshape(-1)
    res = out.reshape(-1)
    for k in indices:
        old = flat[k]
        flat[k] = old + eps
        hi = flat[k]
        y_plus = evaluate(a)
        flat[k] = old - eps
        lo = flat[k]
        y_minus = evaluate(a)
        flat[k] = old
        res[k] = float(np.sum(g_np * (y_plus - y_minus))) / (hi - lo)
    return out


def _indices(size, samples, rng):
    if samples is None or samples >= size:
        return range(size)
    return np.sort(rng.choice(size, size=samples, replace=False))


def _compare(names, analytic, numeric, *, tol, eps, floor):
    errors, worst, worst_err, av, nv = {}, None, -1.0, float("nan"), float("nan")
    scale = 0.0
    for name in names:
        a, n = analytic[name], numeric[name]
        mask = ~np.isnan(n)
        if mask.any():
            scale = max(scale, float(np.max(np.abs(a[mask]))), float(np.max(np.abs(n[mask]))))
    for name in names:
        a, n = analytic[name], numeric[name]
        mask = ~np.isnan(n)
        err = np.zeros(a.shape)
        denom = np.maximum(np.maximum(np.abs(a[mask]), np.abs(n[mask])), floor * scale)
        diff = np.abs(a[mask] - n[mask])
        err[mask] = np.divide(diff, denom, out=np.zeros_like(diff), where=denom > 0)
        errors[name] = float(err.max()) if err.size else 0.0
        if err.size and errors[name] > worst_err:
            worst_err = errors[name]
            idx = np.unravel_index(int(np.argmax(err)), err.shape)
            worst, av, nv = (name, tuple(int(i) for i in idx)), float(a[idx]), float(n[idx])
    value = max(errors.values()) if errors else 0.0
    return GradcheckResult(value, names=list(names), errors=errors, worst=worst, analytic_value=av,
                           numeric_value=nv, analytic=analytic, numeric=numeric, tol=tol, eps=eps,
                           floor=floor, scale=scale)


def _check_opts(fn, eps, tol, floor, samples):
    for name, v in (("eps", eps), ("tol", tol), ("floor", floor)):
        check.real(fn, name, v, low=0.0, low_open=True)
    if samples is not None:
        check.integer(fn, "samples", samples, low=1)


def _upstream(y, grad_out, rng, fn):
    """``g`` as (backend array, NumPy float64) for an output ``y``; random N(0, 1) by default."""
    y_np = _out_np(y, fn)
    if grad_out is None:
        g_np = rng.standard_normal(y_np.shape)
    else:
        g_np = _out_np(grad_out, fn)
        if g_np.shape != y_np.shape:
            raise ValueError(f"{fn}: grad_out must have the output's shape {y_np.shape}, got {g_np.shape}")
    ref = y if _is_array(y) else np.zeros(())
    return _like(g_np, ref), g_np


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def gradcheck(f: Callable, inputs, grad_fn: Callable, *, wrt=None, grad_out=None, eps: float = 1e-6,
              tol: float = 1e-6, floor: float = 1e-3, samples: int | None = None, seed: int = 0,
              names: Sequence[str] | None = None) -> GradcheckResult:
    """Check ``grad_fn`` (a hand-derived backward) against finite differences of ``f``.

    ``f(*inputs) -> y`` (an array or a scalar); ``grad_fn(grad_out, *inputs)`` returns
    ``∂L/∂inputs`` for ``L = Σ grad_out ⊙ y``, either one array (the gradient of ``inputs[0]``)
    or a tuple whose entry ``i`` is the gradient of ``inputs[i]`` (``None`` entries are
    skipped) — the calling convention of every ``coursekit.functional.*_backward``::

        gradcheck(F.tanh, x, lambda g, x: F.tanh_backward(g, F.tanh(x)))
        gradcheck(F.maxout, (x, 3), F.maxout_backward)                 # non-array inputs pass through
        gradcheck(F.cross_entropy, (logits, target), F.cross_entropy_backward)

    ``inputs``: one array or a tuple; floating arrays are copied to float64 (same backend and
    device), other items are passed unchanged. ``wrt``: positions of the inputs to check, for a
    ``grad_fn`` whose tuple is aligned with ``wrt`` instead of ``inputs``. ``grad_out``: the
    upstream gradient (default: standard normal, seeded by ``seed``). ``samples``: check only
    that many random elements per input (for large arrays). ``names``: labels for the report.

    Returns a :class:`GradcheckResult`: the max relative error as a float, plus details.
    """
    fn = "gradcheck"
    _check_opts(fn, eps, tol, floor, samples)
    if not callable(f) or not callable(grad_fn):
        raise TypeError(f"{fn}: f and grad_fn must be callable")
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    inputs = tuple(_to64(a) if _is_float_array(a) else a for a in inputs)
    rng = np.random.default_rng(seed)
    y = f(*inputs)
    g, g_np = _upstream(y, grad_out, rng, fn)
    grads = grad_fn(g, *inputs)

    if wrt is None:
        if isinstance(grads, (tuple, list)):
            pairs = [(i, gr) for i, gr in enumerate(grads) if gr is not None]
        else:
            pairs = [(0, grads)]
    else:
        wrt = (wrt,) if isinstance(wrt, numbers.Integral) else tuple(wrt)
        grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
        if len(grads) != len(wrt):
            raise ValueError(f"{fn}: grad_fn returned {len(grads)} gradients but wrt names {len(wrt)} inputs")
        pairs = list(zip(wrt, grads))
    for i, gr in pairs:
        if not 0 <= i < len(inputs) or not _is_float_array(inputs[i]):
            raise ValueError(f"{fn}: gradient {i} does not match a floating input (inputs has {len(inputs)} items)")
        if not _is_array(gr) or tuple(gr.shape) != tuple(inputs[i].shape):
            shape = tuple(gr.shape) if _is_array(gr) else type(gr).__name__
            raise ValueError(f"{fn}: the gradient of input {i} must have its shape {tuple(inputs[i].shape)}, "
                             f"got {shape}")
    if names is None:
        labels = ["x"] if len(inputs) == 1 else [f"inputs[{i}]" for i in range(len(inputs))]
    else:
        labels = list(names)
        if len(labels) != len(inputs):
            raise ValueError(f"{fn}: names must have one label per input ({len(inputs)}), got {len(labels)}")

    analytic, numeric = {}, {}
    for i, gr in pairs:
        ref = inputs[i]

        def evaluate(a, i=i, ref=ref):
            args = list(inputs)
            args[i] = _like(a, ref)
            return _out_np(f(*args), fn)

        base = to_numpy(ref)
        analytic[labels[i]] = to_numpy(gr).astype(np.float64)
        numeric[labels[i]] = _numeric(evaluate, base, g_np, eps, _indices(base.size, samples, rng))
    return _compare([labels[i] for i, _ in pairs], analytic, numeric, tol=tol, eps=eps, floor=floor)


def numerical_gradient(f: Callable, inputs, *, wrt: int = 0, grad_out=None, eps: float = 1e-6) -> np.ndarray:
    """Central-difference estimate of ``∂(Σ grad_out ⊙ f(*inputs))/∂inputs[wrt]`` (NumPy float64).

    ``grad_out`` defaults to ones (for a scalar ``f``, the plain derivative). Every element is
    perturbed, so keep arrays small.
    """
    fn = "numerical_gradient"
    _check_opts(fn, eps, 1.0, 1.0, None)
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    wrt = check.integer(fn, "wrt", wrt, low=0, high=len(inputs) - 1)
    if not _is_float_array(inputs[wrt]):
        raise ValueError(f"{fn}: wrt must index a floating array among the {len(inputs)} inputs, got {wrt!r}")
    inputs = tuple(_to64(a) if _is_float_array(a) else a for a in inputs)
    y_np = _out_np(f(*inputs), fn)
    g_np = np.ones(y_np.shape) if grad_out is None else _out_np(grad_out, fn)
    if g_np.shape != y_np.shape:
        raise ValueError(f"{fn}: grad_out must have the output's shape {y_np.shape}, got {g_np.shape}")
    ref = inputs[wrt]

    def evaluate(a):
        args = list(inputs)
        args[wrt] = _like(a, ref)
        return _out_np(f(*args), fn)

    base = to_numpy(ref)
    return _numeric(evaluate, base, g_np, eps, range(base.size))


def gradcheck_module(module, x, *, grad_out=None, eps: float = 1e-6, tol: float = 1e-6, floor: float = 1e-3,
                     samples: int | None = None, seed: int = 0, check_input: bool = True,
                     check_params: bool = True) -> GradcheckResult:
    """Check ``module.backward`` for the input ``x`` and every parameter's ``.grad``.

    The module is run in float64 (its parameters and buffers are cast for the check and restored
    afterwards, with their values, ``.grad`` and mode). Its forward must be deterministic: put
    Dropout in eval mode (``module.eval()``) or use ``p=0`` (a ``ValueError`` says so otherwise).
    BatchNorm in training mode is fine (its output does not depend on the running statistics).

    Names in the report are ``'x'`` and the dotted parameter names (``'0.weight'``, ...).
    """
    fn = "gradcheck_module"
    _check_opts(fn, eps, tol, floor, samples)
    check.instance(fn, "module", module, Module, "a coursekit.nn.Module")
    check.floating(fn, "x", x)

    params = list(module.named_parameters())
    # coursekit modules never write into arrays, so keeping references restores the exact state
    saved_params = [(p, p.data, p.grad) for _, p in params]
    saved_buffers = [(m, b, getattr(m, b)) for m in module.modules() for b in m._buffers]
    module.to(dtype="float64")
    try:
        x64 = _to64(x)
        rng = np.random.default_rng(seed)
        y = module(x64)
        again = _out_np(module(x64), fn)
        if not np.array_equal(_out_np(y, fn), again):
            raise ValueError(f"{fn}: the module's output changed between two calls on the same input "
                             f"(Dropout in training mode?); call module.eval() or use p=0")
        g, g_np = _upstream(y, grad_out, rng, fn)
        for _, p in params:
            p.grad = None
        module(x64)
        gx = module.backward(g)

        analytic, numeric, names = {}, {}, []
        if check_input:
            def eval_x(a):
                return _out_np(module(_like(a, x64)), fn)
            names.append("x")
            analytic["x"] = to_numpy(gx).astype(np.float64)
            base = to_numpy(x64)
            numeric["x"] = _numeric(eval_x, base, g_np, eps, _indices(base.size, samples, rng))
        if check_params:
            for name, p in params:
                if not p.requires_grad:
                    continue
                if p.grad is None:
                    raise ValueError(f"{fn}: parameter {name!r} got no gradient from module.backward")
                ref = p.data

                def eval_p(a, p=p, ref=ref):
                    p.data = _like(a, ref)
                    try:
                        return _out_np(module(x64), fn)
                    finally:
                        p.data = ref

                names.append(name)
                analytic[name] = to_numpy(p.grad).astype(np.float64)
                base = to_numpy(ref)
                numeric[name] = _numeric(eval_p, base, g_np, eps, _indices(base.size, samples, rng))
        return _compare(names, analytic, numeric, tol=tol, eps=eps, floor=floor)
    finally:
        for p, data, grad in saved_params:
            p.data, p.grad = data, grad
        for m, b, value in saved_buffers:
            object.__setattr__(m, b, value)
