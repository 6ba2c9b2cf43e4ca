"""Lecture 04 exercises — a stable log-sum-exp, and the gradient of squared error through a softmax.

References: :func:`coursekit.functional.log_softmax` (LSE = z_k − log_softmax(z)_k), and
:func:`coursekit.functional.mse_loss_backward` followed by :func:`coursekit.functional.softmax_backward`.
"""
from __future__ import annotations

import numpy as np

from coursekit import functional as F
from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- log-sum-exp


def logsumexp(z):
    """Reference: log Σ_k exp(z_k) over the last axis, without overflow (from F.log_softmax)."""
    return (z - F.log_softmax(z, dim=-1))[..., 0]


def _lse_naive(z):
    return np.log(np.sum(np.exp(z), axis=-1))


def _lse_shift_not_added_back(z):
    m = np.max(z, axis=-1, keepdims=True)
    return np.log(np.sum(np.exp(z - m), axis=-1))


def _lse_mean_shift(z):
    m = np.mean(z, axis=-1, keepdims=True)
    return m[..., 0] + np.log(np.sum(np.exp(z - m), axis=-1))


def _lse_all_axes(z):
    m = np.max(z)
    return m + np.log(np.sum(np.exp(z - m)))


def _lse_inputs(shape, scale=1.0, offset=0.0):
    return lambda rng: dict(z=rng.normal(scale=scale, size=shape) + offset)


LSE = Question(
    id="lec04.logsumexp", function="logsumexp", title="Log-sum-exp without overflow",
    reference=logsumexp, outputs=("lse",),
    cases=(
        Case("ordinary logits", _lse_inputs((4, 5))),
        Case("large logits, close together", _lse_inputs((3, 6), offset=1000.0)),
        Case("logits spread over thousands", _lse_inputs((3, 4), scale=1000.0)),
        Case("very negative and very positive rows", _lse_inputs((5, 7), scale=500.0, offset=-300.0), points=2.0,
             visibility="hidden"),
    ),
    misconceptions=(
        Misconception("lse-naive-overflow",
                      "exp of a logit above ~709 (float64) is inf: subtract the largest logit before exponentiating.",
                      _lse_naive),
        Misconception("lse-shift-not-added-back",
                      "After subtracting the max m inside the exponentials, add m back outside the log.",
                      _lse_shift_not_added_back),
        Misconception("lse-mean-shift",
                      "Shifting by the mean does not bound the exponents: when logits are spread out, the largest "
                      "z − mean still overflows. Shift by the max.", _lse_mean_shift),
        Misconception("lse-all-axes", "Reduce over the last axis only: one value per row.", _lse_all_axes),
    ),
)

# ----------------------------------------------------------------------------- softmax + squared error


def softmax_squared_error_grad(z, t):
    """Reference: ∂/∂z of Σ_k (softmax(z)_k − t_k)² per row (no batch mean)."""
    p = F.softmax(z, dim=-1)
    return F.softmax_backward(F.mse_loss_backward(np.ones_like(p), p, t, reduction="none"), p, dim=-1)


def _se_no_jacobian(z, t):
    return 2.0 * (F.softmax(z, dim=-1) - t)


def _se_ce_gradient(z, t):
    return F.softmax(z, dim=-1) - t


def _se_no_factor_two(z, t):
    return 0.5 * softmax_squared_error_grad(z, t)


def _se_diagonal_only(z, t):
    p = F.softmax(z, dim=-1)
    return 2.0 * (p - t) * p * (1.0 - p)


def _se_inputs(n, k, scale=1.0, confident_wrong=False):
    def draw(rng):
        z = rng.normal(scale=scale, size=(n, k))
        r = rng.integers(0, k, size=n)
        if confident_wrong:                                   # the correct logit far below another one
            z[np.arange(n), r] = -6.0
            z[np.arange(n), (r + 1) % k] = 6.0
        return dict(z=z, t=np.eye(k)[r])
    return draw


SE_GRAD = Question(
    id="lec04.softmax_squared_error_grad", function="softmax_squared_error_grad",
    title="Gradient of squared error through a softmax", reference=softmax_squared_error_grad, outputs=("dz",),
    cases=(
        Case("moderate logits", _se_inputs(4, 5)),
        Case("confidently wrong rows", _se_inputs(3, 4, confident_wrong=True), atol=1e-10),
        Case("random batch", _se_inputs(6, 10, scale=3.0), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("se-no-softmax-jacobian",
                      "This is the gradient with respect to the probabilities p; chain it through the softmax "
                      "Jacobian ∂p_j/∂z_k = p_j (δ_jk − p_k).", _se_no_jacobian),
        Misconception("se-cross-entropy-gradient", "p − t is the gradient of cross-entropy, not of squared error.",
                      _se_ce_gradient),
        Misconception("se-missing-factor-two", "The derivative of (p − t)² is 2 (p − t).", _se_no_factor_two),
        Misconception("se-diagonal-jacobian-only",
                      "Only the diagonal of the softmax Jacobian is used; every p_j depends on every z_k, so the "
                      "off-diagonal terms −p_j p_k contribute too.", _se_diagonal_only),
    ),
)

LAB = Lab(id="lec04", title="Lecture 4 exercises: softmax, log-sum-exp, squared error",
          notebook="04_softmax_cross_entropy.ipynb", folder="lectures", questions=(LSE, SE_GRAD), timeout_s=20.0)
