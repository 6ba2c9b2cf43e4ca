"""Lecture 05's new claim fails when its idea is broken inside coursekit (tests/claims.py)."""
from claims import assert_claim_fails
from coursekit import nn

LECTURE = "05_preprocessing_init"


def test_c4_limit_is_two_over_lambda_for_the_true_gradient(monkeypatch):
    """A squared-error backward that forgets the factor 2 of (ŷ − y)²: every step is half as long, the
    Hessian seen by the optimizer is half as curved, and the step just over 2/λ_max no longer diverges."""
    backward = nn.MSELoss.backward
    monkeypatch.setattr(nn.MSELoss, "backward", lambda self, grad_out=1.0: backward(self, grad_out) / 2)
    assert_claim_fails(LECTURE, "C4", needs=("C1",))
