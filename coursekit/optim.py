"""Optimizers, learning-rate schedules and early stopping.

Every update rule is a *pure step function* ``(param, grad, state...) -> (new_param, new_state...)``
written once against the array API; the classes :class:`SGD` and :class:`Adagrad` are thin stateful
shells over them, like ``torch.optim``'s functional API. Names, arguments and defaults follow
``torch.optim`` so that trajectories can be compared step for step.

Conventions
-----------
*Momentum.* torch (and this module's :func:`sgd_step`) keeps a buffer of accumulated gradients,
``b ← μ b + g;  θ ← θ − η b``. The lecture writes momentum as a velocity,
``v ← λ v − η ∇C;  θ ← θ + v`` (:func:`momentum_step`). For a constant learning rate the two are
the same algorithm with ``v = −η b`` (proof in :func:`momentum_step`).

*Weight decay.* Adding the L2 term ``λ/2 ‖w‖²`` to the loss adds ``λ w`` to the gradient, so a
gradient step on the regularised loss is::

    w ← w − η (∇C(w) + λ w) = (1 − ηλ) w − η ∇C(w)

i.e. the weights first *decay* by the factor ``1 − ηλ`` and then take the plain step. That is what
``weight_decay=λ`` does in :func:`sgd_step` (torch's coupled weight decay: ``g ← g + λ θ`` before
momentum). The test ``test_weight_decay_is_l2_gradient`` checks the three forms agree.

The classes write a *new* array into ``param.data`` at every step (inputs are never modified in
place), so arrays that a caller kept from an earlier step remain valid. The kernels work on lists
of arrays: :class:`SGD` and :class:`Adagrad` update all parameters of a group with one fused call
per line of the update on torch (the "foreach" path of ``torch.optim``, via the ``foreach_*``
helpers of :mod:`coursekit.backend`) and a loop on NumPy; :func:`sgd_step` and
:func:`adagrad_step` are the same kernels applied to one array.
"""
from __future__ import annotations

import copy
import math

from . import _checks as check
from .backend import (array_namespace, foreach_add, foreach_addcdiv, foreach_addcmul,
                      foreach_mul, foreach_sqrt)

__all__ = [
    "sgd_step", "momentum_step", "adagrad_step", "Optimizer", "SGD", "Adagrad",
    "inverse_sqrt_lr", "InverseSqrtLR", "ReduceLROnPlateau", "EarlyStopping",
]


# --------------------------------------------------------------------------------------------
# validation helpers (the checks themselves: coursekit._checks)
# --------------------------------------------------------------------------------------------
def _check_pair(fn: str, param, grad, pname="param", gname="grad"):
    check.arrays(fn, **{pname: param, gname: grad})
    check.same_shape(fn, grad, gname, param.shape, pname)


def _check_sgd_hyper(fn, lr, momentum, dampening, weight_decay, nesterov):
    lr = check.real(fn, "lr", lr, low=0.0)
    momentum = check.real(fn, "momentum", momentum, low=0.0)
    dampening = check.real(fn, "dampening", dampening, low=0.0, high=1.0)
    weight_decay = check.real(fn, "weight_decay", weight_decay, low=0.0)
    nesterov = check.boolean(fn, "nesterov", nesterov)
    if nesterov and (momentum <= 0.0 or dampening != 0.0):
        raise ValueError(f"{fn}: nesterov=True requires momentum > 0 and dampening = 0, "
                         f"got momentum={momentum!r}, dampening={dampening!r}")
    return dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                nesterov=nesterov)


def _check_adagrad_hyper(fn, lr, lr_decay, weight_decay, eps):
    return dict(lr=check.real(fn, "lr", lr, low=0.0), lr_decay=check.real(fn, "lr_decay", lr_decay, low=0.0),
                weight_decay=check.real(fn, "weight_decay", weight_decay, low=0.0),
                eps=check.real(fn, "eps", eps, low=0.0))


# --------------------------------------------------------------------------------------------
# pure step functions
# --------------------------------------------------------------------------------------------
def _sgd(params, grads, bufs, lr, momentum, dampening, weight_decay, nesterov):
    """The SGD kernel on *lists* of arrays (one parameter = lists of length 1).

    Each line is one fused call over the whole list for torch tensors (``foreach_add``/``foreach_mul``
    in :mod:`coursekit.backend`), a loop for NumPy. Returns ``(new_params, new_bufs)``.
    """
    if weight_decay != 0.0:
        grads = foreach_add(grads, params, alpha=weight_decay)          # g + λθ
    if momentum != 0.0:
        bufs = list(bufs)
        old = [i for i, b in enumerate(bufs) if b is not None]
        for i, b in enumerate(bufs):
            if b is None:
                # first step: b = g, a copy (torch clones), so a caller that later writes into its
                # grad array in place (gradient accumulation) cannot change the buffer
                g = grads[i]
                bufs[i] = array_namespace(g).asarray(g, copy=True) if weight_decay == 0.0 else g
        if old:                                                         # μ b + (1 − dampening) g
            new = foreach_add(foreach_mul([bufs[i] for i in old], momentum), [grads[i] for i in old],
                              alpha=1.0 - dampening)
            for i, b in zip(old, new):
                bufs[i] = b
        grads = foreach_add(grads, bufs, alpha=momentum) if nesterov else bufs   # g + μ b  or  b
    return foreach_add(params, grads, alpha=-lr), bufs                   # θ − lr g


def sgd_step(param, grad, momentum_buffer, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
             nesterov=False):
    """One step of SGD with momentum, exactly ``torch.optim.SGD`` (``foreach=False``, ``maximize=False``).

    ``param``, ``grad``: arrays of one shape (any backend); ``momentum_buffer``: ``None`` before the
    first step, then the buffer returned by the previous call. Returns ``(new_param, new_buffer)``;
    ``new_buffer`` is ``None`` when ``momentum == 0``. Neither input is modified.

    The update (torch's convention, ``g`` the gradient)::

        g ← g + weight_decay · θ                     (L2 penalty weight_decay/2 ‖θ‖², coupled)
        b ← g                                        on the first step (buffer = first gradient)
        b ← momentum · b + (1 − dampening) · g       afterwards
        g ← g + momentum · b  if nesterov  else  b
        θ ← θ − lr · g

    With ``momentum = 0`` this is plain gradient descent ``θ ← θ − lr (∇C + λθ) = (1 − lr λ)θ − lr ∇C``.
    ``nesterov=True`` needs ``momentum > 0`` and ``dampening = 0`` (as in torch).
    """
    fn = "sgd_step"
    _check_pair(fn, param, grad)
    h = _check_sgd_hyper(fn, lr, momentum, dampening, weight_decay, nesterov)
    if momentum_buffer is not None:
        _check_pair(fn, param, momentum_buffer, gname="momentum_buffer")
    (new_param,), (new_buffer,) = _sgd([param], [grad], [momentum_buffer], **h)
    return new_param, (new_buffer if h["momentum"] != 0.0 else None)


def momentum_step(param, grad, velocity, *, lr, momentum):
    """One step of momentum in the lecture's convention: ``v ← λ v − η ∇C;  θ ← θ + v``.

    ``param``, ``grad``: arrays of one shape; ``velocity``: ``None`` (= zeros, the particle starts at
    rest) or the velocity returned by the previous call. ``lr`` = η, ``momentum`` = λ.
    Returns ``(new_param, new_velocity)``.

    **Equivalence with torch's convention** (:func:`sgd_step`, ``b ← μ b + g; θ ← θ − η b`` with
    ``b₁ = g₁``). Claim: for a constant η, ``λ = μ`` and ``v₀ = 0``, the velocity is ``v_t = −η b_t``
    and both produce the same iterates θ_t. Induction on t: for t = 1,
    ``v₁ = λ·0 − η g₁ = −η b₁``. If ``v_{t−1} = −η b_{t−1}`` then
    ``v_t = λ v_{t−1} − η g_t = −η (μ b_{t−1} + g_t) = −η b_t``, hence
    ``θ_t = θ_{t−1} + v_t = θ_{t−1} − η b_t``, which is torch's update. ∎
    (With a learning rate that changes over time the two differ: the lecture's velocity keeps the
    old η inside ``v``, torch rescales the whole buffer by the current η.)
    """
    fn = "momentum_step"
    _check_pair(fn, param, grad)
    lr = check.real(fn, "lr", lr, low=0.0)
    momentum = check.real(fn, "momentum", momentum, low=0.0)
    if velocity is None:
        velocity = -lr * grad
    else:
        _check_pair(fn, param, velocity, gname="velocity")
        velocity = momentum * velocity - lr * grad
    return param + velocity, velocity


def _adagrad(params, grads, sums, step, lr, lr_decay, weight_decay, eps):
    """The Adagrad kernel on *lists* of arrays that share the step count ``step`` (1-based).

    One fused call per line for torch tensors, a loop for NumPy. Returns ``(new_params, new_sums)``.
    """
    if weight_decay != 0.0:
        grads = foreach_add(grads, params, alpha=weight_decay)          # g + λθ
    clr = lr / (1.0 + (step - 1) * lr_decay)                            # decayed lr
    sums = foreach_addcmul(sums, grads, grads)                          # G + g²
    std = foreach_add(foreach_sqrt(sums), eps)                          # √G + eps
    return foreach_addcdiv(params, grads, std, value=-clr), sums        # θ − clr g / (√G + eps)


def adagrad_step(param, grad, state_sum, step, *, lr=0.01, lr_decay=0.0, weight_decay=0.0, eps=1e-10):
    """One Adagrad step (Duchi et al. 2011), exactly ``torch.optim.Adagrad`` (dense gradients).

    ``param``, ``grad``, ``state_sum``: arrays of one shape; ``state_sum`` is the running sum of
    squared gradients (start it at ``initial_accumulator_value``, torch's default 0, e.g.
    ``xp.zeros_like(param)``); ``step`` is the 1-based index of this step. Returns
    ``(new_param, new_state_sum)``; inputs are not modified. The update, elementwise::

        g ← g + weight_decay · θ
        η_t = lr / (1 + (t − 1) · lr_decay)
        G ← G + g²
        θ ← θ − η_t · g / (√G + eps)          (eps added after the square root, as torch)

    Each coordinate gets its own step size η/√(Σ past g²): large past gradients → smaller steps.
    """
    fn = "adagrad_step"
    _check_pair(fn, param, grad)
    _check_pair(fn, param, state_sum, gname="state_sum")
    step = check.integer(fn, "step", step, low=1)
    h = _check_adagrad_hyper(fn, lr, lr_decay, weight_decay, eps)
    (new_param,), (new_sum,) = _adagrad([param], [grad], [state_sum], step, **h)
    return new_param, new_sum


# --------------------------------------------------------------------------------------------
# optimizer classes
# --------------------------------------------------------------------------------------------
class Optimizer:
    """Base class: holds ``param_groups`` (list of dicts with ``"params"`` and hyperparameters) and
    per-parameter ``state`` (dict keyed by ``id(param)``), like ``torch.optim.Optimizer``.

    ``params``: an iterable of parameters (objects with ``.data`` and ``.grad``, e.g.
    ``model.parameters()``) or of dicts ``{"params": [...], "lr": ...}`` (per-group options).
    """

    _name = "Optimizer"

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict[int, dict] = {}
        self.param_groups: list[dict] = []
        if hasattr(params, "data") and hasattr(params, "grad"):
            raise TypeError(f"{self._name}: params must be an iterable of parameters or dicts, "
                            "got a single parameter (wrap it in a list)")
        try:
            groups = list(params)
        except TypeError:
            raise TypeError(f"{self._name}: params must be an iterable of parameters or dicts, "
                            f"got {type(params).__name__}") from None
        if not groups:
            raise ValueError(f"{self._name}: params must contain at least one parameter, got an empty list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def _check_group(self, group: dict) -> dict:  # overridden: validates hyperparameters
        return group

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones take the defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{self._name}: a param group must be a dict, got {type(param_group).__name__}")
        params = param_group.get("params")
        params = [params] if hasattr(params, "data") else list(params or [])
        if not params:
            raise ValueError(f"{self._name}: a param group must contain at least one parameter")
        for p in params:
            if not (hasattr(p, "data") and hasattr(p, "grad")):
                raise TypeError(f"{self._name}: params must have .data and .grad attributes, "
                                f"got {type(p).__name__}")
            check.floating(self._name, "param.data", p.data)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if seen & {id(p) for p in params} or len({id(p) for p in params}) != len(params):
            raise ValueError(f"{self._name}: some parameters appear in more than one param group")
        unknown = set(param_group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{self._name}: unknown hyperparameters {sorted(unknown)} in a param group")
        group = {**self.defaults, **param_group, "params": params}
        self.param_groups.append(self._check_group(group))

    @property
    def lr(self) -> float:
        """The learning rate of the first param group; setting it sets every group's ``lr``."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value) -> None:
        value = check.real(self._name, "lr", value, low=0.0)
        for g in self.param_groups:
            g["lr"] = value

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients: ``None`` (torch's default) or zeros of the parameter's shape."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad = array_namespace(p.grad).zeros_like(p.grad)

    def step(self) -> None:
        raise NotImplementedError(f"{type(self).__name__}.step")

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            opts = ", ".join(f"{k}={v}" for k, v in g.items() if k != "params")
            lines.append(f"  group {i}: {len(g['params'])} params, {opts}")
        return "\n".join(lines + [")"])


class SGD(Optimizer):
    """Stochastic gradient descent with momentum/Nesterov/weight decay: ``torch.optim.SGD``.

    ``SGD(model.parameters(), lr=0.1, momentum=0.9)``; each :meth:`step` applies :func:`sgd_step`
    to every parameter whose ``.grad`` is not ``None`` and stores the momentum buffer in
    ``state[id(p)]["momentum_buffer"]``. ``lr`` has no default (as in torch before 2.2 — choose it).
    """

    _name = "SGD"

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
        defaults = _check_sgd_hyper("SGD", lr, momentum, dampening, weight_decay, nesterov)
        super().__init__(params, defaults)

    def _check_group(self, g):
        g.update(_check_sgd_hyper("SGD", g["lr"], g["momentum"], g["dampening"], g["weight_decay"],
                                  g["nesterov"]))
        return g

    def step(self) -> None:
        for g in self.param_groups:
            ps = [p for p in g["params"] if p.grad is not None]
            if not ps:
                continue
            states = [self.state.setdefault(id(p), {}) for p in ps]
            new_params, bufs = _sgd([p.data for p in ps], [p.grad for p in ps],
                                    [st.get("momentum_buffer") for st in states],
                                    g["lr"], g["momentum"], g["dampening"], g["weight_decay"], g["nesterov"])
            for p, st, data, buf in zip(ps, states, new_params, bufs):
                p.data = data
                if buf is not None:
                    st["momentum_buffer"] = buf


class Adagrad(Optimizer):
    """Adagrad: ``torch.optim.Adagrad`` (dense gradients), a thin shell over :func:`adagrad_step`.

    State per parameter: ``state[id(p)] = {"step": t, "sum": G}`` with ``G`` initialised to
    ``initial_accumulator_value`` when the optimizer is built (as torch).
    """

    _name = "Adagrad"

    def __init__(self, params, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
        defaults = _check_adagrad_hyper("Adagrad", lr, lr_decay, weight_decay, eps)
        defaults["initial_accumulator_value"] = check.real("Adagrad", "initial_accumulator_value",
                                                            initial_accumulator_value, low=0.0)
        super().__init__(params, defaults)

    def _check_group(self, g):
        g.update(_check_adagrad_hyper("Adagrad", g["lr"], g["lr_decay"], g["weight_decay"], g["eps"]))
        init = check.real("Adagrad", "initial_accumulator_value", g["initial_accumulator_value"], low=0.0)
        for p in g["params"]:
            xp = array_namespace(p.data)
            self.state[id(p)] = {"step": 0, "sum": xp.full_like(p.data, init)}
        return g

    def step(self) -> None:
        for g in self.param_groups:
            h = (g["lr"], g["lr_decay"], g["weight_decay"], g["eps"])
            by_step: dict[int, list] = {}  # parameters skipped in some steps have fewer steps
            for p in g["params"]:
                if p.grad is not None:
                    st = self.state[id(p)]
                    st["step"] += 1
                    by_step.setdefault(st["step"], []).append((p, st))
            for step, items in by_step.items():
                new_params, new_sums = _adagrad([p.data for p, _ in items], [p.grad for p, _ in items],
                                                [st["sum"] for _, st in items], step, *h)
                for (p, st), data, G in zip(items, new_params, new_sums):
                    p.data, st["sum"] = data, G


# --------------------------------------------------------------------------------------------
# learning-rate schedules
# --------------------------------------------------------------------------------------------
def _check_optimizer(fn: str, optimizer):
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list) or not groups or not all(isinstance(g, dict) and "lr" in g for g in groups):
        raise TypeError(f"{fn}: optimizer must have param_groups with an 'lr' each, "
                        f"got {type(optimizer).__name__}")
    return groups


def inverse_sqrt_lr(lr, t):
    """The lecture's 1/t decay ``η_t = η / √(t + 1)`` for ``t = 0, 1, 2, …`` (η₀ = η)."""
    lr = check.real("inverse_sqrt_lr", "lr", lr, low=0.0)
    t = check.integer("inverse_sqrt_lr", "t", t, low=0)
    return lr / math.sqrt(t + 1)


class InverseSqrtLR:
    """Set every param group's lr to ``η_t = η / √(t + 1)`` after the t-th call of :meth:`step`.

    η is each group's lr when the schedule is created (``base_lrs``). Call :meth:`step` once per
    epoch (or per iteration), after ``optimizer.step()`` — the same protocol as
    ``torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 / math.sqrt(t + 1))``, which it equals.
    """

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [float(g["lr"]) for g in _check_optimizer("InverseSqrtLR", optimizer)]
        self.last_epoch = 0

    def step(self) -> None:
        self.last_epoch += 1
        for g, lr in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = lr / math.sqrt(self.last_epoch + 1)

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]


class ReduceLROnPlateau:
    """Multiply the lr by ``factor`` (default 0.5: *halve*) when a metric stops improving.

    Same algorithm and arguments as ``torch.optim.lr_scheduler.ReduceLROnPlateau``; the only
    difference is the default ``factor=0.5`` (torch: 0.1) — the lecture's "halve on plateau".
    After each epoch call ``step(metric)``: in ``mode='min'`` a value is an improvement when
    ``metric < best·(1 − threshold)`` (``threshold_mode='rel'``) or ``metric < best − threshold``
    (``'abs'``); ``'max'`` mirrors it. When more than ``patience`` epochs in a row brought no
    improvement, each group's lr becomes ``max(lr·factor, min_lr)`` (changes smaller than ``eps``
    are skipped) and ``cooldown`` epochs follow during which bad epochs are not counted.
    """

    def __init__(self, optimizer, *, mode="min", factor=0.5, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        fn = "ReduceLROnPlateau"
        groups = _check_optimizer(fn, optimizer)
        check.choice(fn, "mode", mode, ("min", "max"))
        check.choice(fn, "threshold_mode", threshold_mode, ("rel", "abs"))
        self.optimizer, self.mode, self.threshold_mode = optimizer, mode, threshold_mode
        self.factor = check.real(fn, "factor", factor, low=0.0, high=1.0, low_open=True, high_open=True)
        self.patience = check.integer(fn, "patience", patience, low=0)
        self.threshold = check.real(fn, "threshold", threshold, low=0.0)
        self.cooldown = check.integer(fn, "cooldown", cooldown, low=0)
        self.min_lr = check.real(fn, "min_lr", min_lr, low=0.0)
        self.eps = check.real(fn, "eps", eps, low=0.0)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in groups]

    def is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return a > (best * (1.0 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold)

    def step(self, metric) -> None:
        current = float(metric)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for g in self.optimizer.param_groups:
                old = float(g["lr"])
                new = max(old * self.factor, self.min_lr)
                if old - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)


# --------------------------------------------------------------------------------------------
# early stopping
# --------------------------------------------------------------------------------------------
def _copy_state(state: dict) -> dict:
    out = {}
    for k, v in state.items():
        try:
            out[k] = array_namespace(v).asarray(v, copy=True)
        except TypeError:
            out[k] = copy.deepcopy(v)
    return out


class EarlyStopping:
    """Stop training when a validation metric has not improved for ``patience`` epochs, and keep
    the best model seen so far (Larochelle & Salakhutdinov's "look ahead", also in Hung-yi Lee 2016:
    train on for a while after the best epoch, then go back to it).

    Call ``stop = es.step(metric, model)`` after every epoch. A value improves on the best when
    ``metric < best − min_delta`` (``mode='min'``, e.g. a loss) or ``metric > best + min_delta``
    (``mode='max'``, e.g. an accuracy); then ``best``, ``best_epoch`` (0-based index of the
    :meth:`step` call) and a copy of ``model.state_dict()`` are stored. ``step`` returns ``True``
    once ``patience`` calls in a row brought no improvement. ``restore(model)`` loads the best
    state back.
    """

    def __init__(self, *, patience=5, min_delta=0.0, mode="min"):
        fn = "EarlyStopping"
        self.patience = check.integer(fn, "patience", patience, low=1)
        self.min_delta = check.real(fn, "min_delta", min_delta, low=0.0)
        self.mode = check.choice(fn, "mode", mode, ("min", "max"))
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_state: dict | None = None
        self.num_bad_epochs = 0
        self.epoch = -1
        self.stopped = False

    def is_better(self, metric: float) -> bool:
        if self.mode == "min":
            return metric < self.best - self.min_delta
        return metric > self.best + self.min_delta

    def step(self, metric, model=None) -> bool:
        """Record this epoch's ``metric`` (and ``model``'s state if it is the best); ``True`` = stop."""
        metric = float(metric)
        if math.isnan(metric):
            raise ValueError("EarlyStopping.step: metric must be a number, got nan")
        self.epoch += 1
        if self.is_better(metric):
            self.best, self.best_epoch, self.num_bad_epochs = metric, self.epoch, 0
            if model is not None:
                self.best_state = _copy_state(model.state_dict())
        else:
            self.num_bad_epochs += 1
        self.stopped = self.num_bad_epochs >= self.patience
        return self.stopped

    def restore(self, model) -> None:
        """Load the best state seen by :meth:`step` into ``model``."""
        if self.best_state is None:
            raise ValueError("EarlyStopping.restore: no model state stored "
                             "(call step(metric, model) with a model first)")
        model.load_state_dict(_copy_state(self.best_state))


# --------------------------------------------------------------------------------------------
# RMSProp and Adam: Adagrad's per-parameter scaling with a moving average instead of a sum
# --------------------------------------------------------------------------------------------
# Adagrad divides by √(Σ g²), a sum that only grows, so every step size shrinks for ever (like
# 1/√t when the gradients keep their size). RMSProp (Tieleman & Hinton 2012) divides by the root
# of an *exponential moving average* of g², which forgets old gradients: the step size settles at
# about lr instead of decaying. Adam (Kingma & Ba 2015) adds a moving average of g itself (momentum)
# and corrects both averages for their start at zero. Lecture 06 measures the difference.
__all__ += ["rmsprop_step", "adam_step", "RMSprop", "Adam"]



def _check_rmsprop_hyper(fn, lr, alpha, eps, weight_decay, momentum, centered):
    return dict(lr=check.real(fn, "lr", lr, low=0.0), alpha=check.real(fn, "alpha", alpha, high=1.0, low=0.0),
                eps=check.real(fn, "eps", eps, low=0.0), weight_decay=check.real(fn, "weight_decay", weight_decay, low=0.0),
                momentum=check.real(fn, "momentum", momentum, low=0.0), centered=check.boolean(fn, "centered", centered))


def _check_adam_hyper(fn, lr, betas, eps, weight_decay, amsgrad):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{fn}: betas must be a pair (beta1, beta2), got {type(betas).__name__}")
    betas = tuple(check.real(fn, f"betas[{i}]", b, high=1.0, high_open=True, low=0.0) for i, b in enumerate(betas))
    return dict(lr=check.real(fn, "lr", lr, low=0.0), betas=betas, eps=check.real(fn, "eps", eps, low=0.0),
                weight_decay=check.real(fn, "weight_decay", weight_decay, low=0.0),
                amsgrad=check.boolean(fn, "amsgrad", amsgrad))


def _rmsprop(params, grads, square_avgs, bufs, grad_avgs, lr, alpha, eps, weight_decay, momentum, centered):
    """The RMSProp kernel on *lists* of arrays; ``bufs``/``grad_avgs`` are only read when ``momentum > 0``
    / ``centered``. Returns ``(new_params, new_square_avgs, new_bufs, new_grad_avgs)``."""
    if weight_decay != 0.0:
        grads = foreach_add(grads, params, alpha=weight_decay)              # g + λθ
    square_avgs = foreach_addcmul(foreach_mul(square_avgs, alpha), grads, grads, value=1.0 - alpha)  # αv + (1−α)g²
    if centered:
        grad_avgs = foreach_add(foreach_mul(grad_avgs, alpha), grads, alpha=1.0 - alpha)            # αḡ + (1−α)g
        avg = foreach_add(foreach_sqrt(foreach_addcmul(square_avgs, grad_avgs, grad_avgs, value=-1.0)), eps)
    else:
        avg = foreach_add(foreach_sqrt(square_avgs), eps)                   # √v + eps
    if momentum > 0.0:
        bufs = foreach_addcdiv(foreach_mul(bufs, momentum), grads, avg)     # μ b + g / avg
        return foreach_add(params, bufs, alpha=-lr), square_avgs, bufs, grad_avgs
    return foreach_addcdiv(params, grads, avg, value=-lr), square_avgs, bufs, grad_avgs   # θ − lr g / avg


def rmsprop_step(param, grad, square_avg, momentum_buffer=None, grad_avg=None, *, lr=0.01, alpha=0.99,
                 eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    """One RMSProp step (Tieleman & Hinton 2012), exactly ``torch.optim.RMSprop`` (``maximize=False``).

    ``param``, ``grad``, ``square_avg``: arrays of one shape; ``square_avg`` is the moving average of
    squared gradients (start it at zeros, as torch). ``momentum_buffer`` (used when ``momentum > 0``)
    and ``grad_avg`` (used when ``centered``) may be ``None`` = zeros before the first step. Returns
    ``(new_param, new_square_avg, new_momentum_buffer, new_grad_avg)``; the last two are ``None`` when
    unused. Inputs are not modified. The update, elementwise::

        g ← g + weight_decay · θ
        v ← α v + (1 − α) g²                      (a moving average: old gradients are forgotten)
        ḡ ← α ḡ + (1 − α) g,  d = √(v − ḡ²) + eps     if centered,  else  d = √v + eps
        b ← μ b + g / d,  θ ← θ − lr · b            if momentum μ > 0, else  θ ← θ − lr · g / d

    Against Adagrad's ``√(Σ g²)`` the denominator stays of the size of *recent* gradients, so the step
    does not decay to zero when training runs long.
    """
    fn = "rmsprop_step"
    _check_pair(fn, param, grad)
    _check_pair(fn, param, square_avg, gname="square_avg")
    h = _check_rmsprop_hyper(fn, lr, alpha, eps, weight_decay, momentum, centered)
    xp = array_namespace(param)
    for name, s in (("momentum_buffer", momentum_buffer), ("grad_avg", grad_avg)):
        if s is not None:
            _check_pair(fn, param, s, gname=name)
    buf = (xp.zeros_like(param) if momentum_buffer is None else momentum_buffer) if h["momentum"] > 0 else None
    gavg = (xp.zeros_like(param) if grad_avg is None else grad_avg) if h["centered"] else None
    (p,), (v,), bufs, gavgs = _rmsprop([param], [grad], [square_avg], [buf], [gavg], **h)
    return p, v, (bufs[0] if buf is not None else None), (gavgs[0] if gavg is not None else None)


def _adam(params, grads, exp_avgs, exp_avg_sqs, max_sqs, step, lr, betas, eps, weight_decay, amsgrad):
    """The Adam kernel on *lists* of arrays that share the step count ``step`` (1-based); ``max_sqs`` is
    only read when ``amsgrad``. Returns ``(new_params, new_exp_avgs, new_exp_avg_sqs, new_max_sqs)``."""
    beta1, beta2 = betas
    if weight_decay != 0.0:
        grads = foreach_add(grads, params, alpha=weight_decay)              # g + λθ (coupled, as torch)
    exp_avgs = foreach_add(foreach_mul(exp_avgs, beta1), grads, alpha=1.0 - beta1)             # m ← β₁m + (1−β₁)g
    exp_avg_sqs = foreach_addcmul(foreach_mul(exp_avg_sqs, beta2), grads, grads, value=1.0 - beta2)  # v ← β₂v + (1−β₂)g²
    bias1, bias2 = 1.0 - beta1 ** step, 1.0 - beta2 ** step               # both averages started at 0
    second = exp_avg_sqs
    if amsgrad:
        max_sqs = [array_namespace(m).maximum(m, v) for m, v in zip(max_sqs, exp_avg_sqs, strict=True)]
        second = max_sqs
    denom = foreach_add(foreach_mul(foreach_sqrt(second), 1.0 / math.sqrt(bias2)), eps)  # √(v / (1−β₂ᵗ)) + eps
    return foreach_addcdiv(params, exp_avgs, denom, value=-lr / bias1), exp_avgs, exp_avg_sqs, max_sqs


def adam_step(param, grad, exp_avg, exp_avg_sq, step, max_exp_avg_sq=None, *, lr=1e-3, betas=(0.9, 0.999),
              eps=1e-8, weight_decay=0.0, amsgrad=False):
    """One Adam step (Kingma & Ba 2015), exactly ``torch.optim.Adam`` (coupled weight decay, ``maximize=False``).

    ``param``, ``grad``, ``exp_avg`` (moving average of g), ``exp_avg_sq`` (of g²): arrays of one shape,
    both averages zeros before the first step; ``step``: the 1-based index of this step;
    ``max_exp_avg_sq`` (used when ``amsgrad``): ``None`` = zeros at first. Returns
    ``(new_param, new_exp_avg, new_exp_avg_sq, new_max_exp_avg_sq)``, the last ``None`` unless
    ``amsgrad``. Inputs are not modified. The update, elementwise::

        g ← g + weight_decay · θ
        m ← β₁ m + (1 − β₁) g                  (momentum: a moving average of the gradient)
        v ← β₂ v + (1 − β₂) g²                 (RMSProp's moving average of the squared gradient)
        m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)  (bias correction: the averages start at 0)
        θ ← θ − lr · m̂ / (√v̂ + eps)            (amsgrad: v̂ from the running maximum of v)

    Without the bias correction the first steps are far too small (m ≈ (1 − β₁) g at t = 1) or, when
    only ``v`` is uncorrected, far too large.
    """
    fn = "adam_step"
    _check_pair(fn, param, grad)
    _check_pair(fn, param, exp_avg, gname="exp_avg")
    _check_pair(fn, param, exp_avg_sq, gname="exp_avg_sq")
    step = check.integer(fn, "step", step, low=1)
    h = _check_adam_hyper(fn, lr, betas, eps, weight_decay, amsgrad)
    mx = None
    if h["amsgrad"]:
        if max_exp_avg_sq is not None:
            _check_pair(fn, param, max_exp_avg_sq, gname="max_exp_avg_sq")
        mx = array_namespace(param).zeros_like(param) if max_exp_avg_sq is None else max_exp_avg_sq
    (p,), (m,), (v,), mxs = _adam([param], [grad], [exp_avg], [exp_avg_sq], [mx], step, **h)
    return p, m, v, (mxs[0] if mx is not None else None)


class RMSprop(Optimizer):
    """RMSProp: ``torch.optim.RMSprop``, a thin shell over :func:`rmsprop_step`.

    State per parameter (created at its first step, zeros as torch): ``state[id(p)] = {"step": t,
    "square_avg": v}`` plus ``"momentum_buffer"`` when ``momentum > 0`` and ``"grad_avg"`` when
    ``centered``.
    """

    _name = "RMSprop"

    def __init__(self, params, *, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, _check_rmsprop_hyper("RMSprop", lr, alpha, eps, weight_decay, momentum,
                                                      centered))

    def _check_group(self, g):
        g.update(_check_rmsprop_hyper("RMSprop", g["lr"], g["alpha"], g["eps"], g["weight_decay"],
                                      g["momentum"], g["centered"]))
        return g

    def step(self) -> None:
        for g in self.param_groups:
            ps = [p for p in g["params"] if p.grad is not None]
            if not ps:
                continue
            states = []
            for p in ps:
                st = self.state.setdefault(id(p), {})
                if not st:
                    xp = array_namespace(p.data)
                    st.update(step=0, square_avg=xp.zeros_like(p.data))
                    if g["momentum"] > 0:
                        st["momentum_buffer"] = xp.zeros_like(p.data)
                    if g["centered"]:
                        st["grad_avg"] = xp.zeros_like(p.data)
                st["step"] += 1
                states.append(st)
            h = {k: g[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")}
            new = _rmsprop([p.data for p in ps], [p.grad for p in ps], [st["square_avg"] for st in states],
                           [st.get("momentum_buffer") for st in states], [st.get("grad_avg") for st in states], **h)
            for i, (p, st) in enumerate(zip(ps, states)):
                p.data, st["square_avg"] = new[0][i], new[1][i]
                if g["momentum"] > 0:
                    st["momentum_buffer"] = new[2][i]
                if g["centered"]:
                    st["grad_avg"] = new[3][i]


class Adam(Optimizer):
    """Adam: ``torch.optim.Adam`` (coupled weight decay), a thin shell over :func:`adam_step`.

    State per parameter (created at its first step): ``state[id(p)] = {"step": t, "exp_avg": m,
    "exp_avg_sq": v}`` plus ``"max_exp_avg_sq"`` when ``amsgrad``. Parameters skipped in some steps
    keep their own step count (the bias correction uses it), as in torch.
    """

    _name = "Adam"

    def __init__(self, params, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, _check_adam_hyper("Adam", lr, betas, eps, weight_decay, amsgrad))

    def _check_group(self, g):
        g.update(_check_adam_hyper("Adam", g["lr"], g["betas"], g["eps"], g["weight_decay"], g["amsgrad"]))
        return g

    def step(self) -> None:
        for g in self.param_groups:
            h = {k: g[k] for k in ("lr", "betas", "eps", "weight_decay", "amsgrad")}
            by_step: dict[int, list] = {}
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state.setdefault(id(p), {})
                if not st:
                    xp = array_namespace(p.data)
                    st.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
                    if g["amsgrad"]:
                        st["max_exp_avg_sq"] = xp.zeros_like(p.data)
                st["step"] += 1
                by_step.setdefault(st["step"], []).append((p, st))
            for step, items in by_step.items():
                new = _adam([p.data for p, _ in items], [p.grad for p, _ in items],
                            [st["exp_avg"] for _, st in items], [st["exp_avg_sq"] for _, st in items],
                            [st.get("max_exp_avg_sq") for _, st in items], step, **h)
                for i, (p, st) in enumerate(items):
                    p.data, st["exp_avg"], st["exp_avg_sq"] = new[0][i], new[1][i], new[2][i]
                    if g["amsgrad"]:
                        st["max_exp_avg_sq"] = new[3][i]


# --------------------------------------------------------------------------------------------
# L1 regularization and the value of a penalty (appended for lectures 08 and 13)
# --------------------------------------------------------------------------------------------
def penalty(params, *, weight_decay=0.0, l1=0.0) -> float:
    """The regularization term whose gradient ``weight_decay`` (:class:`SGD`) and ``l1`` (:class:`SGDL1`)
    add: ``weight_decay / 2 · Σ‖w‖² + l1 · Σ|w|`` over ``params`` (parameters: ``.data`` and ``.grad``), as a
    float.

    The optimizers never compute this value (only its gradient); add it to the data loss to see the
    objective that they minimise — e.g. for the sanity check "add regularization, the loss goes up".
    """
    weight_decay = check.real("penalty", "weight_decay", weight_decay, low=0.0)
    l1 = check.real("penalty", "l1", l1, low=0.0)
    params = list(params)
    if not params or not all(hasattr(p, "data") and hasattr(p, "grad") for p in params):
        raise TypeError("penalty: params must be a non-empty iterable of parameters (objects with .data and .grad)")
    total = 0.0
    for p in params:
        xp = array_namespace(p.data)
        total += 0.5 * weight_decay * float(xp.sum(p.data * p.data)) + l1 * float(xp.sum(xp.abs(p.data)))
    return total


def l1_subgradient(w):
    """A subgradient of ``‖w‖₁``: ``sign(w)``, with 0 at ``w = 0`` (as ``torch.sign``)."""
    return array_namespace(w).sign(w)


class SGDL1(SGD):
    """SGD on ``C + l1 · Σ|w|``: each :meth:`step` adds ``l1 · sign(w)`` (:func:`l1_subgradient`) to
    every gradient, then takes :class:`SGD`'s step (momentum and ``weight_decay`` as there).

    The L1 counterpart of ``weight_decay``: the pull towards 0 has the same size ``η · l1`` for every
    weight, large or small, so weights the data do not need reach 0 (and then stay within about
    ``η · l1`` of it), while L2's pull ``η λ w`` fades as ``w`` shrinks. ``torch.optim`` has no such
    option; in torch one adds ``l1 * w.abs().sum()`` to the loss, which has this gradient.
    """

    _name = "SGDL1"

    def __init__(self, params, lr, l1=0.0, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
        defaults = _check_sgd_hyper(self._name, lr, momentum, dampening, weight_decay, nesterov)
        defaults["l1"] = check.real(self._name, "l1", l1, low=0.0)
        Optimizer.__init__(self, params, defaults)

    def _check_group(self, g):
        g.update(_check_sgd_hyper(self._name, g["lr"], g["momentum"], g["dampening"], g["weight_decay"],
                                  g["nesterov"]))
        g["l1"] = check.real(self._name, "l1", g["l1"], low=0.0)
        return g

    def step(self) -> None:
        for g in self.param_groups:
            if g["l1"] != 0.0:
                for p in g["params"]:
                    if p.grad is not None:
                        p.grad = p.grad + g["l1"] * l1_subgradient(p.data)
        super().step()


__all__ += ["penalty", "l1_subgradient", "SGDL1"]
