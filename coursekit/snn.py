r"""Self-normalizing networks (Klambauer et al. 2017): the mean/variance map of a SELU layer.

Take a unit of a SELU layer whose inputs :math:`x_i` (the previous layer's activations) have mean
μ and variance ν, independent, with weights :math:`w` summarised by ω = Σ wᵢ and τ = Σ wᵢ².
By the central limit theorem the net input :math:`z = w^\top x` is approximately Gaussian with

.. math::  \mathbb{E}[z] = μω =: m, \qquad \operatorname{Var}[z] = ντ =: s^2 .

The layer maps (μ, ν) to the mean and variance of :math:`\mathrm{selu}(z)`,
:math:`\tilde μ = \mathbb{E}[\mathrm{selu}(z)]`, :math:`\tilde ν = \mathbb{E}[\mathrm{selu}(z)^2] - \tilde μ^2`.
Integrating the two branches of selu against the Gaussian density (with
:math:`\mathbb{E}[e^{kz}\,1\{z\le 0\}] = e^{km + k^2 s^2/2}\,\tfrac12\operatorname{erfc}((m + k s^2)/(\sqrt2 s))`)
gives the paper's closed forms (its eqs. 4 and 5)::

    μ̃ = λ/2 · [ m·erfc(−m/(√2 s)) + α e^{m + s²/2} erfc((m + s²)/(√2 s))
                − α erfc(m/(√2 s)) + √(2/π) s e^{−m²/(2s²)} ]
    ξ  = E[selu(z)²]
       = λ²/2 · [ (m² + s²) erfc(−m/(√2 s)) + √(2/π) m s e^{−m²/(2s²)}
                 + α² ( e^{2m + 2s²} erfc((m + 2s²)/(√2 s))
                        − 2 e^{m + s²/2} erfc((m + s²)/(√2 s)) + erfc(m/(√2 s)) ) ]
    ν̃ = ξ − μ̃²

With ω = 0 and τ = 1 (normalised weights) the point (μ, ν) = (0, 1) is a fixed point exactly when
α and λ take the published values :data:`ALPHA`, :data:`LAMBDA`; the Jacobian of the map there has
spectral norm ≈ 0.7877 < 1, so the map is a contraction near (0, 1) and activations are pulled
back to zero mean and unit variance layer after layer.

The functions here are NumPy/SciPy analysis code (closed forms with ``scipy.special``); they accept
Python floats or NumPy arrays (broadcast) and return floats for scalar input.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

from . import _checks as check
from .functional import ALPHA, LAMBDA

__all__ = ["ALPHA", "LAMBDA", "moments", "jacobian", "solve_constants", "iterate"]

_SQRT2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _exp_erfc(a, b):
    """``exp(a) · erfc(b)`` without overflow: ``exp(a − b²) · erfcx(b)`` where ``b ≥ 0``."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    out = np.empty_like(a)
    pos = b >= 0
    out[pos] = np.exp(a[pos] - b[pos] ** 2) * special.erfcx(b[pos])
    out[~pos] = np.exp(a[~pos]) * special.erfc(b[~pos])
    return out


def _phi_cdf(x):
    """Standard normal CDF Φ(x) = erfc(−x/√2)/2."""
    return 0.5 * special.erfc(-x / _SQRT2)


def _check(fn, mu, nu, alpha, lam, omega, tau):
    for name, v in (("mu", mu), ("nu", nu), ("alpha", alpha), ("lam", lam), ("omega", omega), ("tau", tau)):
        a = np.asarray(v)
        if a.dtype.kind not in "biuf" or a.dtype.kind == "b":
            raise TypeError(f"{fn}: {name} must be a real number or array, got {type(v).__name__}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{fn}: {name} must be finite, got {v!r}")
    if np.any(np.asarray(nu) <= 0):
        raise ValueError(f"{fn}: nu (the input variance) must be > 0, got {nu!r}")
    if np.any(np.asarray(tau) <= 0):
        raise ValueError(f"{fn}: tau (the sum of squared weights) must be > 0, got {tau!r}")
    if np.any(np.asarray(lam) <= 0):
        raise ValueError(f"{fn}: lam must be > 0, got {lam!r}")
    if np.any(np.asarray(alpha) < 0):
        raise ValueError(f"{fn}: alpha must be >= 0, got {alpha!r}")


def _out(x, scalar):
    return float(x) if scalar else x


def _parts(mu, nu, alpha, lam, omega, tau):
    """The Gaussian integrals shared by :func:`moments` and :func:`jacobian` (float64 arrays)."""
    m = np.asarray(mu, dtype=np.float64) * omega
    v = np.asarray(nu, dtype=np.float64) * tau
    s = np.sqrt(v)
    r = m / (_SQRT2 * s)
    gauss = np.exp(-(m * m) / (2.0 * v))                          # e^{−m²/(2s²)}
    pos = 0.5 * special.erfc(-r)                                  # P(z > 0) = Φ(m/s)
    neg = 0.5 * special.erfc(r)                                   # P(z ≤ 0)
    e1 = 0.5 * _exp_erfc(m + v / 2.0, (m + v) / (_SQRT2 * s))     # E[e^z 1{z≤0}]
    e2 = 0.5 * _exp_erfc(2.0 * m + 2.0 * v, (m + 2.0 * v) / (_SQRT2 * s))  # E[e^{2z} 1{z≤0}]
    zpos = m * pos + s * gauss / math.sqrt(2.0 * math.pi)         # E[z 1{z>0}]
    mu_t = lam * (zpos + alpha * (e1 - neg))
    xi = lam ** 2 * ((m * m + v) * pos + m * s * gauss / math.sqrt(2.0 * math.pi)
                     + alpha ** 2 * (e2 - 2.0 * e1 + neg))
    return dict(m=m, v=v, s=s, gauss=gauss, pos=pos, neg=neg, e1=e1, e2=e2, zpos=zpos, mu_t=mu_t, xi=xi)


def moments(mu, nu, *, alpha=ALPHA, lam=LAMBDA, omega=0.0, tau=1.0):
    """The SELU layer's moment map ``(μ, ν) -> (μ̃, ν̃)`` (closed forms in the module docstring).

    mu, nu: mean and variance (> 0) of the previous layer's activations (floats or broadcastable
    NumPy arrays); omega = Σ wᵢ, tau = Σ wᵢ² (> 0) of the unit's weights; alpha, lam: SELU's
    constants (default: the published ones). Returns ``(mu_out, nu_out)`` — the mean and variance
    of ``selu(z)`` for ``z ~ N(μω, ντ)``. Computed analytically (``scipy.special.erfc``/``erfcx``).
    """
    _check("moments", mu, nu, alpha, lam, omega, tau)
    scalar = np.ndim(mu) == 0 and np.ndim(nu) == 0 and np.ndim(omega) == 0 and np.ndim(tau) == 0
    p = _parts(mu, nu, alpha, lam, omega, tau)
    return _out(p["mu_t"], scalar), _out(p["xi"] - p["mu_t"] ** 2, scalar)


def jacobian(mu, nu, *, alpha=ALPHA, lam=LAMBDA, omega=0.0, tau=1.0):
    r"""The 2×2 Jacobian ``[[∂μ̃/∂μ, ∂μ̃/∂ν], [∂ν̃/∂μ, ∂ν̃/∂ν]]`` of :func:`moments`, analytic.

    Derivation (z ~ N(m, s²), m = μω, s² = ντ): for a piecewise-smooth g, Gaussian smoothing gives
    ∂/∂m E[g(z)] = E[g′(z)] and ∂/∂(s²) E[g(z)] = ½ E[g″(z)], where g″ includes a Dirac term
    (jump of g′ at 0) × (density of z at 0). For g = selu (g′ jumps from λα to λ at 0)::

        ∂μ̃/∂m  = λ [Φ(m/s) + α E[eᶻ 1{z≤0}]]
        ∂μ̃/∂s² = λ/2 [α E[eᶻ 1{z≤0}] + (1 − α) e^{−m²/(2s²)} / (s √(2π))]

    and for g = selu² (continuous derivative, since selu(0) = 0)::

        ∂ξ/∂m  = 2λ² [E[z 1{z>0}] + α² (E[e^{2z} 1{z≤0}] − E[eᶻ 1{z≤0}])]
        ∂ξ/∂s² = λ² [Φ(m/s) + α² (2 E[e^{2z} 1{z≤0}] − E[eᶻ 1{z≤0}])]

    then ν̃ = ξ − μ̃² gives ∂ν̃ = ∂ξ − 2μ̃ ∂μ̃, and the chain rule ∂/∂μ = ω ∂/∂m, ∂/∂ν = τ ∂/∂s².
    Returns a ``(2, 2)`` NumPy array for scalar input, ``(..., 2, 2)`` for arrays.
    """
    _check("jacobian", mu, nu, alpha, lam, omega, tau)
    p = _parts(mu, nu, alpha, lam, omega, tau)
    dmu_dm = lam * (p["pos"] + alpha * p["e1"])
    dmu_dv = 0.5 * lam * (alpha * p["e1"] + (1.0 - alpha) * p["gauss"] / (p["s"] * math.sqrt(2.0 * math.pi)))
    dxi_dm = 2.0 * lam ** 2 * (p["zpos"] + alpha ** 2 * (p["e2"] - p["e1"]))
    dxi_dv = lam ** 2 * (p["pos"] + alpha ** 2 * (2.0 * p["e2"] - p["e1"]))
    mu_t = p["mu_t"]
    j = np.stack([
        np.stack([omega * dmu_dm, tau * dmu_dv], axis=-1),
        np.stack([omega * (dxi_dm - 2.0 * mu_t * dmu_dm), tau * (dxi_dv - 2.0 * mu_t * dmu_dv)], axis=-1),
    ], axis=-2)
    return j


def solve_constants(*, xtol=1e-15):
    r"""Solve the fixed-point conditions μ̃(0, 1) = 0, ν̃(0, 1) = 1 (ω = 0, τ = 1) for (α, λ).

    At m = 0, s = 1 the mean condition does not involve λ (it factors out)::

        α (e^{1/2} erfc(1/√2) − 1) + √(2/π) = 0

    a scalar equation in α, solved with ``scipy.optimize.brentq`` on [1, 3]. Since ξ ∝ λ², the
    variance condition ξ(α, λ) = 1 (with μ̃ = 0) then gives λ = 1/√ξ(α, 1). The result agrees with
    the published constants (:data:`ALPHA`, :data:`LAMBDA`) to ~1e-15. Returns ``(alpha, lam)``.
    """
    def mean_at_fixed_point(alpha):
        return _parts(0.0, 1.0, alpha, 1.0, 0.0, 1.0)["mu_t"]

    alpha = optimize.brentq(mean_at_fixed_point, 1.0, 3.0, xtol=xtol, rtol=4 * np.finfo(float).eps)
    lam = 1.0 / math.sqrt(float(_parts(0.0, 1.0, alpha, 1.0, 0.0, 1.0)["xi"]))
    return float(alpha), lam


def iterate(mu, nu, n_layers, *, alpha=ALPHA, lam=LAMBDA, omega=0.0, tau=1.0):
    """Apply :func:`moments` ``n_layers`` times; returns a ``(n_layers + 1, 2)`` array of (μ, ν),
    starting with the given point — the path of the activation statistics through a deep net."""
    n_layers = check.integer("iterate", "n_layers", n_layers, low=0)
    _check("iterate", mu, nu, alpha, lam, omega, tau)
    path = [(float(mu), float(nu))]
    for _ in range(n_layers):
        mu, nu = moments(mu, nu, alpha=alpha, lam=lam, omega=omega, tau=tau)
        path.append((mu, nu))
    return np.array(path)
