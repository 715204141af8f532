"""phasic.reference, the exact hypoexponential oracle, against closed forms and expm."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import scipy.linalg

from phasic.reference import (
    hypoexponential,
    hypoexponential_weights,
    kingman_tmrca,
    kingman_tmrca_rates,
)

TIMES = np.array([0.0, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0])


def test_two_samples_is_exponential() -> None:
    got = kingman_tmrca(2, TIMES)
    np.testing.assert_allclose(got.pdf, np.exp(-TIMES), rtol=1e-15)
    np.testing.assert_allclose(got.cdf, -np.expm1(-TIMES), rtol=1e-15)
    np.testing.assert_allclose(got.slope, -np.exp(-TIMES), rtol=1e-15)


def test_three_samples_closed_form() -> None:
    # rates 3 and 1: f = 3/2 (e^-t - e^-3t), F = 1 - 3/2 e^-t + 1/2 e^-3t, written
    # with expm1 so that the float64 formulas do not cancel near t = 0
    t = TIMES[1:]
    got = kingman_tmrca(3, t)
    np.testing.assert_allclose(got.pdf, -1.5 * np.exp(-t) * np.expm1(-2 * t), rtol=1e-14)
    np.testing.assert_allclose(got.cdf, 0.5 * np.expm1(-t) ** 2 * (2 + np.exp(-t)),
                               rtol=1e-14)
    np.testing.assert_allclose(got.slope, 1.5 * (-np.exp(-t) + 3 * np.exp(-3 * t)),
                               rtol=1e-13)


def test_time_zero_is_exact() -> None:
    # f(0) = 0 and F(0) = 0 for two or more stages; f'(0) = l_1 l_2 for two
    for n in (3, 7, 20):
        got = kingman_tmrca(n, [0.0])
        assert (got.pdf[0], got.cdf[0]) == (0.0, 0.0)
    assert kingman_tmrca(3, 0.0).slope == 3.0


def test_tiny_times_get_the_digits_they_need() -> None:
    # Kingman n = 30 at t = 1e-4: f ~ C t^27, about 110 orders below its largest terms;
    # a fixed 120 digits would leave none. Against the same sum done with 1000 digits.
    t = [1e-4, 1e-3]
    np.testing.assert_allclose(kingman_tmrca(30, t).pdf, kingman_tmrca(30, t, digits=1000).pdf,
                               rtol=1e-15)
    assert np.all(kingman_tmrca(30, t).pdf > 0)


def test_left_tail_keeps_relative_precision() -> None:
    # two rates: f = ab/(b-a) e^{-at} (1 - e^{-(b-a)t}); expm1 keeps it exact near 0,
    # where the plain float64 sum of the two exponentials has no correct digit left
    a, b = 0.7, 3.1
    t = np.array([1e-12, 1e-9, 1e-5, 0.01, 1.0, 7.0])
    want = a * b / (b - a) * np.exp(-a * t) * -np.expm1(-(b - a) * t)
    np.testing.assert_allclose(hypoexponential([a, b], t).pdf, want, rtol=1e-14)


@pytest.mark.parametrize("n", [5, 10])
def test_matches_expm_of_the_pure_death_chain(n: int) -> None:
    rates = np.array([k * (k - 1) / 2 for k in range(n, 1, -1)])
    sub = np.diag(-rates) + np.diag(rates[:-1], 1)
    exit_rates = np.zeros(len(rates))
    exit_rates[-1] = rates[-1]
    dense = np.array([scipy.linalg.expm(sub * t)[0] @ exit_rates for t in TIMES[1:]])
    # expm on this small, well-conditioned chain is good to ~1e-12 relative
    np.testing.assert_allclose(kingman_tmrca(n, TIMES[1:]).pdf, dense, rtol=1e-10)


def test_theta_scales_time() -> None:
    # f_theta(t) = theta f_1(theta t), with theta taken at its exact binary value
    theta = 0.37
    np.testing.assert_allclose(kingman_tmrca(7, TIMES, theta=theta).pdf,
                               theta * kingman_tmrca(7, theta * TIMES).pdf, rtol=1e-14)


def test_weights_are_exact_and_sum_to_one() -> None:
    weights = hypoexponential_weights(kingman_tmrca_rates(12))
    assert all(isinstance(w, Fraction) for w in weights)
    assert sum(weights) == 1
    assert kingman_tmrca_rates(4, Fraction(1, 2)) == [3, Fraction(3, 2), Fraction(1, 2)]


def test_shape_of_times_is_kept() -> None:
    grid = np.array([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]])
    got = kingman_tmrca(4, grid)
    assert got.pdf.shape == got.cdf.shape == got.slope.shape == (2, 3)
    np.testing.assert_array_equal(got.pdf[1], kingman_tmrca(4, grid[1]).pdf)
    assert kingman_tmrca(4, 0.5).pdf.shape == ()


@pytest.mark.parametrize(("call", "message"), [
    (lambda: kingman_tmrca_rates(1), "n must be an integer >= 2"),
    (lambda: kingman_tmrca_rates(3.0), "n must be an integer >= 2"),
    (lambda: kingman_tmrca_rates(True), "n must be an integer >= 2"),
    (lambda: kingman_tmrca_rates(4, theta=0), "theta must be > 0"),
    (lambda: kingman_tmrca_rates(4, theta=float("nan")), "theta must be finite"),
    (lambda: hypoexponential([], [1.0]), "rates is empty"),
    (lambda: hypoexponential([1, 2, 1], [1.0]), "pairwise distinct"),
    (lambda: hypoexponential([1, -2], [1.0]), r"rates\[1\] must be > 0"),
    (lambda: hypoexponential([1, float("inf")], [1.0]), r"rates\[1\] must be finite"),
    (lambda: hypoexponential([1, "2"], [1.0]), r"rates\[1\] must be a number"),
    (lambda: hypoexponential([1, 2], [1.0, -0.5]), "times must be finite and >= 0"),
    (lambda: hypoexponential([1, 2], [float("nan")]), "times must be finite and >= 0"),
    (lambda: hypoexponential([1, 2], [1.0], digits=10), "digits must be an integer >= 17"),
])
def test_bad_input_is_named(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
