"""Lecture 06 exercises — RMSProp and Adam, the moving-average successors of Adagrad.

References: :func:`coursekit.optim.rmsprop_step` and :func:`coursekit.optim.adam_step` (torch's conventions:
``eps`` added after the square root, Adam's bias correction on both moments).
"""
from __future__ import annotations

import numpy as np

from coursekit import optim
from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- RMSProp


def rmsprop_update(param, grad, square_avg, lr, alpha, eps):
    """Reference: v ← α v + (1 − α) g²;  θ ← θ − lr · g / (√v + eps).  Returns (new_param, new_square_avg)."""
    new_param, new_avg, _, _ = optim.rmsprop_step(param, grad, square_avg, lr=lr, alpha=alpha, eps=eps)
    return new_param, new_avg


def _rmsprop_adagrad_sum(param, grad, square_avg, lr, alpha, eps):
    v = square_avg + grad * grad                         # Adagrad's ever-growing sum
    return param - lr * grad / (np.sqrt(v) + eps), v


def _rmsprop_alpha_swapped(param, grad, square_avg, lr, alpha, eps):
    v = (1 - alpha) * square_avg + alpha * grad * grad
    return param - lr * grad / (np.sqrt(v) + eps), v


def _rmsprop_no_sqrt(param, grad, square_avg, lr, alpha, eps):
    v = alpha * square_avg + (1 - alpha) * grad * grad
    return param - lr * grad / (v + eps), v


def _rmsprop_stale_average(param, grad, square_avg, lr, alpha, eps):
    v = alpha * square_avg + (1 - alpha) * grad * grad
    return param - lr * grad / (np.sqrt(square_avg) + eps), v


def _rmsprop_inputs(shape, *, first=False, lr=None, alpha=None, eps=1e-8):
    def draw(rng):
        return dict(param=rng.normal(size=shape), grad=rng.normal(size=shape),
                    square_avg=np.zeros(shape) if first else rng.uniform(0.1, 2.0, size=shape),
                    lr=float(rng.uniform(0.001, 0.1)) if lr is None else lr,
                    alpha=float(rng.uniform(0.8, 0.999)) if alpha is None else alpha, eps=eps)
    return draw


RMSPROP = Question(
    id="lec06.rmsprop_update", function="rmsprop_update", title="RMSProp step",
    reference=rmsprop_update, outputs=("new_param", "new_square_avg"),
    cases=(
        Case("first step, average at zero", _rmsprop_inputs((5,), first=True, lr=0.01, alpha=0.99)),
        Case("after some history, alpha = 0.9", _rmsprop_inputs((3, 4), lr=0.05, alpha=0.9)),
        Case("random history and hyperparameters", _rmsprop_inputs((6, 5)), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("rmsprop-adagrad-sum",
                      "The squared gradients are summed, as in Adagrad; RMSProp keeps an exponential moving "
                      "average (old values are multiplied by alpha, the new one by 1 - alpha), so it forgets.",
                      _rmsprop_adagrad_sum),
        Misconception("rmsprop-alpha-swapped",
                      "alpha and 1 - alpha are swapped: alpha (close to 1) multiplies the running average, "
                      "1 - alpha the new squared gradient.", _rmsprop_alpha_swapped),
        Misconception("rmsprop-no-sqrt",
                      "The step divides by the average of g² itself; RMSProp divides by its square root "
                      "(the root mean square of recent gradients).", _rmsprop_no_sqrt),
        Misconception("rmsprop-stale-average",
                      "The step divides by the average from before this step; update the average with the "
                      "current g² first, then divide.", _rmsprop_stale_average),
    ),
)

# ----------------------------------------------------------------------------- Adam


def adam_update(param, grad, m, v, t, lr, beta1, beta2, eps):
    """Reference: torch's Adam step t (1-based). Returns (new_param, new_m, new_v)."""
    new_param, new_m, new_v, _ = optim.adam_step(param, grad, m, v, t, lr=lr, betas=(beta1, beta2), eps=eps)
    return new_param, new_m, new_v


def _adam_moments(grad, m, v, beta1, beta2):
    return beta1 * m + (1 - beta1) * grad, beta2 * v + (1 - beta2) * grad * grad


def _adam_no_bias_correction(param, grad, m, v, t, lr, beta1, beta2, eps):
    m, v = _adam_moments(grad, m, v, beta1, beta2)
    return param - lr * m / (np.sqrt(v) + eps), m, v


def _adam_eps_inside(param, grad, m, v, t, lr, beta1, beta2, eps):
    m, v = _adam_moments(grad, m, v, beta1, beta2)
    return param - lr * (m / (1 - beta1 ** t)) / np.sqrt(v / (1 - beta2 ** t) + eps), m, v


def _adam_stale_moments(param, grad, m, v, t, lr, beta1, beta2, eps):
    new_m, new_v = _adam_moments(grad, m, v, beta1, beta2)
    return param - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps), new_m, new_v


def _adam_first_moment_only_corrected(param, grad, m, v, t, lr, beta1, beta2, eps):
    m, v = _adam_moments(grad, m, v, beta1, beta2)
    return param - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v) + eps), m, v


def _adam_betas_swapped(param, grad, m, v, t, lr, beta1, beta2, eps):
    m, v = (1 - beta1) * m + beta1 * grad, (1 - beta2) * v + beta2 * grad * grad
    return param - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps), m, v


def _adam_inputs(shape, *, t, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, first=False):
    def draw(rng):
        g = rng.normal(size=shape)
        return dict(param=rng.normal(size=shape), grad=g,
                    m=np.zeros(shape) if first else rng.normal(scale=0.3, size=shape),
                    v=np.zeros(shape) if first else rng.uniform(0.01, 1.0, size=shape) * (1 - beta2 ** (t - 1)),
                    t=t, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
    return draw


def _adam_hidden(rng):
    t = int(rng.integers(2, 200))
    return _adam_inputs((4, 6), t=t, lr=float(rng.uniform(1e-4, 0.1)), beta1=float(rng.uniform(0.5, 0.95)),
                        beta2=float(rng.uniform(0.9, 0.9999)), eps=float(rng.choice([1e-8, 1e-3])))(rng)


ADAM = Question(
    id="lec06.adam_update", function="adam_update", title="Adam step with bias correction",
    reference=adam_update, outputs=("new_param", "new_m", "new_v"),
    cases=(
        Case("first step (t = 1), moments at zero", _adam_inputs((5,), t=1, first=True)),
        Case("step t = 20 with history", _adam_inputs((3, 4), t=20, lr=0.003, beta1=0.8, beta2=0.99)),
        Case("large eps (0.1), t = 5", _adam_inputs((2, 3), t=5, lr=0.05, eps=0.1)),
        Case("random step, moments and hyperparameters", _adam_hidden, points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("adam-no-bias-correction",
                      "The moments are used without bias correction. Both start at zero, so early on m and v "
                      "are too small by the factors 1 - beta1**t and 1 - beta2**t; divide them out.",
                      _adam_no_bias_correction),
        Misconception("adam-v-uncorrected",
                      "Only the first moment is bias-corrected; v needs its correction 1 - beta2**t too "
                      "(otherwise the first steps are far too large).", _adam_first_moment_only_corrected),
        Misconception("adam-eps-inside-sqrt",
                      "eps is added inside the square root; torch (and this exercise) adds it after the root.",
                      _adam_eps_inside),
        Misconception("adam-stale-moments",
                      "The step uses the moments from before this step; update m and v with the current "
                      "gradient first, then step.", _adam_stale_moments),
        Misconception("adam-betas-swapped",
                      "beta and 1 - beta are swapped: beta (close to 1) multiplies the running average, "
                      "1 - beta the new gradient.", _adam_betas_swapped),
    ),
)

LAB = Lab(id="lec06", title="Lecture 6 exercises: RMSProp and Adam", notebook="06_learning_rates_adagrad.ipynb",
          questions=(RMSPROP, ADAM), folder="lectures", timeout_s=20.0)
