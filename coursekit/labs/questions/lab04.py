"""Lab 4 — self-normalizing networks: SELU, the moment map, its Jacobian, a deep SELU net.

References: :func:`coursekit.functional.selu` (constants ``F.ALPHA``, ``F.LAMBDA``) and
:func:`coursekit.snn.moments` / :func:`coursekit.snn.jacobian`.
"""
from __future__ import annotations

import numpy as np

from coursekit import functional as F
from coursekit import snn
from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- selu


def selu(x):
    """Reference: λ x for x > 0, λ α (eˣ − 1) otherwise."""
    return F.selu(x)


def _selu_swapped(x):
    return F.ALPHA * np.where(x > 0, x, F.LAMBDA * np.expm1(np.minimum(x, 0)))


def _selu_lambda_positive_only(x):
    return np.where(x > 0, F.LAMBDA * x, F.ALPHA * np.expm1(np.minimum(x, 0)))


def _selu_is_elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def _selu_no_minus_one(x):
    return F.LAMBDA * np.where(x > 0, x, F.ALPHA * np.exp(np.minimum(x, 0)))


def _normal(shape, scale=1.0):
    return lambda rng: dict(x=rng.normal(scale=scale, size=shape))


def _selu_edges(rng):
    x = np.array([-30.0, -2.0, -0.5, 0.0, 0.5, 2.0, 30.0])
    return dict(x=np.concatenate([x, rng.normal(size=5)]))


SELU = Question(
    id="lab04.selu", function="selu", title="SELU forward", reference=selu,
    cases=(
        Case("standard normal inputs", _normal((4, 6))),
        Case("edges: zero and large magnitudes", _selu_edges),
        Case("random batch", _normal((3, 5, 7), 3.0), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("selu-constants-swapped",
                      "α and λ are swapped: λ ≈ 1.0507 is the overall scale, α ≈ 1.6733 scales the "
                      "negative (exponential) branch.", _selu_swapped),
        Misconception("selu-lambda-positive-only",
                      "λ multiplies only the positive branch; it scales both branches.",
                      _selu_lambda_positive_only),
        Misconception("selu-is-elu",
                      "This is ELU with α = 1 (no λ scale and the wrong α).", _selu_is_elu),
        Misconception("selu-missing-minus-one",
                      "The negative branch is α eˣ; it must be α (eˣ − 1) so that it is continuous at 0.",
                      _selu_no_minus_one),
    ),
)

# ----------------------------------------------------------------------------- moments


def selu_moments(mu, nu, omega, tau):
    """Reference: the moment map (μ, ν) -> (μ̃, ν̃) of a SELU layer with weight sums ω, τ."""
    mu_t, nu_t = snn.moments(mu, nu, omega=omega, tau=tau)
    return np.float64(mu_t), np.float64(nu_t)


def _moments_second_moment(mu, nu, omega, tau):
    mu_t, nu_t = selu_moments(mu, nu, omega, tau)
    return mu_t, nu_t + mu_t ** 2


def _moments_ignore_weights(mu, nu, omega, tau):
    return selu_moments(mu, nu, 1.0, 1.0)


def _moments_std_as_variance(mu, nu, omega, tau):
    return selu_moments(mu, (nu * tau) ** 2, omega, 1.0)


def _moments_point(mu, nu, omega, tau):
    return lambda rng: dict(mu=mu, nu=nu, omega=omega, tau=tau)


def _moments_random(rng):
    return dict(mu=float(rng.uniform(-1, 1)), nu=float(rng.uniform(0.3, 3.0)),
                omega=float(rng.uniform(-0.6, 0.6)), tau=float(rng.uniform(0.5, 1.5)))


MOMENTS = Question(
    id="lab04.selu_moments", function="selu_moments", title="The SELU moment map",
    reference=selu_moments, outputs=("mu_out", "nu_out"),
    cases=(
        Case("the fixed point (0, 1) with normalized weights", _moments_point(0.0, 1.0, 0.0, 1.0)),
        Case("off the fixed point, unnormalized weights", _moments_point(0.5, 1.5, 0.2, 1.3)),
        Case("small variance, unit weights", _moments_point(-0.3, 0.4, 1.0, 1.0)),
        Case("random (mu, nu, omega, tau)", _moments_random, points=2.0, visibility="hidden"),
        Case("random (mu, nu, omega, tau), second draw", _moments_random, points=1.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("moments-second-moment",
                      "nu_out is E[selu(z)²], the second moment; the variance subtracts the squared mean.",
                      _moments_second_moment),
        Misconception("moments-ignore-weights",
                      "The net input z = Σ wᵢxᵢ has mean μω and variance ντ; here the weights' ω and τ are "
                      "ignored (z taken to have mean μ and variance ν).", _moments_ignore_weights),
        Misconception("moments-std-as-variance",
                      "ντ is the variance of the net input, not its standard deviation.",
                      _moments_std_as_variance),
    ),
)

# ----------------------------------------------------------------------------- jacobian


def moments_jacobian(mu, nu, omega, tau):
    """Reference: J = [[∂μ̃/∂μ, ∂μ̃/∂ν], [∂ν̃/∂μ, ∂ν̃/∂ν]] (2, 2)."""
    return np.asarray(snn.jacobian(mu, nu, omega=omega, tau=tau), dtype=np.float64)


def _jacobian_transposed(mu, nu, omega, tau):
    return moments_jacobian(mu, nu, omega, tau).T


def _jacobian_net_input(mu, nu, omega, tau):
    # derivatives with respect to the net input's mean m = μω and variance s² = ντ (no chain rule)
    return moments_jacobian(mu * omega, nu * tau, 1.0, 1.0)


JACOBIAN = Question(
    id="lab04.moments_jacobian", function="moments_jacobian", title="Jacobian of the moment map",
    reference=moments_jacobian, outputs=("J",),
    cases=(
        Case("at the fixed point, omega = 0.1, tau = 1", _moments_point(0.0, 1.0, 0.1, 1.0), rtol=1e-4, atol=1e-6),
        Case("off the fixed point", _moments_point(0.5, 1.5, 0.3, 1.3), rtol=1e-4, atol=1e-6),
        Case("random point", _moments_random, points=2.0, visibility="hidden", rtol=1e-4, atol=1e-6),
    ),
    misconceptions=(
        Misconception("jacobian-transposed",
                      "Rows and columns are swapped: row i holds the derivatives of output i (μ̃, then ν̃), "
                      "column j the derivative with respect to input j (μ, then ν).", _jacobian_transposed),
        Misconception("jacobian-net-input",
                      "These are derivatives with respect to the net input's mean and variance (m, s²); "
                      "differentiate with respect to μ and ν (chain rule through m = μω, s² = ντ).",
                      _jacobian_net_input),
    ),
)

# ----------------------------------------------------------------------------- deep net


def layer_statistics(x, weights):
    """Reference: h₀ = x, h_l = selu(h_{l−1} W_lᵀ); returns (means, variances), each (L,), of every h_l
    over all its entries (population variance)."""
    h, means, variances = x, [], []
    for w in weights:
        h = F.selu(h @ w.T)
        means.append(h.mean())
        variances.append(h.var())
    return np.array(means), np.array(variances)


def _stats_before_activation(x, weights):
    h, means, variances = x, [], []
    for w in weights:
        z = h @ w.T
        means.append(z.mean())
        variances.append(z.var())
        h = F.selu(z)
    return np.array(means), np.array(variances)


def _stats_weights_not_transposed(x, weights):
    return layer_statistics(x, np.swapaxes(weights, 1, 2))


def _deep_net(n, d_in, d, layers, std_scale=1.0, mean_shift=0.0):
    def draw(rng):
        x = rng.normal(loc=mean_shift, size=(n, d_in))
        w0 = rng.normal(scale=std_scale / np.sqrt(d_in), size=(1, d, d_in))
        if d_in != d:
            raise ValueError("square layers only")
        w = np.concatenate([w0, rng.normal(scale=std_scale / np.sqrt(d), size=(layers - 1, d, d))])
        return dict(x=x, weights=w)
    return draw


STATS = Question(
    id="lab04.layer_statistics", function="layer_statistics", title="Statistics through a deep SELU net",
    reference=layer_statistics, outputs=("means", "variances"),
    cases=(
        Case("8 layers, LeCun-normal weights", _deep_net(64, 32, 32, 8)),
        Case("shifted, wider inputs, weights 1.5x too large", _deep_net(32, 48, 48, 5, 1.5, 1.0)),
        Case("random deep net", _deep_net(40, 24, 24, 12, 1.2, 0.5), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("stats-before-activation",
                      "The statistics are of the net inputs W h; report the activations selu(W h).",
                      _stats_before_activation),
        Misconception("stats-weights-not-transposed",
                      "The layer multiplies by W instead of Wᵀ: weights are stored (out_features, "
                      "in_features) as in torch, so a batch of rows maps as h Wᵀ.", _stats_weights_not_transposed),
    ),
)

LAB = Lab(id="lab04", title="Self-normalizing networks (SELU)", notebook="lab04_selu.ipynb",
          questions=(SELU, MOMENTS, JACOBIAN, STATS), timeout_s=20.0)
