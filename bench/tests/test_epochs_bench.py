"""bench/epochs.py: its dense reference, its histories and one measurement's plumbing."""

from __future__ import annotations

import epochs
import numpy as np
import pytest
import run as bench_run

from phasic import models
from phasic.reference import kingman_tmrca

TIMES = np.array([0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0])


def test_piecewise_pdf_with_equal_epochs_is_the_plain_density() -> None:
    js = models.kingman(5).to_json()
    theta = np.full((4, 1), 1.3)  # the same rate in every epoch: the breakpoints vanish
    got = epochs.piecewise_pdf(js, theta, np.array([0.05, 0.3, 1.5]), TIMES)
    want = kingman_tmrca(5, TIMES, theta=1.3, digits=40).pdf
    np.testing.assert_allclose(got, want, rtol=1e-11)


def test_series_step_is_relative_accurate_in_the_left_tail() -> None:
    # Kingman(20) at t = 0.01: a density of ~4e-23, against the exact closed form
    js = models.kingman(20).to_json()
    got = epochs.piecewise_pdf(js, np.ones((1, 1)), np.zeros(0), np.array([0.01, 1.0]))
    want = kingman_tmrca(20, [0.01, 1.0], digits=60).pdf
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_piecewise_pdf_of_one_pair_is_piecewise_exponential() -> None:
    r0, r1, r2, t1, t2 = 1.4, 0.3, 2.0, 0.2, 1.1
    got = epochs.piecewise_pdf(models.kingman(2).to_json(), np.array([[r0], [r1], [r2]]),
                               np.array([t1, t2]), TIMES)
    cum = np.where(TIMES < t1, r0 * TIMES,
                   np.where(TIMES < t2, r0 * t1 + r1 * (TIMES - t1),
                            r0 * t1 + r1 * (t2 - t1) + r2 * (TIMES - t2)))
    rate = np.where(TIMES < t1, r0, np.where(TIMES < t2, r1, r2))
    np.testing.assert_allclose(got, rate * np.exp(-cum), rtol=1e-12)


@pytest.mark.parametrize("e", epochs.EPOCHS)
def test_histories_have_e_epochs_and_increasing_breakpoints(e: int) -> None:
    theta, tau = epochs.history(e, 1.05)
    assert theta.shape == (e, 1) and tau.shape == (e - 1,)
    assert np.all(theta > 0) and np.all(np.diff(tau) > 0) and np.all(tau > 0)
    assert e == 1 or tau[-1] == 2.0  # the same finite span for every E


def test_registered_with_the_driver() -> None:
    assert "epochs" in bench_run.MODULES and "epochs" not in bench_run.EXTERNAL
    assert epochs.ratio_key("sfs_grad_s") == "sfs_grad_ratio"


def test_the_timed_calls_run_and_the_pdf_check_is_tight() -> None:
    # every call of one E runs (compiled once); no time is measured here
    for fn in epochs.calls(4, 3).values():
        fn()
    assert set(epochs.calls(4, 1)) == set(epochs.KEYS)
    # the kernels' 1e-8 acceptance bar, against the dense piecewise expm
    assert max(epochs.check(4, 3)) < 1e-8 and max(epochs.check(4, 1)) < 1e-8
