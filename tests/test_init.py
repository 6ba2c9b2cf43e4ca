"""Tests for coursekit.init: gains and fans as torch computes them, statistics of every scheme."""
import math

import numpy as np
import pytest

from coursekit import backend as B
from coursekit import init
from coursekit import nn

torch = pytest.importorskip("torch")

SHAPES = [(300, 200), (64, 16, 5), (32, 8, 3, 3), (500, 1)]


@pytest.mark.parametrize("name,param", [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                                        ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)])
def test_calculate_gain_matches_torch(name, param):
    assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param), rel=1e-15)


@pytest.mark.parametrize("shape", SHAPES + [(7, 0), (3, 4, 0, 2)])
def test_fans_match_torch(shape):
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init.calculate_fan_in_and_fan_out(shape) == expected


def sample_std_ok(sample, std, kurtosis):
    """The sample variance of n iid draws has relative std sqrt((kurtosis - 1)/n): allow 6 of them."""
    return abs(sample.var() / std ** 2 - 1) < 6 * math.sqrt((kurtosis - 1) / sample.size)


# (creator, torch in-place initializer, theoretical (bound or std) from (fan_in, fan_out), kurtosis, uniform?)
SCHEMES = {
    "xavier_uniform": (lambda s, **k: init.xavier_uniform(s, gain=2.0, **k),
                       lambda t: torch.nn.init.xavier_uniform_(t, gain=2.0),
                       lambda fi, fo: 2.0 * math.sqrt(6 / (fi + fo)), 1.8, True),
    "xavier_normal": (lambda s, **k: init.xavier_normal(s, **k), torch.nn.init.xavier_normal_,
                      lambda fi, fo: math.sqrt(2 / (fi + fo)), 3.0, False),
    "kaiming_uniform": (lambda s, **k: init.kaiming_uniform(s, **k), torch.nn.init.kaiming_uniform_,
                        lambda fi, fo: math.sqrt(2) * math.sqrt(3 / fi), 1.8, True),
    "kaiming_uniform_fan_out_a": (lambda s, **k: init.kaiming_uniform(s, a=0.3, mode="fan_out", **k),
                                  lambda t: torch.nn.init.kaiming_uniform_(t, a=0.3, mode="fan_out"),
                                  lambda fi, fo: math.sqrt(2 / (1 + 0.09)) * math.sqrt(3 / fo), 1.8, True),
    "kaiming_normal_relu": (lambda s, **k: init.kaiming_normal(s, nonlinearity="relu", **k),
                            lambda t: torch.nn.init.kaiming_normal_(t, nonlinearity="relu"),
                            lambda fi, fo: math.sqrt(2 / fi), 3.0, False),
    "kaiming_normal_tanh_fan_out": (lambda s, **k: init.kaiming_normal(s, mode="fan_out", nonlinearity="tanh", **k),
                                    lambda t: torch.nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="tanh"),
                                    lambda fi, fo: 5 / 3 / math.sqrt(fo), 3.0, False),
    "normal_small": (lambda s, **k: init.normal(s, **k), lambda t: torch.nn.init.normal_(t, std=0.01),
                     lambda fi, fo: 0.01, 3.0, False),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_scheme_statistics_match_theory_and_torch(scheme, shape, backend):
    create, torch_init, scale, kurt, is_uniform = SCHEMES[scheme]
    fan_in, fan_out = init.calculate_fan_in_and_fan_out(shape)
    s = scale(fan_in, fan_out)
    gen = B.Generator(0, backend=backend[0], device=backend[1])
    w = create(shape, generator=gen, dtype="float64")
    assert tuple(w.shape) == shape and B.backend_of(w) == backend[0] and B.dtype_name(w) == "float64"
    w_np = B.to_numpy(w)
    theirs = torch_init(torch.empty(shape, dtype=torch.float64)).numpy()
    std = s / math.sqrt(3) if is_uniform else s
    assert sample_std_ok(w_np, std, kurt) and sample_std_ok(theirs, std, kurt)
    # the mean of n draws has std std/sqrt(n); allow 6
    assert abs(w_np.mean()) < 6 * std / math.sqrt(w_np.size)
    if is_uniform:
        assert np.abs(w_np).max() <= s and np.abs(theirs).max() <= s


def test_setters_replace_data_keep_backend_and_return_param(backend):
    kw = dict(backend=backend[0], device=backend[1])
    lin = nn.Linear(20, 10, dtype="float64", **kw)
    for setter in (init.xavier_uniform_, init.xavier_normal_, init.kaiming_uniform_, init.kaiming_normal_,
                   init.normal_, init.uniform_, init.zeros_, init.ones_):
        old = lin.weight.data
        assert setter(lin.weight) is lin.weight
        new = lin.weight.data
        assert new is not old and tuple(new.shape) == (10, 20)
        assert B.backend_of(new) == backend[0] and B.device_of(new) == B.device_of(old)
        assert B.dtype_name(new) == "float64"
    init.constant_(lin.bias, 0.5)
    np.testing.assert_array_equal(B.to_numpy(lin.bias.data), 0.5)
    init.zeros_(lin.weight)
    np.testing.assert_array_equal(B.to_numpy(lin.weight.data), 0.0)


def test_generator_makes_init_reproducible(backend):
    kw = dict(backend=backend[0], device=backend[1])
    a = init.kaiming_normal((5, 4), generator=B.Generator(3, **kw))
    b = init.kaiming_normal((5, 4), generator=B.Generator(3, **kw))
    np.testing.assert_array_equal(B.to_numpy(a), B.to_numpy(b))
    p = nn.Parameter(init.zeros((5, 4), **kw))
    init.kaiming_normal_(p, generator=B.Generator(3, **kw))
    np.testing.assert_array_equal(B.to_numpy(p.data), B.to_numpy(a))


def test_small_normal_default_std_and_creators():
    w = init.normal((400, 250), generator=B.Generator(1, backend="numpy"), dtype="float64")
    assert sample_std_ok(w, 0.01, 3.0)
    np.testing.assert_array_equal(init.ones((2, 3), backend="numpy"), 1.0)
    np.testing.assert_array_equal(init.constant((2,), 3.0, backend="numpy"), 3.0)
    u = init.uniform((1000,), a=-2.0, b=-1.0, backend="numpy")
    assert u.min() >= -2.0 and u.max() < -1.0


def test_bad_input():
    with pytest.raises(ValueError, match=r"calculate_fan_in_and_fan_out: fan in and fan out need a shape with at least 2 dims, got \(5,\)"):
        init.calculate_fan_in_and_fan_out((5,))
    with pytest.raises(ValueError, match=r"calculate_gain: nonlinearity must be one of .*, got 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match=r"kaiming_normal: mode must be one of \('fan_in', 'fan_out'\), got 'fan_avg'"):
        init.kaiming_normal((3, 4), mode="fan_avg")
    with pytest.raises(ValueError, match=r"normal: std must be in \[0, inf\], got -1.0"):
        init.normal((3, 4), std=-1.0)
    with pytest.raises(TypeError, match=r"xavier_uniform_: param must have a .data array"):
        init.xavier_uniform_(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"xavier_uniform: dtype must be one of"):
        init.xavier_uniform((3, 4), dtype="int32")
    with pytest.raises(ValueError, match=r"kaiming_uniform: generator is on torch:cpu but the new arrays go to numpy:cpu"):
        init.kaiming_uniform((3, 4), backend="numpy", generator=B.Generator(0, backend="torch"))
    with pytest.raises(TypeError, match=r"uniform: generator must be a coursekit.backend.Generator"):
        init.uniform((3,), generator=np.random.default_rng(0))
