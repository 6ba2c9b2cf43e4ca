"""Lab 1 — activation functions, forward and backward: sigmoid, ReLU, leaky ReLU, ELU, maxout.

References: :mod:`coursekit.functional` (``F.sigmoid``, ``F.relu_backward``, ...). The student's
backward functions take the forward *input* ``x`` (the cache) and the upstream gradient ``dout``.
"""
from __future__ import annotations

import numpy as np

from coursekit import functional as F
from coursekit.labs.spec import Case, Lab, Misconception, Question


def _x(shape, scale=1.0):
    return lambda rng: dict(x=rng.normal(scale=scale, size=shape))


def _dout_x(shape, scale=1.0, zeros=0, **extra):
    """dout and x of ``shape``; ``zeros`` entries of x set to exactly 0 (kinks)."""
    def draw(rng):
        x = rng.normal(scale=scale, size=shape)
        if zeros:
            flat = x.reshape(-1)
            flat[rng.choice(flat.size, size=zeros, replace=False)] = 0.0
        out = dict(dout=rng.normal(size=shape), x=x)
        out.update({k: (v(rng) if callable(v) else v) for k, v in extra.items()})
        return out
    return draw


# ----------------------------------------------------------------------------- sigmoid


def sigmoid_forward(x):
    """Reference: σ(x) = 1 / (1 + e^{−x}), finite for any x."""
    return F.sigmoid(x)


def _sigmoid_overflow(x):
    e = np.exp(x)
    return e / (1.0 + e)


def _sigmoid_sign(x):
    return 1.0 / (1.0 + np.exp(x))


def _sigmoid_large(rng):
    return dict(x=np.array([-1000.0, -40.0, -5.0, 0.0, 5.0, 40.0, 1000.0]))


SIGMOID_FORWARD = Question(
    id="lab01.sigmoid_forward", function="sigmoid_forward", title="Sigmoid forward",
    reference=sigmoid_forward,
    cases=(
        Case("standard normal inputs", _x((4, 5))),
        Case("very large and very small inputs", _sigmoid_large),
        Case("random batch", _x((3, 4, 5), 4.0), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("sigmoid-exp-overflow",
                      "eˣ / (1 + eˣ) overflows to inf/inf = nan for large positive x; use a form that "
                      "never exponentiates a large positive number.", _sigmoid_overflow),
        Misconception("sigmoid-sign-flip", "This is σ(−x): check the sign inside the exponential.",
                      _sigmoid_sign),
    ),
)


def sigmoid_backward(dout, x):
    """Reference: dx = dout · σ(x) (1 − σ(x))."""
    return F.sigmoid_backward(dout, F.sigmoid(x))


def _sigmoid_bwd_of_input(dout, x):
    return dout * x * (1.0 - x)


def _sigmoid_bwd_no_upstream(dout, x):
    s = F.sigmoid(x)
    return s * (1.0 - s)


def _sigmoid_bwd_missing_factor(dout, x):
    return dout * F.sigmoid(x)


SIGMOID_BACKWARD = Question(
    id="lab01.sigmoid_backward", function="sigmoid_backward", title="Sigmoid backward",
    reference=sigmoid_backward,
    cases=(
        Case("small batch", _dout_x((4, 5))),
        Case("wide range of inputs", _dout_x((2, 8), scale=5.0)),
        Case("random batch", _dout_x((3, 4, 5), scale=3.0), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("sigmoid-derivative-of-input",
                      "σ'(x) = σ(x)(1 − σ(x)) is written with the sigmoid's *output*; here it was applied "
                      "to the input x.", _sigmoid_bwd_of_input),
        Misconception("sigmoid-forgot-upstream",
                      "The local derivative is not multiplied by the upstream gradient dout (chain rule).",
                      _sigmoid_bwd_no_upstream),
        Misconception("sigmoid-derivative-incomplete",
                      "Only one factor of σ'(x) = σ(x)(1 − σ(x)) is used.", _sigmoid_bwd_missing_factor),
    ),
)

# ----------------------------------------------------------------------------- relu / leaky relu


def relu_backward(dout, x):
    """Reference: dx = dout · 1[x > 0] (gradient 0 at exactly 0, as torch)."""
    return F.relu_backward(dout, x)


def _relu_grad_at_zero(dout, x):
    return dout * (x >= 0)


def _relu_no_upstream(dout, x):
    return (x > 0).astype(x.dtype)


def _relu_passes_negative(dout, x):
    return np.maximum(dout, 0.0)


RELU_BACKWARD = Question(
    id="lab01.relu_backward", function="relu_backward", title="ReLU backward",
    reference=relu_backward,
    cases=(
        Case("inputs containing exact zeros", _dout_x((4, 6), zeros=5)),
        Case("small batch", _dout_x((3, 3))),
        Case("random batch with zeros", _dout_x((5, 7), zeros=8), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("relu-grad-at-zero",
                      "At x = 0 the gradient must be 0 (the convention of torch and of this course: "
                      "only strictly positive inputs pass the gradient).", _relu_grad_at_zero),
        Misconception("relu-forgot-upstream",
                      "The 0/1 local derivative is not multiplied by the upstream gradient dout.",
                      _relu_no_upstream),
        Misconception("relu-applied-to-dout",
                      "ReLU was applied to dout; the gate depends on the sign of the input x, not of the "
                      "gradient.", _relu_passes_negative),
    ),
)


def leaky_relu_backward(dout, x, negative_slope):
    """Reference: dx = dout where x > 0, negative_slope · dout elsewhere (also at 0)."""
    return F.leaky_relu_backward(dout, x, negative_slope=negative_slope)


def _leaky_grad_at_zero(dout, x, negative_slope):
    return np.where(x >= 0, dout, negative_slope * dout)


def _leaky_swapped(dout, x, negative_slope):
    return np.where(x > 0, negative_slope * dout, dout)


def _leaky_is_relu(dout, x, negative_slope):
    return np.where(x > 0, dout, 0.0)


def _slope(rng):
    return float(rng.uniform(0.05, 0.3))


LEAKY_RELU_BACKWARD = Question(
    id="lab01.leaky_relu_backward", function="leaky_relu_backward", title="Leaky ReLU backward",
    reference=leaky_relu_backward,
    cases=(
        Case("slope 0.01, inputs with exact zeros", _dout_x((4, 6), zeros=5, negative_slope=0.01)),
        Case("slope 0.2", _dout_x((3, 5), negative_slope=0.2)),
        Case("random slope, zeros", _dout_x((6, 6), zeros=6, negative_slope=_slope), points=2.0,
             visibility="hidden"),
    ),
    misconceptions=(
        Misconception("leaky-relu-grad-at-zero",
                      "At x = 0 the slope on the left (negative_slope) is used, as in torch; only x > 0 "
                      "passes dout unchanged.", _leaky_grad_at_zero),
        Misconception("leaky-relu-slope-swapped",
                      "negative_slope scales the gradient of the *negative* inputs; the positive side has "
                      "slope 1.", _leaky_swapped),
        Misconception("leaky-relu-no-slope",
                      "Negative inputs still pass a (scaled) gradient in a leaky ReLU; that is its point.",
                      _leaky_is_relu),
    ),
)

# ----------------------------------------------------------------------------- elu


def elu_forward(x, alpha):
    """Reference: x for x > 0, α (eˣ − 1) otherwise."""
    return F.elu(x, alpha=alpha)


def _elu_no_alpha(x, alpha):
    return F.elu(x, alpha=1.0)


def _elu_no_minus_one(x, alpha):
    return np.where(x > 0, x, alpha * np.exp(np.minimum(x, 0.0)))


def _alpha(rng):
    return float(rng.uniform(0.2, 2.0))


ELU_FORWARD = Question(
    id="lab01.elu_forward", function="elu_forward", title="ELU forward", reference=elu_forward,
    cases=(
        Case("alpha = 1", lambda rng: dict(x=rng.normal(scale=2.0, size=(4, 5)), alpha=1.0)),
        Case("alpha = 0.5", lambda rng: dict(x=rng.normal(scale=2.0, size=(3, 4)), alpha=0.5)),
        Case("random alpha", lambda rng: dict(x=rng.normal(scale=3.0, size=(5, 5)), alpha=_alpha(rng)),
             points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("elu-ignores-alpha", "alpha scales the negative branch α (eˣ − 1).", _elu_no_alpha),
        Misconception("elu-missing-minus-one",
                      "The negative branch is α (eˣ − 1): without the −1 the function jumps at 0.",
                      _elu_no_minus_one),
    ),
)


def elu_backward(dout, x, alpha):
    """Reference: dx = dout for x > 0, dout · α eˣ for x ≤ 0 (torch's value at 0)."""
    return F.elu_backward(dout, x, alpha=alpha)


def _elu_bwd_no_alpha(dout, x, alpha):
    return F.elu_backward(dout, x, alpha=1.0)


def _elu_bwd_from_output(dout, x, alpha):
    return np.where(x > 0, dout, dout * F.elu(x, alpha=alpha))


def _elu_bwd_grad_at_zero(dout, x, alpha):
    return np.where(x >= 0, dout, dout * alpha * np.exp(np.minimum(x, 0.0)))


ELU_BACKWARD = Question(
    id="lab01.elu_backward", function="elu_backward", title="ELU backward", reference=elu_backward,
    cases=(
        Case("alpha = 0.5, inputs with exact zeros", _dout_x((4, 5), scale=2.0, zeros=4, alpha=0.5)),
        Case("alpha = 1.5", _dout_x((3, 6), scale=2.0, alpha=1.5)),
        Case("random alpha, zeros", _dout_x((5, 6), scale=2.0, zeros=5, alpha=_alpha), points=2.0,
             visibility="hidden"),
    ),
    misconceptions=(
        Misconception("elu-derivative-ignores-alpha",
                      "For x ≤ 0 the derivative of α (eˣ − 1) is α eˣ: alpha is missing.", _elu_bwd_no_alpha),
        Misconception("elu-derivative-from-output",
                      "For x ≤ 0 the derivative equals the output *plus α* (α eˣ = elu(x) + α); the output "
                      "alone was used.", _elu_bwd_from_output),
        Misconception("elu-grad-at-zero",
                      "At x = 0 this course (like torch) uses the left branch, α e⁰ = α.", _elu_bwd_grad_at_zero),
    ),
)

# ----------------------------------------------------------------------------- maxout


def maxout_forward(x, pieces):
    """Reference: x (N, units·pieces) viewed as (N, units, pieces), max over the last axis -> (N, units)."""
    return F.maxout(x, pieces)


def _maxout_strided(x, pieces):
    n, d = x.shape
    return x.reshape(n, pieces, d // pieces).max(axis=1)


def _maxout_inputs(n, units, pieces, dout=False):
    def draw(rng):
        d = dict(x=rng.normal(size=(n, units * pieces)), pieces=pieces)
        if dout:
            d = dict(dout=rng.normal(size=(n, units)), **d)
        return d
    return draw


MAXOUT_FORWARD = Question(
    id="lab01.maxout_forward", function="maxout_forward", title="Maxout forward", reference=maxout_forward,
    cases=(
        Case("2 pieces, 3 units", _maxout_inputs(4, 3, 2)),
        Case("3 pieces, 4 units", _maxout_inputs(2, 4, 3)),
        Case("random sizes", _maxout_inputs(6, 5, 4), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("maxout-strided-grouping",
                      "The groups are strided (features j, j + units, ...); a unit's pieces are "
                      "*consecutive* features: reshape to (N, units, pieces).", _maxout_strided),
    ),
)


def maxout_backward(dout, x, pieces):
    """Reference: dout of each unit routed to the arg-max piece (first on ties), 0 elsewhere."""
    return F.maxout_backward(dout, x, pieces)


def _maxout_bwd_all(dout, x, pieces):
    return np.repeat(dout, pieces, axis=-1)


def _maxout_bwd_split(dout, x, pieces):
    return np.repeat(dout, pieces, axis=-1) / pieces


def _maxout_bwd_strided(dout, x, pieces):
    n, d = x.shape
    units = d // pieces
    xr = x.reshape(n, pieces, units)
    hit = xr.argmax(axis=1)[:, None, :] == np.arange(pieces)[None, :, None]
    return np.where(hit, dout[:, None, :], 0.0).reshape(n, d)


MAXOUT_BACKWARD = Question(
    id="lab01.maxout_backward", function="maxout_backward", title="Maxout backward", reference=maxout_backward,
    cases=(
        Case("2 pieces, 3 units", _maxout_inputs(4, 3, 2, dout=True)),
        Case("3 pieces, 4 units", _maxout_inputs(3, 4, 3, dout=True)),
        Case("random sizes", _maxout_inputs(6, 5, 4, dout=True), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("maxout-route-to-all",
                      "The gradient goes only to the piece that won the max; the others did not affect the "
                      "output and get 0.", _maxout_bwd_all),
        Misconception("maxout-split-evenly",
                      "The gradient is not shared among the pieces: the winning piece gets all of it.",
                      _maxout_bwd_split),
        Misconception("maxout-strided-grouping",
                      "The groups are strided (features j, j + units, ...); a unit's pieces are "
                      "*consecutive* features: reshape to (N, units, pieces).", _maxout_bwd_strided),
    ),
)

LAB = Lab(id="lab01", title="Activation functions: forward and backward", notebook="lab01_activations.ipynb",
          questions=(SIGMOID_FORWARD, SIGMOID_BACKWARD, RELU_BACKWARD, LEAKY_RELU_BACKWARD, ELU_FORWARD,
                     ELU_BACKWARD, MAXOUT_FORWARD, MAXOUT_BACKWARD), timeout_s=20.0)
