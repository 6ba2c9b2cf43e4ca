"""Lecture 07's new claims fail when their idea is broken inside coursekit (tests/claims.py)."""
from claims import assert_claim_fails
from coursekit import nn, optim

LECTURE = "07_momentum"


def test_c5_zigzag_damping_needs_momentum(monkeypatch):
    """Momentum set to 0 inside the momentum step: the "momentum" run is gradient descent at a tenth of the
    rate, no zig-zag but no progress along the valley either."""
    step = optim.momentum_step
    monkeypatch.setattr(optim, "momentum_step",
                        lambda param, grad, velocity, *, lr, momentum: step(param, grad, velocity, lr=lr, momentum=0.0))
    assert_claim_fails(LECTURE, "C5")


def test_c6_noise_falls_like_one_over_b_because_the_loss_is_a_mean(monkeypatch):
    """A summed instead of averaged loss: the minibatch gradient no longer estimates the full one, and its
    error no longer falls like 1/B."""
    init = nn.CrossEntropyLoss.__init__
    monkeypatch.setattr(nn.CrossEntropyLoss, "__init__", lambda self, reduction="mean": init(self, "sum"))
    assert_claim_fails(LECTURE, "C6")
