"""Tests for coursekit.functional: gradient checks, parity with torch, properties, bad input."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from coursekit import backend as B
from coursekit import functional as F
from coursekit.gradcheck import gradcheck
from conftest import away_from_zero, close, torch_grads

torch = pytest.importorskip("torch")
TF = torch.nn.functional

HYP = settings(derandomize=True, max_examples=25, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])


# --------------------------------------------------------------------------------------------
# element-wise activations: one table drives gradcheck and torch parity
# --------------------------------------------------------------------------------------------
ACTIVATIONS = {
    # name: (forward, backward(g, x, y), torch reference)
    "relu": (F.relu, lambda g, x, y: F.relu_backward(g, x), TF.relu),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda g, x, y: F.leaky_relu_backward(g, x, 0.2),
                   lambda x: TF.leaky_relu(x, 0.2)),
    "leaky_relu_default": (F.leaky_relu, lambda g, x, y: F.leaky_relu_backward(g, x), TF.leaky_relu),
    "elu": (lambda x: F.elu(x, 0.7), lambda g, x, y: F.elu_backward(g, x, 0.7), lambda x: TF.elu(x, 0.7)),
    "selu": (F.selu, lambda g, x, y: F.selu_backward(g, x), TF.selu),
    "selu_from_output": (F.selu, lambda g, x, y: F.selu_backward(g, x, out=y), TF.selu),
    "sigmoid": (F.sigmoid, lambda g, x, y: F.sigmoid_backward(g, y), torch.sigmoid),
    "tanh": (F.tanh, lambda g, x, y: F.tanh_backward(g, y), torch.tanh),
    "softplus": (F.softplus, lambda g, x, y: F.softplus_backward(g, x), TF.softplus),
    "softplus_beta": (lambda x: F.softplus(x, 2.0, 3.0), lambda g, x, y: F.softplus_backward(g, x, 2.0, 3.0),
                      lambda x: TF.softplus(x, 2.0, 3.0)),
    "softmax": (lambda x: F.softmax(x, dim=0), lambda g, x, y: F.softmax_backward(g, y, dim=0),
                lambda x: TF.softmax(x, dim=0)),
    "log_softmax": (F.log_softmax, lambda g, x, y: F.log_softmax_backward(g, y),
                    lambda x: TF.log_softmax(x, dim=-1)),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_gradcheck(name, make, rng):
    f, df, _ = ACTIVATIONS[name]
    x = make(away_from_zero(rng, (3, 5)) * 2)
    r = gradcheck(f, x, lambda g, x: df(g, x, f(x)))
    assert r < 1e-6, str(r)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_torch_parity(name, dtype, make, rng):
    f, df, tf = ACTIVATIONS[name]
    x_np = (away_from_zero(rng, (4, 7)) * 3).astype(dtype)
    x_np[0, :3] = [25.0, -30.0, 0.0]  # softplus threshold region, saturation, the kink itself
    g_np = rng.standard_normal(x_np.shape).astype(dtype)
    y_ref, (gx_ref,) = torch_grads(tf, [x_np], g_np, (0,))
    x, g = make(x_np), make(g_np)
    y = f(x)
    assert B.dtype_name(y) == dtype and B.backend_of(y) == B.backend_of(x) and B.device_of(y) == B.device_of(x)
    close(y, y_ref, dtype)
    close(df(g, x, y), gx_ref, dtype)


def test_relu_gradient_at_zero_is_zero(make):
    x = make(np.array([-1.0, 0.0, 1.0]))
    assert B.to_numpy(F.relu_backward(make(np.ones(3)), x)).tolist() == [0.0, 0.0, 1.0]


def test_selu_constants_match_torch():
    x = torch.tensor([-1.0], dtype=torch.float64)
    assert F.LAMBDA * F.ALPHA * math.expm1(-1.0) == pytest.approx(TF.selu(x).item(), rel=1e-15)
    assert F.ALPHA == pytest.approx(1.6732632423543772, rel=1e-16)
    assert F.LAMBDA == pytest.approx(1.0507009873554805, rel=1e-16)


def test_activations_do_not_modify_inputs(make, rng):
    x_np = rng.standard_normal((3, 4))
    x, g = make(x_np), make(np.ones((3, 4)))
    for f, df, _ in ACTIVATIONS.values():
        df(g, x, f(x))
    np.testing.assert_array_equal(B.to_numpy(x), x_np)
    np.testing.assert_array_equal(B.to_numpy(g), np.ones((3, 4)))


# --------------------------------------------------------------------------------------------
# prelu, maxout, linear
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("wshape", [(1,), (4,)])
def test_prelu_gradcheck(wshape, make, rng):
    x = make(away_from_zero(rng, (3, 4, 2)))
    w = make(rng.uniform(0.1, 0.5, wshape))
    r = gradcheck(F.prelu, (x, w), F.prelu_backward)
    assert r < 1e-6, str(r)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,wshape", [((5, 3), (3,)), ((5, 3), (1,)), ((2, 3, 4), (3,)), ((6,), (1,))])
def test_prelu_torch_parity(shape, wshape, dtype, make, rng):
    x_np = away_from_zero(rng, shape).astype(dtype)
    w_np = rng.uniform(0.05, 0.5, wshape).astype(dtype)
    g_np = rng.standard_normal(shape).astype(dtype)
    y_ref, (gx_ref, gw_ref) = torch_grads(TF.prelu, [x_np, w_np], g_np, (0, 1))
    y = F.prelu(make(x_np), make(w_np))
    gx, gw = F.prelu_backward(make(g_np), make(x_np), make(w_np))
    close(y, y_ref, dtype)
    close(gx, gx_ref, dtype)
    close(gw, gw_ref, dtype)


def test_maxout_equals_reshape_max(make, rng):
    x_np = rng.standard_normal((5, 12))
    expected = x_np.reshape(5, 4, 3).max(axis=-1)
    np.testing.assert_array_equal(B.to_numpy(F.maxout(make(x_np), 3)), expected)
    x3 = rng.standard_normal((2, 3, 8))
    np.testing.assert_array_equal(B.to_numpy(F.maxout(make(x3), 2)), x3.reshape(2, 3, 4, 2).max(-1))


def test_maxout_gradcheck(make, rng):
    x = make(rng.standard_normal((4, 12)))
    assert gradcheck(F.maxout, (x, 3), F.maxout_backward) < 1e-6


def test_maxout_backward_routes_to_first_argmax(make):
    x = make(np.array([[1.0, 3.0, 3.0, -1.0, -2.0, -5.0]]))
    g = F.maxout_backward(make(np.array([[10.0, 20.0]])), x, 3)
    assert B.to_numpy(g).tolist() == [[0.0, 10.0, 0.0, 20.0, 0.0, 0.0]]


def test_maxout_torch_parity_backward(make, rng):
    x_np = rng.standard_normal((6, 10)).astype("float32")
    g_np = rng.standard_normal((6, 5)).astype("float32")
    _, (gx_ref,) = torch_grads(lambda t: t.reshape(6, 5, 2).amax(-1), [x_np], g_np, (0,))
    close(F.maxout_backward(make(g_np), make(x_np), 2), gx_ref, "float32")


def test_maxout_with_a_zero_piece_is_relu(make, rng):
    z = rng.standard_normal((7, 5))
    x = np.stack([z, np.zeros_like(z)], axis=-1).reshape(7, 10)  # pieces (z_j, 0) per unit
    np.testing.assert_array_equal(B.to_numpy(F.maxout(make(x), 2)), B.to_numpy(F.relu(make(z))))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xshape", [(4, 5), (2, 3, 5), (5,)])
def test_linear_gradcheck(xshape, bias, make, rng):
    x, w = make(rng.standard_normal(xshape)), make(rng.standard_normal((3, 5)))
    b = make(rng.standard_normal(3)) if bias else None
    r = gradcheck(F.linear, (x, w, b), F.linear_backward)
    assert r < 1e-6, str(r)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_torch_parity(dtype, make, rng):
    x_np, w_np, b_np = (rng.standard_normal(s).astype(dtype) for s in [(8, 6), (4, 6), (4,)])
    g_np = rng.standard_normal((8, 4)).astype(dtype)
    y_ref, grads_ref = torch_grads(TF.linear, [x_np, w_np, b_np], g_np, (0, 1, 2))
    x, w, b = make(x_np), make(w_np), make(b_np)
    close(F.linear(x, w, b), y_ref, dtype)
    for got, ref in zip(F.linear_backward(make(g_np), x, w, b), grads_ref):
        close(got, ref, dtype)
    assert F.linear_backward(make(g_np), x, w)[2] is None


# --------------------------------------------------------------------------------------------
# softmax family and losses
# --------------------------------------------------------------------------------------------
@HYP
@given(arrays(np.float64, (3, 6), elements=st.floats(-50, 50)), st.floats(-1e3, 1e3))
def test_softmax_rows_sum_to_one_and_shift_invariant(make, x_np, shift):
    s = B.to_numpy(F.softmax(make(x_np)))
    np.testing.assert_allclose(s.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    assert (s >= 0).all()
    np.testing.assert_allclose(B.to_numpy(F.softmax(make(x_np + shift))), s, rtol=1e-9, atol=1e-12)


@HYP
@given(arrays(np.float32, (2, 5), elements=st.floats(-1e4, 1e4, width=32)))
def test_log_softmax_is_finite_and_stable_for_large_inputs(make, x_np):
    out = B.to_numpy(F.log_softmax(make(x_np)))
    assert np.isfinite(out).all() and (out <= 0).all()
    ref = TF.log_softmax(torch.tensor(x_np, dtype=torch.float64), dim=-1).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=2e-3)  # float32 spacing at 1e4 is ~1e-3


def test_softmax_dim_and_large_values(make):
    x = make(np.array([[1e4, 0.0], [-1e4, 1e4]]))
    np.testing.assert_allclose(B.to_numpy(F.softmax(x, dim=0)), [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(B.to_numpy(F.log_softmax(x))[0], [0.0, -1e4])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_torch_parity(reduction, dtype, make, rng):
    logits_np = (rng.standard_normal((9, 4)) * 3).astype(dtype)
    target_np = rng.integers(0, 4, 9).astype(np.int64)
    gshape = (9,) if reduction == "none" else ()
    g_np = rng.standard_normal(gshape).astype(dtype)
    y_ref, (gl_ref,) = torch_grads(lambda l, t: TF.cross_entropy(l, t, reduction=reduction),
                                   [logits_np, target_np], g_np, (0,))
    logits, target = make(logits_np), make(target_np)
    close(F.cross_entropy(logits, target, reduction), y_ref, dtype)
    close(F.cross_entropy_backward(make(g_np), logits, target, reduction), gl_ref, dtype)


def test_cross_entropy_backward_is_softmax_minus_onehot_over_n(make, rng):
    logits_np = rng.standard_normal((5, 3))
    t_np = np.array([0, 2, 1, 1, 0])
    expected = (B.to_numpy(F.softmax(make(logits_np))) - np.eye(3)[t_np]) / 5
    close(F.cross_entropy_backward(1.0, make(logits_np), make(t_np)), expected, "float64")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_gradcheck(reduction, make, rng):
    logits, t = make(rng.standard_normal((6, 4))), make(rng.integers(0, 4, 6))
    ce = gradcheck(lambda l, t: F.cross_entropy(l, t, reduction),
                   (logits, t), lambda g, l, t: F.cross_entropy_backward(g, l, t, reduction))
    assert ce < 1e-6, str(ce)
    a, b = make(rng.standard_normal((3, 4))), make(rng.standard_normal((3, 4)))
    mse = gradcheck(lambda a, b: F.mse_loss(a, b, reduction), (a, b),
                    lambda g, a, b: F.mse_loss_backward(g, a, b, reduction))
    assert mse < 1e-6, str(mse)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mse_torch_parity(dtype, make, rng):
    a_np, b_np = (rng.standard_normal((5, 3)).astype(dtype) for _ in range(2))
    y_ref, (ga_ref,) = torch_grads(TF.mse_loss, [a_np, b_np], np.array(1.0, dtype=dtype), (0,))
    close(F.mse_loss(make(a_np), make(b_np)), y_ref, dtype)
    close(F.mse_loss_backward(1.0, make(a_np), make(b_np)), ga_ref, dtype)


# --------------------------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p, make, backend):
    n = 200_000
    x = make(np.ones(n, dtype=np.float32))
    gen = B.Generator(7, backend=backend[0], device=backend[1])
    y, mask = F.dropout(x, p, generator=gen, return_mask=True)
    y_np, m_np = B.to_numpy(y), B.to_numpy(mask)
    assert set(np.unique(m_np)) <= {0.0, 1.0}
    np.testing.assert_allclose(y_np, m_np / (1 - p), rtol=1e-6)
    # The kept fraction is Binomial(n, 1-p)/n: std sqrt(p(1-p)/n) (<= 1.2e-3 here); allow 5 std.
    assert abs(m_np.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    # Each y_i has mean 1 and variance p/(1-p), so mean(y) has std sqrt(p/((1-p) n)); allow 5 std.
    assert abs(y_np.mean() - 1.0) < 5 * math.sqrt(p / ((1 - p) * n))


@HYP
@given(st.floats(0.0, 0.9), st.integers(0, 2**31 - 1))
def test_dropout_preserves_the_mean(backend, make, p, seed):
    # x ~ U(1, 2) fixed; mean(y) - mean(x) = mean(x_i (m_i/(1-p) - 1)) has std
    # sqrt(E[x²] p/((1-p) n)) <= sqrt(7/3 · p/((1-p) n)) (E[x²] = 7/3 for U(1, 2)). Allow 6 std.
    n = 20_000
    x_np = np.linspace(1.0, 2.0, n)
    gen = B.Generator(seed, backend=backend[0], device=backend[1])
    y = B.to_numpy(F.dropout(make(x_np), p, generator=gen))
    assert abs(y.mean() - x_np.mean()) <= 6 * math.sqrt(7 / 3 * p / ((1 - p) * n)) + 1e-12


def test_dropout_eval_and_zero_p_are_identity(make, rng):
    x = make(rng.standard_normal((3, 4)))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    y, m = F.dropout(x, 0.3, training=False, return_mask=True)
    assert y is x and m is None
    g = make(rng.standard_normal((3, 4)))
    assert F.dropout_backward(g, None, 0.3) is g


def test_dropout_backward_uses_the_mask_and_gradchecks(make, backend, rng):
    gen = B.Generator(3, backend=backend[0], device=backend[1])
    x = make(rng.standard_normal((6, 5)))
    _, mask = F.dropout(x, 0.4, generator=gen, return_mask=True)
    r = gradcheck(lambda x: x * mask / 0.6, x, lambda g, x: F.dropout_backward(g, mask, 0.4))
    assert r < 1e-6
    g = make(np.ones((6, 5)))
    np.testing.assert_allclose(B.to_numpy(F.dropout_backward(g, mask, 0.4)), B.to_numpy(mask) / 0.6)


def test_dropout_generator_is_reproducible(make, backend):
    x = make(np.ones((50, 50), dtype=np.float32))
    a = F.dropout(x, 0.5, generator=B.Generator(11, backend=backend[0], device=backend[1]))
    b = F.dropout(x, 0.5, generator=B.Generator(11, backend=backend[0], device=backend[1]))
    np.testing.assert_array_equal(B.to_numpy(a), B.to_numpy(b))


# --------------------------------------------------------------------------------------------
# batch norm
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5)])
def test_batch_norm_gradcheck(shape, affine, make, rng):
    c = shape[1]
    x = make(rng.standard_normal(shape) * 2 + 1)
    w = make(rng.standard_normal(c)) if affine else None
    b = make(rng.standard_normal(c)) if affine else None

    def f(x, w, b):
        return F.batch_norm(x, None, None, w, b, training=True).out

    def df(g, x, w, b):
        return F.batch_norm_backward(g, F.batch_norm(x, None, None, w, b, training=True).cache)

    r = gradcheck(f, (x, w, b), df)
    assert r < 1e-6, str(r)
    rm, rv = make(rng.standard_normal(c)), make(rng.uniform(0.5, 2, c))
    r_eval = gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b).out, (x, w, b),
                       lambda g, x, w, b: F.batch_norm_backward(g, F.batch_norm(x, rm, rv, w, b).cache))
    assert r_eval < 1e-6, str(r_eval)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(16, 4), (6, 4, 3)])
def test_batch_norm_torch_parity(shape, dtype, make, rng):
    c = shape[1]
    x_np = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    w_np, b_np = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm_np, rv_np = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    g_np = rng.standard_normal(shape).astype(dtype)
    for training in (True, False):
        rm_t, rv_t = torch.tensor(rm_np), torch.tensor(rv_np)  # torch updates these in place
        y_ref, grads_ref = torch_grads(
            lambda x, w, b: TF.batch_norm(x, rm_t, rv_t, w, b, training=training, momentum=0.3, eps=1e-4),
            [x_np, w_np, b_np], g_np, (0, 1, 2))
        rm, rv = make(rm_np), make(rv_np)
        res = F.batch_norm(make(x_np), rm, rv, make(w_np), make(b_np), training=training, momentum=0.3, eps=1e-4)
        close(res.out, y_ref, dtype)
        close(res.running_mean, rm_t.numpy(), dtype)
        close(res.running_var, rv_t.numpy(), dtype)
        np.testing.assert_array_equal(B.to_numpy(rm), rm_np)  # inputs are not written
        for got, ref in zip(F.batch_norm_backward(make(g_np), res.cache), grads_ref):
            close(got, ref, dtype, factor=10)


def test_batch_norm_output_moments(make, rng):
    x = make(rng.standard_normal((64, 5)) * 4 - 3)
    out = B.to_numpy(F.batch_norm(x, None, None, training=True, eps=1e-12).out)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=0), 1.0, rtol=1e-9)


def test_batch_norm_without_weight_returns_none_grads(make, rng):
    res = F.batch_norm(make(rng.standard_normal((4, 2))), None, None, training=True)
    gx, gw, gb = F.batch_norm_backward(make(np.ones((4, 2))), res.cache)
    assert gw is None and gb is None and res.running_mean is None
    np.testing.assert_allclose(B.to_numpy(gx), 0.0, atol=1e-12)  # a constant shift is normalized away


# --------------------------------------------------------------------------------------------
# bad input: errors name the function and the argument
# --------------------------------------------------------------------------------------------
def test_non_floating_and_non_arrays_raise_type_error(make):
    with pytest.raises(TypeError, match=r"relu: x must have a floating dtype, got int"):
        F.relu(make(np.arange(3)))
    with pytest.raises(TypeError, match=r"sigmoid: x must be a numpy array or torch tensor, got list"):
        F.sigmoid([1.0, 2.0])
    with pytest.raises(TypeError, match=r"linear: weight must have the dtype of x"):
        F.linear(make(np.ones((2, 3), np.float32)), make(np.ones((4, 3), np.float64)))


def test_mismatched_backends_raise_type_error(backend):
    x = np.ones((2, 3))
    w = torch.ones((4, 3), dtype=torch.float64)
    with pytest.raises(TypeError, match=r"linear: arrays must share one backend and device"):
        F.linear(x, w)
    with pytest.raises(TypeError, match=r"cross_entropy: arrays must share one backend and device"):
        F.cross_entropy(x, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"dropout: generator is on torch:cpu but x is on numpy:cpu"):
        F.dropout(x, 0.5, generator=B.Generator(0, backend="torch"))


@pytest.mark.parametrize("p", [1.0, 1.5, -0.1])
def test_dropout_p_out_of_range(p, make):
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\), got " + str(p)):
        F.dropout(make(np.ones(3)), p)
    with pytest.raises(ValueError, match=r"dropout_backward: p must be in \[0, 1\)"):
        F.dropout_backward(make(np.ones(3)), make(np.ones(3)), p)


def test_wrong_shapes_raise_value_error(make):
    x = make(np.ones((4, 6)))
    with pytest.raises(ValueError, match=r"linear: the last dim of x must equal in_features=5"):
        F.linear(x, make(np.ones((3, 5))))
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(out_features,\) = \(3,\)"):
        F.linear(x, make(np.ones((3, 6))), make(np.ones(4)))
    with pytest.raises(ValueError, match=r"maxout: the last dim of x must be a multiple of pieces=4, got 6"):
        F.maxout(x, 4)
    with pytest.raises(ValueError, match=r"maxout: pieces must be an integer >= 1, got 0"):
        F.maxout(x, 0)
    with pytest.raises(ValueError, match=r"prelu: weight must have shape \(1,\) or \(C,\) with C = x.shape\[1\] = 6"):
        F.prelu(x, make(np.ones(4)))
    with pytest.raises(ValueError, match=r"softmax: dim must be in \[-2, 1\] for a 2-d input, got 2"):
        F.softmax(x, dim=2)
    with pytest.raises(ValueError, match=r"relu_backward: grad_out must have the shape of x \(4, 6\), got \(6,\)"):
        F.relu_backward(make(np.ones(6)), x)
    with pytest.raises(ValueError, match=r"mse_loss: target must have the shape of input \(4, 6\), got \(4, 1\)"):
        F.mse_loss(x, make(np.ones((4, 1))))
    with pytest.raises(ValueError, match=r"softplus: beta must be in \(0, inf\], got -1.0"):
        F.softplus(x, beta=-1.0)


def test_cross_entropy_bad_targets(make):
    logits = make(np.zeros((3, 4)))
    with pytest.raises(TypeError, match=r"cross_entropy: target must hold integer class indices"):
        F.cross_entropy(logits, make(np.zeros(3)))
    with pytest.raises(ValueError, match=r"cross_entropy: target must have shape \(N,\) = \(3,\), got \(2,\)"):
        F.cross_entropy(logits, make(np.array([0, 1])))
    with pytest.raises(ValueError, match=r"cross_entropy: reduction must be one of"):
        F.cross_entropy(logits, make(np.array([0, 1, 2])), reduction="avg")
    with pytest.raises(ValueError, match=r"cross_entropy: logits must be 2-d \(N, C\)"):
        F.cross_entropy(make(np.zeros(4)), make(np.array([0])))


@pytest.mark.parametrize("bad", [4, -1])
def test_cross_entropy_out_of_range_target_is_nan_for_its_row(make, bad):
    """Indices are not read on the host (a GPU would wait): a class outside [0, C) poisons its row."""
    logits = make(np.random.default_rng(0).standard_normal((3, 4)))
    target = make(np.array([0, bad, 1]))
    per_row = B.to_numpy(F.cross_entropy(logits, target, reduction="none"))
    assert np.isnan(per_row[1]) and np.isfinite(per_row[[0, 2]]).all()
    assert np.isnan(B.to_numpy(F.cross_entropy(logits, target)))
    grad = B.to_numpy(F.cross_entropy_backward(1.0, logits, target))
    assert np.isnan(grad[1]).all() and np.isfinite(grad[[0, 2]]).all()


def test_batch_norm_bad_input(make):
    x = make(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per channel when training"):
        F.batch_norm(x, None, None, training=True)
    with pytest.raises(ValueError, match=r"batch_norm: running_mean and running_var are required when training=False"):
        F.batch_norm(make(np.ones((4, 3))), None, None)
    with pytest.raises(ValueError, match=r"batch_norm: weight must have shape \(C,\) = \(3,\), got \(2,\)"):
        F.batch_norm(make(np.ones((4, 3))), None, None, make(np.ones(2)), training=True)
    with pytest.raises(ValueError, match=r"batch_norm: momentum must be in \[0, 1\], got 2.0"):
        F.batch_norm(make(np.ones((4, 3))), None, None, training=True, momentum=2.0)
    with pytest.raises(TypeError, match=r"batch_norm_backward: cache must be the BatchNormCache"):
        F.batch_norm_backward(make(np.ones((4, 3))), None)
