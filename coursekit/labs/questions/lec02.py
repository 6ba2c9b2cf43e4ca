"""Lecture 02 exercises — PReLU's backward (with its learnable slope) and counting dead units.

References: :func:`coursekit.functional.prelu_backward`; the dead-unit count is the lecture's C5/C6 measure.
"""
from __future__ import annotations

import numpy as np

from coursekit import functional as F
from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- PReLU backward


def prelu_backward(dout, x, a):
    """Reference: dx = dout · (1[x > 0] + a · 1[x ≤ 0]);  da = Σ dout · min(x, 0) (one shared slope)."""
    dx, da = F.prelu_backward(dout, x, np.asarray([a], dtype=x.dtype))
    return dx, da[0]


def _prelu_da_per_element(dout, x, a):
    return np.where(x > 0, dout, a * dout), dout * np.minimum(x, 0)


def _prelu_da_all_x(dout, x, a):
    return np.where(x > 0, dout, a * dout), np.sum(dout * x)


def _prelu_da_no_dout(dout, x, a):
    return np.where(x > 0, dout, a * dout), np.sum(np.minimum(x, 0))


def _prelu_dx_relu(dout, x, a):
    return dout * (x > 0), np.sum(dout * np.minimum(x, 0))


def _prelu_dx_kink_one(dout, x, a):
    return np.where(x >= 0, dout, a * dout), np.sum(dout * np.minimum(x, 0))


def _prelu_inputs(shape, a=None, zeros=0):
    def draw(rng):
        x = rng.normal(size=shape)
        if zeros:
            flat = x.reshape(-1)
            flat[rng.choice(flat.size, size=zeros, replace=False)] = 0.0
        return dict(dout=rng.normal(size=shape), x=x,
                    a=float(rng.uniform(0.05, 0.5)) if a is None else a)
    return draw


PRELU = Question(
    id="lec02.prelu_backward", function="prelu_backward", title="PReLU backward with a learned slope",
    reference=prelu_backward, outputs=("dx", "da"),
    cases=(
        Case("slope 0.25, some inputs exactly 0", _prelu_inputs((4, 5), a=0.25, zeros=3)),
        Case("random slope", _prelu_inputs((3, 6))),
        Case("random batch with kinks", _prelu_inputs((6, 7), zeros=4), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("prelu-da-not-summed",
                      "da is returned per element; the slope is one number shared by every position, so its "
                      "gradient is the sum of the per-position contributions.", _prelu_da_per_element),
        Misconception("prelu-da-positive-side",
                      "da sums dout·x over every position; the slope only acts where x ≤ 0, so only those "
                      "positions contribute.", _prelu_da_all_x),
        Misconception("prelu-da-no-upstream",
                      "da ignores the upstream gradient dout; multiply by it before summing.", _prelu_da_no_dout),
        Misconception("prelu-dx-like-relu",
                      "dx is ReLU's derivative: on the negative side PReLU passes a·dout, not 0.", _prelu_dx_relu),
        Misconception("prelu-kink-convention",
                      "At exactly x = 0 the derivative taken here is the negative side's (a), as in torch.",
                      _prelu_dx_kink_one),
    ),
)

# ----------------------------------------------------------------------------- dead units


def dead_fraction(z):
    """Reference: fraction of units (columns) whose pre-activation is ≤ 0 for every example (row)."""
    return np.mean(np.all(z <= 0, axis=0))


def _dead_any(z):
    return np.mean(np.any(z <= 0, axis=0))


def _dead_rows(z):
    return np.mean(np.all(z <= 0, axis=1))


def _dead_strict(z):
    return np.mean(np.all(z < 0, axis=0))


def _dead_count(z):
    return float(np.sum(np.all(z <= 0, axis=0)))


def _dead_inputs(n, units, n_dead, zero_dead=0, square=False):
    def draw(rng):
        z = rng.normal(size=(n, units))
        cols = rng.choice(units, size=n_dead, replace=False)
        z[:, cols] = -np.abs(z[:, cols])                      # silent on every example
        for c in cols[:zero_dead]:                            # silent, with some exact zeros (ReLU(0) = 0)
            z[rng.choice(n, size=2, replace=False), c] = 0.0
        return dict(z=z)
    return draw


def _dead_rows_visible(rng):
    z = rng.normal(size=(8, 6))
    z[:, [1, 4]] = -np.abs(z[:, [1, 4]])
    z[2, 4] = 0.0
    z[[0, 5], :] = -np.abs(z[[0, 5], :])                     # two examples on which every unit is off
    return dict(z=z)


DEAD = Question(
    id="lec02.dead_fraction", function="dead_fraction", title="Fraction of dead ReLU units",
    reference=dead_fraction, outputs=("fraction",),
    cases=(
        Case("a batch with dead units, some exact zeros", _dead_inputs(10, 8, 3, zero_dead=2)),
        Case("examples on which every unit is off", _dead_rows_visible),
        Case("a larger layer", _dead_inputs(40, 32, 9, zero_dead=3), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("dead-any-example",
                      "A unit that is off on *some* examples is only inactive there; it is dead when it is off "
                      "on every example.", _dead_any),
        Misconception("dead-wrong-axis",
                      "This averages over examples (rows); dead units are columns that are off for every row.",
                      _dead_rows),
        Misconception("dead-zero-counts-as-firing",
                      "A pre-activation of exactly 0 gives ReLU output 0 and gradient 0: it does not fire.",
                      _dead_strict),
        Misconception("dead-count-not-fraction", "This is the number of dead units; return the fraction.",
                      _dead_count),
    ),
)

LAB = Lab(id="lec02", title="Lecture 2 exercises: PReLU and dead units", notebook="02_vanishing_gradients.ipynb",
          folder="lectures", questions=(PRELU, DEAD), timeout_s=20.0)
