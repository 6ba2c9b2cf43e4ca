"""Tests for coursekit.nn: parity with torch.nn, gradient checks, the Module API, bad input."""
import math

import numpy as np
import pytest

from coursekit import backend as B
from coursekit import nn
from coursekit.gradcheck import gradcheck_module
from conftest import close, torch_grads, torch_step

torch = pytest.importorskip("torch")


@pytest.fixture
def kw(backend):
    """Keywords placing new parameters on the backend under test."""
    return dict(backend=backend[0], device=backend[1])


def copy_to_torch(ours, theirs):
    """Load our parameters/buffers into a torch module with the same state_dict keys."""
    theirs.load_state_dict({k: torch.from_numpy(np.array(B.to_numpy(v))) for k, v in ours.state_dict().items()})


# --------------------------------------------------------------------------------------------
# Linear
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_torch_parity(dtype, kw, make, rng):
    ours = nn.Linear(6, 4, dtype=dtype, generator=B.Generator(0, **kw))
    theirs = torch.nn.Linear(6, 4, dtype=getattr(torch, dtype))
    copy_to_torch(ours, theirs)
    x_np, g_np = rng.standard_normal((5, 6)).astype(dtype), rng.standard_normal((5, 4)).astype(dtype)
    y_ref, gx_ref = torch_step(theirs, x_np, g_np)
    y = ours(make(x_np))
    gx = ours.backward(make(g_np))
    assert B.dtype_name(ours.weight.data) == dtype and B.backend_of(y) == kw["backend"]
    close(y, y_ref, dtype)
    close(gx, gx_ref, dtype)
    close(ours.weight.grad, theirs.weight.grad.numpy(), dtype)
    close(ours.bias.grad, theirs.bias.grad.numpy(), dtype)


def test_linear_default_init_is_torch_uniform(kw):
    lin = nn.Linear(400, 300, generator=B.Generator(1, **kw), dtype="float64")
    w, b = B.to_numpy(lin.weight.data), B.to_numpy(lin.bias.data)
    bound = 1 / math.sqrt(400)
    assert lin.weight.shape == (300, 400) and lin.bias.shape == (300,)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(-a, a) has variance a²/3; the sample variance of n draws has relative std sqrt(0.8/n)
    # (kurtosis 1.8), here 1.6e-3; allow 6 std.
    assert abs(w.var() / (bound ** 2 / 3) - 1) < 6 * math.sqrt(0.8 / w.size)
    t = torch.nn.Linear(400, 300)
    assert abs(t.weight.detach().numpy().var() / (bound ** 2 / 3) - 1) < 6 * math.sqrt(0.8 / w.size)


def test_linear_without_bias_and_generator_reproducibility(kw):
    a = nn.Linear(3, 2, bias=False, generator=B.Generator(5, **kw))
    b = nn.Linear(3, 2, bias=False, generator=B.Generator(5, **kw))
    assert a.bias is None and [n for n, _ in a.named_parameters()] == ["weight"]
    np.testing.assert_array_equal(B.to_numpy(a.weight.data), B.to_numpy(b.weight.data))


# --------------------------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------------------------
ACTS = [
    (lambda: nn.ReLU(), lambda: torch.nn.ReLU()),
    (lambda: nn.LeakyReLU(0.1), lambda: torch.nn.LeakyReLU(0.1)),
    (lambda: nn.ELU(0.5), lambda: torch.nn.ELU(0.5)),
    (lambda: nn.SELU(), lambda: torch.nn.SELU()),
    (lambda: nn.Sigmoid(), lambda: torch.nn.Sigmoid()),
    (lambda: nn.Tanh(), lambda: torch.nn.Tanh()),
    (lambda: nn.Softplus(1.5, 10.0), lambda: torch.nn.Softplus(1.5, 10.0)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("i", range(len(ACTS)), ids=[a().__class__.__name__ for a, _ in ACTS])
def test_activation_modules_torch_parity(i, dtype, make, rng):
    ours, theirs = ACTS[i][0](), ACTS[i][1]()
    x_np = (rng.standard_normal((4, 5)) * 3).astype(dtype)
    g_np = rng.standard_normal((4, 5)).astype(dtype)
    y_ref, gx_ref = torch_step(theirs, x_np, g_np)
    close(ours(make(x_np)), y_ref, dtype)
    close(ours.backward(make(g_np)), gx_ref, dtype)
    assert list(ours.parameters()) == []


@pytest.mark.parametrize("num", [1, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_prelu_torch_parity(num, dtype, kw, make, rng):
    ours = nn.PReLU(num, init=0.2, dtype=dtype, **kw)
    theirs = torch.nn.PReLU(num, init=0.2, dtype=getattr(torch, dtype))
    x_np, g_np = (rng.standard_normal((4, 3, 2)).astype(dtype) for _ in range(2))
    y_ref, gx_ref = torch_step(theirs, x_np, g_np)
    close(ours(make(x_np)), y_ref, dtype)
    close(ours.backward(make(g_np)), gx_ref, dtype)
    close(ours.weight.grad, theirs.weight.grad.numpy(), dtype)


# --------------------------------------------------------------------------------------------
# Maxout
# --------------------------------------------------------------------------------------------
def test_maxout_module_matches_explicit_reshape_max(kw, make, rng):
    m = nn.Maxout(5, 3, 4, dtype="float64", generator=B.Generator(2, **kw))
    x_np = rng.standard_normal((6, 5))
    z = x_np @ B.to_numpy(m.linear.weight.data).T + B.to_numpy(m.linear.bias.data)
    np.testing.assert_allclose(B.to_numpy(m(make(x_np))), z.reshape(6, 3, 4).max(-1), rtol=1e-12)
    assert m.linear.weight.shape == (12, 5)


def test_maxout_with_a_zero_piece_equals_relu_exactly(kw, make, rng):
    lin = nn.Linear(5, 3, dtype="float64", generator=B.Generator(4, **kw))
    mo = nn.Maxout(5, 3, 2, dtype="float64", **kw)
    w = np.zeros((6, 5))
    b = np.zeros(6)
    w[0::2], b[0::2] = B.to_numpy(lin.weight.data), B.to_numpy(lin.bias.data)  # piece 0 = linear, piece 1 = 0
    mo.load_state_dict({"linear.weight": w, "linear.bias": b})
    relu = nn.Sequential(lin, nn.ReLU())
    x = make(rng.standard_normal((8, 5)))
    y = B.to_numpy(mo(x))
    z = B.to_numpy(mo.linear(x))  # the same pre-activations: the max over (z, 0) is relu(z) bit for bit
    np.testing.assert_array_equal(y, np.maximum(z[:, 0::2], 0))
    np.testing.assert_array_equal(z[:, 1::2], 0)
    # against Linear + ReLU only BLAS rounding differs (a 6-row vs a 3-row weight matrix)
    np.testing.assert_allclose(y, B.to_numpy(relu(x)), rtol=1e-14, atol=1e-15)
    g = make(rng.standard_normal((8, 3)))
    np.testing.assert_allclose(B.to_numpy(mo.backward(g)), B.to_numpy(relu.backward(g)), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(B.to_numpy(mo.linear.weight.grad)[0::2], B.to_numpy(lin.weight.grad), rtol=1e-13)


# --------------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------------
def test_dropout_module_train_eval(backend, make):
    d = nn.Dropout(0.25, generator=B.Generator(0, backend=backend[0], device=backend[1]))
    n = 100_000
    x = make(np.full(n, 2.0, dtype=np.float32))
    y = B.to_numpy(d(x))
    kept = y != 0
    np.testing.assert_allclose(y[kept], 2.0 / 0.75, rtol=1e-6)
    # kept fraction ~ Binomial(n, 0.75)/n, std sqrt(0.75·0.25/n) = 1.4e-3; allow 5 std.
    assert abs(kept.mean() - 0.75) < 5 * math.sqrt(0.75 * 0.25 / n)
    g = B.to_numpy(d.backward(make(np.ones(n, dtype=np.float32))))
    np.testing.assert_array_equal(g != 0, kept)  # backward reuses the forward's mask
    d.eval()
    assert d(x) is x and d.backward(x) is x


# --------------------------------------------------------------------------------------------
# BatchNorm1d
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(16, 5), (8, 5, 3)])
def test_batchnorm1d_matches_torch_over_several_steps(shape, dtype, momentum, kw, make, rng):
    ours = nn.BatchNorm1d(5, momentum=momentum, dtype=dtype, **kw)
    theirs = torch.nn.BatchNorm1d(5, momentum=momentum, dtype=getattr(torch, dtype))
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(rng.uniform(0.5, 1.5, 5)))
        theirs.bias.copy_(torch.tensor(rng.standard_normal(5)))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for step in range(4):
        x_np = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        g_np = rng.standard_normal(shape).astype(dtype)
        y_ref, gx_ref = torch_step(theirs, x_np, g_np)
        y, gx = ours(make(x_np)), ours.backward(make(g_np))
        close(y, y_ref, dtype, 10)
        close(gx, gx_ref, dtype, 10)
    close(ours.weight.grad, theirs.weight.grad.numpy(), dtype, 10)
    close(ours.bias.grad, theirs.bias.grad.numpy(), dtype, 10)
    close(ours.running_mean, theirs.running_mean.numpy(), dtype, 10)
    close(ours.running_var, theirs.running_var.numpy(), dtype, 10)
    assert int(B.to_numpy(ours.num_batches_tracked)) == int(theirs.num_batches_tracked) == 4
    ours.eval(), theirs.eval()
    x_np = rng.standard_normal(shape).astype(dtype)
    g_np = rng.standard_normal(shape).astype(dtype)
    y_ref, gx_ref = torch_step(theirs, x_np, g_np)
    close(ours(make(x_np)), y_ref, dtype, 10)
    close(ours.backward(make(g_np)), gx_ref, dtype, 10)
    close(ours.running_mean, theirs.running_mean.numpy(), dtype, 10)  # eval leaves the stats alone


@pytest.mark.parametrize("affine,track", [(False, True), (True, False)])
def test_batchnorm1d_options_match_torch(affine, track, kw, make, rng):
    ours = nn.BatchNorm1d(3, affine=affine, track_running_stats=track, dtype="float64", **kw)
    theirs = torch.nn.BatchNorm1d(3, affine=affine, track_running_stats=track, dtype=torch.float64)
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    x_np = rng.standard_normal((10, 3)) * 2
    for mode in ("train", "eval"):
        getattr(ours, mode)(), getattr(theirs, mode)()
        y_ref, gx_ref = torch_step(theirs, x_np, np.ones((10, 3)))
        close(ours(make(x_np)), y_ref, "float64", 10)
        close(ours.backward(make(np.ones((10, 3)))), gx_ref, "float64", 10)


# --------------------------------------------------------------------------------------------
# gradient checks of whole modules
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["linear", "prelu", "maxout", "batchnorm", "batchnorm_eval", "highway",
                                  "highway_tanh", "residual", "mlp"])
def test_module_gradcheck(name, kw, make, rng):
    g = B.Generator(3, **kw)
    mods = {
        "linear": lambda: nn.Linear(4, 3, generator=g, **kw),
        "prelu": lambda: nn.PReLU(4, **kw),
        "maxout": lambda: nn.Maxout(4, 3, 3, generator=g, **kw),
        "batchnorm": lambda: nn.BatchNorm1d(4, **kw),
        "batchnorm_eval": lambda: nn.BatchNorm1d(4, **kw).eval(),
        "highway": lambda: nn.Highway(4, generator=g, **kw),
        "highway_tanh": lambda: nn.Highway(4, nn.Tanh, gate_bias=-2.0, generator=g, **kw),
        "residual": lambda: nn.Residual(nn.Sequential(nn.Linear(4, 4, generator=g, **kw), nn.ELU())),
        "mlp": lambda: nn.Sequential(nn.Linear(4, 6, generator=g, **kw), nn.BatchNorm1d(6, **kw), nn.SELU(),
                                     nn.Dropout(0.5).eval(), nn.Linear(6, 4, generator=g, **kw), nn.Softplus()),
    }
    m = mods[name]()
    x = make(rng.standard_normal((5, 4)))
    if name == "prelu":
        x = make(np.where(np.abs(B.to_numpy(x)) < 1e-2, 0.5, B.to_numpy(x)))
    r = gradcheck_module(m, x)
    assert r < 1e-6, str(r)


def test_highway_formula_and_gate_bias(kw, make, rng):
    h = nn.Highway(4, gate_bias=-1.5, dtype="float64", generator=B.Generator(0, **kw))
    np.testing.assert_array_equal(B.to_numpy(h.gate.bias.data), -1.5)
    x_np = rng.standard_normal((3, 4))
    sd = {k: B.to_numpy(v) for k, v in h.state_dict().items()}
    hx = np.maximum(x_np @ sd["transform.weight"].T + sd["transform.bias"], 0)
    t = 1 / (1 + np.exp(-(x_np @ sd["gate.weight"].T + sd["gate.bias"])))
    np.testing.assert_allclose(B.to_numpy(h(make(x_np))), t * hx + (1 - t) * x_np, rtol=1e-12)
    h.gate.bias.data = h.gate.bias.data * 0 - 50.0  # gate closed: the layer carries its input
    np.testing.assert_allclose(B.to_numpy(h(make(x_np))), x_np, atol=1e-20)


def test_residual_and_sequential_against_torch(kw, make, rng):
    ours = nn.Sequential(nn.Linear(5, 8, dtype="float64", **kw), nn.Tanh(),
                         nn.Residual(nn.Sequential(nn.Linear(8, 8, dtype="float64", **kw), nn.ReLU())),
                         nn.Linear(8, 3, dtype="float64", **kw))

    class TorchResidual(torch.nn.Module):
        def __init__(self, block):
            super().__init__()
            self.block = block

        def forward(self, x):
            return x + self.block(x)

    theirs = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(),
                                 TorchResidual(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())),
                                 torch.nn.Linear(8, 3)).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    copy_to_torch(ours, theirs)
    x_np, g_np = rng.standard_normal((6, 5)), rng.standard_normal((6, 3))
    y_ref, gx_ref = torch_step(theirs, x_np, g_np)
    close(ours(make(x_np)), y_ref, "float64")
    close(ours.backward(make(g_np)), gx_ref, "float64")
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        close(p.grad, tp.grad.numpy(), "float64")


# --------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["CrossEntropyLoss", "MSELoss"])
def test_losses_match_torch(loss, dtype, make, rng):
    input_np = rng.standard_normal((7, 4)).astype(dtype)
    target_np = rng.integers(0, 4, 7) if loss == "CrossEntropyLoss" else rng.standard_normal((7, 4)).astype(dtype)
    ref, (grad_ref,) = torch_grads(lambda a, t: getattr(torch.nn, loss)()(a, t), [input_np, target_np],
                                   np.array(1.0, dtype), (0,))
    ours = getattr(nn, loss)()
    close(ours(make(input_np), make(target_np)), ref, dtype)
    close(ours.backward(), grad_ref, dtype)


# --------------------------------------------------------------------------------------------
# Module API
# --------------------------------------------------------------------------------------------
def make_mlp(kw):
    g = B.Generator(0, **kw)
    return nn.Sequential(nn.Linear(3, 4, generator=g, **kw), nn.BatchNorm1d(4, **kw), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(4, 2, generator=g, **kw))


def test_registration_names_and_containers(kw):
    m = make_mlp(kw)
    assert [n for n, _ in m.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"]
    assert list(m.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                    "1.num_batches_tracked", "4.weight", "4.bias"]
    assert len(m) == 5 and isinstance(m[1], nn.BatchNorm1d) and isinstance(m[-1], nn.Linear)
    assert len(m[1:3]) == 2 and isinstance(m[1:3], nn.Sequential)
    assert len(list(m.modules())) == 6
    shared = nn.Linear(2, 2, **kw)
    assert len(list(nn.Sequential(shared, shared).parameters())) == 2  # shared parameters once
    assert "Linear(in_features=3, out_features=4, bias=True)" in repr(m)


def test_grad_accumulates_and_zero_grad_resets(kw, make, rng):
    lin = nn.Linear(3, 2, **kw)
    assert lin.weight.grad is None
    x, g = make(rng.standard_normal((4, 3)).astype(np.float32)), make(np.ones((4, 2), np.float32))
    lin(x)
    lin.backward(g)
    first = B.to_numpy(lin.weight.grad).copy()
    lin(x)
    lin.backward(g)
    np.testing.assert_allclose(B.to_numpy(lin.weight.grad), 2 * first, rtol=1e-6)
    lin.zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None
    lin(x)
    lin.backward(g)
    lin.zero_grad(set_to_none=False)
    assert float(B.to_numpy(lin.weight.grad).sum()) == 0.0


def test_frozen_parameters_get_no_grad(kw, make):
    lin = nn.Linear(3, 2, **kw)
    lin.weight.requires_grad = False
    lin(make(np.ones((1, 3), np.float32)))
    lin.backward(make(np.ones((1, 2), np.float32)))
    assert lin.weight.grad is None and lin.bias.grad is not None


def test_train_eval_propagate(kw):
    m = make_mlp(kw)
    assert all(mod.training for mod in m.modules())
    assert m.eval() is m and not any(mod.training for mod in m.modules())
    m.train()
    assert m[3].training


def test_state_dict_is_a_copy_and_round_trips_across_backends(kw, make, rng):
    m = make_mlp(kw)
    x = make(rng.standard_normal((8, 3)).astype(np.float32))
    m(x)  # updates BatchNorm's running statistics
    sd = m.state_dict()
    before = B.to_numpy(sd["0.weight"]).copy()
    m[0].weight.data = m[0].weight.data * 0
    np.testing.assert_array_equal(B.to_numpy(sd["0.weight"]), before)
    other = make_mlp(dict(backend="numpy", device="cpu"))  # a different backend on purpose
    other.load_state_dict(sd)
    for (k, a), (k2, b) in zip(sd.items(), other.state_dict().items()):
        assert k == k2 and B.backend_of(b) == "numpy"
        np.testing.assert_array_equal(B.to_numpy(a), B.to_numpy(b))
    m.load_state_dict(other.state_dict())
    m.eval(), other.eval()
    np.testing.assert_allclose(B.to_numpy(m(x)), other(B.to_numpy(x)), rtol=1e-6)


def test_load_torch_state_dict(kw, make, rng):
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(),
                                 torch.nn.Dropout(0.5), torch.nn.Linear(4, 2)).eval()
    ours = make_mlp(kw).eval()
    ours.load_state_dict(theirs.state_dict())
    x_np = rng.standard_normal((5, 3)).astype(np.float32)
    with torch.no_grad():
        ref = theirs(torch.tensor(x_np)).numpy()
    close(ours(make(x_np)), ref, "float32")


def test_to_changes_dtype_and_backend(kw, make):
    m = make_mlp(kw)
    m.to(dtype="float64")
    assert all(B.dtype_name(p.data) == "float64" for p in m.parameters())
    assert B.dtype_name(m[1].num_batches_tracked) == "int64"
    m.to(backend="numpy")
    assert all(B.backend_of(p.data) == "numpy" for p in m.parameters())
    assert B.backend_of(m[1].running_var) == "numpy"
    y = m(np.ones((2, 3)))
    assert y.dtype == np.float64


def test_bad_input_and_misuse(kw, make):
    with pytest.raises(ValueError, match=r"Linear: in_features must be an integer >= 1, got 0"):
        nn.Linear(0, 3)
    with pytest.raises(TypeError, match=r"Linear: out_features must be an integer, got float"):
        nn.Linear(3, 2.5)
    with pytest.raises(ValueError, match=r"Dropout: p must be in \[0, 1\), got 1.0"):
        nn.Dropout(1.0)
    with pytest.raises(TypeError, match=r"Sequential: argument 1 must be a Module, got function"):
        nn.Sequential(nn.ReLU(), lambda x: x)
    with pytest.raises(RuntimeError, match=r"Linear.backward: nothing saved from forward \(input\); call forward first"):
        nn.Linear(2, 2, **kw).backward(make(np.ones((1, 2), np.float32)))
    with pytest.raises(ValueError, match=r"BatchNorm1d: x must be 2-d \(N, C\) or 3-d \(N, C, L\)"):
        nn.BatchNorm1d(2, **kw)(make(np.ones((2, 2, 2, 2), np.float32)))
    with pytest.raises(ValueError, match=r"linear: the last dim of x must equal in_features=3"):
        nn.Linear(3, 2, **kw)(make(np.ones((2, 4), np.float32)))
    with pytest.raises(KeyError, match=r"missing keys \['bias'\]"):
        nn.Linear(3, 2, **kw).load_state_dict({"weight": np.zeros((2, 3))})
    with pytest.raises(ValueError, match=r"Linear.load_state_dict: weight must have shape \(2, 3\), got \(3, 2\)"):
        nn.Linear(3, 2, **kw).load_state_dict({"weight": np.zeros((3, 2)), "bias": np.zeros(2)})
    with pytest.raises(TypeError, match=r"Highway: activation must be a Module class or instance"):
        nn.Highway(3, activation=np.tanh)
    with pytest.raises(ValueError, match=r"Residual: block must keep the input shape"):
        nn.Residual(nn.Linear(3, 2, **kw))(make(np.ones((1, 3), np.float32)))
    with pytest.raises(ValueError, match=r"Linear: generator is on"):
        nn.Linear(2, 2, backend="numpy", generator=B.Generator(0, backend="torch"))
