"""Shared fixtures: every backend test runs over each available backend/device.

``backend`` is a ``(name, device)`` pair; ``xp`` is its array-API namespace; ``make`` turns a
NumPy array into an array of the backend under test (keeping dtype). CUDA cases skip cleanly
when no GPU is present.
"""
import numpy as np
import pytest

from coursekit import backend as B

_CASES = [pytest.param(("numpy", "cpu"), id="numpy")]
if B.torch_available():
    import torch
    # tests use small tensors: intra-op threads only add contention (measured 15x slower fit under load)
    torch.set_num_threads(1)
    _CASES.append(pytest.param(("torch", "cpu"), id="torch-cpu"))
    _CASES.append(pytest.param(("torch", "cuda"), id="torch-cuda", marks=pytest.mark.cuda))


@pytest.fixture(params=_CASES)
def backend(request):
    name, device = request.param
    if device == "cuda" and not B.cuda_available():
        pytest.skip("no CUDA device")
    return name, device


@pytest.fixture
def xp(backend):
    return B.namespace(backend[0])


@pytest.fixture
def make(backend):
    """``make(np_array)`` -> the same values as an array of the backend under test."""
    name, device = backend

    def _make(a, dtype=None):
        a = np.asarray(a)
        if dtype is not None:
            a = a.astype(dtype)
        if name == "numpy":
            return a.copy()
        import torch
        return torch.from_numpy(np.array(a, order="C", copy=True)).to(device)  # keeps 0-d arrays 0-d

    return _make


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
