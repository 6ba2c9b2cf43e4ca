"""Stateless layers, activations and losses, each with its hand-derived backward next to it.

Import as ``from coursekit import functional as F``. Every differentiable function ``name`` has
``name_backward(grad_out, ...)`` right below it, taking the upstream gradient ``grad_out``
(``∂L/∂out``, same shape as the output) plus what the derivative needs, with the same
hyperparameter keywords, and returning ``∂L/∂input`` (a tuple when there are several inputs).

Conventions (shared with ``torch.nn.functional``: names, argument names and defaults):

* Kernels are written once against the array API (``xp = array_namespace(x)``): they run on
  NumPy and torch (CPU and CUDA), keep the input's dtype and device, and never write into their
  inputs.
* Backward functions of element-wise activations take the *input* ``x``, except
  :func:`sigmoid_backward`, :func:`tanh_backward`, :func:`softmax_backward` and
  :func:`log_softmax_backward`, which take the forward *output* because their derivative is
  cheapest in terms of it (``σ' = σ(1 − σ)``); torch's internal kernels make the same choice.
* Where a function is not differentiable (ReLU at 0, the kinks of maxout), the gradient follows
  torch: ``relu'(0) = 0``, ``leaky_relu'(0) = negative_slope``, ``elu'(0) = alpha``.
* Layers with randomness or state hand back what their backward pass needs instead of keeping
  it: ``dropout(..., return_mask=True) -> (y, mask)`` and ``dropout_backward(grad_out, mask, p)``;
  ``batch_norm(...) -> BatchNormOutput(out, running_mean, running_var, cache)`` (the *new*
  running statistics are returned, the inputs are never written) and
  ``batch_norm_backward(grad_out, cache)``.
* Bad arguments raise ``ValueError``/``TypeError`` naming the function and the argument.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

from array_api_compat import device as _device

from .backend import (array_namespace, backend_of, check_floating, check_same_backend, device_of,
                      batch_sum, blockwise, dtype_name, generator_like, positive_mask, sum_product)

__all__ = [
    "ALPHA", "LAMBDA",
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "prelu", "prelu_backward",
    "elu", "elu_backward", "selu", "selu_backward", "sigmoid", "sigmoid_backward",
    "tanh", "tanh_backward", "softplus", "softplus_backward", "maxout", "maxout_backward",
    "linear", "linear_backward",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "cross_entropy", "cross_entropy_backward", "mse_loss", "mse_loss_backward",
    "dropout", "dropout_backward",
    "BatchNormCache", "BatchNormOutput", "batch_norm", "batch_norm_backward",
]

#: SELU's α and λ (Klambauer et al. 2017, eq. 14), full precision. ``coursekit.snn`` re-exports them.
ALPHA = 1.6732632423543772848170429916717
LAMBDA = 1.0507009873554804934193349852946


# --------------------------------------------------------------------------------------------
# validation helpers (messages name the function and the argument)
# --------------------------------------------------------------------------------------------
def _ns(fn: str, x, arg: str = "x"):
    """Namespace of a floating array ``x``; ``TypeError`` otherwise."""
    check_floating(x, fn, arg)
    return array_namespace(x)


def _ns_many(fn: str, **arrays):
    """Namespace shared by several floating arrays (``None`` entries are skipped)."""
    present = {k: v for k, v in arrays.items() if v is not None}
    for name, a in present.items():
        check_floating(a, fn, name)
    check_same_backend(fn, **present)
    names = list(present)
    first = present[names[0]]
    for name in names[1:]:
        if present[name].dtype != first.dtype:
            raise TypeError(f"{fn}: {name} must have the dtype of {names[0]} ({dtype_name(first)}), "
                            f"got {dtype_name(present[name])}")
    return array_namespace(*present.values())


def _real(fn: str, name: str, value, *, low=-math.inf, high=math.inf, low_open=False,
          high_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {type(value).__name__}")
    value = float(value)
    ok_lo = value > low if low_open else value >= low
    ok_hi = value < high if high_open else value <= high
    if math.isnan(value) or not (ok_lo and ok_hi):
        rng = ("(" if low_open else "[") + f"{low:g}, {high:g}" + (")" if high_open else "]")
        raise ValueError(f"{fn}: {name} must be in {rng}, got {value!r}")
    return value


def _int(fn: str, name: str, value, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: {name} must be an integer, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{fn}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _dim(fn: str, dim, ndim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{fn}: dim must be an integer, got {type(dim).__name__}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{fn}: dim must be in [{-max(ndim, 1)}, {max(ndim, 1) - 1}] for a "
                         f"{ndim}-d input, got {dim}")
    return int(dim)


def _same_shape(fn: str, a, a_name: str, shape, what: str):
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{fn}: {a_name} must have the shape of {what} {tuple(shape)}, "
                         f"got {tuple(a.shape)}")


def _grad(fn: str, grad_out, shape, what: str = "the forward output"):
    """Check ``grad_out``: floating and shaped like the forward output."""
    check_floating(grad_out, fn, "grad_out")
    _same_shape(fn, grad_out, "grad_out", shape, what)


_REDUCTIONS = ("mean", "sum", "none")


def _reduction(fn: str, reduction) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


# --------------------------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------------------------
def relu(x):
    """Rectified linear unit ``max(x, 0)``.  x: (...) -> (...)."""
    xp = _ns("relu", x)
    return xp.maximum(x, 0.0)


def relu_backward(grad_out, x):
    """``∂L/∂x = grad_out · 1[x > 0]`` (the gradient at exactly 0 is 0, as in torch)."""
    _ns("relu_backward", x)
    _grad("relu_backward", grad_out, x.shape, "x")
    return grad_out * positive_mask(x)  # a 0/1 factor: several times faster than where(x > 0, g, 0)


def leaky_relu(x, negative_slope=0.01):
    """Leaky ReLU ``x`` for ``x > 0``, ``negative_slope · x`` otherwise.  x: (...) -> (...)."""
    xp = _ns("leaky_relu", x)
    a = _real("leaky_relu", "negative_slope", negative_slope)
    return xp.where(x > 0, x, x * a)


def leaky_relu_backward(grad_out, x, negative_slope=0.01):
    """``∂L/∂x = grad_out`` where ``x > 0``, ``negative_slope · grad_out`` elsewhere (also at 0)."""
    xp = _ns("leaky_relu_backward", x)
    a = _real("leaky_relu_backward", "negative_slope", negative_slope)
    _grad("leaky_relu_backward", grad_out, x.shape, "x")
    return xp.where(x > 0, grad_out, grad_out * a)


def _prelu_shape(fn, x, weight):
    """Shape to which ``weight`` (1,) or (C,) broadcasts against ``x`` (channels on dim 1)."""
    if weight.ndim != 1:
        raise ValueError(f"{fn}: weight must be 1-d of shape (1,) or (C,), got shape {tuple(weight.shape)}")
    c = weight.shape[0]
    if c == 1:
        return (1,) * max(x.ndim, 1)
    if x.ndim < 2 or x.shape[1] != c:
        channels = x.shape[1] if x.ndim >= 2 else 1
        raise ValueError(f"{fn}: weight must have shape (1,) or (C,) with C = x.shape[1] = "
                         f"{channels}, got shape {tuple(weight.shape)}")
    return (1, c) + (1,) * (x.ndim - 2)


def prelu(x, weight):
    """Parametric ReLU (He et al. 2015): ``max(x, 0) + w · min(x, 0)``.

    x: (N, C, ...) or any shape when ``weight`` has shape (1,); weight: (1,) (one slope shared
    by every channel) or (C,) (one slope per channel, channels on dim 1, as in torch).
    """
    fn = "prelu"
    xp = _ns_many(fn, x=x, weight=weight)
    w = xp.reshape(weight, _prelu_shape(fn, x, weight))
    return xp.where(x > 0, x, x * w)


def prelu_backward(grad_out, x, weight):
    """Returns ``(grad_x, grad_weight)``.

    ``∂L/∂x = grad_out · (1[x > 0] + w · 1[x ≤ 0])`` and
    ``∂L/∂w_c = Σ grad_out · min(x, 0)`` summed over every position of channel ``c`` (over
    everything when ``weight`` has shape (1,)).
    """
    fn = "prelu_backward"
    xp = _ns_many(fn, x=x, weight=weight)
    shape = _prelu_shape(fn, x, weight)
    _grad(fn, grad_out, x.shape, "x")
    w = xp.reshape(weight, shape)
    pos = x > 0
    grad_x = xp.where(pos, grad_out, grad_out * w)
    gx_neg = xp.where(pos, 0, grad_out * x)
    if weight.shape[0] == 1:
        grad_w = xp.reshape(xp.sum(gx_neg), (1,))
    else:
        axes = (0,) + tuple(range(2, x.ndim))
        grad_w = xp.sum(gx_neg, axis=axes)
    return grad_x, grad_w


def elu(x, alpha=1.0):
    """ELU (Clevert et al. 2016): ``x`` for ``x > 0``, ``alpha · (eˣ − 1)`` otherwise.

    Written branch-free as ``max(x, 0) + alpha · expm1(min(x, 0))`` (no overflow for large x).
    """
    xp = _ns("elu", x)
    a = _real("elu", "alpha", alpha)
    return xp.maximum(x, 0) + a * xp.expm1(xp.minimum(x, 0))


def elu_backward(grad_out, x, alpha=1.0):
    """``∂L/∂x = grad_out`` for ``x > 0``, ``grad_out · alpha · eˣ`` for ``x ≤ 0`` (torch)."""
    xp = _ns("elu_backward", x)
    a = _real("elu_backward", "alpha", alpha)
    _grad("elu_backward", grad_out, x.shape, "x")
    return xp.where(x > 0, grad_out, grad_out * (a * xp.exp(xp.minimum(x, 0))))


def selu(x):
    """SELU (Klambauer et al. 2017): ``λ x`` for ``x > 0``, ``λ α (eˣ − 1)`` otherwise.

    With :data:`ALPHA` and :data:`LAMBDA` chosen so that zero-mean, unit-variance inputs keep
    zero mean and unit variance. Branch-free: with ``m = min(x, 0)``,
    ``λα (exp(m) − 1) + λ (x − m)`` (``x − m = max(x, 0)`` exactly), in place on temporaries.
    ``exp(m) − 1`` rather than ``expm1``: NumPy's float32 ``exp`` is several times faster; the
    absolute error stays at a few ``u·λα`` (``u`` the unit roundoff), only the *relative* error
    grows for tiny negative ``x``.
    """
    xp = _ns("selu", x)

    def block(x):           # a chain of element-wise passes, run block by block (cache-friendly)
        m = xp.minimum(x, 0.0)
        out = xp.exp(m)
        out -= 1.0              # exactly 0 where x > 0
        out *= LAMBDA * ALPHA
        pos = x - m             # max(x, 0), exactly
        pos *= LAMBDA
        out += pos
        return out
    return blockwise(block, x)


def selu_backward(grad_out, x, *, out=None):
    """``∂L/∂x = grad_out · λ`` for ``x > 0``, ``grad_out · λ α eˣ`` for ``x ≤ 0``.

    From ``x`` alone: ``λα·exp(min(x, 0))`` equals ``λα eˣ`` for ``x ≤ 0`` and ``λα`` for ``x > 0``,
    and adding ``λ(1 − α)·1[x > 0]`` gives the derivative everywhere. If the forward output
    ``out = selu(x)`` is passed (as :class:`coursekit.nn.SELU` does), no exponential is needed:
    ``λα eˣ = out + λα`` for ``x ≤ 0``.
    """
    fn = "selu_backward"
    xp = _ns(fn, x)
    _grad(fn, grad_out, x.shape, "x")
    if out is None:
        def block(grad_out, x):
            d = xp.exp(xp.minimum(x, 0.0))
            d *= LAMBDA * ALPHA
            step = xp.astype(x > 0, x.dtype)
            step *= LAMBDA * (1.0 - ALPHA)
            d += step
            d *= grad_out
            return d
        return blockwise(block, grad_out, x)
    # (out + λα − λ)·1[x ≤ 0] + λ: exactly λ where x > 0, out + λα = λα eˣ elsewhere
    check_floating(out, fn, "out")
    _same_shape(fn, out, "out", x.shape, "x")

    def block_out(grad_out, x, out):
        d = out + (LAMBDA * ALPHA - LAMBDA)
        d *= x <= 0
        d += LAMBDA
        d *= grad_out
        return d
    return blockwise(block_out, grad_out, x, out)


def sigmoid(x):
    """Logistic sigmoid ``σ(x) = 1 / (1 + e⁻ˣ)``, computed without overflow.

    With ``e = exp(−|x|) ∈ (0, 1]``: ``σ(x) = 1/(1+e)`` for ``x ≥ 0`` and ``e/(1+e)`` for ``x < 0``.
    """
    xp = _ns("sigmoid", x)
    e = xp.exp(-xp.abs(x))
    r = 1.0 / (1.0 + e)
    return xp.where(x >= 0, r, e * r)


def sigmoid_backward(grad_out, out):
    """``∂L/∂x = grad_out · σ(x)(1 − σ(x))``; takes the forward output ``out = σ(x)``."""
    _ns("sigmoid_backward", out, "out")
    _grad("sigmoid_backward", grad_out, out.shape, "out")
    return grad_out * (out * (1.0 - out))


def tanh(x):
    """Hyperbolic tangent.  x: (...) -> (...)."""
    xp = _ns("tanh", x)
    return xp.tanh(x)


def tanh_backward(grad_out, out):
    """``∂L/∂x = grad_out · (1 − tanh²x)``; takes the forward output ``out = tanh(x)``."""
    _ns("tanh_backward", out, "out")
    _grad("tanh_backward", grad_out, out.shape, "out")
    return grad_out * (1.0 - out * out)


def softplus(x, beta=1.0, threshold=20.0):
    """Softplus ``(1/β) · log(1 + e^{βx})``, a smooth ReLU; linear (``= x``) where ``βx > threshold``.

    The switch to the identity above ``threshold`` follows torch (``log1p(e^{βx})/β = x`` to
    float precision there). ``beta`` must be positive.
    """
    fn = "softplus"
    xp = _ns(fn, x)
    beta = _real(fn, "beta", beta, low=0.0, low_open=True)
    threshold = _real(fn, "threshold", threshold)
    bx = x * beta
    soft = xp.log1p(xp.exp(xp.minimum(bx, threshold)))
    if beta != 1.0:
        soft = soft / beta
    return xp.where(bx > threshold, x, soft)


def softplus_backward(grad_out, x, beta=1.0, threshold=20.0):
    """``∂L/∂x = grad_out · σ(βx)`` (``= grad_out`` where ``βx > threshold``)."""
    fn = "softplus_backward"
    xp = _ns(fn, x)
    beta = _real(fn, "beta", beta, low=0.0, low_open=True)
    threshold = _real(fn, "threshold", threshold)
    _grad(fn, grad_out, x.shape, "x")
    bx = x * beta
    z = xp.exp(xp.minimum(bx, threshold))
    return xp.where(bx > threshold, grad_out, grad_out * (z / (z + 1.0)))


def _maxout_view(fn, x, pieces):
    pieces = _int(fn, "pieces", pieces, low=1)
    if x.ndim < 1 or x.shape[-1] % pieces:
        last = x.shape[-1] if x.ndim else None
        raise ValueError(f"{fn}: the last dim of x must be a multiple of pieces={pieces}, got {last} "
                         f"(x of shape {tuple(x.shape)})")
    return pieces, tuple(x.shape[:-1]) + (x.shape[-1] // pieces, pieces)


def maxout(x, pieces):
    """Maxout (Goodfellow et al. 2013): the max over groups of ``pieces`` consecutive features.

    x: (..., units·pieces) -> (..., units). Grouping: ``x`` is viewed as (..., units, pieces)
    (C order), so unit ``j`` is the max of features ``j·pieces, …, j·pieces + pieces − 1``.
    In a network, ``x`` is the output of a linear layer with ``units·pieces`` outputs.
    """
    xp = _ns("maxout", x)
    pieces, shape = _maxout_view("maxout", x, pieces)
    return xp.max(xp.reshape(x, shape), axis=-1)


def maxout_backward(grad_out, x, pieces):
    """Routes ``grad_out`` to the arg-max piece of each unit; the other pieces get 0.

    Ties (several pieces equal to the max) send the whole gradient to the *first* of them (the
    lowest index, as ``argmax`` returns), so every unit passes its gradient to exactly one piece.
    """
    fn = "maxout_backward"
    xp = _ns(fn, x)
    pieces, shape = _maxout_view(fn, x, pieces)
    _grad(fn, grad_out, shape[:-1])
    xr = xp.reshape(x, shape)
    idx = xp.argmax(xr, axis=-1, keepdims=True)
    hit = idx == xp.arange(pieces, device=_device(x))
    return xp.reshape(grad_out[..., None] * hit, tuple(x.shape))


# --------------------------------------------------------------------------------------------
# linear layer
# --------------------------------------------------------------------------------------------
def _check_linear(fn, x, weight, bias):
    if weight.ndim != 2:
        raise ValueError(f"{fn}: weight must be 2-d (out_features, in_features), got shape "
                         f"{tuple(weight.shape)}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"{fn}: the last dim of x must equal in_features={weight.shape[1]}, got x of "
                         f"shape {tuple(x.shape)}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"{fn}: bias must have shape (out_features,) = ({weight.shape[0]},), got "
                         f"{tuple(bias.shape)}")


def linear(x, weight, bias=None):
    """Affine map ``y = x Wᵀ + b``.

    x: (..., in_features); weight: (out_features, in_features) (torch's layout); bias:
    (out_features,) or None  ->  y: (..., out_features).
    """
    _ns_many("linear", x=x, weight=weight, bias=bias)
    _check_linear("linear", x, weight, bias)
    y = x @ weight.T  # the operator: no wrapper overhead on torch
    if bias is not None:
        y += bias
    return y


def linear_backward(grad_out, x, weight, bias=None):
    """Returns ``(grad_x, grad_weight, grad_bias)`` (``grad_bias`` is None when ``bias`` is None).

    With ``G = grad_out`` and the leading dims flattened (``X``: (M, in), ``G``: (M, out)):
    ``∂L/∂x = G W``, ``∂L/∂W = Gᵀ X``, ``∂L/∂b = Σ_rows G``.
    """
    fn = "linear_backward"
    xp = _ns_many(fn, x=x, weight=weight, bias=bias)
    _check_linear(fn, x, weight, bias)
    out_f, in_f = weight.shape
    _grad(fn, grad_out, tuple(x.shape[:-1]) + (out_f,))
    grad_x = grad_out @ weight
    g2 = xp.reshape(grad_out, (-1, out_f))
    grad_w = g2.T @ xp.reshape(x, (-1, in_f))
    grad_b = xp.sum(g2, axis=0) if bias is not None else None
    return grad_x, grad_w, grad_b


# --------------------------------------------------------------------------------------------
# softmax family and losses
# --------------------------------------------------------------------------------------------
def softmax(x, dim=-1):
    """``softmax(x)_i = e^{x_i − m} / Σ_j e^{x_j − m}`` along ``dim``, with ``m = max_j x_j``.

    Subtracting the max changes nothing mathematically (shift invariance) and keeps ``exp`` from
    overflowing, so inputs of size ~1e4 are fine.  x: (...) -> (...), rows along ``dim`` sum to 1.
    """
    xp = _ns("softmax", x)
    dim = _dim("softmax", dim, x.ndim)
    e = xp.exp(x - xp.max(x, axis=dim, keepdims=True))
    e /= xp.sum(e, axis=dim, keepdims=True)
    return e


def softmax_backward(grad_out, out, dim=-1):
    """``∂L/∂x = s ⊙ (g − ⟨g, s⟩)`` along ``dim``, with ``s = out`` the softmax output.

    (The Jacobian is ``diag(s) − s sᵀ``.)
    """
    fn = "softmax_backward"
    xp = _ns(fn, out, "out")
    dim = _dim(fn, dim, out.ndim)
    _grad(fn, grad_out, out.shape, "out")
    return out * (grad_out - xp.sum(grad_out * out, axis=dim, keepdims=True))


def log_softmax(x, dim=-1):
    """``log_softmax(x)_i = (x_i − m) − log Σ_j e^{x_j − m}`` along ``dim`` (``m = max_j x_j``).

    Stable for ``|x| ~ 1e4``: the largest entry of every row contributes ``e⁰ = 1`` to the sum.
    """
    xp = _ns("log_softmax", x)
    dim = _dim("log_softmax", dim, x.ndim)
    z = x - xp.max(x, axis=dim, keepdims=True)
    z -= xp.log(xp.sum(xp.exp(z), axis=dim, keepdims=True))
    return z


def log_softmax_backward(grad_out, out, dim=-1):
    """``∂L/∂x = g − softmax(x) · Σ g`` along ``dim``; takes ``out = log_softmax(x)``."""
    fn = "log_softmax_backward"
    xp = _ns(fn, out, "out")
    dim = _dim(fn, dim, out.ndim)
    _grad(fn, grad_out, out.shape, "out")
    return grad_out - xp.exp(out) * xp.sum(grad_out, axis=dim, keepdims=True)


def _check_target(fn, logits, target):
    if logits.ndim != 2:
        raise ValueError(f"{fn}: logits must be 2-d (N, C), got shape {tuple(logits.shape)}")
    try:
        tb = backend_of(target)
    except TypeError:
        raise TypeError(f"{fn}: target must be a numpy array or torch tensor of class indices, "
                        f"got {type(target).__name__}") from None
    if (tb, device_of(target)) != (backend_of(logits), device_of(logits)):
        raise TypeError(f"{fn}: target must share the backend and device of logits "
                        f"({backend_of(logits)}:{device_of(logits)}), got {tb}:{device_of(target)}")
    if "int" not in dtype_name(target):
        raise TypeError(f"{fn}: target must hold integer class indices (int64 / torch.long), got "
                        f"{dtype_name(target)}")
    n, c = logits.shape
    if tuple(target.shape) != (n,):
        raise ValueError(f"{fn}: target must have shape (N,) = ({n},), got {tuple(target.shape)}")
    if n:
        xp = array_namespace(target)
        lo, hi = int(xp.min(target)), int(xp.max(target))
        if lo < 0 or hi >= c:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{fn}: target must hold class indices in [0, {c - 1}], got {bad}")


def _onehot(xp, target, c, like):
    """Boolean (N, C) matrix with ``True`` at ``(i, target[i])``."""
    return xp.reshape(target, (-1, 1)) == xp.arange(c, dtype=target.dtype, device=_device(like))


def cross_entropy(logits, target, reduction="mean"):
    """Softmax cross-entropy with integer class targets.

    ``ℓ_i = −log softmax(logits_i)[target_i] = logsumexp(logits_i) − logits_i[target_i]``.
    logits: (N, C) floating; target: (N,) integer class indices in [0, C) (int64 NumPy /
    ``torch.long``, same backend and device as ``logits``). Returns the mean over the batch
    (a 0-d array; ``reduction='sum'`` / ``'none'`` give the sum / the (N,) vector, as in torch).
    """
    fn = "cross_entropy"
    xp = _ns(fn, logits, "logits")
    _check_target(fn, logits, target)
    reduction = _reduction(fn, reduction)
    logp = log_softmax(logits, dim=1)
    hit = _onehot(xp, target, logits.shape[1], logits)
    nll = -xp.sum(xp.where(hit, logp, 0.0), axis=1)  # where, not logp * hit: -inf logits stay finite
    if reduction == "none":
        return nll
    total = xp.sum(nll)
    return total / logits.shape[0] if reduction == "mean" else total


def cross_entropy_backward(grad_out, logits, target, reduction="mean"):
    """``∂L/∂logits = grad_out · (softmax(logits) − onehot(target)) / N`` for ``'mean'``.

    ``grad_out`` is ``∂L/∂loss``: a scalar (1.0 when the loss is the final objective) for
    ``'mean'``/``'sum'`` (no ``/N`` for ``'sum'``), an (N,) array for ``'none'``.
    """
    fn = "cross_entropy_backward"
    xp = _ns(fn, logits, "logits")
    _check_target(fn, logits, target)
    reduction = _reduction(fn, reduction)
    n, c = logits.shape
    d = softmax(logits, dim=1)
    d -= xp.astype(_onehot(xp, target, c, logits), d.dtype)
    if reduction == "none":
        _grad(fn, grad_out, (n,), "the per-sample losses")
        return d * xp.reshape(grad_out, (-1, 1))
    scale = 1.0 / n if (reduction == "mean" and n) else 1.0
    if isinstance(grad_out, numbers.Real):
        return d * (float(grad_out) * scale)
    _grad(fn, grad_out, (), "the scalar loss")
    return d * (grad_out * scale)


def mse_loss(input, target, reduction="mean"):
    """Squared error ``mean((input − target)²)`` over every element (``'sum'``/``'none'`` too).

    input, target: same shape (no broadcasting), same backend/device/dtype.
    """
    fn = "mse_loss"
    xp = _ns_many(fn, input=input, target=target)
    _same_shape(fn, target, "target", input.shape, "input")
    reduction = _reduction(fn, reduction)
    d = input - target
    d *= d
    if reduction == "none":
        return d
    total = xp.sum(d)
    return total / math.prod(input.shape) if reduction == "mean" else total


def mse_loss_backward(grad_out, input, target, reduction="mean"):
    """``∂L/∂input = grad_out · 2 (input − target) / n`` (``n`` = number of elements, for
    ``'mean'``). The gradient with respect to ``target`` is its negative (not returned)."""
    fn = "mse_loss_backward"
    _ns_many(fn, input=input, target=target)
    _same_shape(fn, target, "target", input.shape, "input")
    reduction = _reduction(fn, reduction)
    d = input - target
    if reduction == "none":
        _grad(fn, grad_out, input.shape, "input")
        d *= 2.0
        return d * grad_out
    scale = 2.0 / math.prod(input.shape) if reduction == "mean" else 2.0
    if isinstance(grad_out, numbers.Real):
        d *= float(grad_out) * scale
        return d
    _grad(fn, grad_out, (), "the scalar loss")
    return d * (grad_out * scale)


# --------------------------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------------------------
def _dropout_p(fn, p):
    return _real(fn, "p", p, low=0.0, high=1.0, high_open=True)


def dropout(x, p=0.5, training=True, generator=None, *, return_mask=False):
    """Inverted dropout (Srivastava et al. 2014): ``y = x · m / (1 − p)``, ``m_i ~ Bernoulli(1 − p)``.

    ``p`` is the probability of *dropping* a unit (torch's convention), in [0, 1). Scaling the
    kept units by ``1/(1 − p)`` keeps ``E[y] = x``, so nothing changes at test time:
    ``training=False`` (or ``p = 0``) returns ``x`` itself.

    The mask ``m`` (0/1 in ``x``'s dtype, shape of ``x``) is drawn from
    ``generator`` (a :class:`coursekit.backend.Generator` on ``x``'s backend and device; the
    backend's default generator when None). With ``return_mask=True`` the function returns
    ``(y, m)`` — ``m`` is ``None`` when nothing was dropped — and :func:`dropout_backward` takes
    ``m``: the backward pass must reuse the forward's mask.
    """
    fn = "dropout"
    _ns(fn, x)
    p = _dropout_p(fn, p)
    if not isinstance(training, bool):
        raise TypeError(f"{fn}: training must be a bool, got {type(training).__name__}")
    if not training or p == 0.0:
        return (x, None) if return_mask else x
    gen = generator_like(x, generator, fn=fn)
    mask = gen.keep_mask(x.shape, 1.0 - p, dtype=dtype_name(x))
    y = x * mask
    y *= 1.0 / (1.0 - p)
    return (y, mask) if return_mask else y


def dropout_backward(grad_out, mask, p=0.5):
    """``∂L/∂x = grad_out · m / (1 − p)`` with the forward's mask ``m``; ``grad_out`` if ``m`` is None."""
    fn = "dropout_backward"
    p = _dropout_p(fn, p)
    check_floating(grad_out, fn, "grad_out")
    if mask is None:
        return grad_out
    _ns_many(fn, grad_out=grad_out, mask=mask)
    _same_shape(fn, grad_out, "grad_out", mask.shape, "mask")
    g = grad_out * mask
    g *= 1.0 / (1.0 - p)
    return g


# --------------------------------------------------------------------------------------------
# batch normalization
# --------------------------------------------------------------------------------------------
class BatchNormCache(NamedTuple):
    """What :func:`batch_norm_backward` needs from the forward pass.

    The normalized input is ``x̂ = x_centered · inv_std`` (per channel); it is not stored, which
    saves a full pass over the data in the forward (the backward folds ``inv_std`` into
    per-channel factors instead).
    """
    x_centered: Any  #: ``x − μ`` (batch mean, or running mean in eval mode), shape of x
    inv_std: Any     #: ``1/sqrt(σ² + eps)``, shape (C,)
    weight: Any      #: γ (C,) or None
    has_bias: bool   #: whether β was given (then its gradient is returned)
    training: bool   #: True: batch statistics (μ, σ² depend on x); False: running statistics


class BatchNormOutput(NamedTuple):
    """Result of :func:`batch_norm`: the output, the *new* running statistics, the cache."""
    out: Any
    running_mean: Any
    running_var: Any
    cache: BatchNormCache


def _bn_layout(fn, x, c_arrays):
    if x.ndim < 2:
        raise ValueError(f"{fn}: x must be at least 2-d (N, C) or (N, C, L), got shape {tuple(x.shape)}")
    c = x.shape[1]
    for name, a in c_arrays.items():
        if a is not None and tuple(a.shape) != (c,):
            raise ValueError(f"{fn}: {name} must have shape (C,) = ({c},), got {tuple(a.shape)}")
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, c) + (1,) * (x.ndim - 2)
    return c, axes, bshape


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalization (Ioffe & Szegedy 2015), torch's ``F.batch_norm`` without in-place updates.

    For each channel ``c`` (dim 1), with statistics over the batch and any trailing dims::

        μ = mean(x),  σ² = mean((x − μ)²)            (biased: used to normalize)
        x̂ = (x − μ) / sqrt(σ² + eps),   y = γ x̂ + β

    x: (N, C) or (N, C, L) (any (N, C, *)); running_mean, running_var, weight γ, bias β: (C,).

    ``training=True`` normalizes with the batch statistics and, if running statistics are given,
    computes new ones ``r ← (1 − momentum) r + momentum · stat`` using the *unbiased* batch
    variance ``σ² · M/(M − 1)`` (M values per channel), as torch does. ``training=False``
    normalizes with ``running_mean``/``running_var`` (required).

    **Deviation from torch:** torch updates ``running_mean``/``running_var`` in place; here the
    inputs are never written, and the result is a :class:`BatchNormOutput`
    ``(out, running_mean, running_var, cache)`` holding the *new* running statistics (the given
    ones when nothing was updated, None when none were given) and the cache for
    :func:`batch_norm_backward`. ``F.batch_norm(...).out`` is torch's return value.
    """
    fn = "batch_norm"
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{fn}: running_mean and running_var must be given together (or both None)")
    xp = _ns_many(fn, x=x, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    c, axes, bshape = _bn_layout(fn, x, dict(running_mean=running_mean, running_var=running_var,
                                             weight=weight, bias=bias))
    if not isinstance(training, bool):
        raise TypeError(f"{fn}: training must be a bool, got {type(training).__name__}")
    momentum = _real(fn, "momentum", momentum, low=0.0, high=1.0)
    eps = _real(fn, "eps", eps, low=0.0, low_open=True)
    m = math.prod(x.shape) // c if c else 0
    if training:
        if m <= 1:
            raise ValueError(f"{fn}: expected more than 1 value per channel when training, got x of "
                             f"shape {tuple(x.shape)}")
        mean = xp.reshape(batch_sum(x, axes) * (1.0 / m), bshape)  # BLAS ones @ x on NumPy
        xc = x - mean
        var = sum_product(xc, xc, axes) * (1.0 / m)        # (C,), fused: no (x - μ)² temporary
        inv_std = 1.0 / xp.sqrt(var + eps)
        if running_mean is not None:
            new_mean = running_mean * (1.0 - momentum) + xp.reshape(mean, (c,)) * momentum
            new_var = running_var * (1.0 - momentum) + var * (momentum * m / (m - 1))
        else:
            new_mean = new_var = None
    else:
        if running_mean is None:
            raise ValueError(f"{fn}: running_mean and running_var are required when training=False")
        inv_std = 1.0 / xp.sqrt(running_var + eps)
        xc = x - xp.reshape(running_mean, bshape)
        new_mean, new_var = running_mean, running_var
    # y = x̂ γ + β = (x − μ) · (γ / sqrt(σ² + eps)) + β: one multiply by a per-channel factor
    out = xc * xp.reshape(inv_std if weight is None else inv_std * weight, bshape)
    if bias is not None:
        out += xp.reshape(bias, bshape)
    return BatchNormOutput(out, new_mean, new_var, BatchNormCache(xc, inv_std, weight, bias is not None, training))


def batch_norm_backward(grad_out, cache):
    """Returns ``(grad_x, grad_weight, grad_bias)`` (None for γ/β that were not given).

    ``∂L/∂β = Σ g``, ``∂L/∂γ = Σ g · x̂`` (sums over all but the channel dim). With batch
    statistics (``training=True``) the compact form, M values per channel::

        ∂L/∂x = γ / sqrt(σ² + eps) · (g − Σg / M − x̂ · Σ(g x̂) / M)

    (the two subtracted terms are the paths through μ and σ²). With running statistics the
    normalization is a fixed affine map: ``∂L/∂x = γ / sqrt(σ² + eps) · g``.
    """
    fn = "batch_norm_backward"
    if not isinstance(cache, BatchNormCache):
        raise TypeError(f"{fn}: cache must be the BatchNormCache returned by batch_norm, got "
                        f"{type(cache).__name__}")
    xc, inv_std, weight, has_bias, training = cache
    xp = _ns_many(fn, grad_out=grad_out, x_centered=xc)
    _same_shape(fn, grad_out, "grad_out", xc.shape, "the forward output")
    c, axes, bshape = _bn_layout(fn, xc, {})
    scale = inv_std if weight is None else inv_std * weight          # γ / sqrt(σ² + eps), (C,)
    g_bias = batch_sum(grad_out, axes)                                 # BLAS ones @ g on NumPy
    g_weight = sum_product(grad_out, xc, axes) * inv_std              # Σ g x̂ = inv_std · Σ g (x − μ)
    if training:
        m = math.prod(xc.shape) // c
        gx = xc * xp.reshape(g_weight * inv_std * (-1.0 / m), bshape)  # −x̂ · Σ(g x̂) / M
        gx += grad_out
        gx -= xp.reshape(g_bias * (1.0 / m), bshape)
        gx *= xp.reshape(scale, bshape)
    else:
        gx = grad_out * xp.reshape(scale, bshape)
    return gx, (g_weight if weight is not None else None), (g_bias if has_bias else None)


# --------------------------------------------------------------------------------------------
# layer normalization
# --------------------------------------------------------------------------------------------
__all__ += ["layer_norm", "layer_norm_backward"]


def _ln_shape(fn, x, normalized_shape, params):
    """``normalized_shape`` as a tuple that ends ``x``'s shape; γ/β must have that shape."""
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    if not isinstance(normalized_shape, (tuple, list)) or any(
            isinstance(d, bool) or not isinstance(d, numbers.Integral) for d in normalized_shape):
        raise TypeError(f"{fn}: normalized_shape must be an integer or a tuple of integers, got "
                        f"{normalized_shape!r}")
    if not normalized_shape:
        raise ValueError(f"{fn}: normalized_shape must not be empty")
    shape = tuple(int(d) for d in normalized_shape)
    if len(shape) > x.ndim or tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise ValueError(f"{fn}: normalized_shape {shape} must match the last dims of x, got x of shape "
                         f"{tuple(x.shape)}")
    for name, a in params.items():
        if a is not None and tuple(a.shape) != shape:
            raise ValueError(f"{fn}: {name} must have shape normalized_shape = {shape}, got {tuple(a.shape)}")
    return shape, tuple(range(x.ndim - len(shape), x.ndim))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalization (Ba, Kiros & Hinton 2016), torch's ``F.layer_norm``.

    Each example is normalized with its *own* statistics over its last ``len(normalized_shape)``
    dims (``normalized_shape``: an int for the last dim, or a tuple), never with the batch's::

        μ = mean(x),  σ² = mean((x − μ)²)   (per example, over the normalized dims; biased)
        x̂ = (x − μ) / sqrt(σ² + eps),   y = γ x̂ + β

    x: (..., *normalized_shape); weight γ, bias β: ``normalized_shape`` or None. The same
    computation in training and evaluation: no running statistics, and an example's output does
    not depend on the other examples of its batch (unlike :func:`batch_norm` in training mode).
    """
    fn = "layer_norm"
    xp = _ns_many(fn, x=x, weight=weight, bias=bias)
    _, axes = _ln_shape(fn, x, normalized_shape, dict(weight=weight, bias=bias))
    eps = _real(fn, "eps", eps, low=0.0, low_open=True)
    mu = xp.mean(x, axis=axes, keepdims=True)
    xc = x - mu
    var = xp.mean(xc * xc, axis=axes, keepdims=True)
    x_hat = xc / xp.sqrt(var + eps)
    y = x_hat if weight is None else x_hat * weight
    return y if bias is None else y + bias


def layer_norm_backward(grad_out, x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Returns ``(grad_x, grad_weight, grad_bias)`` of :func:`layer_norm` (None for γ/β not given).

    With ``ĝ = γ ⊙ g`` and means over the D normalized values of one example (batch norm's
    formula with the roles of the axes swapped)::

        ∂L/∂x = (ĝ − mean(ĝ) − x̂ · mean(ĝ x̂)) / sqrt(σ² + eps)
        ∂L/∂γ = Σ_examples g ⊙ x̂,    ∂L/∂β = Σ_examples g

    The statistics are recomputed from ``x`` (the forward's input).
    """
    fn = "layer_norm_backward"
    xp = _ns_many(fn, grad_out=grad_out, x=x, weight=weight, bias=bias)
    shape, axes = _ln_shape(fn, x, normalized_shape, dict(weight=weight, bias=bias))
    _same_shape(fn, grad_out, "grad_out", x.shape, "x")
    eps = _real(fn, "eps", eps, low=0.0, low_open=True)
    mu = xp.mean(x, axis=axes, keepdims=True)
    xc = x - mu
    inv_std = 1.0 / xp.sqrt(xp.mean(xc * xc, axis=axes, keepdims=True) + eps)
    x_hat = xc * inv_std
    g_hat = grad_out if weight is None else grad_out * weight
    gx = inv_std * (g_hat - xp.mean(g_hat, axis=axes, keepdims=True)
                    - x_hat * xp.mean(g_hat * x_hat, axis=axes, keepdims=True))

    def over_examples(a):                                # Σ over every dim but the normalized ones
        return xp.sum(xp.reshape(a, (-1,) + shape), axis=0)

    g_weight = None if weight is None else over_examples(grad_out * x_hat)
    g_bias = None if bias is None else over_examples(grad_out)
    return gx, g_weight, g_bias
