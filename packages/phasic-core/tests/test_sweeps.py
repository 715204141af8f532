"""Large-graph sweeps: exactness, bit-identity across threads, piecewise series, stiffness.

Kingman's block-counting graphs are the large graphs here (thousands of states, with
T_MRCA's exact density to check against). The densities would lump them to their n - 1
lineage counts (test_lumping.py), so this suite turns lumping off: it checks the sweeps
on the graphs as they are.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
from core_graphs import compiled_chain as _compiled
from core_graphs import dense_builder as dense

from phasic import _core
from phasic.reference import kingman_tmrca


@pytest.fixture(autouse=True)
def _graphs_as_they_are():
    _core.set_lumping(False)
    yield
    _core.set_lumping(True)


# ---------------------------------------------------------------- large-graph sweeps


def test_large_sweeps_exact_and_bit_identical_across_threads(monkeypatch) -> None:
    # Kingman n = 30 (5,603 states, ~48k edges): the pdf takes the piecewise sweep and
    # the cdf the single sweep, both big enough to run on an OpenMP team (forced here:
    # by default the kernels pick team or one thread by measured speed); neither may
    # change a single bit with the thread count. T_MRCA is hypoexponential with rates
    # k(k-1)/2, k = 30..2.
    monkeypatch.setenv("PHASIC_SWEEP_TEAM", "always")
    s = _core.kingman(30).compile()
    times = [0.03, 0.1, 0.4, 2.5]
    before = _core.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            _core.set_num_threads(threads)
            runs.append((s.pdf([1.0], times), s.cdf([1.0], times)))
    finally:
        _core.set_num_threads(before)
    for one, two in zip(runs[0], runs[1], strict=True):
        assert one.tobytes() == two.tobytes()
    pdf, cdf, _ = kingman_tmrca(30, times)
    np.testing.assert_allclose(runs[0][0], pdf, rtol=1e-9, atol=0)
    np.testing.assert_allclose(runs[0][1], cdf, rtol=1e-9, atol=0)
    # theta scales every rate: f_theta(t) = theta f_1(theta t).
    np.testing.assert_allclose(s.pdf([2.0], [0.05, 0.2]), 2.0 * pdf[[1, 2]], rtol=1e-9, atol=0)


def test_piecewise_pdf_unsorted_repeated_and_spread_times() -> None:
    # Acyclic graphs take the piecewise sweep (the rate drops as fast states empty):
    # unsorted times, a repeat, t = 0, the far left and right tails, against expm.
    # (Kingman n = 15: 175 states, so a sweep of 800 or more steps goes piecewise:
    # 105 x 0.37 x 25 = 971 at the smaller theta.)
    b = _core.kingman(15)
    s = b.compile()
    times = np.array([3.0, 0.0, 0.004, 25.0, 0.3, 3.0, 1e-9, 0.05, 9.0, 1.2])
    for theta in (1.0, 0.37):
        alpha, S, exit_, _ = dense(b, np.array([theta]))
        ref = np.array([alpha @ scipy.linalg.expm(S * t) @ exit_ for t in times])
        got = s.pdf([theta], times)
        big = ref >= 1e-12 * ref.max()
        assert big.sum() >= 6
        np.testing.assert_allclose(got[big], ref[big], rtol=1e-9, atol=0)
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-20 * ref.max())
        assert got[1] == 0.0 and got[0] == got[5]
        # the derivative and log kernels take their piecewise sweep on the same times
        # (the flushes late in the first piece do not reach t = 1e-9's finished series)
        before = _core.sweep_counts()
        f, jac = s.pdf_jac([theta], times)
        jac = np.asarray(jac).reshape(len(times), -1)
        logf, _ = s.log_pdf([theta], times, grad=True)
        after = _core.sweep_counts()
        assert after["piecewise"] - before["piecewise"] == 2
        assert after["single"] == before["single"]
        np.testing.assert_allclose(f[big], ref[big], rtol=1e-9, atol=0)
        np.testing.assert_allclose(logf[big], np.log(ref[big]), rtol=1e-10, atol=0)
        assert f[1] == 0.0 and logf[1] == -np.inf and jac[1, 0] == 0.0
        assert f[0] == f[5] and logf[0] == logf[5] and jac[0, 0] == jac[5, 0]


def test_piecewise_time_next_to_zero_and_far_right_tail() -> None:
    # Exponential at rate 0.4 theta. At t = 5e-324, lambda t underflows to 0: the density
    # is the one at t = 0. At t = 3000 it is 0.4 e^-1200 ~ 1e-522, below the float64
    # range: the pdf (piecewise, lambda t = 1,200 steps) returns 0, the scaled kernels
    # its exact log and d log f / d theta = 1 / theta - 0.4 t.
    s = _compiled([(0, 1, 1.0, []), (1, 2, 0.0, [0.4])])
    times = [5e-324, 1.0, 3000.0]
    before = _core.sweep_counts()["piecewise"]
    pdf = s.pdf([1.0], times)
    assert _core.sweep_counts()["piecewise"] == before + 1
    np.testing.assert_allclose(pdf, [0.4, 0.4 * math.exp(-0.4), 0.0], rtol=1e-12, atol=0)
    f, jac = s.pdf_jac([1.0], times)
    np.testing.assert_allclose(f, pdf, rtol=1e-12, atol=0)
    np.testing.assert_allclose(jac.ravel(), [0.4, 0.4 * math.exp(-0.4) * 0.6, 0.0],
                               rtol=1e-12, atol=0)
    logf, dlogf = s.log_pdf([1.0], times, grad=True)
    np.testing.assert_allclose(logf, math.log(0.4) - 0.4 * np.array(times), rtol=1e-12)
    np.testing.assert_allclose(dlogf.ravel(), 1.0 - 0.4 * np.array(times), rtol=1e-12)


def test_piecewise_keeps_densities_near_1e_63() -> None:
    # Kingman n = 35 at t = 0.0015: T_MRCA's density is 9.7e-63. Uniformized at the
    # largest rate (595), the 33 coalescences the density needs leave the vector's
    # entries far below 1e-60 on the way; the sweeps keep entries down to 1e-150, so
    # the piecewise sweep serves the plain pdf, its Jacobian and the log-density (a
    # flush at 1e-60 failed their error checks and fell back to one slow sweep),
    # exact against the closed form (200 digits). theta = 1 scales time, so
    # d pdf / d theta = f(t) + t f'(t).
    s = _core.kingman(35).compile()
    times = [0.0015, 0.002, 1.0, 5.0]
    exact = kingman_tmrca(35, np.array(times), digits=200)
    assert 5e-63 < exact.pdf[0] < 2e-62
    before = _core.sweep_counts()
    pdf = s.pdf([1.0], times)
    f, jac = s.pdf_jac([1.0], times)
    logf, dlogf = s.log_pdf([1.0], times, grad=True)
    after = _core.sweep_counts()
    assert after["piecewise"] - before["piecewise"] == 3
    assert after["single"] == before["single"]
    np.testing.assert_allclose(pdf, exact.pdf, rtol=1e-11, atol=0)
    np.testing.assert_allclose(f, exact.pdf, rtol=1e-11, atol=0)
    slope = exact.pdf + np.array(times) * exact.slope
    np.testing.assert_allclose(np.ravel(jac), slope, rtol=1e-11, atol=0)
    np.testing.assert_allclose(logf, np.log(exact.pdf), rtol=0, atol=1e-11)  # f to 1e-11
    np.testing.assert_allclose(np.ravel(dlogf), slope / exact.pdf, rtol=1e-11, atol=0)


def test_piecewise_retries_for_a_far_tail_instead_of_the_single_sweep() -> None:
    # Kingman n = 20 at theta = 8 on times drawn at theta = 1: the largest times lie
    # far in the right tail (densities ~1e-14 against a largest ~4), below what the
    # first run's dropped front entries allow for the derivative check. The sweep runs
    # once more with its drops held lower and serves every call piecewise (before, it
    # fell back to the single sweep: 2.7x slower), exact against the closed form.
    s = _core.kingman(20).compile()
    k = np.arange(2, 21)
    times = np.random.default_rng(27).exponential(2.0 / (k * (k - 1)), (200, k.size)).sum(1)
    theta = 8.0
    before = _core.sweep_counts()
    logf, dlogf = s.log_pdf([theta], times, grad=True)
    after = _core.sweep_counts()
    assert after["piecewise"] - before["piecewise"] == 1
    assert after["single"] == before["single"]
    pick = np.argsort(times)[[0, 50, 100, 150, 190, 199]]  # the tail's largest included
    u = theta * times[pick]  # f_theta(t) = theta f_1(theta t)
    exact = kingman_tmrca(20, u, digits=60)
    assert np.exp(logf[pick]).min() < 1e-10 * np.exp(logf).max()
    np.testing.assert_allclose(logf[pick], np.log(theta * exact.pdf), rtol=0, atol=1e-10)
    slope = 1.0 / theta + times[pick] * exact.slope / exact.pdf  # d log f / d theta
    np.testing.assert_allclose(np.ravel(dlogf)[pick], slope, rtol=1e-9, atol=1e-12)


def _two_state_cycle_exact(theta: float, times: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """f and d f / d theta for 1 -> 2 at 300 theta, 2 -> 1 at 200 theta, 2 -> absorbed at
    0.5 theta, starting in 1: f_1(u) = a b (e^{l1 u} - e^{l2 u}) / (l1 - l2) with l1, l2
    the eigenvalues of S, in 50-digit decimals; f_theta(t) = theta f_1(theta t)."""
    from decimal import Decimal, localcontext

    f, df = [], []
    with localcontext() as ctx:
        ctx.prec = 50
        a, c, b = Decimal(300), Decimal(200), Decimal("0.5")
        root = ((a + b + c) ** 2 - 4 * a * b).sqrt()
        l1, l2 = (-(a + b + c) + root) / 2, (-(a + b + c) - root) / 2
        th = Decimal(repr(theta))
        for t in times:
            u = th * Decimal(repr(t))
            e1, e2 = (l1 * u).exp(), (l2 * u).exp()
            f1 = a * b * (e1 - e2) / (l1 - l2)
            slope = a * b * (l1 * e1 - l2 * e2) / (l1 - l2)
            f.append(float(th * f1))
            df.append(float(f1 + u * slope))
    return np.array(f), np.array(df)


def test_long_single_sweep_keeps_its_relative_accuracy() -> None:
    # A cyclic graph takes the single sweep at rate 300: t = 150 needs ~45,000 steps in
    # the far right tail (f ~ 1e-20). Poisson weights from a running sum of log k drifted
    # by ~1e-8 there; computed in Loader's saddle-point form they keep the 1e-10 bound.
    s = _compiled([(0, 1, 1.0, []), (1, 2, 0.0, [300.0]), (2, 1, 0.0, [200.0]),
                   (2, 3, 0.0, [0.5])])
    times = [1.0, 20.0, 150.0]
    f_ref, df_ref = _two_state_cycle_exact(1.0, times)
    assert 1e-22 < f_ref[-1] < 1e-18
    np.testing.assert_allclose(s.pdf([1.0], times), f_ref, rtol=1e-10, atol=0)
    f, jac = s.pdf_jac([1.0], times)
    np.testing.assert_allclose(f, f_ref, rtol=1e-10, atol=0)
    np.testing.assert_allclose(np.asarray(jac).ravel(), df_ref, rtol=1e-9, atol=0)
    logf, dlogf = s.log_pdf([1.0], times, grad=True)
    np.testing.assert_allclose(logf, np.log(f_ref), rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.asarray(dlogf).ravel(), df_ref / f_ref, rtol=1e-9, atol=0)


def test_stiff_even_piecewise_is_a_clear_error() -> None:
    # A slow state (rate 1) feeding a fast one (rate 1e7): the slow state holds mass up
    # to t = 1, so every piece keeps the fast rate and 1e7 steps would be needed. The
    # piecewise sweep stops at the 2e6-step cap and raises itself (no single sweep runs
    # after it), naming the rate and the time, for the pdf, its derivatives and its log.
    s = _compiled([(0, 1, 1.0, []), (1, 2, 1.0, []), (2, 3, 0.0, [1.0])])
    stiff = r"about 10000000 steps \(largest exit rate 10000000 x largest time 1\).* too stiff"
    for call in (s.pdf, s.pdf_jac, lambda th, ts: s.log_pdf(th, ts, grad=True)):
        before = _core.sweep_counts()["single"]
        with pytest.raises(ValueError, match=stiff):
            call([1e7], [1.0])
        assert _core.sweep_counts()["single"] == before


def test_stiff_rates_piecewise_pdf_or_a_clear_error() -> None:
    # A fast phase (rate 1e9) then a slow one (rate 0.5). One sweep at the largest rate
    # would need ~1e9 steps: the cdf stops at the 2e6-step cap with an error naming the
    # rate and the time. The pdf, its derivatives and its log take the piecewise sweep,
    # whose rate drops to 0.5 once the fast state is empty, and are exact: a
    # hypoexponential. Derivatives are promised to 1e-10 of the largest partial or 1e-13
    # of the value; here d f / d theta is ~1e-19 f, so the second one applies.
    s = _compiled([(0, 1, 1.0, []), (1, 2, 0.0, [1.0]), (2, 3, 0.5, [])])
    theta, times = [1e9], np.array([0.5, 1.0, 4.0])
    stiff = r"about 4000000000 steps \(largest exit rate 1000000000 x largest time 4\).* too stiff"
    with pytest.raises(ValueError, match=stiff):
        s.cdf(theta, times)
    a, b = 1e9, 0.5
    slow = np.exp(-b * times)  # e^{-a t} is 0 at these times
    ref = a * b / (a - b) * slow
    d_ref = -b * b / (a - b) ** 2 * slow
    np.testing.assert_allclose(s.pdf(theta, times), ref, rtol=1e-9, atol=0)
    f, jac = s.pdf_jac(theta, times)
    np.testing.assert_allclose(f, ref, rtol=1e-9, atol=0)
    np.testing.assert_allclose(jac.ravel(), d_ref, rtol=0, atol=1e-13 * ref.min())
    logf, dlogf = s.log_pdf(theta, times, grad=True)
    np.testing.assert_allclose(logf, np.log(ref), rtol=1e-12, atol=0)
    np.testing.assert_allclose(dlogf.ravel(), 1 / a - 1 / (a - b), rtol=0, atol=1e-13)
