"""Lecture 03's new claims fail when their idea is broken (see tests/claims.py)."""
import numpy as np

from claims import assert_claim_fails
from coursekit import functional as F

LECTURE = "03_maxout"


def _message(err):
    """The measured values that the failed assert of the lecture put in its message."""
    return err.args[0]


def test_c3_a_piece_that_gets_no_gradient_is_not_trained(monkeypatch):
    """C3 (training moves every piece): route every unit's gradient to its first piece only."""
    def first_piece_only(grad_out, x, pieces):
        hit = np.zeros(x.shape[:-1] + (x.shape[-1] // pieces, pieces), dtype=x.dtype)
        hit[..., 0] = 1
        return (grad_out[..., None] * hit).reshape(x.shape)

    monkeypatch.setattr(F, "maxout_backward", first_piece_only)
    err = assert_claim_fails(LECTURE, "C3")
    least, median = _message(err)
    assert least == 0.0 < median


def test_c4_no_learned_activation_without_gradient_through_the_max(monkeypatch):
    """C4 (the activation is learned): with no gradient through the max, only the output layer learns."""
    monkeypatch.setattr(F, "maxout_backward", lambda grad_out, x, pieces: 0 * x)
    err = assert_claim_fails(LECTURE, "C4")
    assert _message(err) > 0.01                         # the fit assert: relative error of the frozen features
