"""The dense reference itself, against closed forms (no phasic kernels involved).

If the reference were wrong, every comparison against it would be worthless, so it
is pinned here to distributions with known formulas, including the far left tail.
"""

from __future__ import annotations

import math

import core_reference as reference
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg


def chain(rates: list[float], *, discrete: bool = False, back: float = 0.0) -> dict:
    """Start -> 1 -> 2 -> ... -> absorbing; edge i has weight rates[i]; optional 2 -> 1."""
    n = len(rates)
    states = [[0]] + [[i + 1] for i in range(n + 1)]
    frm, to, w = [0], [1], [1.0]
    for i, r in enumerate(rates):
        frm.append(i + 1)
        to.append(i + 2)
        w.append(r)
    if back:
        frm.append(2)
        to.append(1)
        w.append(back)
    return {"format": "phasic.graph", "version": 1, "discrete": discrete, "state_length": 1,
            "param_length": 0, "states": states, "edges": {"from": frm, "to": to, "weight": w},
            "coefficients": {"edge": [], "param": [], "value": []}}


def test_exponential() -> None:
    lam = 1.7
    g = chain([lam])
    t = np.array([0.0, 1e-8, 0.3, 2.0, 15.0])
    # closed forms; 1e-13 relative leaves room for ~100 roundings of a series sum
    np.testing.assert_allclose(reference.pdf(g, None, t), lam * np.exp(-lam * t), rtol=1e-13)
    np.testing.assert_allclose(reference.cdf(g, None, t), -np.expm1(-lam * t), rtol=1e-13,
                               atol=1e-16)
    ks = np.arange(1, 5)
    expected = [math.factorial(k) / lam**k for k in ks]
    np.testing.assert_allclose(reference.moments(g, None, 4), expected, rtol=1e-13)


def test_erlang_left_tail_is_relative_accurate() -> None:
    # Erlang(20, 1): f(t) = t^19 e^-t / 19!; at t = 1e-3 it is 1e-74, far below what
    # expm resolves, but the non-negative series keeps full relative precision.
    g = chain([1.0] * 20)
    t = np.array([1e-3, 0.05, 1.0, 10.0, 19.0, 60.0])
    exact = np.exp(19 * np.log(t) - t - math.lgamma(20))
    np.testing.assert_allclose(reference.pdf(g, None, t), exact, rtol=1e-12)
    # expm agrees in absolute terms (relative to the maximum density)
    fmax = exact.max()
    np.testing.assert_allclose(reference.pdf_expm(g, None, t), exact, rtol=0, atol=1e-13 * fmax)


def test_hypoexponential_left_tail() -> None:
    a, b = 0.7, 3.1
    g = chain([a, b])
    t = np.array([1e-9, 1e-5, 0.01, 1.0, 7.0])
    exact = a * b / (b - a) * np.exp(-a * t) * -np.expm1(-(b - a) * t)
    np.testing.assert_allclose(reference.pdf(g, None, t), exact, rtol=1e-12)


def test_cyclic_moments_match_integrated_pdf() -> None:
    g = chain([1.3, 0.8], back=2.0)
    m = reference.moments(g, None, 3)
    d = reference.dense(g)

    def f(x: float) -> float:
        return float(d.alpha @ scipy.linalg.expm(d.T * x) @ d.exit)

    # the slowest decay rate is ~0.35, so the tail beyond t = 200 is below 1e-25
    for k in (0, 1, 2, 3):
        val, _ = scipy.integrate.quad(lambda x, k=k: x**k * f(x), 0, 200, epsabs=1e-13,
                                      epsrel=1e-12, limit=200, points=[5, 20, 60])
        # quad's error estimate is ~1e-11 here; 1e-9 relative is comfortably above it
        assert (m[k - 1] if k else 1.0) == pytest.approx(val, rel=1e-9)


def test_continuous_rewards_sum_of_exponentials() -> None:
    rates = [0.5, 2.0, 1.25]
    g = chain(rates)
    r = np.array([0.0, 3.0, 0.5, 2.0, 0.0])  # per vertex: start, 3 transients, absorbing
    means = r[1:4] / np.array(rates)  # Y = sum of r_i * Exp(rate_i): independent terms
    ey = means.sum()
    ey2 = (means**2).sum() + ey**2  # Var(r X) = (r / rate)^2
    np.testing.assert_allclose(reference.moments(g, None, 2, r), [ey, ey2], rtol=1e-13)


def test_discrete_geometric_chain() -> None:
    q1, q2 = 0.3, 0.6
    g = chain([q1, q2], discrete=True)
    k = np.arange(0, 8)
    # T = N1 + N2 with N_i ~ Geometric(q_i) on {1, 2, ...}: convolution by hand
    p1 = [(1 - q1) ** (i - 1) * q1 if i >= 1 else 0.0 for i in range(10)]
    p2 = [(1 - q2) ** (i - 1) * q2 if i >= 1 else 0.0 for i in range(10)]
    exact = [sum(p1[i] * p2[kk - i] for i in range(kk + 1)) for kk in k]
    np.testing.assert_allclose(reference.pmf(g, None, k), exact, rtol=1e-14, atol=1e-17)
    np.testing.assert_allclose(reference.cdf(g, None, k), np.cumsum(exact), rtol=1e-13)
    r = np.array([0.0, 2.0, 5.0, 0.0])
    ey = r[1] / q1 + r[2] / q2
    var = r[1] ** 2 * (1 - q1) / q1**2 + r[2] ** 2 * (1 - q2) / q2**2
    np.testing.assert_allclose(reference.moments(g, None, 2, r), [ey, var + ey**2], rtol=1e-13)
    et = 1 / q1 + 1 / q2
    vt = (1 - q1) / q1**2 + (1 - q2) / q2**2
    np.testing.assert_allclose(reference.moments(g, None, 2), [et, vt + et**2], rtol=1e-13)


def test_discrete_cyclic_moments_match_series() -> None:
    g = chain([0.4, 0.5], discrete=True, back=0.3)
    k = np.arange(0, 400)
    p = reference.pmf(g, None, k)
    assert p.sum() == pytest.approx(1.0, abs=1e-14)
    for j in (1, 2, 3):
        assert reference.moments(g, None, 3)[j - 1] == pytest.approx((k**j * p).sum(), rel=1e-11)
