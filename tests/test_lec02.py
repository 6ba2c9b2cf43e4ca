"""Lecture 02's new claims (C6-C8) fail when their idea is broken (see tests/claims.py)."""
import numpy as np

from claims import assert_claim_fails
from coursekit import functional as F
from coursekit import init

LECTURE = "02_vanishing_gradients"


def _message(err):
    """The measured values that the failed assert of the lecture put in its message."""
    return err.args[0]


def test_c6_leaky_units_die_without_their_leak(monkeypatch):
    """C6: a leaky unit keeps learning only through the leak's gradient; drop it from the backward pass."""
    monkeypatch.setattr(F, "leaky_relu_backward", lambda grad_out, x, negative_slope=0.01: F.relu_backward(grad_out, x))
    err = assert_claim_fails(LECTURE, "C6", needs=("C2",))
    assert _message(err)["no_grad"] > 0.2                 # leaky units now lose their gradient like ReLU units


def test_c7_prelu_slope_stays_without_its_gradient(monkeypatch):
    """C7: PReLU's slope moves by gradient descent; return a zero slope gradient and it stays at its init."""
    prelu_backward = F.prelu_backward

    def no_slope_gradient(grad_out, x, weight):
        grad_x, grad_w = prelu_backward(grad_out, x, weight)
        return grad_x, grad_w * 0

    monkeypatch.setattr(F, "prelu_backward", no_slope_gradient)
    err = assert_claim_fails(LECTURE, "C7", needs=("C2", "C4"))
    moved, spread = _message(err)                         # the slope assert's message: (moved, spread)
    assert moved == 0.0 and spread == 0.0


def test_c7_elu_mean_is_relu_mean_without_the_negative_branch(monkeypatch):
    """C7: ELU's outputs are closer to zero-mean because of its negative branch; replace ELU by ReLU."""
    monkeypatch.setattr(F, "elu", lambda x, alpha=1.0: F.relu(x))
    monkeypatch.setattr(F, "elu_backward", lambda grad_out, x, alpha=1.0: F.relu_backward(grad_out, x))
    err = assert_claim_fails(LECTURE, "C7", needs=("C2", "C4"))
    relu_mean, elu_mean = _message(err)
    assert np.allclose(relu_mean, elu_mean)


def test_c8_sum_of_other_sigmoids_is_not_softplus(monkeypatch):
    """C8: the sum of shifted sigmoids is softplus because softplus' = sigma; use a sigmoid of twice the slope."""
    sigmoid = F.sigmoid
    monkeypatch.setattr(F, "sigmoid", lambda x: sigmoid(2.0 * x))
    assert_claim_fails(LECTURE, "C8")


def test_c8_cost_ratio_fails_when_relu_is_as_expensive(monkeypatch):
    """C8: ReLU is cheaper per element; make F.relu compute a sigmoid as well (same values, higher cost)."""
    relu, sigmoid = F.relu, F.sigmoid
    monkeypatch.setattr(F, "relu", lambda x: relu(x) + 0.0 * sigmoid(x))
    err = assert_claim_fails(LECTURE, "C8")
    cost_ratio, t_sig, t_relu = _message(err)             # the timing assert, not an earlier one
    assert cost_ratio < 2.0


def test_c6_small_weights_keep_their_silent_units_without_the_bias(monkeypatch):
    """C6 (a 0.01 bias revives the silent units of a small-weight start): leave the biases at zero instead."""
    constant_ = init.constant_
    monkeypatch.setattr(init, "constant_", lambda param, val: constant_(param, 0.0))
    err = assert_claim_fails(LECTURE, "C6", needs=("C2",))
    assert _message(err).max() > 0.0                      # the assert on small_b: silent units remain
