"""Lab 3 — inverted dropout and batch normalization, forward and backward.

Randomness is an *input*: the dropout functions receive the uniform draws ``u`` (shape of x) and
keep unit i when ``u_i < 1 − p`` — the rule of :meth:`coursekit.backend.Generator.keep_mask` — so
grading is deterministic. References: ``F.dropout`` / ``F.dropout_backward`` (fed the mask made
from ``u``) and ``F.batch_norm`` / ``F.batch_norm_backward`` (torch's conventions: running
statistics ``r ← (1 − momentum) r + momentum · stat`` with the *unbiased* batch variance).
"""
from __future__ import annotations

import numpy as np

from coursekit import backend as B
from coursekit import functional as F
from coursekit.labs.spec import Case, Lab, Misconception, Question


class _GivenDraws(B.Generator):
    """A NumPy generator whose dropout mask is made from given uniform draws ``u`` (u < keep)."""

    def __init__(self, u):
        super().__init__(0, backend="numpy")
        self._u = np.asarray(u)

    def keep_mask(self, shape, keep, *, dtype=None):
        if tuple(shape) != self._u.shape:
            raise ValueError(f"keep_mask: u has shape {self._u.shape}, expected {tuple(shape)}")
        return (self._u < keep).astype(dtype or "float64")


def _mask(u, p, dtype):
    return _GivenDraws(u).keep_mask(u.shape, 1.0 - p, dtype=dtype)

# ----------------------------------------------------------------------------- dropout


def dropout_forward(x, u, p, training):
    """Reference: training: x · m / (1 − p) with m = 1[u < 1 − p]; evaluation: x."""
    return F.dropout(x, p=p, training=bool(training), generator=_GivenDraws(u))


def _dropout_no_rescale(x, u, p, training):
    return x * _mask(u, p, x.dtype) if training else x


def _dropout_double_scaling(x, u, p, training):
    return dropout_forward(x, u, p, training) if training else x * (1.0 - p)


def _dropout_p_is_keep(x, u, p, training):
    return x * (u < p) / p if training else x


def _dropout_mask_convention(x, u, p, training):
    return x * (u >= p) / (1.0 - p) if training else x


def _dropout_in_eval(x, u, p, training):
    return dropout_forward(x, u, p, True)


def _dropout_inputs(shape, p=None, training=True):
    def draw(rng):
        return dict(x=rng.normal(size=shape), u=rng.uniform(size=shape),
                    p=float(rng.uniform(0.1, 0.7)) if p is None else p, training=training)
    return draw


DROPOUT_FORWARD = Question(
    id="lab03.dropout_forward", function="dropout_forward", title="Inverted dropout forward",
    reference=dropout_forward,
    cases=(
        Case("training, p = 0.5", _dropout_inputs((4, 6), 0.5)),
        Case("training, p = 0.2", _dropout_inputs((5, 5), 0.2)),
        Case("evaluation mode, p = 0.3", _dropout_inputs((3, 4), 0.3, training=False)),
        Case("training, random p", _dropout_inputs((8, 10)), points=2.0, visibility="hidden"),
        Case("evaluation mode, random p", _dropout_inputs((6, 3), training=False), visibility="hidden"),
    ),
    misconceptions=(
        Misconception("dropout-no-rescale",
                      "In training, kept units are not scaled by 1/(1 − p), so the expected activation "
                      "shrinks to (1 − p)·x and differs from test time.", _dropout_no_rescale),
        Misconception("dropout-double-scaling",
                      "Inverted dropout already rescales during training; scaling by (1 − p) again at test "
                      "time counts the correction twice.", _dropout_double_scaling),
        Misconception("dropout-p-is-keep",
                      "p is the probability of *dropping* a unit (torch's convention), not of keeping it.",
                      _dropout_p_is_keep),
        Misconception("dropout-mask-convention",
                      "The keep rule of this lab is u < 1 − p (so the same draws give the same mask "
                      "everywhere); u ≥ p keeps a different set of units.", _dropout_mask_convention),
        Misconception("dropout-in-eval",
                      "At evaluation (training=False) dropout is the identity: no units are dropped.",
                      _dropout_in_eval),
    ),
)


def dropout_backward(dout, u, p):
    """Reference: dx = dout · m / (1 − p), m = 1[u < 1 − p] (the forward's mask)."""
    return F.dropout_backward(dout, _mask(u, p, dout.dtype), p=p)


def _dropout_bwd_no_rescale(dout, u, p):
    return dout * _mask(u, p, dout.dtype)


def _dropout_bwd_all(dout, u, p):
    return dout / (1.0 - p)


def _dropout_bwd_p_is_keep(dout, u, p):
    return dout * (u < p) / p


def _dropout_bwd_inputs(shape, p=None):
    def draw(rng):
        return dict(dout=rng.normal(size=shape), u=rng.uniform(size=shape),
                    p=float(rng.uniform(0.1, 0.7)) if p is None else p)
    return draw


DROPOUT_BACKWARD = Question(
    id="lab03.dropout_backward", function="dropout_backward", title="Inverted dropout backward",
    reference=dropout_backward,
    cases=(
        Case("p = 0.5", _dropout_bwd_inputs((4, 6), 0.5)),
        Case("p = 0.25", _dropout_bwd_inputs((5, 3), 0.25)),
        Case("random p", _dropout_bwd_inputs((8, 10)), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("dropout-backward-no-rescale",
                      "The forward pass multiplies kept units by 1/(1 − p), so their gradient is scaled "
                      "by the same factor.", _dropout_bwd_no_rescale),
        Misconception("dropout-backward-ignores-mask",
                      "Dropped units did not influence the output: their gradient is 0.", _dropout_bwd_all),
        Misconception("dropout-p-is-keep",
                      "p is the probability of *dropping* a unit (torch's convention), not of keeping it.",
                      _dropout_bwd_p_is_keep),
    ),
)

# ----------------------------------------------------------------------------- batch norm


def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    """Reference: torch's batch norm, returning (out, new_running_mean, new_running_var)."""
    r = F.batch_norm(x, running_mean, running_var, gamma, beta, training=bool(training),
                     momentum=momentum, eps=eps)
    return r.out, r.running_mean, r.running_var


def _bn_batch_stats_in_eval(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    out, rm, rv = batchnorm_forward(x, gamma, beta, running_mean, running_var, True, momentum, eps)
    return (out, rm, rv) if training else (out, running_mean, running_var)


def _bn_biased_running_var(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    out, rm, rv = batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    if training:
        rv = (1.0 - momentum) * running_var + momentum * x.var(axis=0)
    return out, rm, rv


def _bn_momentum_swapped(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    return batchnorm_forward(x, gamma, beta, running_mean, running_var, training, 1.0 - momentum, eps)


def _bn_unbiased_normalization(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    out, rm, rv = batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    if training:
        out = gamma * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0, ddof=1) + eps) + beta
    return out, rm, rv


def _bn_no_running_update(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    out, _, _ = batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    return out, running_mean, running_var


def _bn_inputs(n, c, training, momentum=0.1, eps=1e-5):
    def draw(rng):
        return dict(x=rng.normal(loc=rng.normal(size=c), scale=rng.uniform(0.5, 3.0, size=c), size=(n, c)),
                    gamma=rng.uniform(0.5, 2.0, size=c), beta=rng.normal(size=c),
                    running_mean=rng.normal(scale=0.5, size=c), running_var=rng.uniform(0.5, 2.0, size=c),
                    training=training, momentum=momentum, eps=eps)
    return draw


BATCHNORM_FORWARD = Question(
    id="lab03.batchnorm_forward", function="batchnorm_forward", title="Batch norm forward (train and eval)",
    reference=batchnorm_forward, outputs=("out", "running_mean", "running_var"),
    cases=(
        Case("training, batch of 8", _bn_inputs(8, 3, True)),
        Case("training, batch of 4, momentum 0.3", _bn_inputs(4, 5, True, momentum=0.3)),
        Case("evaluation with running statistics", _bn_inputs(6, 4, False)),
        Case("training, random batch", _bn_inputs(16, 6, True, momentum=0.2), points=2.0, visibility="hidden"),
        Case("evaluation, random batch", _bn_inputs(10, 6, False), points=1.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("bn-batch-stats-in-eval",
                      "In evaluation mode, normalize with the running statistics, not with the statistics "
                      "of the batch you are given.", _bn_batch_stats_in_eval),
        Misconception("bn-biased-running-var",
                      "The running variance is updated with the *unbiased* batch variance (divide by N − 1), "
                      "as torch does; normalization itself uses the biased one.", _bn_biased_running_var),
        Misconception("bn-momentum-swapped",
                      "In torch's convention the new running statistic is (1 − momentum)·old + "
                      "momentum·batch; the roles of the two weights are swapped here.", _bn_momentum_swapped),
        Misconception("bn-unbiased-normalization",
                      "Normalization uses the biased batch variance (divide by N); only the running "
                      "variance uses N − 1.", _bn_unbiased_normalization),
        Misconception("bn-no-running-update",
                      "In training mode the running statistics must be updated and returned.",
                      _bn_no_running_update),
    ),
)


def batchnorm_backward(dout, x, gamma, eps):
    """Reference: gradients of training-mode batch norm -> (dx, dgamma, dbeta)."""
    c = x.shape[1]
    r = F.batch_norm(x, None, None, gamma, np.zeros(c, dtype=x.dtype), training=True, eps=eps)
    return F.batch_norm_backward(dout, r.cache)


def _bn_bwd_constant_stats(dout, x, gamma, eps):
    c = x.shape[1]
    r = F.batch_norm(x, x.mean(axis=0), x.var(axis=0), gamma, np.zeros(c), training=False, eps=eps)
    return F.batch_norm_backward(dout, r.cache)


def _bn_bwd_no_gamma(dout, x, gamma, eps):
    dx, _, _ = batchnorm_backward(dout, x, np.ones_like(gamma), eps)
    _, dgamma, dbeta = batchnorm_backward(dout, x, gamma, eps)
    return dx, dgamma, dbeta


def _bn_bwd_mean_path_only(dout, x, gamma, eps):
    _, dgamma, dbeta = batchnorm_backward(dout, x, gamma, eps)
    dx = gamma / np.sqrt(x.var(axis=0) + eps) * (dout - dout.mean(axis=0))
    return dx, dgamma, dbeta


def _bn_bwd_inputs(n, c):
    def draw(rng):
        return dict(dout=rng.normal(size=(n, c)),
                    x=rng.normal(loc=rng.normal(size=c), scale=rng.uniform(0.5, 3.0, size=c), size=(n, c)),
                    gamma=rng.uniform(0.5, 2.5, size=c), eps=1e-5)
    return draw


BATCHNORM_BACKWARD = Question(
    id="lab03.batchnorm_backward", function="batchnorm_backward", title="Batch norm backward (training mode)",
    reference=batchnorm_backward, outputs=("dx", "dgamma", "dbeta"),
    cases=(
        Case("batch of 8, 3 features", _bn_bwd_inputs(8, 3)),
        Case("batch of 5, 4 features", _bn_bwd_inputs(5, 4)),
        Case("random batch", _bn_bwd_inputs(16, 6), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("bn-backward-constant-stats",
                      "The batch mean and variance depend on x: in training mode the gradient also flows "
                      "through them (two extra terms).", _bn_bwd_constant_stats),
        Misconception("bn-backward-missing-gamma", "dx must be scaled by gamma.", _bn_bwd_no_gamma),
        Misconception("bn-backward-no-variance-path",
                      "Only the path through the batch mean is included; the variance depends on x too.",
                      _bn_bwd_mean_path_only),
    ),
)

LAB = Lab(id="lab03", title="Dropout and batch normalization", notebook="lab03_dropout_batchnorm.ipynb",
          questions=(DROPOUT_FORWARD, DROPOUT_BACKWARD, BATCHNORM_FORWARD, BATCHNORM_BACKWARD), timeout_s=20.0)
