"""Lecture 8 exercises — a gradient step with an L2 penalty (weight decay) and with an L1 penalty.

References: :func:`coursekit.optim.sgd_step` (``weight_decay`` is the L2 penalty's gradient) and
:func:`coursekit.optim.l1_subgradient` (``sign(w)``, 0 at 0) — the kernels lecture 8 trains with.
"""
from __future__ import annotations

import numpy as np

from coursekit import optim
from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- weight decay


def weight_decay_step(w, grad, lr, lam):
    """Reference: one gradient step on C + lam/2 ||w||^2: (1 - lr lam) w - lr grad."""
    return optim.sgd_step(w, grad, None, lr=lr, weight_decay=lam)[0]


def _wd_forgot_lr(w, grad, lr, lam):
    return (1.0 - lam) * w - lr * grad


def _wd_factor_two(w, grad, lr, lam):
    return (1.0 - 2.0 * lr * lam) * w - lr * grad


def _wd_wrong_sign(w, grad, lr, lam):
    return (1.0 + lr * lam) * w - lr * grad


def _wd_decay_after_step(w, grad, lr, lam):
    return (1.0 - lr * lam) * (w - lr * grad)


def _wd_no_data_gradient(w, grad, lr, lam):
    return (1.0 - lr * lam) * w


def _step_inputs(shape, lr=None, lam=None, *, zeros=False):
    """Inputs of a step: w (with exact zeros when ``zeros``, the subgradient's convention), grad, lr, lam."""
    def draw(rng):
        w = rng.normal(size=shape)
        if zeros:
            w[rng.uniform(size=shape) < 0.3] = 0.0
        return dict(w=w, grad=rng.normal(size=shape),
                    lr=float(rng.uniform(0.05, 0.5)) if lr is None else lr,
                    lam=float(rng.uniform(0.05, 0.5)) if lam is None else lam)
    return draw


WEIGHT_DECAY_STEP = Question(
    id="lec08.weight_decay_step", function="weight_decay_step", title="A gradient step with weight decay",
    reference=weight_decay_step, outputs=("w_new",),
    cases=(
        Case("lr 0.1, lambda 0.5", _step_inputs((4, 5), 0.1, 0.5)),
        Case("lr 0.4, lambda 0.2", _step_inputs((3, 6), 0.4, 0.2)),
        Case("random lr and lambda", _step_inputs((8, 8)), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("wd-forgot-lr",
                      "The penalty's gradient is a gradient like any other: the step multiplies it by the "
                      "learning rate, so the decay factor depends on the learning rate too.", _wd_forgot_lr),
        Misconception("wd-factor-two",
                      "The penalty is lambda/2 times the squared norm; the 1/2 is there so that its gradient "
                      "has no factor 2 in front.", _wd_factor_two),
        Misconception("wd-wrong-sign",
                      "A gradient step moves against the gradient of the penalty, i.e. towards zero: the "
                      "weights must shrink, not grow.", _wd_wrong_sign),
        Misconception("wd-decay-after-step",
                      "Both gradients are taken at the current weights; decaying the already-updated weights "
                      "also shrinks the data step.", _wd_decay_after_step),
        Misconception("wd-no-data-gradient",
                      "The step still follows the gradient of the original cost C; the penalty only adds a "
                      "term to it.", _wd_no_data_gradient),
    ),
)

# ----------------------------------------------------------------------------- L1


def l1_step(w, grad, lr, lam):
    """Reference: one (sub)gradient step on C + lam ||w||_1: w - lr (grad + lam sign(w)), sign(0) = 0."""
    return optim.sgd_step(w, grad + lam * optim.l1_subgradient(w), None, lr=lr)[0]


def _l1_used_l2(w, grad, lr, lam):
    return w - lr * (grad + lam * w)


def _l1_sign_at_zero(w, grad, lr, lam):
    return w - lr * (grad + lam * np.where(w >= 0, 1.0, -1.0))


def _l1_forgot_lr(w, grad, lr, lam):
    return w - lr * grad - lam * np.sign(w)


def _l1_wrong_sign(w, grad, lr, lam):
    return w - lr * (grad - lam * np.sign(w))


L1_STEP = Question(
    id="lec08.l1_step", function="l1_step", title="A gradient step with an L1 penalty",
    reference=l1_step, outputs=("w_new",),
    cases=(
        Case("lr 0.1, lambda 0.3, some weights exactly 0", _step_inputs((5, 6), 0.1, 0.3, zeros=True)),
        Case("lr 0.4, lambda 0.2, some weights exactly 0", _step_inputs((4, 4), 0.4, 0.2, zeros=True)),
        Case("random lr and lambda", _step_inputs((8, 8), zeros=True), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("l1-used-l2",
                      "The gradient of |w| does not grow with w: every nonzero weight is pulled by the same "
                      "amount, lambda, whatever its size.", _l1_used_l2),
        Misconception("l1-sign-at-zero",
                      "At w = 0 the subgradient used here is 0 (as np.sign and torch.sign give): a weight "
                      "that is exactly zero is not pushed by the penalty.", _l1_sign_at_zero),
        Misconception("l1-forgot-lr",
                      "The penalty's (sub)gradient is multiplied by the learning rate like the data "
                      "gradient.", _l1_forgot_lr),
        Misconception("l1-wrong-sign",
                      "The penalty pulls every weight towards zero: a positive weight must decrease, a "
                      "negative one increase.", _l1_wrong_sign),
    ),
)

LAB = Lab(id="lec08", title="Lecture 8 exercises: weight decay and L1", notebook="08_generalization.ipynb",
          folder="lectures", questions=(WEIGHT_DECAY_STEP, L1_STEP), timeout_s=20.0)
