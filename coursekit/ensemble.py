r"""Dropout as an ensemble: enumerate every mask of a small input layer and compare the averages.

Training with dropout on the n inputs of a network f samples one of 2ⁿ *thinned* networks
``x ↦ softmax(f(m ⊙ x))``, m ∈ {0, 1}ⁿ, each input kept with probability q = 1 − p, so mask m has
probability ``P(m) = q^{|m|} (1 − q)^{n − |m|}``. At test time the ideal prediction is an average
over this ensemble; dropout instead runs the single *weight-scaled* network ``softmax(f(q x))``
(for a first layer ``W x + b`` that is ``softmax(f)`` with ``W`` replaced by ``qW``). This module
computes, exactly, for n ≤ 16:

* the arithmetic mean ``A = Σ_m P(m) softmax(z_m)`` with ``z_m = f(m ⊙ x)`` (the logits);
* the normalized geometric mean ``G = softmax(Σ_m P(m) log softmax(z_m))`` — the probability-weighted
  geometric mean of the members' predictions, renormalized to sum to 1; and its unweighted variant
  ``G_u`` (every mask counted once, weight 2⁻ⁿ, as in Hinton et al. 2012 for p = 0.5);
* the weight-scaled prediction ``S = softmax(f(q x))``.

**Theorem (one softmax layer).** If ``f(x) = W x + b`` then ``G = S`` for *every* q ∈ (0, 1].

*Proof.* ``log softmax(z)_k = z_k − log Σ_j e^{z_j}``; the second term does not depend on k, so
after renormalization it cancels: ``G = softmax(Σ_m P(m) z_m)``. The logits are affine in m, hence
``Σ_m P(m) z_m = W (E[m] ⊙ x) + b = W (q x) + b`` (Σ_m P(m) = 1, E[mᵢ] = q). So
``G = softmax(q W x + b) = S``. ∎

The unweighted geometric mean averages over the uniform distribution on masks, whose mean is
``E[m] = ½``: ``G_u = softmax(½ W x + b)``. It therefore equals S exactly when q = ½ (p = 0.5),
and in general only then (unless ``W x = 0``). The arithmetic mean A is *not* equal to S even for
one layer (softmax is not affine), and for a deeper network — a nonlinear hidden layer between
the dropped inputs and the softmax — z_m is no longer affine in m, so G ≠ S as well: weight
scaling is then an approximation whose error :func:`ensemble_gap` measures.

With *inverted* dropout (training multiplies kept inputs by 1/q, as ``coursekit.functional.dropout``
does) the members are ``f(m ⊙ x / q)`` and the test-time network is ``f(x)`` — the same statements
with ``x`` replaced by ``x / q``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks as check
from . import backend as B
from . import functional as F

__all__ = ["MAX_INPUTS", "dropout_masks", "mask_probabilities", "linear_logits", "mlp_logits",
           "EnsemblePredictions", "ensemble_predictions", "arithmetic_mean", "geometric_mean",
           "weight_scaled", "EnsembleGap", "ensemble_gap"]

MAX_INPUTS = 16          # 2^16 = 65536 masks
_CHUNK_ELEMENTS = 1 << 20  # masked inputs per call of logits_fn (memory bound)


def _check_p(fn, p):
    return check.real(fn, "p", p, low=0.0, high=1.0, high_open=True)


def _check_n(fn, n):
    return check.integer(fn, "the number of inputs n", n, low=1, high=MAX_INPUTS)  # 2^n masks are enumerated


def dropout_masks(n, *, backend=None, device=None, dtype=None):
    """All 2ⁿ dropout masks of n inputs: a ``(2**n, n)`` 0/1 array, row k = the bits of k
    (column j is bit j). ``n`` in [1, 16]."""
    n = _check_n("dropout_masks", n)
    k = np.arange(2 ** n)[:, None]
    bits = (k >> np.arange(n)[None, :]) & 1
    return B.asarray(bits, backend=backend, device=device, dtype=dtype)


def mask_probabilities(n, p):
    """``(2**n,)`` float64 NumPy array: ``P(m) = q^{|m|} (1 − q)^{n − |m|}``, q = 1 − p, for the masks
    in :func:`dropout_masks` order. Sums to 1."""
    n = _check_n("mask_probabilities", n)
    q = 1.0 - _check_p("mask_probabilities", p)
    kept = np.bitwise_count(np.arange(2 ** n, dtype=np.uint32)).astype(np.float64)
    return q ** kept * (1.0 - q) ** (n - kept)


def linear_logits(W, b):
    """The logits of one softmax layer as a function: ``x ↦ x Wᵀ + b`` (W: (C, n), b: (C,))."""
    return lambda x: F.linear(x, W, b)


def mlp_logits(W1, b1, W2, b2, activation=F.relu):
    """Logits of a one-hidden-layer net: ``x ↦ act(x W1ᵀ + b1) W2ᵀ + b2`` (W1: (H, n), W2: (C, H))."""
    return lambda x: F.linear(activation(F.linear(x, W1, b1)), W2, b2)


@dataclass(frozen=True)
class EnsemblePredictions:
    """Class probabilities, each ``(C,)`` for one input x of shape ``(n,)`` or ``(N, C)`` for ``(N, n)``."""

    arithmetic: object          # Σ P(m) softmax(z_m)
    geometric: object           # softmax(Σ P(m) log softmax(z_m)), mask-probability weighted
    geometric_uniform: object   # softmax(2⁻ⁿ Σ log softmax(z_m)), every mask weighted equally
    weight_scaled: object       # softmax(f(q x))


def _prepare(fn, logits_fn, x, p):
    if not callable(logits_fn):
        raise TypeError(f"{fn}: logits_fn must be callable (e.g. linear_logits(W, b) or a Module), "
                        f"got {type(logits_fn).__name__}")
    check.floating(fn, "x", x)
    if x.ndim not in (1, 2):
        raise ValueError(f"{fn}: x must have shape (n,) or (N, n), got {tuple(x.shape)}")
    return _check_p(fn, p), _check_n(fn, x.shape[-1])


def ensemble_predictions(logits_fn, x, *, p=0.5) -> EnsemblePredictions:
    """Exact ensemble averages over all 2ⁿ input-dropout masks (see the module docstring).

    ``logits_fn``: maps a batch of (masked) inputs ``(M, n)`` to logits ``(M, C)`` — e.g.
    :func:`linear_logits`, :func:`mlp_logits` or a coursekit ``Module`` in eval mode;
    ``x``: ``(n,)`` or ``(N, n)`` with n ≤ 16 on any backend; ``p``: drop probability in [0, 1).
    The masks are processed in chunks, so memory stays bounded for n = 16.
    """
    fn = "ensemble_predictions"
    p, n = _prepare(fn, logits_fn, x, p)
    xp = B.array_namespace(x)
    like = dict(backend=B.backend_of(x), device=B.device_of(x), dtype=B.dtype_name(x))
    single = x.ndim == 1
    xb = xp.reshape(x, (1, n)) if single else x
    N = xb.shape[0]
    masks = dropout_masks(n, **like)
    probs = B.asarray(mask_probabilities(n, p), **like)
    M = masks.shape[0]
    chunk = max(1, _CHUNK_ELEMENTS // (N * n))
    arith = geo = geo_u = 0.0
    for start in range(0, M, chunk):
        m = masks[start:start + chunk, :]
        k = m.shape[0]
        xm = xp.reshape(m, (k, 1, n)) * xp.reshape(xb, (1, N, n))              # (k, N, n)
        z = logits_fn(xp.reshape(xm, (k * N, n)))
        z = xp.reshape(z, (k, N, z.shape[-1]))                                   # (k, N, C)
        w = xp.reshape(probs[start:start + k], (k, 1, 1))
        logp = F.log_softmax(z, dim=-1)
        arith = arith + xp.sum(w * xp.exp(logp), axis=0)
        geo = geo + xp.sum(w * logp, axis=0)
        geo_u = geo_u + xp.sum(logp, axis=0)
    scaled = F.softmax(logits_fn((1.0 - p) * xb), dim=-1)
    out = [arith, F.softmax(geo, dim=-1), F.softmax(geo_u / M, dim=-1), scaled]
    if single:
        out = [o[0, ...] for o in out]
    return EnsemblePredictions(*out)


def arithmetic_mean(logits_fn, x, *, p=0.5):
    """``Σ_m P(m) softmax(f(m ⊙ x))`` over all 2ⁿ masks: the exact ensemble average."""
    return ensemble_predictions(logits_fn, x, p=p).arithmetic


def geometric_mean(logits_fn, x, *, p=0.5, weighted=True):
    """Normalized geometric mean of the 2ⁿ members' predictions; ``weighted=True`` weights member m
    by ``P(m)`` (equals :func:`weight_scaled` for one softmax layer, any p), ``weighted=False``
    counts every mask once (equals it for one softmax layer only when p = 0.5)."""
    r = ensemble_predictions(logits_fn, x, p=p)
    return r.geometric if weighted else r.geometric_uniform


def weight_scaled(logits_fn, x, *, p=0.5):
    """The weight-scaling rule: ``softmax(f((1 − p) x))`` = the net with first-layer weights × (1 − p)."""
    fn = "weight_scaled"
    p, _ = _prepare(fn, logits_fn, x, p)
    return F.softmax(logits_fn((1.0 - p) * x), dim=-1)


@dataclass(frozen=True)
class EnsembleGap:
    """How far weight scaling S is from the ensemble averages (floats, worst/mean over examples).

    ``max_abs_*``: ``max |mean − S|`` over examples and classes; ``kl_*``: the mean over examples of
    ``KL(mean ‖ S) = Σ_k mean_k log(mean_k / S_k)`` (nats).
    """

    max_abs_geometric: float
    max_abs_arithmetic: float
    kl_geometric: float
    kl_arithmetic: float


def _kl(P, Q):
    xp = B.array_namespace(P)
    P2 = xp.reshape(P, (-1, P.shape[-1]))
    Q2 = xp.reshape(Q, (-1, Q.shape[-1]))
    terms = xp.where(P2 > 0, P2 * (xp.log(xp.where(P2 > 0, P2, 1.0)) - xp.log(Q2)), 0.0)
    return float(xp.mean(xp.sum(terms, axis=-1)))


def ensemble_gap(logits_fn, x, *, p=0.5) -> EnsembleGap:
    """Distance between weight scaling and the exact geometric/arithmetic ensemble means.

    0 (to rounding) for the geometric mean of one softmax layer; positive for a network with a
    nonlinear hidden layer (e.g. :func:`mlp_logits`), where weight scaling is an approximation.
    """
    r = ensemble_predictions(logits_fn, x, p=p)
    xp = B.array_namespace(x)
    S = r.weight_scaled
    return EnsembleGap(
        max_abs_geometric=float(xp.max(xp.abs(r.geometric - S))),
        max_abs_arithmetic=float(xp.max(xp.abs(r.arithmetic - S))),
        kl_geometric=_kl(r.geometric, S),
        kl_arithmetic=_kl(r.arithmetic, S),
    )
