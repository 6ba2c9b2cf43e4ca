"""Lecture 10 exercises — batch normalization at test time, γ and β restoring the identity, layer norm.

References are thin wrappers over ``coursekit.functional`` (``F.batch_norm`` in evaluation mode,
``F.layer_norm``); the misconceptions are the classic bugs: testing with the batch's statistics
(forgetting ``model.eval()``), dividing by the variance instead of the standard deviation, adding
``eps`` outside the square root, normalizing a layer-norm input over the batch instead of over the
features, and the unbiased variance where the biased one is meant.
"""
from __future__ import annotations

import numpy as np

from coursekit import functional as F
from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- BN at test time


def bn_inference(x, gamma, beta, running_mean, running_var, eps):
    """Reference: evaluation-mode batch norm, γ (x − running_mean)/sqrt(running_var + eps) + β."""
    return F.batch_norm(x, running_mean, running_var, gamma, beta, training=False, eps=eps).out


def _bn_uses_batch_statistics(x, gamma, beta, running_mean, running_var, eps):
    return gamma * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps) + beta     # β for a single example


def _bn_divides_by_variance(x, gamma, beta, running_mean, running_var, eps):
    return gamma * (x - running_mean) / (running_var + eps) + beta


def _bn_eps_outside_sqrt(x, gamma, beta, running_mean, running_var, eps):
    return gamma * (x - running_mean) / (np.sqrt(running_var) + eps) + beta


def _bn_no_affine(x, gamma, beta, running_mean, running_var, eps):
    return (x - running_mean) / np.sqrt(running_var + eps)


def _bn_eval_inputs(n, c, eps=1e-5):
    def draw(rng):
        return dict(x=rng.normal(loc=rng.normal(size=c), scale=rng.uniform(0.5, 3.0, size=c), size=(n, c)),
                    gamma=rng.uniform(0.5, 2.0, size=c), beta=rng.normal(size=c),
                    running_mean=rng.normal(size=c), running_var=rng.uniform(0.3, 4.0, size=c), eps=eps)
    return draw


BN_INFERENCE = Question(
    id="lec10.bn_inference", function="bn_inference", title="Batch norm at test time",
    reference=bn_inference,
    cases=(
        Case("batch of 6, 3 units", _bn_eval_inputs(6, 3)),
        Case("batch of 4, 5 units, eps = 0.5", _bn_eval_inputs(4, 5, eps=0.5)),
        Case("a single example", _bn_eval_inputs(1, 4)),
        Case("random batch", _bn_eval_inputs(16, 6, eps=1e-3), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("bn-uses-batch-statistics",
                      "At test time the layer must not look at the batch it is given (that is what forgetting "
                      "model.eval() does): normalize with the running statistics.", _bn_uses_batch_statistics),
        Misconception("bn-divides-by-variance",
                      "Normalizing divides by the standard deviation, the square root of the variance (+ eps).",
                      _bn_divides_by_variance),
        Misconception("bn-eps-outside-sqrt",
                      "eps is added to the variance inside the square root, as in torch.", _bn_eps_outside_sqrt),
        Misconception("bn-forgets-affine",
                      "After normalizing, the layer still applies its learned scale gamma and shift beta.",
                      _bn_no_affine),
    ),
)

# ----------------------------------------------------------------------------- γ and β undo BN


def restore_identity(x, eps):
    """Reference: (γ, β) with which training-mode BN returns x itself: γ = sqrt(σ² + eps), β = μ
    (biased variance, the one BN normalizes with)."""
    return np.sqrt(x.var(axis=0) + eps), x.mean(axis=0)


def _identity_gamma_is_variance(x, eps):
    return x.var(axis=0) + eps, x.mean(axis=0)


def _identity_ignores_eps(x, eps):
    return x.std(axis=0), x.mean(axis=0)


def _identity_unbiased(x, eps):
    return np.sqrt(x.var(axis=0, ddof=1) + eps), x.mean(axis=0)


def _identity_swapped(x, eps):
    return x.mean(axis=0), np.sqrt(x.var(axis=0) + eps)


def _identity_inputs(n, c, eps):
    def draw(rng):
        return dict(x=rng.normal(loc=rng.normal(scale=3.0, size=c), scale=rng.uniform(0.3, 3.0, size=c),
                                 size=(n, c)), eps=eps)
    return draw


RESTORE_IDENTITY = Question(
    id="lec10.restore_identity", function="restore_identity", title="γ and β that undo the normalization",
    reference=restore_identity, outputs=("gamma", "beta"),
    cases=(
        Case("batch of 8, eps = 1e-5", _identity_inputs(8, 3, 1e-5)),
        Case("batch of 5, eps = 0.5", _identity_inputs(5, 4, 0.5)),
        Case("random batch", _identity_inputs(32, 6, 1e-3), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("identity-gamma-is-variance",
                      "BN divides by a standard deviation, so gamma must multiply by one (a square root).",
                      _identity_gamma_is_variance),
        Misconception("identity-ignores-eps",
                      "BN divides by sqrt(var + eps), not by the standard deviation alone; with a large eps "
                      "the difference shows.", _identity_ignores_eps),
        Misconception("identity-unbiased-variance",
                      "BN normalizes with the biased batch variance (divide by N); N − 1 is only used for the "
                      "running average.", _identity_unbiased),
        Misconception("identity-swapped",
                      "gamma scales (it undoes the division by the spread) and beta shifts (it restores the mean).",
                      _identity_swapped),
    ),
)

# ----------------------------------------------------------------------------- layer norm


def layer_norm_forward(x, gamma, beta, eps):
    """Reference: ``F.layer_norm`` over the last dim (each example with its own statistics)."""
    return F.layer_norm(x, x.shape[-1], gamma, beta, eps=eps)


def _ln_over_batch(x, gamma, beta, eps):
    return gamma * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps) + beta


def _ln_unbiased(x, gamma, beta, eps):
    mu = x.mean(axis=1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(x.var(axis=1, ddof=1, keepdims=True) + eps) + beta


def _ln_no_centering(x, gamma, beta, eps):
    return gamma * x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + eps) + beta


def _ln_inputs(n, d, eps=1e-5):
    def draw(rng):
        return dict(x=rng.normal(loc=rng.normal(scale=2.0, size=(n, 1)), scale=rng.uniform(0.5, 3.0, size=(n, 1)),
                                 size=(n, d)),
                    gamma=rng.uniform(0.5, 2.0, size=d), beta=rng.normal(size=d), eps=eps)
    return draw


LAYER_NORM = Question(
    id="lec10.layer_norm_forward", function="layer_norm_forward", title="Layer normalization forward",
    reference=layer_norm_forward,
    cases=(
        Case("4 examples, 6 features", _ln_inputs(4, 6)),
        Case("6 examples, 3 features, eps = 0.1", _ln_inputs(6, 3, eps=0.1)),
        Case("random batch", _ln_inputs(10, 8, eps=1e-3), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("ln-normalizes-over-batch",
                      "That is batch norm: layer norm normalizes each example (row) over its own features.",
                      _ln_over_batch),
        Misconception("ln-unbiased-variance",
                      "Layer norm uses the biased variance (divide by the number of features D), as torch does.",
                      _ln_unbiased),
        Misconception("ln-no-centering",
                      "Subtract each example's mean before dividing by its standard deviation.", _ln_no_centering),
    ),
)

LAB = Lab(id="lec10", title="Lecture 10 exercises: batch and layer normalization", notebook="10_batch_norm.ipynb",
          folder="lectures", questions=(BN_INFERENCE, RESTORE_IDENTITY, LAYER_NORM))
