"""Lecture 14 exercises — the loss of a denoising autoencoder, and the relative reconstruction error.

Randomness is an input, as in lab 3: the masking noise keeps entry i when ``u_i < 1 − p`` and scales the kept
entries by ``1 / (1 − p)`` — :func:`coursekit.functional.dropout` applied to the input, as in the lecture.
"""
from __future__ import annotations

import numpy as np

from coursekit import functional as F
from coursekit.labs.questions.lab03 import _GivenDraws
from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- denoising loss


def _decode(x_in, W, b, V, c):
    return F.linear(F.sigmoid(F.linear(x_in, W, b)), V, c)


def dae_loss(x, u, p, W, b, V, c):
    """Reference: mean squared error between the clean x and the reconstruction of its corrupted copy,
    x̃ = x · 1[u < 1 − p] / (1 − p), through h = sigmoid(x̃ Wᵀ + b), x̂ = h Vᵀ + c."""
    x_tilde = F.dropout(x, p, training=True, generator=_GivenDraws(u))
    return np.asarray(F.mse_loss(_decode(x_tilde, W, b, V, c), x))


def _dae_target_corrupted(x, u, p, W, b, V, c):
    x_tilde = F.dropout(x, p, training=True, generator=_GivenDraws(u))
    return np.asarray(F.mse_loss(_decode(x_tilde, W, b, V, c), x_tilde))


def _dae_no_corruption(x, u, p, W, b, V, c):
    return np.asarray(F.mse_loss(_decode(x, W, b, V, c), x))


def _dae_no_rescale(x, u, p, W, b, V, c):
    return np.asarray(F.mse_loss(_decode(x * (u < 1.0 - p), W, b, V, c), x))


def _dae_sum(x, u, p, W, b, V, c):
    return np.asarray(F.mse_loss(_decode(F.dropout(x, p, training=True, generator=_GivenDraws(u)), W, b, V, c), x,
                                 reduction="sum"))


def _dae_inputs(n, d, h, p=None):
    def draw(rng):
        return dict(x=rng.normal(size=(n, d)), u=rng.uniform(size=(n, d)),
                    p=float(rng.uniform(0.2, 0.6)) if p is None else p,
                    W=rng.normal(scale=0.5, size=(h, d)), b=rng.normal(scale=0.1, size=h),
                    V=rng.normal(scale=0.5, size=(d, h)), c=rng.normal(scale=0.1, size=d))
    return draw


DAE_LOSS = Question(
    id="lec14.dae_loss", function="dae_loss", title="The loss of a denoising autoencoder",
    reference=dae_loss, outputs=("loss",),
    cases=(
        Case("4 images of 6 pixels, 8 code units, p = 0.5", _dae_inputs(4, 6, 8, 0.5)),
        Case("5 images of 4 pixels, 3 code units, p = 0.25", _dae_inputs(5, 4, 3, 0.25)),
        Case("random sizes and p", _dae_inputs(7, 8, 10), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("dae-target-corrupted",
                      "The target is the *clean* input: reconstructing the corrupted copy rewards copying, "
                      "which is what the noise is there to prevent.", _dae_target_corrupted),
        Misconception("dae-no-corruption", "The encoder must see the corrupted copy, not the clean input.",
                      _dae_no_corruption),
        Misconception("dae-no-rescale",
                      "The corruption of this exercise is inverted dropout: kept entries are divided by 1 − p.",
                      _dae_no_rescale),
        Misconception("dae-sum", "The loss is the *mean* over all entries (examples and pixels), not the sum.",
                      _dae_sum),
    ),
)

# ----------------------------------------------------------------------------- relative error


def relative_reconstruction_error(x, x_hat):
    """Reference: mean((x_hat − x)²) / mean over units of the variance of x (1 = predicting the mean)."""
    return np.asarray(F.mse_loss(x_hat, x) / np.mean(np.var(x, axis=0)))


def _rre_global_var(x, x_hat):
    return np.asarray(F.mse_loss(x_hat, x) / np.var(x))


def _rre_unnormalized(x, x_hat):
    return np.asarray(F.mse_loss(x_hat, x))


def _rre_std(x, x_hat):
    return np.asarray(F.mse_loss(x_hat, x) / np.mean(np.std(x, axis=0)))


def _rre_var_of_reconstruction(x, x_hat):
    return np.asarray(F.mse_loss(x_hat, x) / np.mean(np.var(x_hat, axis=0)))


def _rre_inputs(n, d):
    def draw(rng):
        x = rng.normal(loc=rng.normal(scale=3.0, size=d), scale=rng.uniform(0.5, 3.0, size=d), size=(n, d))
        return dict(x=x, x_hat=x + rng.normal(scale=0.5, size=(n, d)) * rng.uniform(0.5, 2.0, size=d))
    return draw


RELATIVE_RECONSTRUCTION_ERROR = Question(
    id="lec14.relative_reconstruction_error", function="relative_reconstruction_error",
    title="Reconstruction error relative to predicting the mean",
    reference=relative_reconstruction_error, outputs=("relative_error",),
    cases=(
        Case("20 examples, 5 units with different means and scales", _rre_inputs(20, 5)),
        Case("50 examples, 8 units", _rre_inputs(50, 8)),
        Case("random data", _rre_inputs(40, 10), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("rre-global-variance",
                      "Predicting the mean means predicting each unit's own mean: normalize by the per-unit "
                      "variance, averaged over units, not by the variance of all entries pooled together.",
                      _rre_global_var),
        Misconception("rre-unnormalized", "Divide by the variance of the input, so that 1 means 'no better than "
                      "predicting the mean'.", _rre_unnormalized),
        Misconception("rre-std", "A mean *squared* error is compared with a variance, not a standard deviation.",
                      _rre_std),
        Misconception("rre-variance-of-reconstruction",
                      "The reference error is that of predicting the mean of the *input*: use the variance of x.",
                      _rre_var_of_reconstruction),
    ),
)

LAB = Lab(id="lec14", title="Lecture 14 exercises: denoising autoencoders", notebook="14_pretraining.ipynb",
          folder="lectures", questions=(DAE_LOSS, RELATIVE_RECONSTRUCTION_ERROR), timeout_s=20.0)
