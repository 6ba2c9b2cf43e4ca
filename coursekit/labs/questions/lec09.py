"""Lecture 9 exercises — the test-time rule of dropout, and weight scaling for one softmax layer.

References: :func:`coursekit.functional.dropout` in evaluation mode (inverted dropout: the identity) and
:func:`coursekit.ensemble.weight_scaled` (the softmax of the layer with its weights times 1 − p).
"""
from __future__ import annotations

import numpy as np

from coursekit import ensemble
from coursekit import functional as F
from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- test-time weights


def test_time_weights(W, p, inverted):
    """Reference: the weights used at test time. Original dropout (inverted=False) trained on m ⊙ x, so the
    test-time weights are W (1 − p); inverted dropout already divided by 1 − p in training: W as it is."""
    return F.dropout(W, p, training=False) if inverted else (1.0 - p) * W


def _rescale_twice(W, p, inverted):
    return (1.0 - p) * W


def _never_rescale(W, p, inverted):
    return np.array(W, copy=True)


def _divide_at_test(W, p, inverted):
    return np.array(W, copy=True) if inverted else W / (1.0 - p)


def _p_is_keep(W, p, inverted):
    return np.array(W, copy=True) if inverted else p * W


def _ttw_inputs(shape, p=None, inverted=False):
    def draw(rng):
        return dict(W=rng.normal(size=shape), p=float(rng.uniform(0.1, 0.4)) if p is None else p,
                    inverted=inverted)
    return draw


TEST_TIME_WEIGHTS = Question(
    id="lec09.test_time_weights", function="test_time_weights", title="Dropout's weights at test time",
    reference=test_time_weights, outputs=("W_test",),
    cases=(
        Case("original dropout, p = 0.3", _ttw_inputs((4, 5), 0.3, inverted=False)),
        Case("inverted dropout, p = 0.2", _ttw_inputs((3, 4), 0.2, inverted=True)),
        Case("original dropout, random p", _ttw_inputs((6, 6)), visibility="hidden"),
        Case("inverted dropout, random p", _ttw_inputs((5, 3), inverted=True), visibility="hidden"),
    ),
    misconceptions=(
        Misconception("dropout-rescale-twice",
                      "Inverted dropout already divided the kept units by 1 − p during training; scaling the "
                      "weights by 1 − p at test time as well corrects the same thing twice.", _rescale_twice),
        Misconception("dropout-never-rescale",
                      "With original dropout the next layer saw only a fraction 1 − p of its inputs during "
                      "training; without a correction the test-time pre-activations are too large.",
                      _never_rescale),
        Misconception("dropout-divide-at-test",
                      "At test time all units are present, so the pre-activation must be made smaller, not "
                      "larger.", _divide_at_test),
        Misconception("dropout-p-is-keep",
                      "p is the probability of *dropping* a unit (torch's convention), not of keeping it.",
                      _p_is_keep),
    ),
)

# ----------------------------------------------------------------------------- weight scaling


def weight_scaled_probs(x, W, b, p):
    """Reference: softmax(((1 − p) x) Wᵀ + b) row by row — the normalized geometric mean of all 2^n thinned
    versions of the softmax layer (lecture 9, C2)."""
    return ensemble.weight_scaled(ensemble.linear_logits(W, b), x, p=p)


def _ws_scale_by_p(x, W, b, p):
    return weight_scaled_probs(x, W, b, 1.0 - p)


def _ws_scaled_bias(x, W, b, p):
    return F.softmax((1.0 - p) * (x @ W.T + b), dim=-1)


def _ws_no_scaling(x, W, b, p):
    return F.softmax(x @ W.T + b, dim=-1)


def _ws_softmax_over_examples(x, W, b, p):
    return F.softmax((1.0 - p) * x @ W.T + b, dim=0)


def _ws_inputs(n, d, c, p=None):
    def draw(rng):
        return dict(x=rng.normal(size=(n, d)), W=rng.normal(size=(c, d)), b=rng.normal(size=c),
                    p=float(rng.uniform(0.1, 0.8)) if p is None else p)
    return draw


WEIGHT_SCALED_PROBS = Question(
    id="lec09.weight_scaled_probs", function="weight_scaled_probs",
    title="Weight scaling = the geometric mean of the thinned softmax layers",
    reference=weight_scaled_probs, outputs=("probs",),
    cases=(
        Case("5 examples, 4 inputs, 3 classes, p = 0.2", _ws_inputs(5, 4, 3, 0.2)),
        Case("6 examples, 6 inputs, 4 classes, p = 0.7", _ws_inputs(6, 6, 4, 0.7)),
        Case("random sizes, random p", _ws_inputs(8, 5, 5), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("ws-scale-by-p",
                      "Each input is kept with probability 1 − p, so its expected contribution is (1 − p) times "
                      "its value.", _ws_scale_by_p),
        Misconception("ws-scaled-bias",
                      "Dropout acts on the inputs of the layer; the bias is never dropped, so it is not "
                      "scaled.", _ws_scaled_bias),
        Misconception("ws-no-scaling",
                      "The thinned networks saw only a fraction of their inputs; the average over them "
                      "corresponds to inputs scaled by 1 − p.", _ws_no_scaling),
        Misconception("ws-softmax-over-examples",
                      "The softmax normalizes over the classes of one example (each row sums to 1), not over "
                      "the examples.", _ws_softmax_over_examples),
    ),
)

LAB = Lab(id="lec09", title="Lecture 9 exercises: dropout at test time", notebook="09_dropout.ipynb",
          folder="lectures", questions=(TEST_TIME_WEIGHTS, WEIGHT_SCALED_PROBS), timeout_s=20.0)
