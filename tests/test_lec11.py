"""Break tests for lecture 11 (SELU): change SELU inside coursekit and check that the claims built on
its self-normalizing fixed point fail (``tests/claims.py``)."""
from claims import assert_claim_fails
from coursekit import functional as F
from coursekit import nn

LECTURE = "11_selu"


def test_c5_fixed_point_needs_selu_constants(monkeypatch):
    """An ELU (alpha = 1, no lambda) in place of SELU has no fixed point at mean 0, variance 1."""
    monkeypatch.setattr(F, "selu", lambda x: F.elu(x, 1.0))
    assert_claim_fails(LECTURE, "C5")


def test_c6_training_needs_selu(monkeypatch):
    """The "SELU" network computes ReLU (with its LeCun weights): its advantage over ReLU + He is gone."""
    def forward(self, x):
        self._saved_arrs = (x, None)
        return F.relu(x)

    monkeypatch.setattr(nn.SELU, "forward", forward)
    monkeypatch.setattr(nn.SELU, "backward", lambda self, g: F.relu_backward(g, self._saved_arrs[0]))
    assert_claim_fails(LECTURE, "C6")
