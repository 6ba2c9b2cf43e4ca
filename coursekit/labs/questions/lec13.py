"""Lecture 13 exercises — the relative error of a gradient check, and sampling a hyperparameter in log space."""
from __future__ import annotations

import numpy as np

from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- relative error


def relative_error(a, n):
    """Reference: |a − n| / max(|a|, |n|) elementwise, and 0 where a = n = 0 (lecture 13, C1)."""
    num, den = np.abs(a - n), np.maximum(np.abs(a), np.abs(n))
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _re_absolute(a, n):
    return np.abs(a - n)


def _re_over_analytic(a, n):
    return np.where(a != 0, np.abs(a - n) / np.where(a != 0, np.abs(a), 1.0), 0.0)


def _re_sum(a, n):
    den = np.abs(a) + np.abs(n)
    return np.where(den > 0, np.abs(a - n) / np.where(den > 0, den, 1.0), 0.0)


def _re_signed(a, n):
    den = np.maximum(np.abs(a), np.abs(n))
    return np.where(den > 0, (a - n) / np.where(den > 0, den, 1.0), 0.0)


def _re_inputs(size):
    def draw(rng):
        a = rng.normal(size=size) * 10.0 ** rng.integers(-4, 2, size=size)
        n = a * (1 + rng.normal(scale=0.3, size=size))
        n[:3] = rng.normal(size=3)                     # a few entries far apart, |n| > |a| possible
        a[-2:], n[-2:] = 0.0, 0.0                      # both zero: error 0 by convention
        return dict(a=a, n=n)
    return draw


RELATIVE_ERROR = Question(
    id="lec13.relative_error", function="relative_error", title="The relative error of a gradient check",
    reference=relative_error, outputs=("rel_error",),
    cases=(
        Case("10 entries at different scales", _re_inputs(10)),
        Case("20 entries at different scales", _re_inputs(20)),
        Case("random entries", _re_inputs(30), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("re-absolute",
                      "The absolute difference depends on the scale of the gradient; divide by the larger of "
                      "the two magnitudes to make it scale-free.", _re_absolute),
        Misconception("re-over-analytic",
                      "Dividing by |a| alone explodes when the analytic gradient is (nearly) zero but the "
                      "numeric one is not: use the larger of |a| and |n|.", _re_over_analytic),
        Misconception("re-sum-denominator",
                      "This course uses max(|a|, |n|) in the denominator (as CS231n), not |a| + |n|.", _re_sum),
        Misconception("re-signed", "An error is a magnitude: take the absolute value of the difference.",
                      _re_signed),
    ),
)

# ----------------------------------------------------------------------------- log-uniform sampling


def log_uniform(u, low, high):
    """Reference: 10 ** (low + (high − low) u): log10 of the value is uniform in [low, high]."""
    return 10.0 ** (low + (high - low) * u)


def _lu_linear(u, low, high):
    return 10.0 ** low + (10.0 ** high - 10.0 ** low) * u


def _lu_natural(u, low, high):
    return np.exp(low + (high - low) * u)


def _lu_exponent_only(u, low, high):
    return low + (high - low) * u


def _lu_inputs(size, low=None, high=None):
    def draw(rng):
        lo = float(rng.integers(-6, -2)) if low is None else low
        return dict(u=rng.uniform(size=size), low=lo, high=float(lo + rng.integers(2, 5)) if high is None else high)
    return draw


LOG_UNIFORM = Question(
    id="lec13.log_uniform", function="log_uniform", title="Sampling a learning rate in log space",
    reference=log_uniform, outputs=("values",),
    cases=(
        Case("learning rates between 1e-4 and 1", _lu_inputs(8, -4.0, 0.0)),
        Case("weight decays between 1e-6 and 1e-1", _lu_inputs(10, -6.0, -1.0)),
        Case("random range", _lu_inputs(12), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("lu-linear",
                      "Uniform between the two values puts almost all samples in the top decade; uniform in "
                      "the exponent gives every decade the same share.", _lu_linear),
        Misconception("lu-natural-log", "low and high are exponents of 10 (log10), not of e.", _lu_natural),
        Misconception("lu-exponent-only", "Return the hyperparameter itself, 10 to the sampled exponent.",
                      _lu_exponent_only),
    ),
)

LAB = Lab(id="lec13", title="Lecture 13 exercises: gradient checks and random search",
          notebook="13_methodology.ipynb", folder="lectures", questions=(RELATIVE_ERROR, LOG_UNIFORM), timeout_s=20.0)
