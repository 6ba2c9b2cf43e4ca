"""Lecture 06's new claims fail when their idea is broken inside coursekit (tests/claims.py)."""
import numpy as np

from claims import assert_claim_fails
from coursekit import nn, optim

LECTURE = "06_learning_rates_adagrad"


def test_c6_halving_needs_the_smaller_rate_to_reach_the_update(monkeypatch):
    """An SGD that keeps stepping with its first learning rate: the scheduler's bookkeeping still says
    "halved", the loss curve shows no new descent."""
    step = optim.SGD.step

    def step_with_first_lr(self):
        first = self.__dict__.setdefault("_first_lrs", [g["lr"] for g in self.param_groups])
        current = [g["lr"] for g in self.param_groups]
        for g, lr in zip(self.param_groups, first):
            g["lr"] = lr
        step(self)
        for g, lr in zip(self.param_groups, current):
            g["lr"] = lr

    monkeypatch.setattr(optim.SGD, "step", step_with_first_lr)
    assert_claim_fails(LECTURE, "C6")


def test_c7_rate_transfers_because_the_loss_is_a_mean(monkeypatch):
    """Summed instead of averaged cross-entropy: the curvature grows with the number of examples."""
    init = nn.CrossEntropyLoss.__init__
    monkeypatch.setattr(nn.CrossEntropyLoss, "__init__", lambda self, reduction="mean": init(self, "sum"))
    assert_claim_fails(LECTURE, "C7")


def test_c8_counterexample_needs_the_rotation(monkeypatch):
    """Without the rotation (Q = I) the problem is C5's again and Adagrad's advantage is back."""
    monkeypatch.setattr(np.linalg, "qr", lambda a, *args, **kw: (np.eye(a.shape[0]), np.eye(a.shape[0])))
    assert_claim_fails(LECTURE, "C8", needs=("C5",))


def test_c9_adam_needs_its_second_moment(monkeypatch):
    """Adam without the division by √v̂ moves lr·m̂ per step: far too slowly on the plateau."""
    adam = optim._adam

    def adam_without_second_moment(params, grads, exp_avgs, exp_avg_sqs, max_sqs, step, lr, betas, eps,
                                   weight_decay, amsgrad):
        new = adam(params, grads, exp_avgs, exp_avg_sqs, max_sqs, step, lr, betas, eps, weight_decay, amsgrad)
        m_hat = [m / (1 - betas[0] ** step) for m in new[1]]
        return [p - lr * m for p, m in zip(params, m_hat)], new[1], new[2], new[3]

    monkeypatch.setattr(optim, "_adam", adam_without_second_moment)
    assert_claim_fails(LECTURE, "C9")


def test_c9_rmsprop_needs_to_forget(monkeypatch):
    """RMSProp with Adagrad's sum (alpha = 1 on the old value, 1 on g²) never recovers from the cliff."""
    def rmsprop_with_a_sum(params, grads, square_avgs, bufs, grad_avgs, lr, alpha, eps, weight_decay, momentum,
                           centered):
        sums = [v + g * g for v, g in zip(square_avgs, grads)]
        return [p - lr * g / (np.sqrt(s) + eps) for p, g, s in zip(params, grads, sums)], sums, bufs, grad_avgs

    monkeypatch.setattr(optim, "_rmsprop", rmsprop_with_a_sum)
    assert_claim_fails(LECTURE, "C9")
