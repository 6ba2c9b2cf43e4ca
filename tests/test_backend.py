"""Tests for coursekit.backend: defaults, array creation, conversion, random streams, checks."""
import math

import numpy as np
import pytest

from coursekit import backend as B


@pytest.fixture(autouse=True)
def restore_defaults():
    saved = B.get_default_backend()
    yield
    B.set_default_backend(saved[0], device=saved[1], dtype=saved[2])
    B.manual_seed(0)


def test_defaults_round_trip(backend):
    B.set_default_backend(backend[0], device=backend[1], dtype="float64")
    assert B.get_default_backend() == (backend[0], backend[1], "float64")
    z = B.zeros((2, 3))
    assert B.backend_of(z) == backend[0] and B.device_of(z) == backend[1] and B.dtype_name(z) == "float64"
    assert B.namespace().__name__ == f"array_api_compat.{backend[0]}"


def test_asarray_zeros_to_numpy(backend):
    kw = dict(backend=backend[0], device=backend[1])
    a = B.asarray([[1, 2], [3, 4]], dtype="float32", **kw)
    assert B.dtype_name(a) == "float32" and B.backend_of(a) == backend[0]
    np.testing.assert_array_equal(B.to_numpy(a), [[1, 2], [3, 4]])
    b = B.asarray(a, backend="numpy", dtype="float64")  # from any backend
    assert isinstance(b, np.ndarray) and b.dtype == np.float64
    z = B.zeros((3,), dtype="float64", **kw)
    assert B.to_numpy(z).tolist() == [0.0, 0.0, 0.0]
    assert B.array_namespace(z).__name__ == f"array_api_compat.{backend[0]}"


def test_generator_streams_are_reproducible_and_well_distributed(backend):
    kw = dict(backend=backend[0], device=backend[1])
    g1, g2 = B.Generator(42, **kw), B.Generator(42, **kw)
    u1, u2 = g1.uniform((20_000,), -1.0, 3.0, dtype="float64"), g2.uniform((20_000,), -1.0, 3.0, dtype="float64")
    np.testing.assert_array_equal(B.to_numpy(u1), B.to_numpy(u2))
    u = B.to_numpy(u1)
    assert u.min() >= -1.0 and u.max() < 3.0
    # U(-1, 3): mean 1, std 4/sqrt(12); the sample mean has std 4/sqrt(12 n); allow 6
    assert abs(u.mean() - 1.0) < 6 * 4 / math.sqrt(12 * u.size)
    z = B.to_numpy(g1.normal((20_000,), 2.0, 0.5, dtype="float32"))
    assert z.dtype == np.float32 and abs(z.mean() - 2.0) < 6 * 0.5 / math.sqrt(z.size)
    m = B.to_numpy(g1.keep_mask((50_000,), 0.3, dtype="float32"))
    assert set(np.unique(m)) <= {0.0, 1.0}
    assert abs(m.mean() - 0.3) < 6 * math.sqrt(0.3 * 0.7 / m.size)
    perm = g1.permutation(10)
    assert sorted(perm.tolist()) == list(range(10))
    ints = g1.integers(2, 5, (1000,))
    assert ints.min() >= 2 and ints.max() < 5


def test_manual_seed_resets_default_generators(backend):
    B.manual_seed(123)
    a = B.to_numpy(B.default_generator(*backend).uniform((5,)))
    B.manual_seed(123)
    b = B.to_numpy(B.default_generator(*backend).uniform((5,)))
    np.testing.assert_array_equal(a, b)


def test_generator_like(make, backend):
    x = make(np.zeros(3, dtype=np.float32))
    assert B.generator_like(x) is B.default_generator(*backend)
    g = B.Generator(0, backend=backend[0], device=backend[1])
    assert B.generator_like(x, g) is g
    with pytest.raises(TypeError, match=r"myfn: generator must be a coursekit.backend.Generator, got int"):
        B.generator_like(x, 3, fn="myfn")
    pytest.importorskip("torch")  # the mismatch needs a generator on the other backend
    other = B.Generator(0, backend="torch" if backend[0] == "numpy" else "numpy")
    with pytest.raises(ValueError, match=r"myfn: generator is on .* but x is on"):
        B.generator_like(x, other, fn="myfn")


def test_bad_backend_device_dtype():
    with pytest.raises(ValueError, match=r"set_default_backend: backend must be one of \('numpy', 'torch'\), got 'jax'"):
        B.set_default_backend("jax")
    with pytest.raises(ValueError, match=r"set_default_backend: device must be 'cpu' for numpy, got 'cuda'"):
        B.set_default_backend("numpy", device="cuda")
    with pytest.raises(ValueError, match=r"zeros: dtype must be one of \('float32', 'float64'\), got 'int8'"):
        B.zeros((2,), dtype="int8")
    with pytest.raises(TypeError, match=r"backend_of: x must be a numpy array or torch tensor, got list"):
        B.backend_of([1])
