"""Exact hypoexponential distribution: a test oracle that never calls the C++ kernels.

A sum of independent exponential waiting times with distinct rates l_1, ..., l_m has

    f(t)  = sum_i c_i l_i exp(-l_i t)          (density)
    F(t)  = 1 - sum_i c_i exp(-l_i t)          (distribution function)
    f'(t) = -sum_i c_i l_i^2 exp(-l_i t)       (slope of the density)

with c_i = prod_{j != i} l_j / (l_j - l_i). The time to the most recent common
ancestor of the Kingman coalescent is such a sum (rates theta * k(k-1)/2, k = n..2),
which makes this the exact reference for `phasic.models.kingman` in the tests, the
benchmarks and the examples.

The alternating sums cancel badly near t = 0 (about 20 decimal orders for 20 rates
at t = 0.01, more for smaller t), so the c_i are kept as exact fractions and the
sums are done in decimal arithmetic with as many digits as the cancellation needs
(120 to start with), so that the result is correct to float64 rounding.
Only the Python standard library and numpy are used.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "Hypoexponential",
    "hypoexponential",
    "hypoexponential_weights",
    "kingman_tmrca",
    "kingman_tmrca_rates",
]


class Hypoexponential(NamedTuple):
    """Density, distribution function and density slope at the requested times."""

    pdf: np.ndarray
    cdf: np.ndarray
    slope: np.ndarray


def kingman_tmrca_rates(n: int, theta: Any = 1) -> list[Fraction]:
    """The rates theta * k(k-1)/2, k = n..2, of the Kingman T_MRCA stages (exact).

    theta is the pair-coalescence rate (int, Fraction or float; a float is taken at
    its exact binary value).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (the number of samples), got {n!r}")
    scale = _exact_rate(theta, "theta")
    return [scale * Fraction(k * (k - 1), 2) for k in range(n, 1, -1)]


def kingman_tmrca(n: int, times: Any, theta: Any = 1, digits: int = 120) -> Hypoexponential:
    """Density, distribution function and slope of T_MRCA for Kingman(n) at rate theta."""
    return hypoexponential(kingman_tmrca_rates(n, theta), times, digits)


def hypoexponential_weights(rates: Sequence[Any]) -> list[Fraction]:
    """The exact weights c_i = prod_{j != i} l_j / (l_j - l_i) (they sum to one).

    Rates may be ints, Fractions or floats (a float is taken at its exact binary
    value); they must be positive, finite and pairwise distinct.
    """
    exact = _exact_rates(rates)
    weights = []
    for i, li in enumerate(exact):
        c = Fraction(1)
        for j, lj in enumerate(exact):
            if j != i:
                c *= lj / (lj - li)
        weights.append(c)
    return weights


def _exact_rates(rates: Sequence[Any]) -> list[Fraction]:
    """The rates as exact Fractions, checked: positive, finite, pairwise distinct."""
    exact = [_exact_rate(rate, f"rates[{i}]") for i, rate in enumerate(rates)]
    if not exact:
        raise ValueError("rates is empty: give at least one positive rate")
    if len(set(exact)) != len(exact):
        raise ValueError(f"rates must be pairwise distinct (the closed form divides by "
                         f"their differences), got {[str(r) for r in exact]}")
    return exact


def hypoexponential(rates: Sequence[Any], times: Any, digits: int = 120) -> Hypoexponential:
    """f(t), F(t) and f'(t) of the sum of exponentials with the given distinct rates.

    `times` is a scalar or array of finite t >= 0; each result has its shape. The
    density and the distribution function are correct to float64 rounding at every
    time: the sums start with `digits` decimal digits, and a time whose sums cancel
    more than that leaves (tiny t, many rates) is summed again with more. At t = 0
    the values come from the exact weights. The slope is accurate to float64
    rounding of its largest term (it crosses zero at the mode).
    """
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 17:
        raise ValueError(f"digits must be an integer >= 17 (decimal precision), got {digits!r}")
    exact = _exact_rates(rates)
    weights = hypoexponential_weights(exact)
    t = np.asarray(times, dtype=np.float64)
    bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        raise ValueError(f"times must be finite and >= 0, got {t[bad].reshape(-1)[0]!r}; "
                         "the distribution lives on [0, inf)")
    at_zero = (float(sum(c * lam for c, lam in zip(weights, exact, strict=True))), 0.0,
               float(-sum(c * lam * lam for c, lam in zip(weights, exact, strict=True))))
    pdf, cdf, slope = (np.empty(t.shape) for _ in range(3))
    for index in np.ndindex(t.shape):
        value = float(t[index])
        pdf[index], cdf[index], slope[index] = (
            at_zero if value == 0.0 else _sums_at(exact, weights, value, digits))
    return Hypoexponential(pdf, cdf, slope)


def _sums_at(rates: list[Fraction], weights: list[Fraction], t: float, digits: int
             ) -> tuple[float, float, float]:
    """f(t), F(t), f'(t) for t > 0, with enough digits that f and F keep 17 of them."""
    while True:
        with decimal.localcontext() as ctx:
            ctx.prec = digits
            dt = decimal.Decimal(t)  # the exact binary value of t
            lams = [_decimal(lam) for lam in rates]
            decay = [_decimal(c) * (-lam * dt).exp() for c, lam in zip(weights, lams,
                                                                         strict=True)]
            pdf_terms = [d * lam for d, lam in zip(decay, lams, strict=True)]
            pdf, cdf = sum(pdf_terms), 1 - sum(decay)
            slope = -sum(d * lam * lam for d, lam in zip(decay, lams, strict=True))
            # digits lost to cancellation: size of the largest term over the result
            lost = max(_orders(max(map(abs, pdf_terms)), pdf),
                       _orders(max(decimal.Decimal(1), *map(abs, decay)), cdf))
        if lost <= digits - 20:
            return float(pdf), float(cdf), float(slope)
        digits = 2 * digits


def _orders(scale: decimal.Decimal, value: decimal.Decimal) -> int:
    """Decimal orders between a sum's largest term and the sum (all lost if it is 0)."""
    if value == 0:
        return 1 << 30
    return int(scale.adjusted() - value.adjusted()) + 1


def _exact_rate(value: Any, name: str) -> Fraction:
    """A positive finite rate as an exact Fraction, or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float | Fraction | np.integer
                                                 | np.floating):
        raise ValueError(f"{name} must be a number (int, Fraction or float), got {value!r}")
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    exact = Fraction(value.item() if isinstance(value, np.generic) else value)
    if exact <= 0:
        raise ValueError(f"{name} must be > 0 (a rate), got {value!r}")
    return exact


def _decimal(x: Fraction) -> decimal.Decimal:
    """x in the current decimal context's precision."""
    return decimal.Decimal(x.numerator) / decimal.Decimal(x.denominator)
