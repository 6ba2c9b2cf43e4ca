"""coursekit.optim's RMSprop and Adam: parity with torch.optim over long trajectories, the pure step
functions against the classes, state handling, bad input."""
import numpy as np
import pytest
import torch

from coursekit import backend as B
from coursekit import nn, optim

STEPS = 150
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-4, atol=2e-5)}


def _data(seed=0):
    """A least-squares problem ½ mean‖tanh(X W) V − T‖² (two parameter shapes, a curved loss):
    X (40, 6), W0 (6, 4), V0 (4, 3), T (40, 3)."""
    r = np.random.default_rng(seed)
    return r.normal(size=(40, 6)), r.normal(size=(6, 4)), r.normal(size=(4, 3)), r.normal(size=(40, 3))


def _gradients(X, W, V, T):
    """Hand-written gradients of the loss of :func:`_data` (any backend)."""
    H = (X @ W).tanh() if hasattr(X, "tanh") else np.tanh(X @ W)
    R = (H @ V - T) / X.shape[0]
    return X.T @ ((R @ V.T) * (1 - H * H)), H.T @ R


def _run(library, cfg, dtype, make=None, steps=STEPS):
    """The trajectory ``[(W_t, V_t)]`` of ``torch.optim`` (library="torch") or ``coursekit.optim``."""
    X, W0, V0, T = _data()
    if library == "torch":
        X, T = (torch.tensor(a, dtype=getattr(torch, dtype)) for a in (X, T))
        ps = [torch.tensor(a, dtype=getattr(torch, dtype), requires_grad=True) for a in (W0, V0)]
        opt = getattr(torch.optim, cfg["cls"])(ps, **cfg["kw"])
        data = lambda p: p.detach()  # noqa: E731
    else:
        X, T = make(X, dtype), make(T, dtype)
        ps = [nn.Parameter(make(a, dtype)) for a in (W0, V0)]
        opt = getattr(optim, cfg["cls"])(ps, **cfg["kw"])
        data = lambda p: p.data  # noqa: E731
    traj = []
    for _ in range(steps):
        gW, gV = _gradients(X, data(ps[0]), data(ps[1]), T)
        ps[0].grad, ps[1].grad = gW.clone() if library == "torch" else gW, gV.clone() if library == "torch" else gV
        opt.step()
        traj.append(tuple(B.to_numpy(data(p)).copy() for p in ps))
    return traj


CONFIGS = [
    dict(cls="RMSprop", kw=dict()),
    dict(cls="RMSprop", kw=dict(lr=0.003, alpha=0.9)),
    dict(cls="RMSprop", kw=dict(lr=0.002, momentum=0.9, weight_decay=0.01)),
    dict(cls="RMSprop", kw=dict(lr=0.005, alpha=0.95, centered=True, eps=1e-6)),
    dict(cls="RMSprop", kw=dict(lr=0.002, momentum=0.5, centered=True, weight_decay=0.1)),
    dict(cls="Adam", kw=dict()),
    dict(cls="Adam", kw=dict(lr=0.01, betas=(0.8, 0.99))),
    dict(cls="Adam", kw=dict(lr=0.02, weight_decay=0.05, eps=1e-6)),
    dict(cls="Adam", kw=dict(lr=0.01, amsgrad=True)),
    dict(cls="Adam", kw=dict(lr=0.03, betas=(0.0, 0.9), amsgrad=True, weight_decay=0.01)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["cls"] + ":" + ",".join(f"{k}={v}" for k, v in c["kw"].items()))
def test_matches_torch_optim(cfg, dtype, make):
    ref = _run("torch", cfg, dtype)
    got = _run("ours", cfg, dtype, make)
    for t, (r, g) in enumerate(zip(ref, got)):
        for rp, gp in zip(r, g):
            np.testing.assert_allclose(gp, rp, **TOL[dtype], err_msg=f"step {t + 1}")
            assert gp.dtype == np.dtype(dtype)
    # the run made progress (a frozen trajectory would match vacuously)
    assert np.abs(got[-1][0] - got[0][0]).max() > 1e-2


def test_default_hyperparameters_are_torch_defaults():
    p = [nn.Parameter(np.zeros(2))]
    tp = [torch.zeros(2, requires_grad=True)]
    for ours, theirs in ((optim.RMSprop(p), torch.optim.RMSprop(tp)), (optim.Adam(p), torch.optim.Adam(tp))):
        for k, v in ours.defaults.items():
            assert theirs.defaults[k] == v, (type(ours).__name__, k, v, theirs.defaults[k])


def test_step_functions_equal_classes_and_do_not_mutate(make):
    X, W0, _, _ = _data(1)
    X, W0 = make(X), make(W0)
    W0_copy = B.to_numpy(W0).copy()
    loss_grad = lambda W: X.T @ (X @ W - 1.0) / 40  # noqa: E731  (½ mean ‖X W − 1‖²)
    rms_kw = dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01)
    adam_kw = dict(lr=0.01, betas=(0.8, 0.95), amsgrad=True, weight_decay=0.01)
    p_r, v, buf, gavg = W0, W0 * 0, None, None
    p_a, m, s, mx = W0, W0 * 0, W0 * 0, None
    Pr, Pa = nn.Parameter(W0), nn.Parameter(W0)
    rms, adam = optim.RMSprop([Pr], **rms_kw), optim.Adam([Pa], **adam_kw)
    for t in range(1, 40):
        p_r, v, buf, gavg = optim.rmsprop_step(p_r, loss_grad(p_r), v, buf, gavg, **rms_kw)
        Pr.grad = loss_grad(Pr.data)
        rms.step()
        p_a, m, s, mx = optim.adam_step(p_a, loss_grad(p_a), m, s, t, mx, **adam_kw)
        Pa.grad = loss_grad(Pa.data)
        adam.step()
    np.testing.assert_array_equal(B.to_numpy(p_r), B.to_numpy(Pr.data))
    np.testing.assert_array_equal(B.to_numpy(p_a), B.to_numpy(Pa.data))
    st = adam.state[id(Pa)]
    assert st["step"] == 39 and set(st) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert set(rms.state[id(Pr)]) == {"step", "square_avg", "momentum_buffer", "grad_avg"}
    np.testing.assert_array_equal(B.to_numpy(W0), W0_copy)  # the initial array was never written
    assert np.abs(B.to_numpy(p_a) - W0_copy).max() > 0.1


def test_unused_state_is_none(make):
    z = make(np.zeros(3))
    g = make(np.ones(3))
    p, v, buf, gavg = optim.rmsprop_step(z, g, z)
    assert buf is None and gavg is None and B.to_numpy(v).tolist() == pytest.approx([0.01] * 3)
    p, m, s, mx = optim.adam_step(z, g, z, z, 1)
    assert mx is None
    # first Adam step: the bias correction makes it lr · g / (|g| + eps) = lr · sign(g)
    np.testing.assert_allclose(B.to_numpy(p), [-1e-3] * 3, rtol=1e-7)


def test_adam_counts_steps_per_parameter(make, rng):
    """A parameter without a gradient in some steps keeps its own step count (torch semantics)."""
    a0, b0 = rng.normal(size=3), rng.normal(size=3)
    ours = [nn.Parameter(make(a0)), nn.Parameter(make(b0))]
    ref = [torch.tensor(a0, requires_grad=True), torch.tensor(b0, requires_grad=True)]
    o, r = optim.Adam(ours, lr=0.1), torch.optim.Adam(ref, lr=0.1)
    for t in range(12):
        for k in range(2):
            has = k == 0 or t % 3 == 0
            ours[k].grad = make(B.to_numpy(ours[k].data) ** 2 - 1.0) if has else None
            ref[k].grad = (ref[k].detach() ** 2 - 1.0) if has else None
        o.step()
        r.step()
        for p, q in zip(ours, ref):
            np.testing.assert_allclose(B.to_numpy(p.data), q.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert o.state[id(ours[1])]["step"] == 4


def test_param_groups_have_their_own_hyperparameters(make):
    a, b = nn.Parameter(make(np.ones(2))), nn.Parameter(make(np.ones(2)))
    opt = optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = make(np.ones(2)), make(np.ones(2))
    opt.step()
    np.testing.assert_allclose(B.to_numpy(a.data), [0.9, 0.9], rtol=1e-7)
    np.testing.assert_allclose(B.to_numpy(b.data), [0.5, 0.5], rtol=1e-7)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def _p():
    return nn.Parameter(np.zeros(2))


@pytest.mark.parametrize("call,match", [
    (lambda: optim.RMSprop([_p()], lr=-0.1), r"RMSprop: lr must be in \[0, inf\], got -0.1"),
    (lambda: optim.RMSprop([_p()], alpha=1.5), r"RMSprop: alpha must be in \[0, 1\], got 1.5"),
    (lambda: optim.RMSprop([_p()], eps=-1e-8), r"RMSprop: eps must be in"),
    (lambda: optim.RMSprop([_p()], momentum=-0.9), r"RMSprop: momentum must be in"),
    (lambda: optim.RMSprop([_p()], weight_decay=float("nan")), r"RMSprop: weight_decay must be in"),
    (lambda: optim.RMSprop([{"params": [_p()], "alpha": -1.0}]), r"RMSprop: alpha must be in"),
    (lambda: optim.Adam([_p()], lr=-1.0), r"Adam: lr must be in"),
    (lambda: optim.Adam([_p()], betas=(0.9, 1.0)), r"Adam: betas\[1\] must be in \[0, 1\), got 1.0"),
    (lambda: optim.Adam([_p()], betas=(-0.1, 0.999)), r"Adam: betas\[0\] must be in"),
    (lambda: optim.Adam([_p()], eps=-1.0), r"Adam: eps must be in"),
    (lambda: optim.Adam([], lr=0.1), r"Adam: params must contain at least one"),
    (lambda: optim.Adam([_p()], foo=1), None),
    (lambda: optim.adam_step(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), 0), r"adam_step: step must be an integer >= 1, got 0"),
    (lambda: optim.adam_step(np.zeros(2), np.zeros(2), np.zeros(3), np.zeros(2), 1), r"adam_step: exp_avg must have the shape of param \(2,\), got \(3,\)"),
    (lambda: optim.adam_step(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), 1, np.zeros(1), amsgrad=True), r"adam_step: max_exp_avg_sq must have the shape"),
    (lambda: optim.rmsprop_step(np.zeros(2), np.zeros(3), np.zeros(2)), r"rmsprop_step: grad must have the shape"),
    (lambda: optim.rmsprop_step(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(4), momentum=0.9), r"rmsprop_step: momentum_buffer must have the shape"),
])
def test_bad_values_raise_value_error(call, match):
    if match is None:  # an unknown keyword is Python's TypeError, as for torch
        with pytest.raises(TypeError):
            call()
        return
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call,match", [
    (lambda: optim.RMSprop([_p()], lr="0.1"), r"RMSprop: lr must be a real number, got str"),
    (lambda: optim.RMSprop([_p()], centered=1), r"RMSprop: centered must be a bool, got int"),
    (lambda: optim.RMSprop(_p()), r"RMSprop: params must be an iterable"),
    (lambda: optim.Adam([_p()], betas=0.9), r"Adam: betas must be a pair"),
    (lambda: optim.Adam([_p()], betas=(0.9, 0.99, 0.999)), r"Adam: betas must be a pair"),
    (lambda: optim.Adam([_p()], amsgrad="yes"), r"Adam: amsgrad must be a bool"),
    (lambda: optim.Adam([np.zeros(2)]), r"Adam: params must have .data and .grad"),
    (lambda: optim.Adam([_p()], 0.1), r"positional"),
    (lambda: optim.adam_step(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), 1.0), r"adam_step: step must be an integer"),
    (lambda: optim.adam_step(np.zeros(2, dtype=np.int64), np.zeros(2), np.zeros(2), np.zeros(2), 1), r"adam_step: param must have a floating"),
    (lambda: optim.rmsprop_step(np.zeros(2), torch.zeros(2, dtype=torch.float64), np.zeros(2)), r"arrays|namespace|mix"),
])
def test_bad_types_raise_type_error(call, match):
    with pytest.raises(TypeError, match=match):
        call()
