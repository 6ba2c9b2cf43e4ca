"""Tests for coursekit.gradcheck: it passes correct gradients, catches wrong ones, reports clearly."""
import numpy as np
import pytest

from coursekit import backend as B
from coursekit import functional as F
from coursekit import nn
from coursekit.gradcheck import GradcheckResult, gradcheck, gradcheck_module, numerical_gradient


def test_result_is_a_float_with_details(make, rng):
    x = make(rng.standard_normal((3, 4)))
    r = gradcheck(F.elu, x, F.elu_backward)
    assert isinstance(r, GradcheckResult) and isinstance(r, float)
    assert r < 1e-8 and r.ok and r.max_rel_error == float(r)
    assert r.names == ["x"] and r.analytic["x"].shape == (3, 4) and r.numeric["x"].dtype == np.float64
    assert r.worst[0] == "x" and len(r.worst[1]) == 2
    assert f"{r:.1e}"  # formats like a float
    text = str(r)
    assert text.startswith("gradcheck PASS") and "worst: x[" in text


def test_detects_a_wrong_backward_and_locates_it(make, rng):
    x = make(np.abs(rng.standard_normal((4, 5))) + 0.1)

    def buggy(g, x):  # forgets the factor 2 of d(x²)/dx at one element
        d = B.to_numpy(2 * x * g)
        d[2, 3] /= 2
        return make(d)

    r = gradcheck(lambda x: x * x, x, buggy)
    assert not r.ok and r > 0.3
    assert r.worst == ("x", (2, 3))
    assert r.numeric_value == pytest.approx(2 * r.analytic_value, rel=1e-6)
    assert str(r).startswith("gradcheck FAIL")


def test_several_inputs_wrt_and_non_array_inputs(make, rng):
    x, w, b = make(rng.standard_normal((3, 4))), make(rng.standard_normal((2, 4))), make(rng.standard_normal(2))
    r = gradcheck(F.linear, (x, w, b), F.linear_backward)
    assert r < 1e-6 and r.names == ["inputs[0]", "inputs[1]", "inputs[2]"]
    r = gradcheck(F.linear, (x, w, b), lambda g, x, w, b: F.linear_backward(g, x, w, b)[1], wrt=1,
                  names=["x", "weight", "bias"])
    assert r < 1e-6 and r.names == ["weight"]
    r = gradcheck(F.maxout, (make(rng.standard_normal((2, 6))), 3), F.maxout_backward)
    assert r < 1e-6 and r.names == ["inputs[0]"]
    t = make(np.array([0, 2, 1]))
    assert gradcheck(F.cross_entropy, (x[:, :3], t), F.cross_entropy_backward) < 1e-6


def test_float32_inputs_are_checked_in_float64(make, rng):
    x = make(rng.standard_normal((3, 3)).astype(np.float32))
    seen = []

    def f(x):
        seen.append(B.dtype_name(x))
        return F.tanh(x)

    assert gradcheck(f, x, lambda g, x: F.tanh_backward(g, F.tanh(x))) < 1e-6
    assert set(seen) == {"float64"} and B.dtype_name(x) == "float32"


def test_samples_checks_a_subset(make, rng):
    x = make(rng.standard_normal((20, 10)))
    r = gradcheck(F.sigmoid, x, lambda g, x: F.sigmoid_backward(g, F.sigmoid(x)), samples=15)
    assert r < 1e-6 and int(np.sum(~np.isnan(r.numeric["x"]))) == 15


def test_numerical_gradient_of_known_functions(make, rng):
    x_np = rng.standard_normal((2, 3))
    n = numerical_gradient(lambda x: F.mse_loss(x, x * 0), make(x_np))
    np.testing.assert_allclose(n, 2 * x_np / 6, rtol=1e-7)
    n = numerical_gradient(lambda a, b: a * b, (make(x_np), make(x_np + 1)), wrt=1)
    np.testing.assert_allclose(n, x_np, rtol=1e-7)


def test_floor_handles_zero_gradients(make, rng):
    # a Linear bias in front of BatchNorm has gradient exactly 0; finite differences see ~1e-11 noise
    m = nn.Sequential(nn.Linear(3, 4, backend=B.backend_of(make(np.zeros(1))),
                                device=B.device_of(make(np.zeros(1)))),
                      nn.BatchNorm1d(4, backend=B.backend_of(make(np.zeros(1))), device=B.device_of(make(np.zeros(1)))))
    r = gradcheck_module(m, make(rng.standard_normal((6, 3))))
    assert r < 1e-6, str(r)
    assert np.abs(r.analytic["0.bias"]).max() < 1e-12


def test_gradcheck_module_restores_the_module(backend, make, rng):
    kw = dict(backend=backend[0], device=backend[1])
    m = nn.Sequential(nn.Linear(3, 5, **kw), nn.BatchNorm1d(5, **kw), nn.Tanh())
    state = {k: B.to_numpy(v).copy() for k, v in m.state_dict().items()}
    m[0].weight.grad = m[0].weight.data * 0 + 1
    x = make(rng.standard_normal((4, 3)).astype(np.float32))
    r = gradcheck_module(m, x)
    assert r < 1e-6, str(r)
    assert set(r.names) == {"x", "0.weight", "0.bias", "1.weight", "1.bias"}
    for k, v in m.state_dict().items():
        assert B.dtype_name(v) == ("int64" if k.endswith("num_batches_tracked") else "float32")
        np.testing.assert_array_equal(B.to_numpy(v), state[k])
    np.testing.assert_array_equal(B.to_numpy(m[0].weight.grad), 1.0)
    assert m[2].training


def test_gradcheck_module_rejects_random_modules(make, rng):
    x = make(rng.standard_normal((4, 3)))
    with pytest.raises(ValueError, match=r"gradcheck_module: the module's output changed between two calls"):
        gradcheck_module(nn.Dropout(0.5), x)
    assert gradcheck_module(nn.Dropout(0.5).eval(), x) < 1e-12


def test_bad_arguments(make):
    x = make(np.ones(3))
    with pytest.raises(ValueError, match=r"gradcheck: eps must be in \(0, inf\], got 0.0"):
        gradcheck(F.relu, x, F.relu_backward, eps=0)
    with pytest.raises(ValueError, match=r"gradcheck: the gradient of input 0 must have its shape \(3,\)"):
        gradcheck(F.relu, x, lambda g, x: g[:2])
    with pytest.raises(ValueError, match=r"gradcheck: grad_fn returned 1 gradients but wrt names 2 inputs"):
        gradcheck(F.relu, x, F.relu_backward, wrt=(0, 1))
    with pytest.raises(TypeError, match=r"gradcheck_module: module must be a coursekit.nn.Module"):
        gradcheck_module(F.relu, x)
    with pytest.raises(ValueError, match=r"numerical_gradient: wrt must be an integer in \[0, 0\], got 1"):
        numerical_gradient(F.relu, x, wrt=1)
