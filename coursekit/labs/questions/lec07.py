"""Lecture 07 exercises — the convergence rate of momentum on a quadratic, and minibatch gradient noise.

Neither has a coursekit kernel (they are the lecture's analysis, not an algorithm), so the references are the
lecture's formulas in NumPy: the largest root of ``r² − (1 + λ − η a) r + λ = 0`` (C3, C5) and the variance of a
mean drawn without replacement (C6). Lecture 07 checks both against coursekit's ``optim.momentum_step`` and
minibatch gradients.
"""
from __future__ import annotations

import numpy as np

from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- heavy-ball rate


def _largest_root(b, c):
    """max |r| over the roots of r² − b r + c = 0 (elementwise)."""
    disc = np.asarray(b * b - 4 * c, dtype=float)
    sq = np.sqrt(np.abs(disc))
    real = np.maximum(np.abs(b + sq), np.abs(b - sq)) / 2
    return np.where(disc >= 0, real, np.sqrt(np.abs(c)))


def heavy_ball_rate(lr, momentum, curvature):
    """Reference: the factor by which momentum shrinks the distance to the minimum of a·w²/2 per step
    (asymptotically): the largest |r| with r² − (1 + λ − η a) r + λ = 0."""
    return _largest_root(1 + momentum - lr * curvature, momentum)


def _rate_gd_factor(lr, momentum, curvature):
    return np.abs(1 - lr * curvature)


def _rate_sqrt_momentum(lr, momentum, curvature):
    return np.sqrt(momentum) + 0 * curvature * lr


def _rate_saddle_sign(lr, momentum, curvature):
    return _largest_root(1 + momentum + lr * curvature, momentum)


def _rate_smallest_root(lr, momentum, curvature):
    b, c = 1 + momentum - lr * curvature, momentum
    disc = b * b - 4 * c
    sq = np.sqrt(np.abs(disc))
    return np.where(disc >= 0, np.minimum(np.abs(b + sq), np.abs(b - sq)) / 2, np.sqrt(c))


def _rate_inputs(momentum, lr, curvatures):
    def draw(rng):
        return dict(lr=np.full(len(curvatures), lr), momentum=np.full(len(curvatures), momentum),
                    curvature=np.array(curvatures, dtype=float))
    return draw


def _rate_hidden(rng):
    n = 12
    return dict(lr=rng.uniform(0.001, 0.05, size=n), momentum=rng.uniform(0.0, 0.99, size=n),
                curvature=rng.uniform(0.01, 100.0, size=n))


RATE = Question(
    id="lec07.heavy_ball_rate", function="heavy_ball_rate", title="The convergence factor of momentum",
    reference=heavy_ball_rate, outputs=("rate",),
    cases=(
        Case("momentum 0.9, flat to steep", _rate_inputs(0.9, 0.01, [0.05, 1.0, 10.0, 100.0, 300.0])),
        Case("momentum 0.5 (real roots)", _rate_inputs(0.5, 0.02, [0.5, 2.0, 5.0, 20.0, 60.0])),
        Case("random rates, momenta and curvatures", _rate_hidden, points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("rate-gradient-descent",
                      "This is gradient descent's factor |1 - lr·a|: the velocity adds a second root; the rate is "
                      "the largest |r| of r² - (1 + λ - lr·a) r + λ = 0.", _rate_gd_factor),
        Misconception("rate-always-sqrt-momentum",
                      "√λ is the modulus of *complex* roots only; when the discriminant is positive the roots are "
                      "real and the larger one sets the rate.", _rate_sqrt_momentum),
        Misconception("rate-saddle-sign",
                      "The sign of lr·a is flipped (that is the saddle's growing direction in C3); at a minimum "
                      "the gradient pulls back: r² - (1 + λ - lr·a) r + λ = 0.", _rate_saddle_sign),
        Misconception("rate-smallest-root",
                      "The slower-decaying (largest) root dominates after a few steps, not the smallest.",
                      _rate_smallest_root),
    ),
)

# ----------------------------------------------------------------------------- minibatch noise


def minibatch_noise(per_example_grads, batch_size):
    """Reference: E‖g_B − ḡ‖² for the mean of ``batch_size`` rows drawn without replacement from the
    (n, d) per-example gradients: σ²/B · (n − B)/(n − 1), σ² = mean_i ‖g_i − ḡ‖²."""
    g = np.asarray(per_example_grads, dtype=float)
    n = g.shape[0]
    sigma2 = np.mean(np.sum((g - g.mean(axis=0)) ** 2, axis=1))
    return np.float64(sigma2 / batch_size * (n - batch_size) / (n - 1))


def _noise_no_correction(per_example_grads, batch_size):
    g = per_example_grads
    return np.float64(np.mean(np.sum((g - g.mean(axis=0)) ** 2, axis=1)) / batch_size)


def _noise_sum_not_mean(per_example_grads, batch_size):
    n = per_example_grads.shape[0]
    g = per_example_grads
    return np.float64(np.mean(np.sum((g - g.mean(axis=0)) ** 2, axis=1)) * batch_size * (n - batch_size) / (n - 1))


def _noise_unbiased_variance(per_example_grads, batch_size):
    n = per_example_grads.shape[0]
    g = per_example_grads
    s2 = np.sum((g - g.mean(axis=0)) ** 2) / (n - 1)
    return np.float64(s2 / batch_size * (n - batch_size) / (n - 1))


def _noise_per_coordinate(per_example_grads, batch_size):
    n, d = per_example_grads.shape
    return np.float64(minibatch_noise(per_example_grads, batch_size) / d)


def _noise_inputs(n, d, b):
    def draw(rng):
        return dict(per_example_grads=rng.normal(size=(n, d)) + rng.normal(size=d), batch_size=b)
    return draw


def _noise_hidden(rng):
    n = int(rng.integers(10, 60))
    return dict(per_example_grads=rng.normal(size=(n, 4)) * rng.uniform(0.5, 2.0, size=4),
                batch_size=int(rng.integers(1, n)))


NOISE = Question(
    id="lec07.minibatch_noise", function="minibatch_noise", title="Expected squared error of a minibatch gradient",
    reference=minibatch_noise, outputs=("noise",),
    cases=(
        Case("8 examples, batches of 2", _noise_inputs(8, 3, 2)),
        Case("20 examples, batches of 5", _noise_inputs(20, 5, 5)),
        Case("the whole set as one batch", _noise_inputs(6, 2, 6)),
        Case("random set and batch size", _noise_hidden, points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("noise-no-finite-population-correction",
                      "σ²/B holds for draws *with* replacement; a batch drawn without replacement from n examples "
                      "has the extra factor (n - B)/(n - 1) (the whole set as one batch has no error at all).",
                      _noise_no_correction),
        Misconception("noise-sum-not-mean",
                      "The error grows with B: that is the error of a *sum* of B gradients; the minibatch "
                      "gradient is their mean.", _noise_sum_not_mean),
        Misconception("noise-unbiased-sigma",
                      "σ² here is the population variance (divide by n); with the n - 1 version the formula "
                      "changes to σ²/B · (n - B)/n.", _noise_unbiased_variance),
        Misconception("noise-per-coordinate",
                      "The answer is the expected squared *norm* (summed over the d coordinates), not the mean "
                      "over coordinates.", _noise_per_coordinate),
    ),
)

LAB = Lab(id="lec07", title="Lecture 7 exercises: momentum's rate and minibatch noise", notebook="07_momentum.ipynb",
          questions=(RATE, NOISE), folder="lectures", timeout_s=20.0)
