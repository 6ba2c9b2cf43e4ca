"""coursekit.optim: parity with torch.optim over long trajectories, conventions, schedules, early stopping."""
import math

import numpy as np
import pytest

from coursekit import backend as B
from coursekit import nn, optim

from conftest import close

torch = pytest.importorskip("torch")
STEPS = 120


# ---------------------------------------------------------------------------------------------
# a random least-squares problem: L(W, b) = ½ mean‖X W + b − T‖², gradients in closed form
# ---------------------------------------------------------------------------------------------
def _problem(seed=0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(32, 5))
    T = r.normal(size=(32, 3))
    W0 = r.normal(size=(5, 3))
    b0 = r.normal(size=(3,))
    return X, T, W0, b0


def _grads(X, T, W, b):
    R = X @ W + b - T
    n = X.shape[0]
    return X.T @ R / n, R.sum(0) / n


def _torch_reference(opt_cls, kwargs, dtype, steps=STEPS):
    X, T, W0, b0 = (torch.tensor(a, dtype=getattr(torch, dtype)) for a in _problem())
    W, b = W0.clone().requires_grad_(), b0.clone().requires_grad_()
    opt = opt_cls([W, b], **kwargs)
    traj = []
    for _ in range(steps):
        gW, gb = _grads(X, T, W.detach(), b.detach())
        W.grad, b.grad = gW.clone(), gb.clone()
        opt.step()
        traj.append((W.detach().numpy().copy(), b.detach().numpy().copy()))
    return traj


def _ours(opt_cls, kwargs, dtype, make, steps=STEPS):
    X, T, W0, b0 = (make(a, dtype) for a in _problem())
    W, b = nn.Parameter(W0), nn.Parameter(b0)
    opt = opt_cls([W, b], **kwargs)
    traj = []
    for _ in range(steps):
        opt.zero_grad()
        W.grad, b.grad = _grads(X, T, W.data, b.data)
        opt.step()
        traj.append((B.to_numpy(W.data), B.to_numpy(b.data)))
    return traj


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.5, dampening=0.3, weight_decay=0.01),
    dict(lr=0.03, momentum=0.9, nesterov=True, weight_decay=0.05),
    dict(lr=0.1, weight_decay=0.1),
]
ADAGRAD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.3, lr_decay=0.01),
    dict(lr=0.2, weight_decay=0.05, initial_accumulator_value=0.1, eps=1e-6),
]


CONFIGS = [("SGD", cfg) for cfg in SGD_CONFIGS] + [("Adagrad", cfg) for cfg in ADAGRAD_CONFIGS]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,cfg", CONFIGS, ids=lambda c: c if isinstance(c, str) else
                         ",".join(f"{k}={v}" for k, v in c.items()))
def test_optimizer_matches_torch(name, cfg, dtype, make):
    ref = _torch_reference(getattr(torch.optim, name), cfg, dtype)
    got = _ours(getattr(optim, name), cfg, dtype, make)
    for (rw, rb), (gw, gb) in zip(ref, got):
        close(gw, rw, dtype, factor=10)   # 120 steps: roundoff accumulates along the trajectory
        close(gb, rb, dtype, factor=10)
    assert gw.dtype == np.dtype(dtype)
    # the run made progress (the test would pass vacuously on a frozen trajectory otherwise)
    assert np.abs(got[-1][0] - got[0][0]).max() > 1e-2


def test_step_functions_equal_classes_and_do_not_mutate(make):
    X, T, W0, _ = (make(a, "float64") for a in _problem())
    W0_copy = B.to_numpy(W0).copy()
    p, buf = W0, None
    s, G = W0, W0 * 0
    Wc, Wa = nn.Parameter(W0), nn.Parameter(W0)
    sgd = optim.SGD([Wc], lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)
    ada = optim.Adagrad([Wa], lr=0.1, lr_decay=0.05)
    for t in range(1, 30):
        g = X.T @ (X @ p - T) / 32
        p, buf = optim.sgd_step(p, g, buf, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)
        Wc.grad = X.T @ (X @ Wc.data - T) / 32
        sgd.step()
        g = X.T @ (X @ s - T) / 32
        s, G = optim.adagrad_step(s, g, G, t, lr=0.1, lr_decay=0.05)
        Wa.grad = X.T @ (X @ Wa.data - T) / 32
        ada.step()
    np.testing.assert_array_equal(B.to_numpy(p), B.to_numpy(Wc.data))
    np.testing.assert_array_equal(B.to_numpy(s), B.to_numpy(Wa.data))
    np.testing.assert_array_equal(B.to_numpy(W0), W0_copy)  # the initial array was never written


def test_momentum_buffer_is_not_aliased_to_grad(make):
    p, g = make(np.ones(3)), make(np.full(3, 2.0))
    _, buf = optim.sgd_step(p, g, None, lr=0.1, momentum=0.9)
    g += 1.0  # caller accumulates into its grad array in place
    np.testing.assert_array_equal(B.to_numpy(buf), [2.0, 2.0, 2.0])


def test_parameters_without_grad_are_skipped(make):
    a, b = nn.Parameter(make(np.ones(2))), nn.Parameter(make(np.ones(2)))
    opt = optim.SGD([a, b], lr=0.5, momentum=0.9)
    a.grad = make(np.ones(2))
    opt.step()
    np.testing.assert_array_equal(B.to_numpy(a.data), [0.5, 0.5])
    np.testing.assert_array_equal(B.to_numpy(b.data), [1.0, 1.0])
    assert id(b) not in opt.state
    opt.zero_grad()
    assert a.grad is None


def test_adagrad_counts_steps_per_parameter(make, rng):
    """A parameter without a gradient in some steps keeps its own step count (torch semantics)."""
    a0, b0 = make(rng.normal(size=3)), make(rng.normal(size=(2, 2)))
    a, b = nn.Parameter(a0), nn.Parameter(b0)
    opt = optim.Adagrad([a, b], lr=0.5, lr_decay=0.3)
    ra, rb, Ga, Gb, tb = a0, b0, a0 * 0, b0 * 0, 0
    for t in range(1, 6):
        ga, gb = make(rng.normal(size=3)), make(rng.normal(size=(2, 2)))
        a.grad, b.grad = ga, (gb if t % 2 == 0 else None)
        opt.step()
        ra, Ga = optim.adagrad_step(ra, ga, Ga, t, lr=0.5, lr_decay=0.3)
        if t % 2 == 0:
            tb += 1
            rb, Gb = optim.adagrad_step(rb, gb, Gb, tb, lr=0.5, lr_decay=0.3)
    assert opt.state[id(a)]["step"] == 5 and opt.state[id(b)]["step"] == 2
    np.testing.assert_allclose(B.to_numpy(a.data), B.to_numpy(ra), rtol=1e-14)
    np.testing.assert_allclose(B.to_numpy(b.data), B.to_numpy(rb), rtol=1e-14)


def test_param_groups_have_their_own_lr(make):
    a, b = nn.Parameter(make(np.ones(2))), nn.Parameter(make(np.ones(2)))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.1}], lr=1.0)
    a.grad, b.grad = make(np.ones(2)), make(np.ones(2))
    opt.step()
    np.testing.assert_allclose(B.to_numpy(a.data), [0.0, 0.0])
    np.testing.assert_allclose(B.to_numpy(b.data), [0.9, 0.9])
    opt.lr = 0.25
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25] and opt.lr == 0.25


# ---------------------------------------------------------------------------------------------
# conventions: the lecture's momentum, weight decay = L2 penalty
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lr,mom", [(0.05, 0.9), (0.2, 0.5), (0.01, 0.99)])
def test_lecture_momentum_equals_torch_convention(lr, mom, make):
    X, T, W0, _ = (make(a, "float64") for a in _problem(3))
    p_torch, buf = W0, None
    p_lect, v = W0, None
    for _ in range(STEPS):
        g1 = X.T @ (X @ p_torch - T) / 32
        p_torch, buf = optim.sgd_step(p_torch, g1, buf, lr=lr, momentum=mom)
        g2 = X.T @ (X @ p_lect - T) / 32
        p_lect, v = optim.momentum_step(p_lect, g2, v, lr=lr, momentum=mom)
        np.testing.assert_allclose(B.to_numpy(p_lect), B.to_numpy(p_torch), rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(B.to_numpy(v), -lr * B.to_numpy(buf), rtol=1e-11, atol=1e-13)
    # and against torch.optim.SGD itself
    ref = _torch_reference(torch.optim.SGD, dict(lr=lr, momentum=mom), "float64")
    Wt = ref[-1][0]
    # (_torch_reference uses problem 0; rerun ours on problem 0 for the direct comparison)
    X, T, W0, b0 = (make(a, "float64") for a in _problem())
    W, b, vW, vb = W0, b0, None, None
    for _ in range(STEPS):
        gW, gb = _grads(X, T, W, b)
        W, vW = optim.momentum_step(W, gW, vW, lr=lr, momentum=mom)
        b, vb = optim.momentum_step(b, gb, vb, lr=lr, momentum=mom)
    np.testing.assert_allclose(B.to_numpy(W), Wt, rtol=1e-10, atol=1e-12)


def test_weight_decay_is_l2_gradient(make, rng):
    w = make(rng.normal(size=(4, 3)))
    g = make(rng.normal(size=(4, 3)))
    lr, lam = 0.1, 0.3
    decayed, _ = optim.sgd_step(w, g, None, lr=lr, weight_decay=lam)
    # gradient of C(w) + λ/2 ‖w‖² is ∇C + λ w
    l2, _ = optim.sgd_step(w, g + lam * w, None, lr=lr)
    np.testing.assert_allclose(B.to_numpy(decayed), B.to_numpy(l2), rtol=1e-15, atol=0)
    np.testing.assert_allclose(B.to_numpy(decayed), B.to_numpy((1 - lr * lam) * w - lr * g), rtol=1e-14, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------------------------
def _torch_opt(lr=1.0, groups=1):
    return torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)]} for _ in range(groups)], lr=lr)


def _our_opt(lr=1.0, groups=1):
    return optim.SGD([{"params": [nn.Parameter(np.zeros(1))]} for _ in range(groups)], lr=lr)


def test_inverse_sqrt_values_and_lambda_lr_parity():
    assert [optim.inverse_sqrt_lr(0.5, t) for t in range(4)] == [0.5, 0.5 / math.sqrt(2), 0.5 / math.sqrt(3), 0.25]
    ours, ref = _our_opt(0.5), _torch_opt(0.5)
    sch = optim.InverseSqrtLR(ours)
    tsch = torch.optim.lr_scheduler.LambdaLR(ref, lambda t: 1 / math.sqrt(t + 1))
    for t in range(1, 50):
        ref.step()
        tsch.step()
        sch.step()
        assert ours.lr == pytest.approx(0.5 / math.sqrt(t + 1), rel=1e-15)
        assert sch.get_last_lr()[0] == pytest.approx(tsch.get_last_lr()[0], rel=1e-15)


# a scripted metric: improvements, plateaus, tiny (below-threshold) improvements, noise
_METRICS = ([10, 9, 8, 8, 8, 8, 8, 7.9995, 7.9999, 8, 8.1, 5, 5, 5, 5, 5, 5, 5, 4.99, 5, 5, 5, 5, 5, 5, 5]
            + [5 - 0.001 * i for i in range(10)] + [6] * 12)


@pytest.mark.parametrize("kw", [
    dict(patience=2),
    dict(patience=0),
    dict(patience=3, cooldown=2),
    dict(patience=1, threshold=0.1, threshold_mode="abs"),
    dict(patience=2, min_lr=0.1),
    dict(patience=2, mode="max"),
    dict(patience=1, factor=0.1, threshold=1e-3),
], ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_reduce_on_plateau_matches_torch(kw):
    ours, ref = _our_opt(1.0, groups=2), _torch_opt(1.0, groups=2)
    ref.param_groups[1]["lr"] = ours.param_groups[1]["lr"] = 0.5
    tkw = {"factor": 0.5, **kw}
    sch = optim.ReduceLROnPlateau(ours, **kw)
    tsch = torch.optim.lr_scheduler.ReduceLROnPlateau(ref, **tkw)
    lrs = []
    for m in _METRICS:
        sch.step(m)
        tsch.step(m)
        assert [g["lr"] for g in ours.param_groups] == [g["lr"] for g in ref.param_groups]
        lrs.append(ours.lr)
    assert len(set(lrs)) > 1  # the lr did change


def test_halving_after_patience_plus_one_bad_epochs():
    opt = _our_opt(0.8)
    sch = optim.ReduceLROnPlateau(opt, patience=2)
    for m in [1.0, 1.0, 1.0]:
        sch.step(m)
    assert opt.lr == 0.8  # 2 bad epochs: still within patience
    sch.step(1.0)
    assert opt.lr == 0.4  # the 3rd bad epoch halves it


# ---------------------------------------------------------------------------------------------
# early stopping
# ---------------------------------------------------------------------------------------------
def test_early_stopping_stops_after_patience_and_restores_best(backend):
    name, device = backend
    model = nn.Linear(3, 2, backend=name, device=device, dtype="float64", generator=B.Generator(0, backend=name, device=device))
    es = optim.EarlyStopping(patience=3)
    metrics = [5.0, 4.0, 3.0, 3.5, 2.9, 3.2, 3.1, 3.0, 1.0]
    states, stops = [], []
    for epoch, m in enumerate(metrics):
        model.weight.data = model.weight.data + 1.0  # "training" changes the weights every epoch
        states.append(B.to_numpy(model.weight.data).copy())
        stops.append(es.step(m, model))
        if stops[-1]:
            break
    # best 2.9 at epoch 4; epochs 5, 6, 7 bring no improvement -> stop at epoch 7
    assert stops == [False] * 7 + [True]
    assert es.best == 2.9 and es.best_epoch == 4
    es.restore(model)
    np.testing.assert_array_equal(B.to_numpy(model.weight.data), states[4])
    assert B.backend_of(model.weight.data) == name


def test_early_stopping_min_delta_and_max_mode():
    es = optim.EarlyStopping(patience=2, min_delta=0.1, mode="max")
    assert [es.step(a) for a in [0.5, 0.55, 0.65, 0.7, 0.74]] == [False, False, False, False, True]
    assert es.best == 0.65 and es.best_epoch == 2


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def _p():
    return nn.Parameter(np.zeros(2))


@pytest.mark.parametrize("ctor,match", [
    (lambda: optim.SGD([_p()], lr=-0.1), r"SGD: lr must be in \[0, inf\], got -0.1"),
    (lambda: optim.SGD([_p()], lr=0.1, momentum=-0.5), r"SGD: momentum must be in"),
    (lambda: optim.SGD([_p()], lr=0.1, nesterov=True), r"SGD: nesterov=True requires momentum > 0"),
    (lambda: optim.SGD([_p()], lr=0.1, momentum=0.9, dampening=1.5), r"SGD: dampening must be in \[0, 1\]"),
    (lambda: optim.SGD([_p()], lr=0.1, weight_decay=-1), r"SGD: weight_decay must be in"),
    (lambda: optim.SGD([], lr=0.1), r"SGD: params must contain at least one"),
    (lambda: optim.SGD([_p()], lr=0.1, momentum=float("nan")), r"SGD: momentum must be in"),
    (lambda: optim.Adagrad([_p()], lr=-1.0), r"Adagrad: lr must be in"),
    (lambda: optim.Adagrad([_p()], eps=-1.0), r"Adagrad: eps must be in"),
    (lambda: optim.Adagrad([_p()], lr_decay=-1.0), r"Adagrad: lr_decay must be in"),
    (lambda: optim.Adagrad([_p()], initial_accumulator_value=-1.0), r"Adagrad: initial_accumulator_value"),
    (lambda: optim.ReduceLROnPlateau(_our_opt(), factor=1.0), r"ReduceLROnPlateau: factor must be in \(0, 1\)"),
    (lambda: optim.ReduceLROnPlateau(_our_opt(), mode="up"), r"ReduceLROnPlateau: mode must be"),
    (lambda: optim.ReduceLROnPlateau(_our_opt(), patience=-1), r"ReduceLROnPlateau: patience must be"),
    (lambda: optim.EarlyStopping(patience=0), r"EarlyStopping: patience must be an integer >= 1, got 0"),
    (lambda: optim.EarlyStopping(mode="best"), r"EarlyStopping: mode must be"),
    (lambda: optim.EarlyStopping(min_delta=-0.1), r"EarlyStopping: min_delta must be in"),
    (lambda: optim.EarlyStopping().restore(None), r"EarlyStopping.restore: no model state"),
    (lambda: optim.inverse_sqrt_lr(0.1, -1), r"inverse_sqrt_lr: t must be an integer >= 0"),
])
def test_bad_hyperparameters_raise_value_error(ctor, match):
    with pytest.raises(ValueError, match=match):
        ctor()


@pytest.mark.parametrize("ctor,match", [
    (lambda: optim.SGD([np.zeros(2)], lr=0.1), r"SGD: params must have .data and .grad"),
    (lambda: optim.SGD(_p(), lr=0.1), r"SGD: params must be an iterable"),
    (lambda: optim.SGD([_p()], lr="0.1"), r"SGD: lr must be a real number, got str"),
    (lambda: optim.SGD([_p()], lr=0.1, nesterov=1), r"SGD: nesterov must be a bool"),
    (lambda: optim.InverseSqrtLR(object()), r"InverseSqrtLR: optimizer must have param_groups"),
    (lambda: optim.sgd_step(np.zeros(2, dtype=np.int64), np.zeros(2), None, lr=0.1), r"sgd_step: param must have a floating"),
    (lambda: optim.sgd_step(np.zeros(2), torch.zeros(2, dtype=torch.float64), None, lr=0.1), r"arrays|namespace|mix"),
    (lambda: optim.adagrad_step(np.zeros(2), np.zeros(2), np.zeros(2), 1.5), r"adagrad_step: step must be an integer"),
])
def test_bad_types_raise_type_error(ctor, match):
    with pytest.raises(TypeError, match=match):
        ctor()


@pytest.mark.parametrize("call,match", [
    (lambda: optim.sgd_step(np.zeros(2), np.zeros(3), None, lr=0.1), r"sgd_step: grad must have the shape of param \(2,\), got \(3,\)"),
    (lambda: optim.sgd_step(np.zeros(2), np.zeros(2), np.zeros(3), lr=0.1, momentum=0.9), r"sgd_step: momentum_buffer must have the shape"),
    (lambda: optim.momentum_step(np.zeros(2), np.zeros(2), None, lr=-1, momentum=0.9), r"momentum_step: lr must be in"),
    (lambda: optim.adagrad_step(np.zeros(2), np.zeros(2), np.zeros(2), 0), r"adagrad_step: step must be an integer >= 1, got 0"),
    (lambda: optim.adagrad_step(np.zeros(2), np.zeros(2), np.zeros(1), 1), r"adagrad_step: state_sum must have the shape"),
])
def test_bad_step_function_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
