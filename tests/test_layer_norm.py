"""Tests for layer normalization: ``F.layer_norm``/``F.layer_norm_backward`` and ``nn.LayerNorm``.

Float64 finite-difference gradient checks, parity with ``torch.nn.functional.layer_norm`` and
``torch.nn.LayerNorm`` (float32 and float64) on every backend, the batch independence that
distinguishes it from batch norm, and bad input.
"""
import numpy as np
import pytest
import torch

from coursekit import backend as B
from coursekit import functional as F
from coursekit import nn
from coursekit.gradcheck import gradcheck, gradcheck_module

TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-10, atol=1e-12)}


def close(actual, expected, dtype, factor=1.0):
    np.testing.assert_allclose(B.to_numpy(actual), np.asarray(expected), rtol=TOL[dtype]["rtol"] * factor,
                               atol=TOL[dtype]["atol"] * factor)


def torch_grads(fn, arrays_np, grad_np):
    """Output and gradients (None for a None input) from torch.autograd on CPU."""
    ts = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays_np]
    y = fn(*ts)
    y.backward(torch.tensor(grad_np))
    return y.detach().numpy(), [None if t is None else t.grad.numpy() for t in ts]


SHAPES = [((6, 5), 5), ((6, 5), (5,)), ((3, 4, 5), 5), ((2, 3, 4), (3, 4)), ((7,), 7)]


# --------------------------------------------------------------------------------------------
# functional
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("shape,normalized", SHAPES)
def test_layer_norm_gradcheck(shape, normalized, affine, make, rng):
    nshape = (normalized,) if isinstance(normalized, int) else normalized
    x = make(rng.standard_normal(shape) * 2 + 1)
    w = make(rng.uniform(0.5, 2.0, nshape)) if affine != "none" else None
    b = make(rng.standard_normal(nshape)) if affine == "both" else None
    r = gradcheck(lambda x, w, b: F.layer_norm(x, normalized, w, b, eps=1e-5), (x, w, b),
                  lambda g, x, w, b: F.layer_norm_backward(g, x, normalized, w, b, eps=1e-5))
    assert r < 1e-6, str(r)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,normalized", SHAPES)
def test_layer_norm_torch_parity(shape, normalized, dtype, make, rng):
    nshape = (normalized,) if isinstance(normalized, int) else tuple(normalized)
    x_np = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    w_np, b_np = rng.uniform(0.5, 2.0, nshape).astype(dtype), rng.standard_normal(nshape).astype(dtype)
    g_np = rng.standard_normal(shape).astype(dtype)
    for eps in (1e-5, 1e-2):
        y_ref, grads_ref = torch_grads(
            lambda x, w, b: torch.nn.functional.layer_norm(x, nshape, w, b, eps=eps), [x_np, w_np, b_np], g_np)
        x, w, b = make(x_np), make(w_np), make(b_np)
        y = F.layer_norm(x, normalized, w, b, eps=eps)
        assert B.backend_of(y) == B.backend_of(x) and B.dtype_name(y) == dtype
        close(y, y_ref, dtype, 10)
        for got, ref in zip(F.layer_norm_backward(make(g_np), x, normalized, w, b, eps=eps), grads_ref):
            close(got, ref, dtype, 10)
        np.testing.assert_array_equal(B.to_numpy(x), x_np)              # inputs are not written
    # no affine parameters: torch's default call
    y_ref, (gx_ref, _, _) = torch_grads(lambda x, w, b: torch.nn.functional.layer_norm(x, nshape),
                                        [x_np, None, None], g_np)
    close(F.layer_norm(make(x_np), normalized), y_ref, dtype, 10)
    gx, gw, gb = F.layer_norm_backward(make(g_np), make(x_np), normalized)
    close(gx, gx_ref, dtype, 10)
    assert gw is None and gb is None


def test_layer_norm_output_moments_per_example(make, rng):
    x = make(rng.standard_normal((5, 300)) * rng.uniform(0.1, 10, (5, 1)) + rng.normal(0, 5, (5, 1)))
    out = B.to_numpy(F.layer_norm(x, 300, eps=1e-12))
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.var(axis=1), 1.0, rtol=1e-4)


def test_layer_norm_does_not_depend_on_the_batch(make, rng):
    """An example's output is the same alone or in any batch; batch norm's (training mode) is not."""
    x_np = rng.standard_normal((16, 6)) * 2 + 1
    full = B.to_numpy(F.layer_norm(make(x_np), 6))
    alone = B.to_numpy(F.layer_norm(make(x_np[:1]), 6))
    other = B.to_numpy(F.layer_norm(make(np.concatenate([x_np[:1], 10 * x_np[1:4]])), 6))
    np.testing.assert_allclose(alone[0], full[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(other[0], full[0], rtol=1e-12, atol=1e-12)
    bn_full = B.to_numpy(F.batch_norm(make(x_np), None, None, training=True).out)
    bn_small = B.to_numpy(F.batch_norm(make(x_np[:4]), None, None, training=True).out)
    assert np.abs(bn_full[0] - bn_small[0]).max() > 1e-2


def test_layer_norm_gradient_orthogonal_to_shift_and_scale(make, rng):
    """Σ_j ∂L/∂x_j = 0 per example: shifting an example does not change its output."""
    x, g = make(rng.standard_normal((4, 8))), make(rng.standard_normal((4, 8)))
    gx, _, _ = F.layer_norm_backward(g, x, 8, eps=1e-12)
    np.testing.assert_allclose(B.to_numpy(gx).sum(axis=1), 0.0, atol=1e-10)


# --------------------------------------------------------------------------------------------
# module
# --------------------------------------------------------------------------------------------
@pytest.fixture
def kw(backend):
    return dict(backend=backend[0], device=backend[1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,normalized", SHAPES)
def test_layernorm_module_matches_torch(shape, normalized, dtype, kw, make, rng):
    ours = nn.LayerNorm(normalized, eps=1e-4, dtype=dtype, **kw)
    theirs = torch.nn.LayerNorm(normalized, eps=1e-4, dtype=getattr(torch, dtype))
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(rng.uniform(0.5, 1.5, theirs.weight.shape)))
        theirs.bias.copy_(torch.tensor(rng.standard_normal(theirs.bias.shape)))
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for step in range(2):                                   # gradients accumulate like torch's
        x_np = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        g_np = rng.standard_normal(shape).astype(dtype)
        x_t = torch.tensor(x_np, requires_grad=True)
        y_t = theirs(x_t)
        y_t.backward(torch.tensor(g_np))
        y, gx = ours(make(x_np)), ours.backward(make(g_np))
        close(y, y_t.detach().numpy(), dtype, 10)
        close(gx, x_t.grad.numpy(), dtype, 10)
    close(ours.weight.grad, theirs.weight.grad.numpy(), dtype, 10)
    close(ours.bias.grad, theirs.bias.grad.numpy(), dtype, 10)
    # train and eval compute the same thing (no running statistics)
    x_np = rng.standard_normal(shape).astype(dtype)
    close(ours.eval()(make(x_np)), ours.train()(make(x_np)), dtype)


@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, True)])
def test_layernorm_options_match_torch(affine, bias, kw, make, rng):
    ours = nn.LayerNorm(4, elementwise_affine=affine, bias=bias, dtype="float64", **kw)
    theirs = torch.nn.LayerNorm(4, elementwise_affine=affine, bias=bias, dtype=torch.float64)
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    assert len(list(ours.parameters())) == len(list(theirs.parameters()))
    x_np = rng.standard_normal((6, 4)) * 3
    x_t = torch.tensor(x_np, requires_grad=True)
    y_t = theirs(x_t)
    y_t.backward(torch.ones_like(y_t))
    close(ours(make(x_np)), y_t.detach().numpy(), "float64", 10)
    close(ours.backward(make(np.ones((6, 4)))), x_t.grad.numpy(), "float64", 10)


@pytest.mark.parametrize("normalized,shape", [(5, (4, 5)), ((3, 5), (2, 3, 5))])
def test_layernorm_module_gradcheck(normalized, shape, kw, make, rng):
    m = nn.LayerNorm(normalized, **kw)
    m.weight.data = make(rng.uniform(0.5, 2.0, m.weight.shape), "float32")
    m.bias.data = make(rng.standard_normal(m.bias.shape), "float32")
    r = gradcheck_module(m, make(rng.standard_normal(shape) * 2 + 1))
    assert r < 1e-6, str(r)
    seq = nn.Sequential(nn.Linear(5, 6, generator=B.Generator(0, **kw), **kw), nn.LayerNorm(6, **kw), nn.ReLU(),
                        nn.Linear(6, 3, generator=B.Generator(1, **kw), **kw))
    r = gradcheck_module(seq, make(rng.standard_normal((4, 5))))
    assert r < 1e-6, str(r)


def test_layernorm_repr_and_to(kw):
    m = nn.LayerNorm((2, 3), **kw)
    assert repr(m) == "LayerNorm((2, 3), eps=1e-05, elementwise_affine=True, bias=True)"
    m.to(dtype="float64")
    assert B.dtype_name(m.weight.data) == "float64" and m.weight.shape == (2, 3)


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------
def test_layer_norm_bad_input(make):
    x = make(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape \(4,\) must match the last dims of x"):
        F.layer_norm(x, 4)
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape \(2, 4, 3\) must match"):
        F.layer_norm(x, (2, 4, 3))
    with pytest.raises(TypeError, match=r"layer_norm: normalized_shape must be a tuple of ints"):
        F.layer_norm(x, 3.0)
    with pytest.raises(TypeError, match=r"layer_norm: normalized_shape must be a tuple of ints"):
        F.layer_norm(x, (3.0,))
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape must not be empty"):
        F.layer_norm(x, ())
    with pytest.raises(TypeError, match=r"layer_norm: normalized_shape must be"):
        F.layer_norm(x, True)
    with pytest.raises(ValueError, match=r"layer_norm: weight must have shape normalized_shape = \(3,\), got \(4,\)"):
        F.layer_norm(x, 3, make(np.ones(4)))
    with pytest.raises(ValueError, match=r"layer_norm: bias must have shape"):
        F.layer_norm(x, 3, None, make(np.ones((1, 3))))
    with pytest.raises(ValueError, match=r"layer_norm: eps must be in \(0, inf\]"):
        F.layer_norm(x, 3, eps=0.0)
    with pytest.raises(TypeError, match=r"layer_norm: eps must be a real number"):
        F.layer_norm(x, 3, eps="small")
    with pytest.raises(TypeError, match=r"layer_norm: x must have a floating dtype"):
        F.layer_norm(make(np.ones((4, 3), dtype=np.int64)), 3)
    with pytest.raises(TypeError, match=r"layer_norm: weight must have the dtype of x"):
        F.layer_norm(x, 3, make(np.ones(3, dtype=np.float32)))
    with pytest.raises(TypeError, match=r"layer_norm: x must be a numpy array or torch tensor"):
        F.layer_norm([[1.0, 2.0]], 2)
    with pytest.raises(ValueError, match=r"layer_norm_backward: grad_out must have the shape of x \(4, 3\)"):
        F.layer_norm_backward(make(np.ones((3, 3))), x, 3)
    with pytest.raises(ValueError, match=r"layer_norm_backward: normalized_shape \(2,\) must match"):
        F.layer_norm_backward(x, x, 2)


def test_layer_norm_mixed_backends(rng):
    x = rng.standard_normal((4, 3))
    with pytest.raises(TypeError, match=r"layer_norm:"):
        F.layer_norm(x, 3, torch.ones(3, dtype=torch.float64))


def test_layernorm_module_bad_input(kw, make):
    with pytest.raises(ValueError, match=r"LayerNorm: normalized_shape must be an integer >= 1, got 0"):
        nn.LayerNorm(0, **kw)
    with pytest.raises(ValueError, match=r"LayerNorm: normalized_shape must not be empty"):
        nn.LayerNorm((), **kw)
    with pytest.raises(TypeError, match=r"LayerNorm: normalized_shape must be"):
        nn.LayerNorm(2.5, **kw)
    with pytest.raises(TypeError, match=r"LayerNorm: normalized_shape must be"):
        nn.LayerNorm(True, **kw)
    with pytest.raises(ValueError, match=r"LayerNorm: eps must be in \(0, inf\]"):
        nn.LayerNorm(3, eps=-1.0, **kw)
    m = nn.LayerNorm(3, dtype="float64", **kw)
    with pytest.raises(RuntimeError, match=r"LayerNorm.backward: nothing saved from forward"):
        m.backward(make(np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape \(3,\) must match the last dims of x"):
        m(make(np.ones((3, 2))))
