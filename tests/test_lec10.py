"""Break tests for lecture 10 (batch normalization): remove an idea inside coursekit and check that
the claim built on it fails (``tests/claims.py``)."""
import numpy as np
import pytest

from claims import assert_claim_fails
from coursekit import functional as F
from coursekit import nn

LECTURE = "10_batch_norm"


@pytest.fixture
def bn_removed(monkeypatch):
    """BatchNorm1d becomes the identity: the network is the plain one."""
    monkeypatch.setattr(nn.BatchNorm1d, "forward", lambda self, x: x)
    monkeypatch.setattr(nn.BatchNorm1d, "backward", lambda self, grad_out: grad_out)


def test_c1_stable_inputs_need_normalization(bn_removed):
    assert_claim_fails(LECTURE, "C1")


def test_c5_deep_sigmoid_needs_normalization(bn_removed):
    assert_claim_fails(LECTURE, "C5")


def test_c6_scale_insensitivity_needs_normalization(bn_removed):
    assert_claim_fails(LECTURE, "C6")


def test_c7_identity_needs_learned_gamma_beta(monkeypatch):
    """γ and β receive no gradient: BN cannot learn to undo its normalization."""
    original = F.batch_norm_backward

    def frozen_affine(grad_out, cache):
        gx, gw, gb = original(grad_out, cache)
        return gx, None if gw is None else gw * 0.0, None if gb is None else gb * 0.0

    monkeypatch.setattr(F, "batch_norm_backward", frozen_affine)
    assert_claim_fails(LECTURE, "C7")


def test_c8_batch_independence_needs_per_example_statistics(monkeypatch):
    """Layer norm computed over the batch axis instead of the features: outputs depend on the batch."""
    def over_batch(x, normalized_shape, weight=None, bias=None, eps=1e-5):
        mu = x.mean(axis=0, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=0, keepdims=True)
        y = (x - mu) / np.sqrt(var + eps)
        return (y if weight is None else y * weight) + (0.0 if bias is None else bias)

    monkeypatch.setattr(F, "layer_norm", over_batch)
    assert_claim_fails(LECTURE, "C8")
