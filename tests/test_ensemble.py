"""coursekit.ensemble: dropout as an exactly enumerated ensemble vs the weight-scaling rule."""
import itertools

import numpy as np
import pytest

from coursekit import backend as B
from coursekit import ensemble as E
from coursekit import nn


def _layer(rng, n=10, c=4, make=np.asarray):
    return make(rng.normal(size=(c, n))), make(rng.normal(size=c)), make(rng.normal(size=n))


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_masks_and_probabilities():
    m = B.to_numpy(E.dropout_masks(5, backend="numpy", dtype="float64"))
    assert m.shape == (32, 5) and len({tuple(r) for r in m}) == 32 and set(np.unique(m)) == {0.0, 1.0}
    P = E.mask_probabilities(5, 0.3)
    assert P.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(P, 0.7 ** m.sum(1) * 0.3 ** (5 - m.sum(1)), rtol=1e-15)


def test_means_match_brute_force_reference(rng):
    """An independent, loop-based enumeration in NumPy (n = 4, p = 0.3)."""
    W, b, x = _layer(rng, n=4, c=3)
    p, q = 0.3, 0.7
    arith, logsum = np.zeros(3), np.zeros(3)
    for m in itertools.product([0, 1], repeat=4):
        m = np.array(m, dtype=float)
        prob = q ** m.sum() * p ** (4 - m.sum())
        y = _softmax(W @ (m * x) + b)
        arith += prob * y
        logsum += prob * np.log(y)
    r = E.ensemble_predictions(E.linear_logits(W, b), x, p=p)
    np.testing.assert_allclose(r.arithmetic, arith, rtol=1e-13)
    np.testing.assert_allclose(r.geometric, _softmax(logsum), rtol=1e-13)
    np.testing.assert_allclose(r.weight_scaled, _softmax(q * W @ x + b), rtol=1e-13)


@pytest.mark.parametrize("p", [0.5, 0.2, 0.8, 0.0])
def test_weighted_geometric_mean_equals_weight_scaling_for_one_softmax_layer(p, make, rng):
    W, b, x = _layer(rng, n=12, make=lambda a: make(a, "float64"))
    r = E.ensemble_predictions(E.linear_logits(W, b), x, p=p)
    np.testing.assert_allclose(B.to_numpy(r.geometric), B.to_numpy(r.weight_scaled), rtol=0, atol=1e-12)
    # the arithmetic mean is a different average (softmax is not affine in the mask) unless p = 0
    gap = np.abs(B.to_numpy(r.arithmetic) - B.to_numpy(r.weight_scaled)).max()
    assert (gap < 1e-12) if p == 0.0 else (gap > 1e-4)
    assert B.backend_of(r.geometric) == B.backend_of(x)


@pytest.mark.parametrize("p", [0.5, 0.2, 0.8])
def test_unweighted_geometric_mean_equals_weight_scaling_only_at_half(p, make, rng):
    W, b, x = _layer(rng, n=10, make=lambda a: make(a, "float64"))
    r = E.ensemble_predictions(E.linear_logits(W, b), x, p=p)
    gap = np.abs(B.to_numpy(r.geometric_uniform) - B.to_numpy(r.weight_scaled)).max()
    assert (gap < 1e-12) if p == 0.5 else (gap > 1e-3)
    # it is always softmax(½ W x + b): the uniform distribution over masks has mean ½
    np.testing.assert_allclose(B.to_numpy(r.geometric_uniform), B.to_numpy(E.weight_scaled(E.linear_logits(W, b), x, p=0.5)),
                               atol=1e-12)


def test_deeper_net_gap_is_small_but_nonzero(make, rng):
    W1, b1 = make(rng.normal(size=(8, 10))), make(rng.normal(size=8))
    W2, b2 = make(rng.normal(size=(4, 8)) * 0.5), make(rng.normal(size=4))
    X = make(rng.normal(size=(6, 10)))
    gap = E.ensemble_gap(E.mlp_logits(W1, b1, W2, b2), X, p=0.5)
    assert 1e-6 < gap.max_abs_geometric < 0.5 and 1e-8 < gap.kl_geometric < 0.2
    assert gap.max_abs_arithmetic > 1e-6 and gap.kl_arithmetic > 0
    lin = E.ensemble_gap(E.linear_logits(W2, b2), X[:, :8], p=0.5)
    assert lin.max_abs_geometric < 1e-12 and abs(lin.kl_geometric) < 1e-12


def test_module_as_logits_fn_and_batches_in_chunks(backend, rng):
    name, device = backend
    g = B.Generator(0, backend=name, device=device)
    net = nn.Sequential(nn.Linear(12, 6, backend=name, device=device, dtype="float64", generator=g), nn.Tanh(),
                        nn.Linear(6, 3, backend=name, device=device, dtype="float64", generator=g)).eval()
    X = B.asarray(rng.normal(size=(120, 12)), backend=name, device=device, dtype="float64")
    r = E.ensemble_predictions(net, X, p=0.4)  # 4096 masks × 120 rows: several chunks
    assert tuple(r.arithmetic.shape) == (120, 3)
    for i in (0, 77, 119):
        ri = E.ensemble_predictions(net, X[i, :], p=0.4)
        np.testing.assert_allclose(B.to_numpy(r.arithmetic[i]), B.to_numpy(ri.arithmetic), rtol=1e-12)
        np.testing.assert_allclose(B.to_numpy(r.geometric[i]), B.to_numpy(ri.geometric), rtol=1e-12)
    np.testing.assert_allclose(B.to_numpy(r.arithmetic).sum(1), 1.0, rtol=1e-12)


def test_sixteen_inputs(rng):
    W, b, x = _layer(rng, n=16)
    r = E.ensemble_predictions(E.linear_logits(W, b), x, p=0.5)
    np.testing.assert_allclose(r.geometric, r.weight_scaled, atol=1e-12)


@pytest.mark.parametrize("call,exc,match", [
    (lambda W, b, x: E.ensemble_predictions(E.linear_logits(W, b), x, p=1.0), ValueError, r"ensemble_predictions: p must be in \[0, 1\), got 1.0"),
    (lambda W, b, x: E.ensemble_predictions(E.linear_logits(W, b), x, p="a"), TypeError, r"ensemble_predictions: p must be a real"),
    (lambda W, b, x: E.ensemble_predictions(None, x), TypeError, r"ensemble_predictions: logits_fn must be callable"),
    (lambda W, b, x: E.ensemble_predictions(E.linear_logits(W, b), np.zeros((2, 2, 4))), ValueError, r"x must have shape"),
    (lambda W, b, x: E.ensemble_predictions(E.linear_logits(W, b), np.zeros(17)), ValueError, r"the number of inputs n must be an integer in \[1, 16\], got 17"),
    (lambda W, b, x: E.ensemble_predictions(E.linear_logits(W, b), np.zeros(4, dtype=np.int64)), TypeError, r"ensemble_predictions: x must have a floating"),
    (lambda W, b, x: E.dropout_masks(20), ValueError, r"dropout_masks: the number of inputs n must be an integer in \[1, 16\]"),
    (lambda W, b, x: E.weight_scaled(E.linear_logits(W, b), x, p=-0.1), ValueError, r"weight_scaled: p must be in"),
])
def test_bad_input(call, exc, match, rng):
    W, b, x = _layer(rng, n=4, c=2)
    with pytest.raises(exc, match=match):
        call(W, b, x)
