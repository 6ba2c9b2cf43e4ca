"""Lecture 11 exercises — SELU's backward pass and the statistics of a unit's net input.

``selu_backward`` is checked against ``F.selu_backward`` (torch's convention at the kink: for
``x = 0`` the derivative is ``λα``, the left branch). ``net_input_moments`` is the first step of the
moment map of the lecture: for inputs with mean μ and variance ν and a weight matrix W (out, in),
unit j's net input has mean ``μ ω_j`` and variance ``ν τ_j`` with ``ω_j = Σ_i W_ji`` and
``τ_j = Σ_i W_ji²``.
"""
from __future__ import annotations

import numpy as np

from coursekit import functional as F
from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- SELU backward


def selu_backward(grad_out, x):
    """Reference: ``F.selu_backward``: λ·g for x > 0, λα eˣ·g for x ≤ 0."""
    return F.selu_backward(grad_out, x)


def _selu_grad_no_lambda(grad_out, x):
    return grad_out * np.where(x > 0, 1.0, F.ALPHA * np.exp(np.minimum(x, 0.0)))


def _selu_grad_no_exp(grad_out, x):
    return grad_out * F.LAMBDA * np.where(x > 0, 1.0, F.ALPHA)


def _selu_grad_kink_right(grad_out, x):
    return grad_out * F.LAMBDA * np.where(x >= 0, 1.0, F.ALPHA * np.exp(np.minimum(x, 0.0)))


def _selu_grad_of_output(grad_out, x):
    y = F.selu(x)                       # differentiates at the output instead of the input
    return grad_out * F.LAMBDA * np.where(y > 0, 1.0, F.ALPHA * np.exp(np.minimum(y, 0.0)))


def _selu_grad_ignores_upstream(grad_out, x):
    return F.selu_backward(np.ones_like(grad_out), x)


def _selu_inputs(shape, zeros=False):
    def draw(rng):
        x = rng.normal(scale=2.0, size=shape)
        if zeros:
            x.flat[::3] = 0.0
        return dict(grad_out=rng.normal(size=shape), x=x)
    return draw


SELU_BACKWARD = Question(
    id="lec11.selu_backward", function="selu_backward", title="SELU backward",
    reference=selu_backward,
    cases=(
        Case("random inputs", _selu_inputs((5, 4))),
        Case("inputs with exact zeros", _selu_inputs((4, 6), zeros=True)),
        Case("larger batch with zeros", _selu_inputs((16, 8), zeros=True), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("selu-grad-no-lambda", "The scale λ multiplies both branches, so it is in the derivative too.",
                      _selu_grad_no_lambda),
        Misconception("selu-grad-no-exp",
                      "On the negative side the derivative of λα(eˣ − 1) is λα eˣ, which depends on x.",
                      _selu_grad_no_exp),
        Misconception("selu-grad-at-zero",
                      "At x = 0 follow torch: the left branch's value, λα (x ≤ 0 is the negative side).",
                      _selu_grad_kink_right),
        Misconception("selu-grad-of-output", "Differentiate with respect to the input x, not at the output selu(x).",
                      _selu_grad_of_output),
        Misconception("selu-grad-ignores-upstream",
                      "The chain rule multiplies the local derivative by the upstream gradient grad_out.",
                      _selu_grad_ignores_upstream),
    ),
)

# ----------------------------------------------------------------------------- net input moments


def net_input_moments(mu, nu, weight):
    """Reference: (μ Σ_i W_ji, ν Σ_i W_ji²) per output unit j, for W of shape (out, in)."""
    return mu * weight.sum(axis=1), nu * (weight ** 2).sum(axis=1)


def _moments_wrong_axis(mu, nu, weight):
    return mu * weight.sum(axis=0), nu * (weight ** 2).sum(axis=0)


def _moments_square_of_sum(mu, nu, weight):
    return mu * weight.sum(axis=1), nu * weight.sum(axis=1) ** 2


def _moments_variance_not_squared(mu, nu, weight):
    return mu * weight.sum(axis=1), nu * weight.sum(axis=1)


def _moments_std_for_variance(mu, nu, weight):
    return mu * weight.sum(axis=1), np.sqrt(nu) * (weight ** 2).sum(axis=1)


def _moments_inputs(n_out, n_in, mean_shift=0.0):
    def draw(rng):
        return dict(mu=float(rng.normal()), nu=float(rng.uniform(0.3, 3.0)),
                    weight=rng.normal(loc=mean_shift, scale=1.0 / np.sqrt(n_in), size=(n_out, n_in)))
    return draw


NET_INPUT_MOMENTS = Question(
    id="lec11.net_input_moments", function="net_input_moments", title="Mean and variance of a unit's net input",
    reference=net_input_moments, outputs=("mean", "variance"),
    cases=(
        Case("3 units, 5 inputs", _moments_inputs(3, 5)),
        Case("4 units, 8 inputs, weights with a mean", _moments_inputs(4, 8, mean_shift=0.3)),
        Case("random layer", _moments_inputs(16, 32, mean_shift=0.1), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("moments-wrong-axis",
                      "W has shape (out, in): unit j's weights are row j, so sum over the inputs (axis 1).",
                      _moments_wrong_axis),
        Misconception("moments-square-of-sum",
                      "The variances of independent terms add: Σ w² ν, not (Σ w)² ν.", _moments_square_of_sum),
        Misconception("moments-variance-not-squared",
                      "Var(w x) = w² Var(x): the weights enter the variance squared.", _moments_variance_not_squared),
        Misconception("moments-std-for-variance", "nu is already a variance: multiply it, not its square root.",
                      _moments_std_for_variance),
    ),
)

LAB = Lab(id="lec11", title="Lecture 11 exercises: SELU", notebook="11_selu.ipynb", folder="lectures",
          questions=(SELU_BACKWARD, NET_INPUT_MOMENTS))
