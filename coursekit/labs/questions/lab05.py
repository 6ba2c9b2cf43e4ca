"""Lab 5 — the training challenge on the embedded digits data (plus softmax cross-entropy).

``train_and_predict(X_train, y_train, X_val, y_val, X_test, seed) -> labels`` gets scikit-learn's
bundled 8×8 digits, split by :func:`split` with a secret split seed and then *disguised* with a
secret key (:func:`disguise`: the 64 pixels in a secret order, each under a secret affine map
``a·x + b`` with ``a`` in [0.5, 2] and ``b`` in [-8, 8]), and returns predicted labels for the
unlabelled ``X_test``. The digits are public, so undisguised images (or a split seed passed to the
student) would let a lookup table of them score full marks without training; disguised, a
learner that standardizes each pixel sees the same problem, and a lookup table matches nothing
(``tests/test_grade.py`` checks both). ``seed`` is a fresh number for the student's own RNG, not
the split's. The reference does not train: it returns the true test labels, which the case's
input function keeps in this process (keyed by the SHA-256 of ``X_test``; they never enter the
sandbox), and :func:`score` turns the accuracy into partial credit, linear from :data:`ZERO_CREDIT_ACCURACY` (0 points) to
:data:`FULL_CREDIT_ACCURACY` (all points). The stated compute budget is
:data:`BUDGET_SECONDS` per call on one CPU core (``Lab.timeout_s`` bounds the whole submission).
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict

import numpy as np

from coursekit import data
from coursekit import functional as F
from coursekit.labs.spec import Case, Lab, Misconception, Question

VAL_SIZE, TEST_SIZE = 0.2, 0.3
FULL_CREDIT_ACCURACY = 0.95
ZERO_CREDIT_ACCURACY = 0.85
BUDGET_SECONDS = 10.0

# ----------------------------------------------------------------------------- softmax cross-entropy


def softmax_cross_entropy(logits, y):
    """Reference: (mean cross-entropy loss (0-d), dlogits = (softmax(logits) − onehot(y)) / N)."""
    return F.cross_entropy(logits, y), F.cross_entropy_backward(1.0, logits, y)


def _ce_no_max_subtraction(logits, y):
    e = np.exp(logits)
    p = e / e.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    loss = -np.mean(np.log(p[np.arange(n), y]))
    d = p.copy()
    d[np.arange(n), y] -= 1.0
    return loss, d / n


def _ce_grad_not_averaged(logits, y):
    loss, d = softmax_cross_entropy(logits, y)
    return loss, d * logits.shape[0]


def _ce_sum_not_mean(logits, y):
    loss, d = softmax_cross_entropy(logits, y)
    return loss * logits.shape[0], d * logits.shape[0]


def _ce_grad_no_onehot(logits, y):
    loss, _ = softmax_cross_entropy(logits, y)
    return loss, F.softmax(logits, dim=1) / logits.shape[0]


def _ce_grad_sign(logits, y):
    loss, d = softmax_cross_entropy(logits, y)
    return loss, -d


def _ce_inputs(n, c, scale=1.0):
    def draw(rng):
        return dict(logits=rng.normal(scale=scale, size=(n, c)), y=rng.integers(0, c, size=n))
    return draw


SOFTMAX_CE = Question(
    id="lab05.softmax_cross_entropy", function="softmax_cross_entropy", title="Softmax cross-entropy and its gradient",
    reference=softmax_cross_entropy, outputs=("loss", "dlogits"),
    cases=(
        Case("4 samples, 3 classes", _ce_inputs(4, 3)),
        Case("large logits (|z| ~ 1000)", _ce_inputs(5, 10, scale=1000.0)),
        Case("random batch", _ce_inputs(16, 10, scale=3.0), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("softmax-no-max-subtraction",
                      "exp of a large logit overflows to inf and inf/inf = nan; subtract each row's maximum "
                      "before exponentiating (softmax is unchanged by the shift).", _ce_no_max_subtraction),
        Misconception("ce-grad-not-averaged",
                      "The loss is the *mean* over the batch, so its gradient carries a factor 1/N.",
                      _ce_grad_not_averaged),
        Misconception("ce-sum-not-mean",
                      "The loss should be the mean over the batch, not the sum.", _ce_sum_not_mean),
        Misconception("ce-grad-missing-onehot",
                      "The gradient is softmax minus the one-hot target; the target term is missing.",
                      _ce_grad_no_onehot),
        Misconception("ce-grad-sign", "The gradient has the wrong sign (it is softmax − onehot).", _ce_grad_sign),
    ),
)

# ----------------------------------------------------------------------------- the challenge


def split(seed):
    """The challenge's split for ``seed``: raw float64 pixels (0..16), int64 labels (a coursekit Digits)."""
    return data.load_digits(seed=int(seed), val_size=VAL_SIZE, test_size=TEST_SIZE, standardize=False,
                            backend="numpy", dtype="float64")


def disguise(d, rng):
    """``d`` (a Digits) with every image's pixels permuted and affinely mapped by a key drawn from
    ``rng`` (the same key for all three splits, so what is learnt on one holds on the others)."""
    perm = rng.permutation(d.X_train.shape[1])
    a = rng.uniform(0.5, 2.0, size=perm.size)
    b = rng.uniform(-8.0, 8.0, size=perm.size)
    return dataclasses.replace(d, X_train=d.X_train[:, perm] * a + b, X_val=d.X_val[:, perm] * a + b,
                               X_test=d.X_test[:, perm] * a + b)


def challenge_split(seed):
    """A disguised split for rehearsing the grading on your own seeds (:func:`disguise` of
    :func:`split`, key drawn from ``seed``); the grader's seeds and keys are secret."""
    return disguise(split(seed), np.random.default_rng([int(seed), 5]))


_TEST_LABELS: "OrderedDict[str, np.ndarray]" = OrderedDict()   # digest of X_test -> its true labels
_REMEMBERED = 256


def _digest(X) -> str:
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
    return hashlib.sha256(f"{X.shape}".encode() + X.tobytes()).hexdigest()


def train_and_predict(X_train, y_train, X_val, y_val, X_test, seed):
    """Reference: the TRUE labels of ``X_test``, kept by :func:`challenge_inputs` when it drew the case."""
    labels = _TEST_LABELS.get(_digest(X_test))
    if labels is None:
        raise ValueError("train_and_predict (reference): X_test is not the test split of a case drawn by "
                         "challenge_inputs in this process")
    return labels.copy()


def challenge_inputs(rng):
    """Case inputs: a split drawn with a secret seed from ``rng`` (the grader's rng is secret),
    disguised with a secret key; the student's ``seed`` is an unrelated draw."""
    d = split(int(rng.integers(0, 2**31 - 1)))
    dd = disguise(d, rng)
    _TEST_LABELS[_digest(dd.X_test)] = d.y_test.copy()
    while len(_TEST_LABELS) > _REMEMBERED:
        _TEST_LABELS.popitem(last=False)
    return dict(X_train=dd.X_train, y_train=d.y_train, X_val=dd.X_val, y_val=d.y_val, X_test=dd.X_test,
                seed=int(rng.integers(0, 2**31 - 1)))


def score(got, expected, inputs):
    """Partial credit from test accuracy: 0 at ≤ ZERO_CREDIT_ACCURACY, 1 at ≥ FULL_CREDIT_ACCURACY, linear
    in between. ``got``: predicted labels (n_test,), ``expected``: true labels."""
    acc = float(np.mean(np.asarray(got) == np.asarray(expected)))
    frac = (acc - ZERO_CREDIT_ACCURACY) / (FULL_CREDIT_ACCURACY - ZERO_CREDIT_ACCURACY)
    frac = float(np.clip(frac, 0.0, 1.0))
    return frac, (f"test accuracy {acc:.4f} on {np.size(expected)} digits -> {frac:.2f} of the points "
                  f"(full credit at >= {FULL_CREDIT_ACCURACY:.2f}, none at <= {ZERO_CREDIT_ACCURACY:.2f})")


CHALLENGE = Question(
    id="lab05.train_and_predict", function="train_and_predict", title="Digits challenge",
    reference=train_and_predict, outputs=("labels",), score=score,
    cases=(
        Case("public split", challenge_inputs, points=2.0),
        Case("secret split 1", challenge_inputs, points=4.0, visibility="hidden"),
        Case("secret split 2", challenge_inputs, points=4.0, visibility="hidden"),
    ),
)

LAB = Lab(id="lab05", title="Training challenge: digits", notebook="lab05_challenge.ipynb",
          questions=(SOFTMAX_CE, CHALLENGE), timeout_s=60.0)
