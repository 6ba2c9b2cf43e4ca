"""Lecture 12 exercises — the highway layer, forward and backward.

``y = T ⊙ H + (1 − T) ⊙ x`` with ``H = relu(x W_hᵀ + b_h)`` and ``T = σ(x W_tᵀ + b_t)``; weights are
stored (out, in) like torch's. References run :class:`coursekit.nn.Highway` with the given weights
(forward, and backward for ``∂L/∂x``), so the maths lives in one place.
"""
from __future__ import annotations

import numpy as np

from coursekit import functional as F
from coursekit import nn
from coursekit.labs.spec import Case, Lab, Misconception, Question


def _layer(w_h, b_h, w_t, b_t):
    layer = nn.Highway(w_h.shape[0], nn.ReLU, backend="numpy", dtype="float64")
    layer.load_state_dict({"transform.weight": w_h, "transform.bias": b_h, "gate.weight": w_t, "gate.bias": b_t})
    return layer


# ----------------------------------------------------------------------------- forward


def highway_forward(x, w_h, b_h, w_t, b_t):
    """Reference: ``nn.Highway`` forward with the given weights."""
    return _layer(w_h, b_h, w_t, b_t)(x)


def _hw_gate_swapped(x, w_h, b_h, w_t, b_t):
    h, t = F.relu(F.linear(x, w_h, b_h)), F.sigmoid(F.linear(x, w_t, b_t))
    return t * x + (1 - t) * h


def _hw_no_sigmoid(x, w_h, b_h, w_t, b_t):
    h, t = F.relu(F.linear(x, w_h, b_h)), F.linear(x, w_t, b_t)
    return t * h + (1 - t) * x


def _hw_residual(x, w_h, b_h, w_t, b_t):
    return x + F.relu(F.linear(x, w_h, b_h))


def _hw_weights_not_transposed(x, w_h, b_h, w_t, b_t):
    h, t = F.relu(x @ w_h + b_h), F.sigmoid(x @ w_t + b_t)
    return t * h + (1 - t) * x


def _hw_inputs(n, d, gate_bias=-1.0):
    def draw(rng):
        s = 1.0 / np.sqrt(d)
        return dict(x=rng.normal(size=(n, d)), w_h=rng.normal(scale=s, size=(d, d)), b_h=rng.normal(scale=0.1, size=d),
                    w_t=rng.normal(scale=s, size=(d, d)), b_t=gate_bias + rng.normal(scale=0.1, size=d))
    return draw


HIGHWAY_FORWARD = Question(
    id="lec12.highway_forward", function="highway_forward", title="Highway layer forward",
    reference=highway_forward,
    cases=(
        Case("4 examples, 3 units, gate bias -1", _hw_inputs(4, 3)),
        Case("5 examples, 4 units, gate bias +1", _hw_inputs(5, 4, gate_bias=1.0)),
        Case("random layer", _hw_inputs(8, 6, gate_bias=-2.0), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("highway-gate-swapped",
                      "The transform gate T weighs the transformed signal H; the carry gate 1 − T weighs the input.",
                      _hw_gate_swapped),
        Misconception("highway-gate-without-sigmoid",
                      "The gate is a sigmoid of its pre-activation, so that it lies in (0, 1).", _hw_no_sigmoid),
        Misconception("highway-is-residual",
                      "That is a residual block (x + H): a highway layer mixes x and H with the gate.", _hw_residual),
        Misconception("highway-weights-not-transposed",
                      "Weights are stored (out, in) like torch's Linear: compute x @ W.T.", _hw_weights_not_transposed),
    ),
)

# ----------------------------------------------------------------------------- backward


def highway_backward(grad_out, x, w_h, b_h, w_t, b_t):
    """Reference: ``∂L/∂x`` from ``nn.Highway.backward`` after a forward with the given weights."""
    layer = _layer(w_h, b_h, w_t, b_t)
    layer(x)
    return layer.backward(grad_out)


def _parts(x, w_h, b_h, w_t, b_t):
    z_h = F.linear(x, w_h, b_h)
    return z_h, F.relu(z_h), F.sigmoid(F.linear(x, w_t, b_t))


def _hw_bwd_no_carry(grad_out, x, w_h, b_h, w_t, b_t):
    z_h, h, t = _parts(x, w_h, b_h, w_t, b_t)
    g_zt = grad_out * (h - x) * t * (1 - t)
    return ((grad_out * t) * (z_h > 0)) @ w_h + g_zt @ w_t


def _hw_bwd_no_gate_path(grad_out, x, w_h, b_h, w_t, b_t):
    z_h, h, t = _parts(x, w_h, b_h, w_t, b_t)
    return grad_out * (1 - t) + ((grad_out * t) * (z_h > 0)) @ w_h


def _hw_bwd_no_transposed_weights(grad_out, x, w_h, b_h, w_t, b_t):
    z_h, h, t = _parts(x, w_h, b_h, w_t, b_t)
    g_zt = grad_out * (h - x) * t * (1 - t)
    return grad_out * (1 - t) + ((grad_out * t) * (z_h > 0)) @ w_h.T + g_zt @ w_t.T


def _hw_bwd_inputs(n, d, gate_bias=-1.0):
    forward = _hw_inputs(n, d, gate_bias)

    def draw(rng):
        inputs = forward(rng)
        return dict(grad_out=rng.normal(size=(n, d)), **inputs)
    return draw


HIGHWAY_BACKWARD = Question(
    id="lec12.highway_backward", function="highway_backward", title="Highway layer backward (input gradient)",
    reference=highway_backward,
    cases=(
        Case("4 examples, 3 units", _hw_bwd_inputs(4, 3)),
        Case("5 examples, 4 units, gate bias +0.5", _hw_bwd_inputs(5, 4, gate_bias=0.5)),
        Case("random layer", _hw_bwd_inputs(8, 6, gate_bias=-2.0), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("highway-backward-no-carry",
                      "x also reaches the output directly through (1 − T) ⊙ x: that carry path is the point of the "
                      "layer.", _hw_bwd_no_carry),
        Misconception("highway-backward-no-gate-path",
                      "The gate T depends on x too: the gradient also flows through σ(x W_tᵀ + b_t), with "
                      "∂y/∂T = H − x.", _hw_bwd_no_gate_path),
        Misconception("highway-backward-transposed",
                      "For z = x Wᵀ + b the input gradient is g W (not g Wᵀ).", _hw_bwd_no_transposed_weights),
    ),
)

LAB = Lab(id="lec12", title="Lecture 12 exercises: highway layers", notebook="12_highway_residual.ipynb",
          folder="lectures", questions=(HIGHWAY_FORWARD, HIGHWAY_BACKWARD))
