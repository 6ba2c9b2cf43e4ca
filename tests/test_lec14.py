"""Lecture 14's new claims fail when their idea is broken inside coursekit."""
from claims import assert_claim_fails
from coursekit import functional as F
from coursekit import nn

LECTURE = "14_pretraining"


def _no_masking_noise(monkeypatch):
    monkeypatch.setattr(F, "dropout", lambda x, p=0.5, training=True, generator=None, **kw: x)


def test_c1_denoising_needs_the_noise(monkeypatch):
    _no_masking_noise(monkeypatch)
    assert_claim_fails(LECTURE, "C1")


def test_c2_identity_vs_denoising_needs_the_noise(monkeypatch):
    _no_masking_noise(monkeypatch)
    assert_claim_fails(LECTURE, "C2")


def test_c5_needs_dropout_in_fine_tuning(monkeypatch):
    monkeypatch.setattr(nn.Dropout, "forward", lambda self, x: x)
    monkeypatch.setattr(nn.Dropout, "backward", lambda self, g: g)
    assert_claim_fails(LECTURE, "C5", needs=("C1", "C3"))
