"""Lecture 04's new claim fails when its idea is broken (see tests/claims.py)."""
import numpy as np

from claims import assert_claim_fails
from coursekit import functional as F

LECTURE = "04_softmax_cross_entropy"


def test_c4_without_the_softmax_the_classifier_masks_the_middle_class(monkeypatch):
    """C4: the softmax output layer is what makes it a good classifier. Drop the softmax from the cross-entropy's
    backward (the gradient becomes that of squared error on the raw outputs, (z - t)/N) and it fails like one."""
    def no_softmax_backward(grad_out, logits, target, reduction="mean"):
        t = (target[:, None] == np.arange(logits.shape[1])).astype(logits.dtype)
        g = logits - t
        return grad_out * (g / logits.shape[0] if reduction == "mean" else g)

    monkeypatch.setattr(F, "cross_entropy_backward", no_softmax_backward)
    err = assert_claim_fails(LECTURE, "C4")
    line_acc, middle_recall = err.args[0]
    assert line_acc["softmax + cross-entropy"] < 0.9
