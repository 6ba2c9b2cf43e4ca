"""Lecture 08's new claims fail when their idea is broken inside coursekit."""
import numpy as np

from claims import assert_claim_fails
from coursekit import data, optim

LECTURE = "08_generalization"


def test_c3_needs_augmentation(monkeypatch):
    monkeypatch.setattr(data, "augment_digits", lambda X, **kw: np.array(X, copy=True))   # no variation
    assert_claim_fails(LECTURE, "C3")


def test_c4_noise_sensitivity_needs_weight_decay(monkeypatch):
    sgd = optim._sgd
    monkeypatch.setattr(optim, "_sgd", lambda params, grads, bufs, lr, momentum, dampening, weight_decay, nesterov:
                        sgd(params, grads, bufs, lr, momentum, dampening, 0.0, nesterov))
    assert_claim_fails(LECTURE, "C4")


def test_c5_sparsity_needs_the_l1_subgradient(monkeypatch):
    monkeypatch.setattr(optim, "l1_subgradient", lambda w: 0.0 * w)
    assert_claim_fails(LECTURE, "C5")


def test_c5_l1_is_not_l2(monkeypatch):
    monkeypatch.setattr(optim, "l1_subgradient", lambda w: w)             # L1 replaced by an L2 pull
    assert_claim_fails(LECTURE, "C5")
