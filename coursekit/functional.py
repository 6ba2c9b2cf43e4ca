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
* Bad arguments raise ``TypeError`` (wrong type) or ``ValueError`` (wrong value) naming the
  function and the argument; the checks (:mod:`coursekit._checks`) look at shapes, dtypes and
  devices only, never at array values, so nothing here waits for a GPU.
* Each kernel is the formula as the lecture writes it. Where a backend runs that formula slowly
  (NumPy on large arrays: one pass per operation, one core) or has a fused kernel for it (torch's
  ``addmm``, ``softmax``, ``relu`` and its ``threshold_backward``), the kernel hands over to
  :mod:`coursekit._fast`, chosen by backend and size only and tested equal to the formula.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

from array_api_compat import device as _device

from . import _checks as check
from . import _fast
from .backend import array_namespace, dtype_name, generator_like

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


def _xp(fn: str, **arrays):
    """The namespace of ``arrays`` after :func:`coursekit._checks.arrays` (floating, one backend,
    device and dtype; None entries skipped)."""
    check.arrays(fn, **arrays)
    return array_namespace(*(a for a in arrays.values() if a is not None))


# --------------------------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------------------------
def relu(x):
    """Rectified linear unit ``max(x, 0)``.  x: (...) -> (...)."""
    xp = _xp("relu", x=x)
    if _fast.is_torch(x):
        return _fast.relu(x)
    return xp.maximum(x, 0.0)


def relu_backward(grad_out, x):
    """``∂L/∂x = grad_out · 1[x > 0]`` (the gradient at exactly 0 is 0, as in torch)."""
    xp = _xp("relu_backward", grad_out=grad_out, x=x)
    check.same_shape("relu_backward", grad_out, "grad_out", x.shape, "x")
    if _fast.is_torch(x):
        return _fast.relu_backward(grad_out, x)
    return grad_out * xp.astype(x > 0, x.dtype)


def leaky_relu(x, negative_slope=0.01):
    """Leaky ReLU ``x`` for ``x > 0``, ``negative_slope · x`` otherwise.  x: (...) -> (...)."""
    xp = _xp("leaky_relu", x=x)
    a = check.real("leaky_relu", "negative_slope", negative_slope)
    return xp.where(x > 0, x, a * x)


def leaky_relu_backward(grad_out, x, negative_slope=0.01):
    """``∂L/∂x = grad_out`` where ``x > 0``, ``negative_slope · grad_out`` elsewhere (also at 0)."""
    xp = _xp("leaky_relu_backward", grad_out=grad_out, x=x)
    check.same_shape("leaky_relu_backward", grad_out, "grad_out", x.shape, "x")
    a = check.real("leaky_relu_backward", "negative_slope", negative_slope)
    return xp.where(x > 0, grad_out, a * grad_out)


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
    xp = _xp("prelu", x=x, weight=weight)
    w = xp.reshape(weight, _prelu_shape("prelu", x, weight))
    return xp.where(x > 0, x, w * x)


def prelu_backward(grad_out, x, weight):
    """Returns ``(grad_x, grad_weight)``.

    ``∂L/∂x = grad_out · (1[x > 0] + w · 1[x ≤ 0])`` and
    ``∂L/∂w_c = Σ grad_out · min(x, 0)`` summed over every position of channel ``c`` (over
    everything when ``weight`` has shape (1,)).
    """
    fn = "prelu_backward"
    xp = _xp(fn, grad_out=grad_out, x=x, weight=weight)
    check.same_shape(fn, grad_out, "grad_out", x.shape, "x")
    w = xp.reshape(weight, _prelu_shape(fn, x, weight))
    grad_x = xp.where(x > 0, grad_out, w * grad_out)
    per_channel = (0,) + tuple(range(2, x.ndim)) if weight.shape[0] > 1 else tuple(range(x.ndim))
    grad_w = xp.reshape(xp.sum(grad_out * xp.minimum(x, 0.0), axis=per_channel), weight.shape)
    return grad_x, grad_w


def elu(x, alpha=1.0):
    """ELU (Clevert et al. 2016): ``x`` for ``x > 0``, ``alpha · (eˣ − 1)`` otherwise.

    Written branch-free as ``max(x, 0) + alpha · expm1(min(x, 0))`` (no overflow for large x).
    """
    xp = _xp("elu", x=x)
    a = check.real("elu", "alpha", alpha)
    return xp.maximum(x, 0.0) + a * xp.expm1(xp.minimum(x, 0.0))


def elu_backward(grad_out, x, alpha=1.0):
    """``∂L/∂x = grad_out`` for ``x > 0``, ``grad_out · alpha · eˣ`` for ``x ≤ 0`` (torch)."""
    xp = _xp("elu_backward", grad_out=grad_out, x=x)
    check.same_shape("elu_backward", grad_out, "grad_out", x.shape, "x")
    a = check.real("elu_backward", "alpha", alpha)
    return grad_out * xp.where(x > 0, 1.0, a * xp.exp(xp.minimum(x, 0.0)))


def selu(x):
    """SELU (Klambauer et al. 2017): ``λ x`` for ``x > 0``, ``λ α (eˣ − 1)`` otherwise.

    With :data:`ALPHA` and :data:`LAMBDA` chosen so that zero-mean, unit-variance inputs keep
    zero mean and unit variance. Branch-free: ``λ (max(x, 0) + α expm1(min(x, 0)))``.
    Large NumPy arrays take :func:`coursekit._fast.selu` (the same formula, block by block).
    """
    xp = _xp("selu", x=x)
    if _fast.wanted(x):
        return _fast.selu(x, LAMBDA, ALPHA)
    return LAMBDA * (xp.maximum(x, 0.0) + ALPHA * xp.expm1(xp.minimum(x, 0.0)))


def selu_backward(grad_out, x, *, out=None):
    """``∂L/∂x = grad_out · λ`` for ``x > 0``, ``grad_out · λ α eˣ`` for ``x ≤ 0``.

    If the forward output ``out = selu(x)`` is passed (as :class:`coursekit.nn.SELU` does), no
    exponential is needed: ``λ α eˣ = out + λ α`` for ``x ≤ 0``.
    """
    fn = "selu_backward"
    xp = _xp(fn, grad_out=grad_out, x=x, out=out)
    check.same_shape(fn, grad_out, "grad_out", x.shape, "x")
    if out is not None:
        check.same_shape(fn, out, "out", x.shape, "x")
    if _fast.wanted(grad_out, x, *([] if out is None else [out])):
        return _fast.selu_backward(grad_out, x, out, LAMBDA, ALPHA)
    slope_neg = LAMBDA * ALPHA * xp.exp(xp.minimum(x, 0.0)) if out is None else out + LAMBDA * ALPHA
    return grad_out * xp.where(x > 0, LAMBDA, slope_neg)


def sigmoid(x):
    """Logistic sigmoid ``σ(x) = 1 / (1 + e⁻ˣ)``, computed without overflow.

    With ``e = exp(−|x|) ∈ (0, 1]``: ``σ(x) = 1/(1+e)`` for ``x ≥ 0`` and ``e/(1+e)`` for ``x < 0``.
    """
    xp = _xp("sigmoid", x=x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0, e) / (1.0 + e)


def sigmoid_backward(grad_out, out):
    """``∂L/∂x = grad_out · σ(x)(1 − σ(x))``; takes the forward output ``out = σ(x)``."""
    _xp("sigmoid_backward", grad_out=grad_out, out=out)
    check.same_shape("sigmoid_backward", grad_out, "grad_out", out.shape, "out")
    return grad_out * out * (1.0 - out)


def tanh(x):
    """Hyperbolic tangent.  x: (...) -> (...)."""
    xp = _xp("tanh", x=x)
    return xp.tanh(x)


def tanh_backward(grad_out, out):
    """``∂L/∂x = grad_out · (1 − tanh²x)``; takes the forward output ``out = tanh(x)``."""
    _xp("tanh_backward", grad_out=grad_out, out=out)
    check.same_shape("tanh_backward", grad_out, "grad_out", out.shape, "out")
    return grad_out * (1.0 - out * out)


def softplus(x, beta=1.0, threshold=20.0):
    """Softplus ``(1/β) · log(1 + e^{βx})``, a smooth ReLU; linear (``= x``) where ``βx > threshold``.

    The switch to the identity above ``threshold`` follows torch (``log1p(e^{βx})/β = x`` to
    float precision there). ``beta`` must be positive.
    """
    xp = _xp("softplus", x=x)
    beta = check.real("softplus", "beta", beta, low=0.0, low_open=True)
    threshold = check.real("softplus", "threshold", threshold)
    bx = beta * x
    return xp.where(bx > threshold, x, xp.log1p(xp.exp(xp.minimum(bx, threshold))) / beta)


def softplus_backward(grad_out, x, beta=1.0, threshold=20.0):
    """``∂L/∂x = grad_out · σ(βx)`` (``= grad_out`` where ``βx > threshold``)."""
    fn = "softplus_backward"
    xp = _xp(fn, grad_out=grad_out, x=x)
    check.same_shape(fn, grad_out, "grad_out", x.shape, "x")
    beta = check.real(fn, "beta", beta, low=0.0, low_open=True)
    threshold = check.real(fn, "threshold", threshold)
    z = xp.exp(xp.minimum(beta * x, threshold))
    return xp.where(beta * x > threshold, grad_out, grad_out * z / (1.0 + z))


def _maxout_view(fn, x, pieces):
    pieces = check.integer(fn, "pieces", pieces, low=1)
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
    xp = _xp("maxout", x=x)
    pieces, shape = _maxout_view("maxout", x, pieces)
    return xp.max(xp.reshape(x, shape), axis=-1)


def maxout_backward(grad_out, x, pieces):
    """Routes ``grad_out`` to the arg-max piece of each unit; the other pieces get 0.

    Ties (several pieces equal to the max) send the whole gradient to the *first* of them (the
    lowest index, as ``argmax`` returns), so every unit passes its gradient to exactly one piece.
    """
    fn = "maxout_backward"
    xp = _xp(fn, grad_out=grad_out, x=x)
    pieces, shape = _maxout_view(fn, x, pieces)
    check.same_shape(fn, grad_out, "grad_out", shape[:-1], "the forward output")
    winner = xp.argmax(xp.reshape(x, shape), axis=-1, keepdims=True) == xp.arange(pieces, device=_device(x))
    return xp.reshape(grad_out[..., None] * xp.astype(winner, x.dtype), tuple(x.shape))


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
    check.arrays("linear", x=x, weight=weight, bias=bias)
    _check_linear("linear", x, weight, bias)
    if _fast.is_torch(x):
        return _fast.linear(x, weight, bias)
    return x @ weight.T if bias is None else x @ weight.T + bias


def linear_backward(grad_out, x, weight, bias=None):
    """Returns ``(grad_x, grad_weight, grad_bias)`` (``grad_bias`` is None when ``bias`` is None).

    With ``G = grad_out`` and the leading dims flattened (``X``: (M, in), ``G``: (M, out)):
    ``∂L/∂x = G W``, ``∂L/∂W = Gᵀ X``, ``∂L/∂b = Σ_rows G``.
    """
    fn = "linear_backward"
    xp = _xp(fn, grad_out=grad_out, x=x, weight=weight, bias=bias)
    _check_linear(fn, x, weight, bias)
    (out_f, in_f) = weight.shape
    check.same_shape(fn, grad_out, "grad_out", tuple(x.shape[:-1]) + (out_f,), "the forward output")
    G, X = xp.reshape(grad_out, (-1, out_f)), xp.reshape(x, (-1, in_f))
    return grad_out @ weight, G.T @ X, (None if bias is None else xp.sum(G, axis=0))


# --------------------------------------------------------------------------------------------
# softmax family and losses
# --------------------------------------------------------------------------------------------
def softmax(x, dim=-1):
    """``softmax(x)_i = e^{x_i − m} / Σ_j e^{x_j − m}`` along ``dim``, with ``m = max_j x_j``.

    Subtracting the max changes nothing mathematically (shift invariance) and keeps ``exp`` from
    overflowing, so inputs of size ~1e4 are fine.  x: (...) -> (...), rows along ``dim`` sum to 1.
    """
    xp = _xp("softmax", x=x)
    dim = check.dim("softmax", dim, x.ndim)
    if _fast.is_torch(x):
        return _fast.softmax(x, dim)
    e = xp.exp(x - xp.max(x, axis=dim, keepdims=True))
    return e / xp.sum(e, axis=dim, keepdims=True)


def softmax_backward(grad_out, out, dim=-1):
    """``∂L/∂x = s ⊙ (g − ⟨g, s⟩)`` along ``dim``, with ``s = out`` the softmax output.

    (The Jacobian is ``diag(s) − s sᵀ``.)
    """
    fn = "softmax_backward"
    xp = _xp(fn, grad_out=grad_out, out=out)
    check.same_shape(fn, grad_out, "grad_out", out.shape, "out")
    dim = check.dim(fn, dim, out.ndim)
    return out * (grad_out - xp.sum(grad_out * out, axis=dim, keepdims=True))


def log_softmax(x, dim=-1):
    """``log_softmax(x)_i = (x_i − m) − log Σ_j e^{x_j − m}`` along ``dim`` (``m = max_j x_j``).

    Stable for ``|x| ~ 1e4``: the largest entry of every row contributes ``e⁰ = 1`` to the sum.
    """
    xp = _xp("log_softmax", x=x)
    dim = check.dim("log_softmax", dim, x.ndim)
    if _fast.is_torch(x):
        return _fast.log_softmax(x, dim)
    z = x - xp.max(x, axis=dim, keepdims=True)
    return z - xp.log(xp.sum(xp.exp(z), axis=dim, keepdims=True))


def log_softmax_backward(grad_out, out, dim=-1):
    """``∂L/∂x = g − softmax(x) · Σ g`` along ``dim``; takes ``out = log_softmax(x)``."""
    fn = "log_softmax_backward"
    xp = _xp(fn, grad_out=grad_out, out=out)
    check.same_shape(fn, grad_out, "grad_out", out.shape, "out")
    dim = check.dim(fn, dim, out.ndim)
    return grad_out - xp.exp(out) * xp.sum(grad_out, axis=dim, keepdims=True)


def _check_target(fn, logits, target):
    """Shapes, dtypes and devices of ``(logits, target)``; the class indices themselves are not
    read (that would be a host sync on a GPU): an index outside [0, C) makes its row's loss and
    gradient NaN instead (see :func:`_onehot`)."""
    check.arrays(fn, logits=logits)
    if logits.ndim != 2:
        raise ValueError(f"{fn}: logits must be 2-d (N, C), got shape {tuple(logits.shape)}")
    check.array(fn, "target", target)
    check.same_device(fn, logits=logits, target=target)
    if "int" not in dtype_name(target):
        raise TypeError(f"{fn}: target must hold integer class indices (int64 / torch.long), got "
                        f"{dtype_name(target)}")
    n = logits.shape[0]
    if tuple(target.shape) != (n,):
        raise ValueError(f"{fn}: target must have shape (N,) = ({n},), got {tuple(target.shape)}")


def _onehot(xp, target, logits):
    """``(hit, found)``: the boolean (N, C) matrix with True at ``(i, target[i])``, and the (N, 1)
    column that is False where ``target[i]`` is no class index in [0, C) (that row becomes NaN)."""
    hit = xp.reshape(target, (-1, 1)) == xp.arange(logits.shape[1], dtype=target.dtype, device=_device(logits))
    return hit, xp.any(hit, axis=1, keepdims=True)


def cross_entropy(logits, target, reduction="mean"):
    """Softmax cross-entropy with integer class targets.

    ``ℓ_i = −log softmax(logits_i)[target_i] = logsumexp(logits_i) − logits_i[target_i]``.
    logits: (N, C) floating; target: (N,) integer class indices in [0, C) (int64 NumPy /
    ``torch.long``, same backend and device as ``logits``; an index outside [0, C) gives NaN
    for its row: checking the values would make a GPU wait). Returns the mean over the batch
    (a 0-d array; ``reduction='sum'`` / ``'none'`` give the sum / the (N,) vector, as in torch).
    """
    fn = "cross_entropy"
    _check_target(fn, logits, target)
    reduction = check.reduction(fn, reduction)
    xp = array_namespace(logits)
    hit, found = _onehot(xp, target, logits)
    # where, not logp * hit: a logit of -inf elsewhere in the row stays out of the sum
    picked = xp.sum(xp.where(hit, log_softmax(logits, dim=1), 0.0), axis=1)
    nll = xp.where(found[:, 0], -picked, math.nan)
    if reduction == "none":
        return nll
    return xp.mean(nll) if reduction == "mean" else xp.sum(nll)


def cross_entropy_backward(grad_out, logits, target, reduction="mean"):
    """``∂L/∂logits = grad_out · (softmax(logits) − onehot(target)) / N`` for ``'mean'``.

    ``grad_out`` is ``∂L/∂loss``: a scalar (1.0 when the loss is the final objective) for
    ``'mean'``/``'sum'`` (no ``/N`` for ``'sum'``), an (N,) array for ``'none'``.
    """
    fn = "cross_entropy_backward"
    _check_target(fn, logits, target)
    reduction = check.reduction(fn, reduction)
    xp = array_namespace(logits)
    hit, found = _onehot(xp, target, logits)
    d = xp.where(found, softmax(logits, dim=1) - xp.astype(hit, logits.dtype), math.nan)
    n = logits.shape[0]
    if reduction == "none":
        check.arrays(fn, grad_out=grad_out, logits=logits)
        check.same_shape(fn, grad_out, "grad_out", (n,), "the per-sample losses")
        return d * xp.reshape(grad_out, (-1, 1))
    scale = 1.0 / n if (reduction == "mean" and n) else 1.0
    if not isinstance(grad_out, numbers.Real):
        check.arrays(fn, grad_out=grad_out, logits=logits)
        check.same_shape(fn, grad_out, "grad_out", (), "the scalar loss")
    return d * (grad_out * scale)


def mse_loss(input, target, reduction="mean"):
    """Squared error ``mean((input − target)²)`` over every element (``'sum'``/``'none'`` too).

    input, target: same shape (no broadcasting), same backend/device/dtype.
    """
    fn = "mse_loss"
    xp = _xp(fn, input=input, target=target)
    check.same_shape(fn, target, "target", input.shape, "input")
    reduction = check.reduction(fn, reduction)
    squared = (input - target) ** 2
    if reduction == "none":
        return squared
    return xp.mean(squared) if reduction == "mean" else xp.sum(squared)


def mse_loss_backward(grad_out, input, target, reduction="mean"):
    """``∂L/∂input = grad_out · 2 (input − target) / n`` (``n`` = number of elements, for
    ``'mean'``). The gradient with respect to ``target`` is its negative (not returned)."""
    fn = "mse_loss_backward"
    _xp(fn, input=input, target=target)
    check.same_shape(fn, target, "target", input.shape, "input")
    reduction = check.reduction(fn, reduction)
    if reduction == "none":
        check.arrays(fn, grad_out=grad_out, input=input)
        check.same_shape(fn, grad_out, "grad_out", input.shape, "input")
    elif not isinstance(grad_out, numbers.Real):
        check.arrays(fn, grad_out=grad_out, input=input)
        check.same_shape(fn, grad_out, "grad_out", (), "the scalar loss")
    scale = 2.0 / math.prod(input.shape) if reduction == "mean" else 2.0
    return (input - target) * (grad_out * scale)


# --------------------------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------------------------
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
    check.arrays(fn, x=x)
    p = check.real(fn, "p", p, low=0.0, high=1.0, high_open=True)
    if not check.boolean(fn, "training", training) or p == 0.0:
        return (x, None) if return_mask else x
    mask = generator_like(x, generator, fn=fn).keep_mask(x.shape, 1.0 - p, dtype=dtype_name(x))
    y = x * mask                    # m ∈ {0, 1}: the dropped units are zero
    y *= 1.0 / (1.0 - p)            # y is a new array: scaling it in place saves a pass over memory
    return (y, mask) if return_mask else y


def dropout_backward(grad_out, mask, p=0.5):
    """``∂L/∂x = grad_out · m / (1 − p)`` with the forward's mask ``m``; ``grad_out`` if ``m`` is None."""
    fn = "dropout_backward"
    check.arrays(fn, grad_out=grad_out, mask=mask)
    p = check.real(fn, "p", p, low=0.0, high=1.0, high_open=True)
    if mask is None:
        return grad_out
    check.same_shape(fn, grad_out, "grad_out", mask.shape, "mask")
    g = grad_out * mask
    g *= 1.0 / (1.0 - p)            # g is a new array (see dropout)
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
    """``(C, axes, bshape)``: channels, the axes statistics run over, the broadcast shape of (C,)."""
    if x.ndim < 2:
        raise ValueError(f"{fn}: x must be at least 2-d (N, C) or (N, C, L), got shape {tuple(x.shape)}")
    c = x.shape[1]
    for name, a in c_arrays.items():
        if a is not None and tuple(a.shape) != (c,):
            raise ValueError(f"{fn}: {name} must have shape (C,) = ({c},), got {tuple(a.shape)}")
    return c, (0,) + tuple(range(2, x.ndim)), (1, c) + (1,) * (x.ndim - 2)


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
    Large (N, C) NumPy arrays take :func:`coursekit._fast.batch_norm_train` (same formulas).
    """
    fn = "batch_norm"
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{fn}: running_mean and running_var must be given together (or both None)")
    xp = _xp(fn, x=x, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    c, axes, bshape = _bn_layout(fn, x, dict(running_mean=running_mean, running_var=running_var,
                                             weight=weight, bias=bias))
    training = check.boolean(fn, "training", training)
    momentum = check.real(fn, "momentum", momentum, low=0.0, high=1.0)
    eps = check.real(fn, "eps", eps, low=0.0, low_open=True)
    if not training:
        if running_mean is None:
            raise ValueError(f"{fn}: running_mean and running_var are required when training=False")
        inv_std = 1.0 / xp.sqrt(running_var + eps)
        xc = x - xp.reshape(running_mean, bshape)
        out = xc * xp.reshape(inv_std if weight is None else inv_std * weight, bshape)
        out = out if bias is None else out + xp.reshape(bias, bshape)
        return BatchNormOutput(out, running_mean, running_var, BatchNormCache(xc, inv_std, weight, bias is not None, False))
    m = math.prod(x.shape) // c if c else 0
    if m <= 1:
        raise ValueError(f"{fn}: expected more than 1 value per channel when training, got x of "
                         f"shape {tuple(x.shape)}")
    if x.ndim == 2 and _fast.wanted(x):
        out, mean, var, xc, inv_std = _fast.batch_norm_train(x, weight, bias, eps)
    else:
        mean = xp.mean(x, axis=axes)                                         # μ, (C,)
        xc = x - xp.reshape(mean, bshape)                                    # x − μ
        var = xp.mean(xc * xc, axis=axes)                                    # σ², (C,)
        inv_std = 1.0 / xp.sqrt(var + eps)
        out = xc * xp.reshape(inv_std if weight is None else inv_std * weight, bshape)   # γ x̂
        out = out if bias is None else out + xp.reshape(bias, bshape)                      # + β
    new_mean = new_var = None
    if running_mean is not None:
        new_mean = (1.0 - momentum) * running_mean + momentum * mean
        new_var = (1.0 - momentum) * running_var + (momentum * m / (m - 1)) * var   # unbiased σ²
    return BatchNormOutput(out, new_mean, new_var, BatchNormCache(xc, inv_std, weight, bias is not None, True))


def batch_norm_backward(grad_out, cache):
    """Returns ``(grad_x, grad_weight, grad_bias)`` (None for γ/β that were not given).

    ``∂L/∂β = Σ g``, ``∂L/∂γ = Σ g · x̂`` (sums over all but the channel dim). With batch
    statistics (``training=True``) the compact form, M values per channel::

        ∂L/∂x = γ / sqrt(σ² + eps) · (g − Σg / M − x̂ · Σ(g x̂) / M)

    (the two subtracted terms are the paths through μ and σ²). With running statistics the
    normalization is a fixed affine map: ``∂L/∂x = γ / sqrt(σ² + eps) · g``.
    """
    fn = "batch_norm_backward"
    check.instance(fn, "cache", cache, BatchNormCache, "the BatchNormCache returned by batch_norm")
    xc, inv_std, weight, has_bias, training = cache
    xp = _xp(fn, grad_out=grad_out, x_centered=xc)
    check.same_shape(fn, grad_out, "grad_out", xc.shape, "the forward output")
    c, axes, bshape = _bn_layout(fn, xc, {})
    if xc.ndim == 2 and _fast.wanted(grad_out, xc):
        gx, g_weight, g_bias = _fast.batch_norm_backward(grad_out, xc, inv_std, weight, training)
    else:
        m = math.prod(xc.shape) // c
        x_hat = xc * xp.reshape(inv_std, bshape)
        g_bias = xp.sum(grad_out, axis=axes)                                # Σ g
        g_weight = xp.sum(grad_out * x_hat, axis=axes)                      # Σ g x̂
        scale = xp.reshape(inv_std if weight is None else inv_std * weight, bshape)   # γ / sqrt(σ² + eps)
        if training:
            gx = scale * (grad_out - xp.reshape(g_bias / m, bshape) - x_hat * xp.reshape(g_weight / m, bshape))
        else:
            gx = scale * grad_out
    return gx, (g_weight if weight is not None else None), (g_bias if has_bias else None)


# --------------------------------------------------------------------------------------------
# layer normalization
# --------------------------------------------------------------------------------------------
__all__ += ["layer_norm", "layer_norm_backward"]


def _ln_shape(fn, x, normalized_shape, params):
    """``normalized_shape`` as a tuple that ends ``x``'s shape; γ/β must have that shape."""
    shape = check.shape(fn, normalized_shape, name="normalized_shape")
    if not shape:
        raise ValueError(f"{fn}: normalized_shape must not be empty")
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
    xp = _xp(fn, x=x, weight=weight, bias=bias)
    _, axes = _ln_shape(fn, x, normalized_shape, dict(weight=weight, bias=bias))
    eps = check.real(fn, "eps", eps, low=0.0, low_open=True)
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
    xp = _xp(fn, grad_out=grad_out, x=x, weight=weight, bias=bias)
    shape, axes = _ln_shape(fn, x, normalized_shape, dict(weight=weight, bias=bias))
    check.same_shape(fn, grad_out, "grad_out", x.shape, "x")
    eps = check.real(fn, "eps", eps, low=0.0, low_open=True)
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
