"""Independent dense reference for epoch models (piecewise-constant parameters in time).

With breakpoints tau_1 < ... < tau_{E-1} (tau_0 = 0, tau_E = inf) and parameters
theta[e] in epoch e, the chain keeps its state across a breakpoint and only its
rates change, so the density of the absorption time at t in epoch k is

    f(t) = alpha [prod_{e<k} exp(S_e (tau_{e+1} - tau_e))] exp(S_k (t - tau_k)) s_k

with S_e, s_e the sub-intensity matrix and exit rates at theta[e]. The matrices come
from packages/phasic-core/tests/core_reference.py (the graph JSON read with the
standard library), the exponentials from scipy.linalg.expm: nothing here calls
phasic's kernels. Gradients are checked against central finite differences of
`loglik` (`fd_gradient`).
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import numpy as np
import scipy.linalg

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "packages" / "phasic-core" / "tests"))
import core_reference  # noqa: E402


def pdf(structure: Any, theta: Any, tau: Any, times: Any) -> np.ndarray:
    """Density of the absorption time at `times` for theta (E, P) and breakpoints tau (E-1,).

    A time exactly at a breakpoint is read in the later epoch (the exit rates of
    the epoch that starts there); the tests avoid such times.
    """
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    tau = np.asarray(tau, dtype=np.float64).reshape(-1)
    assert tau.size == theta.shape[0] - 1, (tau.shape, theta.shape)
    assert np.all(np.diff(tau) > 0) and (tau.size == 0 or tau[0] > 0), tau
    mats = [core_reference.dense(structure, th) for th in theta]
    starts = np.concatenate([[0.0], tau])
    # alpha at the start of each epoch: one expm per epoch, shared by every time
    rows = [mats[0].alpha]
    for e in range(tau.size):
        rows.append(rows[-1] @ scipy.linalg.expm(mats[e].T * (starts[e + 1] - starts[e])))
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    k = np.searchsorted(tau, t, side="right")  # the epoch holding each time
    out = np.empty(t.size)
    for e in np.unique(k):  # one stacked expm call per epoch
        at = np.flatnonzero(k == e)
        d = mats[e]
        props = scipy.linalg.expm(d.T[None] * (t[at] - starts[e])[:, None, None])
        out[at] = np.einsum("i,tij,j->t", rows[e], props, d.exit)
    return out.reshape(np.shape(times))


def loglik(structure: Any, theta: Any, tau: Any, times: Any) -> float:
    """sum_i log f(times[i]) under the epoch model."""
    return float(np.sum(np.log(pdf(structure, theta, tau, times))))


def fd_gradient(structure: Any, theta: Any, tau: Any, times: Any,
                h: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """(d loglik / d theta (E, P), d loglik / d tau (E-1,)) by central differences.

    Relative step h on each coordinate: truncation error O(h^2) ~ 1e-10 and rounding
    ~ 1e-16 |loglik| / h ~ 1e-9 for the small models of the tests, so 1e-6 relative
    agreement with an exact gradient is a meaningful check.
    """
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    tau = np.asarray(tau, dtype=np.float64).reshape(-1)

    def central(f, x: np.ndarray) -> np.ndarray:
        g = np.empty_like(x)
        for i in np.ndindex(x.shape):
            step = h * max(abs(x[i]), 1.0)
            up, down = x.copy(), x.copy()
            up[i] += step
            down[i] -= step
            g[i] = (f(up) - f(down)) / (2 * step)
        return g

    g_theta = central(lambda th: loglik(structure, th, tau, times), theta)
    g_tau = central(lambda ta: loglik(structure, theta, ta, times), tau)
    return g_theta, g_tau
