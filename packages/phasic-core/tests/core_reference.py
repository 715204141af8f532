"""Independent dense-matrix reference for phase-type distributions.

Reads the graph JSON (docs/pages/json_schema.md) with the standard library, builds
the dense sub-intensity matrix S (continuous) or sub-transition matrix P (discrete),
and evaluates the textbook formulas with numpy/scipy. It never calls the C++
kernels, so agreement with them is evidence, not tautology.

Continuous time, transient states only, alpha = initial probabilities (the start
edges' weights divided by their sum):
    E[T^k]  = k! alpha U^k 1,               U = (-S)^{-1}
    E[Y^k]  = k! alpha (U diag(r))^k 1      (per-vertex rewards r >= 0)
    f(t)    = alpha exp(S t) s,             s = -S 1
    F(t)    = 1 - alpha exp(S t) 1
Discrete time: P(T = k) = alpha P^(k-1) p for k >= 1 (p = 1 - P 1), P(T = 0) = defect.

The PDF is evaluated with scipy.linalg.expm and, for relative accuracy in the
tails, with the series exp(S t) = exp(-lam t) sum_n (t^n / n!) M^n, M = S + lam I >= 0
entrywise: every term is non-negative, so there is no cancellation and tiny
densities (the left tail of a coalescent) keep full relative precision.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg


@dataclass
class Dense:
    """A phase-type distribution as dense matrices over its transient vertices."""

    discrete: bool
    alpha: np.ndarray  # initial probabilities of the transient vertices
    T: np.ndarray  # S (continuous) or P (discrete), transient x transient
    exit: np.ndarray  # s (continuous rates) or p (discrete probabilities)
    transient: np.ndarray  # vertex index of each row of T
    vertices: int

    defect: float  # probability of absorption at time 0: start weight into absorbing vertices


def _weights(doc: dict[str, Any], theta: np.ndarray) -> np.ndarray:
    w = np.array(doc["edges"]["weight"], dtype=np.float64)
    co = doc.get("coefficients") or {"edge": [], "param": [], "value": []}
    for e, p, v in zip(co["edge"], co["param"], co["value"], strict=True):
        w[e] += v * theta[p]
    return w


def dense(structure: Any, theta: Any = None) -> Dense:
    """Dense matrices for a graph given as JSON text, dict, or object with to_json()."""
    if hasattr(structure, "to_json"):
        structure = structure.to_json()
    doc = json.loads(structure) if isinstance(structure, str) else structure
    theta = np.zeros(0) if theta is None else np.asarray(theta, dtype=np.float64)
    assert theta.shape == (doc["param_length"],), (theta.shape, doc["param_length"])
    nv = len(doc["states"])
    src = np.array(doc["edges"]["from"], dtype=int)
    dst = np.array(doc["edges"]["to"], dtype=int)
    w = _weights(doc, theta)
    has_out = np.zeros(nv, dtype=bool)
    has_out[src] = True
    transient = np.array([v for v in range(1, nv) if has_out[v]], dtype=int)
    pos = {v: i for i, v in enumerate(transient)}
    n = len(transient)
    alpha = np.zeros(n)
    T = np.zeros((n, n))
    exit_ = np.zeros(n)
    defect = 0.0
    # Start weights are relative: alpha is each one divided by the sum of all of them
    # (those into absorbing vertices too: their share is the defect).
    start_total = math.fsum(x for a, x in zip(src, w, strict=True) if a == 0)
    assert start_total > 0, f"start weights sum to {start_total}"
    for a, b, x in zip(src, dst, w, strict=True):
        if a == 0:
            if b in pos:
                alpha[pos[b]] += x / start_total
            else:
                defect += x / start_total
            continue
        i = pos[a]
        if b in pos:
            T[i, pos[b]] += x
        else:
            exit_[i] += x
    discrete = bool(doc["discrete"])
    if discrete:
        # remainder of each row is the self-loop probability
        T[np.diag_indices(n)] += 1.0 - T.sum(axis=1) - exit_
    else:
        T[np.diag_indices(n)] -= T.sum(axis=1) + exit_
    return Dense(discrete, alpha, T, exit_, transient, nv, defect)


def _reward_vector(d: Dense, rewards: Any) -> np.ndarray:
    if rewards is None:
        return np.ones(len(d.transient))
    r = np.asarray(rewards, dtype=np.float64)
    assert r.shape == (d.vertices,)
    return r[d.transient]


def moments(structure: Any, theta: Any, k: int, rewards: Any = None) -> np.ndarray:
    """Raw moments E[T^i] / E[Y^i], i = 1..k."""
    d = dense(structure, theta)
    r = _reward_vector(d, rewards)
    n = len(d.transient)
    if d.discrete:
        return _discrete_moments(d, r, k)
    U = np.linalg.inv(-d.T)
    UR = U * r[None, :]
    out = np.empty(k)
    vec = np.ones(n)
    for i in range(1, k + 1):
        vec = UR @ vec
        out[i - 1] = math.factorial(i) * d.alpha @ vec
    return out


def _discrete_moments(d: Dense, r: np.ndarray, k: int) -> np.ndarray:
    """E[Y^k], Y = sum of r(X_n) over the steps before absorption (r = 1: Y = T).

    First-step analysis: m_k = (I - P)^{-1} sum_{l<k} C(k, l) r^(k-l) * v_l with
    v_0 = 1 and v_l = P m_l (absorbed paths contribute only to l = 0).
    """
    n = len(d.transient)
    inv = np.linalg.inv(np.eye(n) - d.T)
    m = [np.ones(n)]
    out = np.empty(k)
    for kk in range(1, k + 1):
        acc = np.zeros(n)
        for ll in range(kk):
            v = np.ones(n) if ll == 0 else d.T @ m[ll]
            acc += math.comb(kk, ll) * r ** (kk - ll) * v
        m.append(inv @ acc)
        out[kk - 1] = d.alpha @ m[kk]
    return out


def _series_weights(d: Dense, t: float, vec: np.ndarray) -> float:
    """alpha exp(S t) vec by the non-negative series (vec >= 0)."""
    n = len(d.transient)
    if t == 0.0 or n == 0:
        return float(d.alpha @ vec)
    lam = float(max(-np.diag(d.T).min(), 0.0))
    M = d.T + lam * np.eye(n)
    M[M < 0] = 0.0  # rounding in the diagonal shift; exact entries are >= 0
    lt = lam * t
    # log-scaled terms: term_n = t^n/n! alpha M^n vec, summed until they cannot matter
    row = d.alpha.copy()
    total = float(row @ vec)
    log_scale = 0.0
    nmax = int(lt + 20.0 * math.sqrt(lt + 1.0) + 60.0)
    for i in range(1, nmax + 1):
        row = (row @ M) * (t / i)
        s = float(row.sum())
        if s > 1e200:  # rescale to avoid overflow for large lam t
            row /= s
            total /= s
            log_scale += math.log(s)
        total += float(row @ vec)
    return math.exp(math.log(total) + log_scale - lt) if total > 0 else 0.0


def pdf(structure: Any, theta: Any, times: Any) -> np.ndarray:
    """Density alpha exp(S t) s (continuous graphs), relative-accurate in the tails."""
    d = dense(structure, theta)
    assert not d.discrete
    t = np.asarray(times, dtype=np.float64)
    return np.array([_series_weights(d, float(x), d.exit) for x in t.reshape(-1)]).reshape(
        t.shape)


def pdf_expm(structure: Any, theta: Any, times: Any) -> np.ndarray:
    """The density through scipy.linalg.expm (absolute accuracy ~1e-15 · max)."""
    d = dense(structure, theta)
    t = np.asarray(times, dtype=np.float64)
    return np.array([d.alpha @ scipy.linalg.expm(d.T * x) @ d.exit for x in t.reshape(-1)]
                    ).reshape(t.shape)


def cdf(structure: Any, theta: Any, times: Any) -> np.ndarray:
    """P(T <= t), continuous (through expm) or discrete (by summing the pmf)."""
    d = dense(structure, theta)
    t = np.asarray(times, dtype=np.float64)
    ones = np.ones(len(d.transient))
    if d.discrete:
        out = []
        for x in t.reshape(-1):
            k = int(math.floor(x))
            out.append(1.0 - d.alpha @ np.linalg.matrix_power(d.T, k) @ ones if k >= 0
                       else 0.0)
        return np.array(out).reshape(t.shape)
    return np.array([1.0 - d.alpha @ scipy.linalg.expm(d.T * x) @ ones
                     for x in t.reshape(-1)]).reshape(t.shape)


def pmf(structure: Any, theta: Any, steps: Any) -> np.ndarray:
    """P(T = k) for a discrete graph: the defect at k = 0, alpha P^(k-1) p for k >= 1."""
    d = dense(structure, theta)
    assert d.discrete
    k = np.asarray(steps)
    out = []
    for x in k.reshape(-1):
        x = int(x)
        if x == 0:
            out.append(d.defect)
        elif x < 0:
            out.append(0.0)
        else:
            out.append(float(d.alpha @ np.linalg.matrix_power(d.T, x - 1) @ d.exit))
    return np.array(out).reshape(k.shape)


def finite_difference(f: Any, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences of f at x, one column per entry of x (the last axis)."""
    cols = []
    for p in range(len(x)):
        e = np.zeros_like(x)
        e[p] = h * max(1.0, abs(x[p]))
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * e[p]))
    return np.stack(cols, axis=-1)
