"""Break tests for lecture 12 (highway and residual networks): freeze or remove an idea inside
coursekit and check that the claim built on it fails (``tests/claims.py``)."""
from claims import assert_claim_fails
from coursekit import nn

LECTURE = "12_highway_residual"


def test_c4_gates_must_learn(monkeypatch):
    """The transform gates get no gradient (frozen at their initial weights): they cannot open or close."""
    original = nn.Highway.backward

    def frozen_gate(self, grad_out):
        g = original(self, grad_out)
        for p in self.gate.parameters():
            p.grad = p.grad * 0.0
        return g

    monkeypatch.setattr(nn.Highway, "backward", frozen_gate)
    assert_claim_fails(LECTURE, "C4")
