"""Lecture 05 exercises — He's initialisation scale and the stability limit of gradient descent.

References: :func:`coursekit.init.calculate_gain` (He: gain √2 over √fan_in, as ``init.kaiming_normal_``) and the
lecture's Hessian of the mean squared error (no coursekit kernel computes it; C4 checks the limit with
``optim.SGD``).
"""
from __future__ import annotations

import numpy as np

from coursekit import init
from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- He's standard deviation


def he_std(fan_in, fan_out):
    """Reference: gain(relu) / √fan_in = √(2 / fan_in), what ``init.kaiming_normal_`` draws with."""
    return init.calculate_gain("relu") / np.sqrt(np.asarray(fan_in, dtype=float))


def _xavier(fan_in, fan_out):
    return np.sqrt(2.0 / (fan_in + fan_out))


def _he_variance(fan_in, fan_out):
    return 2.0 / fan_in


def _lecun(fan_in, fan_out):
    return np.sqrt(1.0 / fan_in)


def _he_fan_out(fan_in, fan_out):
    return np.sqrt(2.0 / fan_out)


def _fans(fan_in, fan_out):
    def draw(rng):
        return dict(fan_in=np.array(fan_in, dtype=float), fan_out=np.array(fan_out, dtype=float))
    return draw


def _fans_hidden(rng):
    return dict(fan_in=rng.integers(1, 2048, size=8).astype(float), fan_out=rng.integers(1, 2048, size=8).astype(float))


HE = Question(
    id="lec05.he_std", function="he_std", title="He initialisation for ReLU",
    reference=he_std, outputs=("std",),
    cases=(
        Case("square and rectangular layers", _fans([64, 256, 784, 100], [32, 256, 100, 10])),
        Case("a wide layer after a narrow one", _fans([3, 8, 1000], [512, 8, 10])),
        Case("random fans", _fans_hidden, points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("xavier-instead-of-he",
                      "This is Xavier's scale √(2/(fan_in + fan_out)), made for tanh. A ReLU zeroes half of its "
                      "inputs, so He doubles the variance and uses fan_in only.", _xavier),
        Misconception("he-variance-not-std",
                      "2/fan_in is the variance; the function returns the standard deviation.", _he_variance),
        Misconception("he-without-relu-gain",
                      "√(1/fan_in) keeps the variance for a linear layer; a ReLU halves E[a²], so the variance "
                      "needs the factor 2.", _lecun),
        Misconception("he-fan-out",
                      "The forward pass sums over fan_in inputs, so the variance divides by fan_in (fan_out "
                      "is the backward-pass variant).", _he_fan_out),
    ),
)

# ----------------------------------------------------------------------------- stability limit


def _hessian(X, bias=True, factor=2.0):
    A = np.hstack([X, np.ones((X.shape[0], 1))]) if bias else X
    return factor / X.shape[0] * A.T @ A


def stable_lr_limit(X):
    """Reference: 2 / λ_max of H = (2/n) Σ x̃ x̃ᵀ, x̃ = (x, 1)."""
    return np.float64(2.0 / np.linalg.eigvalsh(_hessian(np.asarray(X, dtype=float))).max())


def _limit_one_over_lambda(X):
    return np.float64(1.0 / np.linalg.eigvalsh(_hessian(X)).max())


def _limit_no_bias(X):
    return np.float64(2.0 / np.linalg.eigvalsh(_hessian(X, bias=False)).max())


def _limit_no_factor_two(X):
    return np.float64(2.0 / np.linalg.eigvalsh(_hessian(X, factor=1.0)).max())


def _limit_lambda_min(X):
    return np.float64(2.0 / np.linalg.eigvalsh(_hessian(X)).min())


def _offset_features(rng):
    n = 50
    return dict(X=np.stack([rng.normal(4.0, 1.0, n), rng.normal(0.0, 0.25, n)], axis=1))


def _centred_features(rng):
    return dict(X=rng.normal(size=(40, 3)) * np.array([1.0, 2.0, 0.5]))


def _random_features(rng):
    n, d = int(rng.integers(20, 80)), int(rng.integers(1, 5))
    return dict(X=rng.normal(rng.uniform(-3, 3, d), rng.uniform(0.2, 3.0, d), size=(n, d)))


LIMIT = Question(
    id="lec05.stable_lr_limit", function="stable_lr_limit", title="The stability limit of gradient descent",
    reference=stable_lr_limit, outputs=("limit",),
    cases=(
        Case("an offset feature and a small one (C1's raw inputs)", _offset_features),
        Case("centred features of different scales", _centred_features),
        Case("random offsets and scales", _random_features, points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("one-over-lambda-max",
                      "1/λ_max removes the steepest direction in one step, but gradient descent stays stable up "
                      "to 2/λ_max (|1 - ηλ| < 1).", _limit_one_over_lambda),
        Misconception("hessian-without-bias",
                      "The bias is a parameter too: the Hessian is over (w, b), i.e. the inputs get a column of "
                      "ones; an offset feature couples with it.", _limit_no_bias),
        Misconception("hessian-without-factor-two",
                      "The Hessian of mean((ŷ - y)²) is (2/n) Σ x̃ x̃ᵀ: the square brings a factor 2.",
                      _limit_no_factor_two),
        Misconception("limit-from-lambda-min",
                      "Stability is decided by the steepest direction: use the largest eigenvalue.", _limit_lambda_min),
    ),
)

LAB = Lab(id="lec05", title="Lecture 5 exercises: initialisation scale and the stable step",
          notebook="05_preprocessing_init.ipynb", questions=(HE, LIMIT), folder="lectures", timeout_s=20.0)
