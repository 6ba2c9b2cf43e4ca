"""Lab 2 — optimizers: SGD with momentum (the lecture's velocity form) and Adagrad (torch's form).

References: :func:`coursekit.optim.momentum_step` and :func:`coursekit.optim.adagrad_step`.
"""
from __future__ import annotations

import numpy as np

from coursekit import optim
from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- momentum


def sgd_momentum_step(param, grad, velocity, lr, momentum):
    """Reference: v ← μ v − η g;  θ ← θ + v.  Returns (new_param, new_velocity)."""
    return optim.momentum_step(param, grad, velocity, lr=lr, momentum=momentum)


def _momentum_sign_slip(param, grad, velocity, lr, momentum):
    v = momentum * velocity + lr * grad            # climbs the gradient
    return param + v, v


def _momentum_old_velocity(param, grad, velocity, lr, momentum):
    v = momentum * velocity - lr * grad
    return param + velocity, v                     # moves with last step's velocity


def _momentum_torch_buffer(param, grad, velocity, lr, momentum):
    b = momentum * velocity + grad                 # torch's buffer, mixed with the velocity form
    return param - lr * b, b


def _momentum_no_lr_on_grad(param, grad, velocity, lr, momentum):
    v = momentum * velocity - grad
    return param + lr * v, v


def _momentum_inputs(shape, zero_velocity=False, lr=None, mu=None):
    def draw(rng):
        return dict(param=rng.normal(size=shape), grad=rng.normal(size=shape),
                    velocity=np.zeros(shape) if zero_velocity else rng.normal(scale=0.3, size=shape),
                    lr=float(rng.uniform(0.01, 0.5)) if lr is None else lr,
                    momentum=float(rng.uniform(0.5, 0.95)) if mu is None else mu)
    return draw


MOMENTUM = Question(
    id="lab02.sgd_momentum_step", function="sgd_momentum_step", title="SGD with momentum (velocity form)",
    reference=sgd_momentum_step, outputs=("new_param", "new_velocity"),
    cases=(
        Case("first step, particle at rest", _momentum_inputs((5,), zero_velocity=True, lr=0.1, mu=0.9)),
        Case("moving particle", _momentum_inputs((3, 4), lr=0.05, mu=0.9)),
        Case("random matrix, random lr and momentum", _momentum_inputs((6, 7)), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("momentum-sign-slip",
                      "The velocity accumulates +lr·grad, so the parameters move uphill. The velocity should "
                      "point against the gradient.", _momentum_sign_slip),
        Misconception("momentum-stale-velocity",
                      "The parameters move by the velocity from the previous step; first update the velocity "
                      "with the current gradient, then move by the new velocity.", _momentum_old_velocity),
        Misconception("momentum-torch-buffer-mixup",
                      "This is torch's buffer convention (b = μb + g; θ -= lr·b), but `velocity` here is the "
                      "lecture's velocity (it already contains the learning rate and the minus sign).",
                      _momentum_torch_buffer),
        Misconception("momentum-lr-outside",
                      "The learning rate multiplies the whole velocity at the update instead of the gradient "
                      "inside the velocity.", _momentum_no_lr_on_grad),
    ),
)

# ----------------------------------------------------------------------------- adagrad


def adagrad_update(param, grad, state_sum, lr, eps):
    """Reference: G ← G + g²;  θ ← θ − lr · g / (√G + eps).  Returns (new_param, new_state_sum)."""
    return optim.adagrad_step(param, grad, state_sum, 1, lr=lr, eps=eps)


def _adagrad_no_sqrt(param, grad, state_sum, lr, eps):
    s = state_sum + grad * grad
    return param - lr * grad / (s + eps), s


def _adagrad_no_eps(param, grad, state_sum, lr, eps):
    s = state_sum + grad * grad
    return param - lr * grad / np.sqrt(s), s


def _adagrad_eps_inside(param, grad, state_sum, lr, eps):
    s = state_sum + grad * grad
    return param - lr * grad / np.sqrt(s + eps), s


def _adagrad_stale_sum(param, grad, state_sum, lr, eps):
    s = state_sum + grad * grad
    return param - lr * grad / (np.sqrt(state_sum) + eps), s


def _adagrad_sum_not_squared(param, grad, state_sum, lr, eps):
    s = state_sum + np.abs(grad)
    return param - lr * grad / (np.sqrt(s) + eps), s


def _adagrad_first_step(rng):
    grad = rng.normal(size=(4, 3))
    grad[rng.permutation(4)[:2], [0, 2]] = 0.0       # exact zero gradients (e.g. a dead unit)
    return dict(param=rng.normal(size=(4, 3)), grad=grad, state_sum=np.zeros((4, 3)), lr=0.1, eps=1e-10)


def _adagrad_history(eps=1e-10, lr=0.1, shape=(6,)):
    def draw(rng):
        return dict(param=rng.normal(size=shape), grad=rng.normal(size=shape),
                    state_sum=rng.uniform(0.05, 3.0, size=shape), lr=lr, eps=eps)
    return draw


def _adagrad_hidden(rng):
    shape = (5, 5)
    grad = rng.normal(size=shape)
    grad[rng.integers(0, 5), :] = 0.0
    state_sum = rng.uniform(0.0, 2.0, size=shape)
    state_sum[0, 0] = 0.0
    return dict(param=rng.normal(size=shape), grad=grad, state_sum=state_sum,
                lr=float(rng.uniform(0.01, 1.0)), eps=1e-10)


ADAGRAD = Question(
    id="lab02.adagrad_update", function="adagrad_update", title="Adagrad step",
    reference=adagrad_update, outputs=("new_param", "new_state_sum"),
    cases=(
        Case("first step, some gradients exactly zero", _adagrad_first_step),
        Case("after some history", _adagrad_history()),
        Case("large eps", _adagrad_history(eps=0.5, lr=0.3, shape=(2, 3))),
        Case("random history with zero rows", _adagrad_hidden, points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("adagrad-no-sqrt",
                      "The step divides by the accumulated sum of squares itself; Adagrad divides by its "
                      "square root (the root-mean-square scale of past gradients).", _adagrad_no_sqrt),
        Misconception("adagrad-no-eps",
                      "Without eps, a coordinate whose gradients have all been zero divides 0 by 0 and "
                      "becomes nan.", _adagrad_no_eps),
        Misconception("adagrad-eps-inside-sqrt",
                      "eps is added inside the square root; torch (and this lab) adds it after the root.",
                      _adagrad_eps_inside),
        Misconception("adagrad-stale-accumulator",
                      "The step uses the accumulator from before adding the current squared gradient; add "
                      "g² first, then divide.", _adagrad_stale_sum),
        Misconception("adagrad-abs-not-square",
                      "The accumulator adds |g| instead of g².", _adagrad_sum_not_squared),
    ),
)

LAB = Lab(id="lab02", title="Optimizers: momentum and Adagrad", notebook="lab02_optimizers.ipynb",
          questions=(MOMENTUM, ADAGRAD), timeout_s=20.0)
