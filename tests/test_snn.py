"""coursekit.snn: SELU's moment map, its Jacobian, and the constants that make (0, 1) a fixed point."""
import numpy as np
import pytest

from coursekit import functional as F
from coursekit import snn


def test_constants_are_the_published_ones_and_solved():
    assert snn.ALPHA is F.ALPHA and snn.LAMBDA is F.LAMBDA
    alpha, lam = snn.solve_constants()
    assert abs(alpha - 1.6732632423543772848170429916717) < 1e-9
    assert abs(lam - 1.0507009873554804934193349852946) < 1e-9
    # in fact to rounding
    assert abs(alpha - snn.ALPHA) < 1e-13 and abs(lam - snn.LAMBDA) < 1e-13


def test_zero_one_is_a_fixed_point():
    mu, nu = snn.moments(0.0, 1.0)
    assert abs(mu) < 1e-14 and abs(nu - 1.0) < 1e-14
    # other constants do not give a fixed point
    mu2, nu2 = snn.moments(0.0, 1.0, alpha=1.0, lam=1.0)  # ELU
    assert abs(mu2) > 0.1 and abs(nu2 - 1) > 0.1


def test_jacobian_at_fixed_point_matches_paper():
    J = snn.jacobian(0.0, 1.0)
    # Klambauer et al. 2017, eq. after Theorem 1: J = [[0, 0.088834], [0, 0.782648]], ‖J‖₂ = 0.7877
    np.testing.assert_allclose(J, [[0.0, 0.088834], [0.0, 0.782648]], atol=1e-5)
    assert np.linalg.norm(J, 2) == pytest.approx(0.7877, abs=5e-5)
    assert np.linalg.norm(J, 2) < 1


@pytest.mark.parametrize("mu,nu,omega,tau", [(0.0, 1.0, 0.1, 1.05), (0.3, 1.4, 0.7, 1.2), (-0.5, 0.6, 2.0, 0.5),
                                             (2.0, 3.0, -1.0, 2.0)])
def test_jacobian_matches_central_differences(mu, nu, omega, tau):
    J = snn.jacobian(mu, nu, omega=omega, tau=tau)

    def f(m, n):
        return np.array(snn.moments(m, n, omega=omega, tau=tau))

    h = 1e-5
    Jn = np.stack([(f(mu + h, nu) - f(mu - h, nu)) / (2 * h), (f(mu, nu + h) - f(mu, nu - h)) / (2 * h)], axis=1)
    # central differences are O(h²) ≈ 1e-10 accurate here; rounding ≈ 1e-16/h ≈ 1e-11
    np.testing.assert_allclose(J, Jn, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("mu,nu,omega,tau", [(0.0, 1.0, 0.0, 1.0), (0.5, 1.5, 1.0, 1.2), (-0.3, 0.7, 2.0, 0.5)])
def test_moments_match_monte_carlo(mu, nu, omega, tau):
    n = 400_000
    rng = np.random.default_rng(7)
    z = rng.normal(mu * omega, np.sqrt(nu * tau), size=n)
    a = F.selu(z)
    m_hat, v_hat = a.mean(), a.var()
    m, v = snn.moments(mu, nu, omega=omega, tau=tau)
    # standard errors: sd(mean) = √(Var/n); sd(sample variance) ≈ √((μ₄ − Var²)/n); allow 5 of them
    se_m = np.sqrt(v / n)
    se_v = np.sqrt((np.mean((a - m_hat) ** 4) - v_hat ** 2) / n)
    assert abs(m_hat - m) < 5 * se_m
    assert abs(v_hat - v) < 5 * se_v


def test_moments_broadcast_over_arrays():
    mus, nus = np.array([0.0, 0.5, -1.0]), np.array([1.0, 2.0, 0.5])
    M, V = snn.moments(mus, nus, omega=0.5, tau=1.5)
    for i in range(3):
        m, v = snn.moments(float(mus[i]), float(nus[i]), omega=0.5, tau=1.5)
        assert M[i] == pytest.approx(m, rel=1e-14, abs=1e-16) and V[i] == pytest.approx(v, rel=1e-14)
    assert snn.jacobian(mus, nus, omega=0.5, tau=1.5).shape == (3, 2, 2)


def test_large_inputs_do_not_overflow():
    m, v = snn.moments(5.0, 200.0, omega=3.0, tau=4.0)
    assert np.isfinite(m) and np.isfinite(v) and v > 0
    assert np.all(np.isfinite(snn.jacobian(5.0, 200.0, omega=3.0, tau=4.0)))


@pytest.mark.parametrize("start", [(0.0, 3.0), (1.0, 0.2), (-0.5, 1.7), (2.0, 0.05)])
def test_iterates_converge_to_zero_one(start):
    path = snn.iterate(*start, 80)
    assert path.shape == (81, 2)
    np.testing.assert_allclose(path[-1], [0.0, 1.0], atol=1e-6)
    # contraction: the distance to (0, 1) shrinks by about ‖J‖ ≈ 0.79 per layer near the fixed point
    d = np.abs(path[:, 1] - 1.0)
    assert d[40] < 1e-3 * max(d[0], 1e-3)


def test_nearly_normalized_weights_have_a_nearby_stable_fixed_point():
    path = snn.iterate(0.5, 2.0, 200, omega=0.05, tau=1.02)
    mu, nu = path[-1]
    assert abs(mu) < 0.05 and abs(nu - 1.0) < 0.1
    np.testing.assert_allclose(snn.moments(mu, nu, omega=0.05, tau=1.02), (mu, nu), atol=1e-10)
    assert np.abs(np.linalg.eigvals(snn.jacobian(mu, nu, omega=0.05, tau=1.02))).max() < 1


@pytest.mark.parametrize("call,exc,match", [
    (lambda: snn.moments(0.0, 0.0), ValueError, r"moments: nu \(the input variance\) must be > 0, got 0.0"),
    (lambda: snn.moments(0.0, 1.0, tau=-1.0), ValueError, r"moments: tau .* must be > 0"),
    (lambda: snn.moments(0.0, float("nan")), ValueError, r"moments: nu must be finite"),
    (lambda: snn.moments("0", 1.0), TypeError, r"moments: mu must be a real number"),
    (lambda: snn.jacobian(0.0, -1.0), ValueError, r"jacobian: nu"),
    (lambda: snn.iterate(0.0, 1.0, -1), ValueError, r"iterate: n_layers must be an integer >= 0"),
    (lambda: snn.iterate(0.0, 1.0, 2.5), TypeError, r"iterate: n_layers must be an integer, got float"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
