"""coursekit._fast: every fast path equals the plain kernel of coursekit.functional (large arrays for NumPy).

Each test computes a result twice through the public function — once with the fast path allowed
(large NumPy arrays take it) and once with it switched off (``min_bytes`` above any array, so the
plain array-API kernel runs) — and compares. The multi-block path is forced with a small
``block_bytes`` and the threaded path with ``threads=3`` (uneven runs of blocks).
"""
import numpy as np
import pytest

from coursekit import _fast
from coursekit import backend as B
from coursekit import functional as F

# large enough for the fast path by default (4 MiB of float32); odd sizes leave ragged last blocks
SHAPE = (1031, 1017)


@pytest.fixture(params=[(1 << 20, 1), (1 << 14, 1), (1 << 14, 3)], ids=["default", "blocks", "blocks+threads"])
def fast(request, monkeypatch):
    block_bytes, threads = request.param
    monkeypatch.setitem(_fast.config, "block_bytes", block_bytes)
    monkeypatch.setitem(_fast.config, "threads", threads)
    return request.param


def _plain(monkeypatch, f, *args, **kwargs):
    with monkeypatch.context() as m:
        m.setitem(_fast.config, "min_bytes", 1 << 62)
        return f(*args, **kwargs)


def _data(dtype, seed=0, scale=3.0):
    return (scale * np.random.default_rng(seed).standard_normal(SHAPE)).astype(dtype)


TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
# batch statistics are sums over 1031 rows, accumulated in another order (BLAS, blocks): float32
# roundoff grows with the row count and the data's offset from 0
BN_TOL = {np.float32: dict(rtol=1e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-11)}


def _close_bn(a, p, dtype):
    """``a ≈ p`` with the absolute tolerance relative to the largest entry (γ, β gradients are sums)."""
    tol = BN_TOL[dtype]
    np.testing.assert_allclose(a, p, rtol=tol["rtol"], atol=tol["atol"] * max(1.0, float(np.abs(p).max())))
    assert a.dtype == dtype


def test_the_fast_path_is_taken_and_uses_several_blocks(fast, monkeypatch):
    calls = []
    real_slices = _fast._slices
    monkeypatch.setattr(_fast, "_slices", lambda n, unit: calls.append(real_slices(n, unit)) or calls[-1])
    x = _data(np.float32)
    F.selu(x)
    assert len(calls) == 1 and len(calls[0]) == -(-x.nbytes // fast[0])
    assert _fast.wanted(x) and not _fast.wanted(x[:10]) and not _fast.wanted(x.T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_selu_fast_equals_plain(fast, monkeypatch, dtype):
    x, g = _data(dtype), _data(dtype, 1)
    x[0, :4] = [0.0, -0.0, 1e-30, -1e-30]
    np.testing.assert_allclose(F.selu(x), _plain(monkeypatch, F.selu, x), **TOL[dtype])
    out = F.selu(x)
    for kw in ({}, {"out": out}):
        np.testing.assert_allclose(F.selu_backward(g, x, **kw), _plain(monkeypatch, F.selu_backward, g, x, **kw),
                                   **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_fast_equals_plain(fast, monkeypatch, dtype, affine):
    rng = np.random.default_rng(2)
    x, g = _data(dtype) + 5.0, _data(dtype, 1)
    c = SHAPE[1]
    w, b = (rng.uniform(0.5, 2, c).astype(dtype), rng.standard_normal(c).astype(dtype)) if affine else (None, None)
    rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
    fast_res = F.batch_norm(x, rm, rv, w, b, training=True)
    plain_res = _plain(monkeypatch, F.batch_norm, x, rm, rv, w, b, training=True)
    for a, p in zip(fast_res[:3], plain_res[:3]):
        _close_bn(a, p, dtype)
    got = F.batch_norm_backward(g, fast_res.cache)
    want = _plain(monkeypatch, F.batch_norm_backward, g, plain_res.cache)
    for a, p in zip(got, want):
        if p is None:
            assert a is None
        else:
            _close_bn(a, p, dtype)
    eval_res = F.batch_norm(x, fast_res.running_mean, fast_res.running_var, w, b, training=False)
    got = F.batch_norm_backward(g, eval_res.cache)
    want = _plain(monkeypatch, F.batch_norm_backward, g, eval_res.cache)
    for a, p in zip(got, want):
        if p is not None:
            _close_bn(a, p, dtype)


def test_fast_paths_leave_inputs_alone(fast):
    x, g = _data(np.float32), _data(np.float32, 1)
    x0, g0 = x.copy(), g.copy()
    res = F.batch_norm(x, None, None, training=True)
    F.batch_norm_backward(g, res.cache)
    F.selu_backward(g, x, out=F.selu(x))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)


def test_torch_kernels_equal_the_formulas():
    """The torch fast paths (fused kernels) against the plain formulas, evaluated with NumPy."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x_np = rng.standard_normal((6, 5))
    x_np[0, :4] = [-1.0, -0.0, 0.0, 1e-30]
    g_np, w_np, b_np = rng.standard_normal((6, 5)), rng.standard_normal((3, 5)), rng.standard_normal(3)
    x, g, w, b = (torch.from_numpy(a) for a in (x_np, g_np, w_np, b_np))
    np.testing.assert_array_equal(B.to_numpy(F.relu(x)), F.relu(x_np))
    np.testing.assert_array_equal(B.to_numpy(F.relu_backward(g, x)), F.relu_backward(g_np, x_np))
    for bias, bias_np in ((b, b_np), (None, None)):
        np.testing.assert_allclose(B.to_numpy(F.linear(x, w, bias)), F.linear(x_np, w_np, bias_np), rtol=1e-12)
    np.testing.assert_allclose(B.to_numpy(F.linear(x[None], w, b)), F.linear(x_np[None], w_np, b_np), rtol=1e-12)
    for dim in (0, 1, -1):
        np.testing.assert_allclose(B.to_numpy(F.softmax(x, dim)), F.softmax(x_np, dim), rtol=1e-12)
        np.testing.assert_allclose(B.to_numpy(F.log_softmax(x, dim)), F.log_softmax(x_np, dim), rtol=1e-12)


def test_threads_work_again_in_a_forked_child(monkeypatch):
    """The pool is per process: a child forked after the parent used it makes its own (no hang)."""
    import multiprocessing
    monkeypatch.setitem(_fast.config, "threads", 2)
    x = _data(np.float32)
    F.selu(x)                                    # the parent's pool exists now
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_selu_sum, (x,)).get(timeout=60)
    assert got == pytest.approx(float(F.selu(x).sum(dtype=np.float64)), rel=1e-6)


def _selu_sum(x):
    _fast.config["threads"] = 2
    return float(F.selu(x).sum(dtype=np.float64))
