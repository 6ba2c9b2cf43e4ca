"""Shared fixtures and helpers: every backend test runs over each available backend/device.

``backend`` is a ``(name, device)`` pair; ``xp`` is its array-API namespace; ``make`` turns a
NumPy array into an array of the backend under test (keeping dtype). CUDA cases skip cleanly
when no GPU is present; without torch only the NumPy cases exist (tests comparing with torch
skip with ``pytest.importorskip("torch")``).

Helpers shared by the test modules (``from conftest import close, TOL, ...``): the tolerances of
a parity check per dtype, ``close``, inputs ``away_from_zero`` (finite differences never straddle
a kink), and the torch references ``torch_grads`` (a function's output and input gradients from
autograd) and ``torch_step`` (a torch module's forward and backward).
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


#: parity tolerances per dtype (float32: a few ulps of values of order 1; float64: near exact)
TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-10, atol=1e-12)}


def close(actual, expected, dtype, factor=1.0):
    """``actual ≈ expected`` (arrays of any backend, or numbers) within ``factor`` × ``TOL[dtype]``."""
    np.testing.assert_allclose(B.to_numpy(actual), B.to_numpy(expected), rtol=TOL[dtype]["rtol"] * factor,
                               atol=TOL[dtype]["atol"] * factor)


def away_from_zero(rng, shape, margin=1e-2):
    """Normal samples with |x| >= margin, so finite differences never straddle a kink at 0."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, np.sign(x + 1e-300) * margin + x, x)


def torch_grads(fn, arrays_np, grad_np, requires):
    """Reference output and input gradients from torch.autograd (float64/32 as given, CPU):
    ``fn(*tensors)`` backpropagates ``grad_np``; returns ``(y, [grad of arrays_np[i] for i in requires])``."""
    import torch
    ts = [torch.tensor(a, requires_grad=(i in requires)) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
          else (torch.tensor(a) if isinstance(a, np.ndarray) else a) for i, a in enumerate(arrays_np)]
    y = fn(*ts)
    y.backward(torch.tensor(grad_np))
    return y.detach().numpy(), [ts[i].grad.numpy() for i in requires]


def torch_step(module, x_np, g_np):
    """Forward + backward of a torch module; returns ``(y, grad_x)`` as NumPy arrays."""
    y, (gx,) = torch_grads(module, [x_np], g_np, (0,))
    return y, gx


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
