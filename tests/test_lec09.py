"""Lecture 09's new claims fail when their idea is broken inside coursekit."""
import numpy as np

from claims import assert_claim_fails
from coursekit import functional as F
from coursekit import nn

LECTURE = "09_dropout"


def test_c1_every_example_draws_its_own_mask(monkeypatch):
    dropout = F.dropout

    def one_mask_per_batch(x, p=0.5, training=True, generator=None, *, return_mask=False):
        _, mask = dropout(x[:1], p, training, generator, return_mask=True)
        mask = np.broadcast_to(mask, x.shape)
        y = x * mask / (1.0 - p) if training else x
        return (y, mask) if return_mask else y

    monkeypatch.setattr(F, "dropout", one_mask_per_batch)
    assert_claim_fails(LECTURE, "C1")


def _no_dropout(monkeypatch):
    monkeypatch.setattr(nn.Dropout, "forward", lambda self, x: x)
    monkeypatch.setattr(nn.Dropout, "backward", lambda self, g: g)


def test_c4_rules_need_dropout(monkeypatch):
    _no_dropout(monkeypatch)
    assert_claim_fails(LECTURE, "C4")
