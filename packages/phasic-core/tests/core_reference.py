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


# -- epochs: a dense stand-in for phasic.propagate_ffi, and piecewise references ------
#
# `dense_propagate` and `dense_vertex_moments` have the signatures of
# phasic.propagate_ffi's kernels and compute the same quantities in JAX from dense
# matrices (jax.scipy.linalg.expm of a stacked block generator), so the epoch
# composition can run on them and the real kernels can be compared with them.


def _jax_generator(structure: Any, theta: Any) -> Any:
    """The (V, V) generator over all vertices in JAX (row 0, the start vertex, is 0)."""
    import jax.numpy as jnp

    if hasattr(structure, "to_json"):
        structure = structure.to_json()
    doc = json.loads(structure) if isinstance(structure, str) else structure
    nv = len(doc["states"])
    src = np.array(doc["edges"]["from"], dtype=int)
    dst = np.array(doc["edges"]["to"], dtype=int)
    w = jnp.asarray(np.array(doc["edges"]["weight"], dtype=np.float64))
    co = doc.get("coefficients") or {"edge": [], "param": [], "value": []}
    if co["edge"]:
        w = w.at[np.asarray(co["edge"], dtype=int)].add(
            np.asarray(co["value"], dtype=np.float64) * jnp.asarray(theta)[
                np.asarray(co["param"], dtype=int)])
    keep = src != 0
    g = jnp.zeros((nv, nv)).at[src[keep], dst[keep]].add(w[keep])
    return g - jnp.diag(g.sum(axis=1)), nv, doc


def _transient_mask(doc: dict[str, Any], nv: int) -> np.ndarray:
    has_out = np.zeros(nv, dtype=bool)
    has_out[np.asarray(doc["edges"]["from"], dtype=int)] = True
    has_out[0] = False
    return has_out


def dense_propagate(structure: Any, theta: Any, start: Any, times: Any,
                    rewards: Any = None) -> tuple[Any, Any, Any]:
    """x (T, L, V), dx (T, L, V), acc (T, V): x_0' = x_0 G, x_j' = x_j G + x_{j-1} diag(r)."""
    import jax
    import jax.numpy as jnp

    g, nv, doc = _jax_generator(structure, theta)
    r = (jnp.asarray(_transient_mask(doc, nv), jnp.float64) if rewards is None
         else jnp.asarray(rewards))
    start = jnp.asarray(start)
    layers = start.shape[0]
    n = (layers + 1) * nv  # the last block integrates layer 0: acc' = x_0
    a = jnp.zeros((n, n))
    for j in range(layers):
        a = a.at[j * nv:(j + 1) * nv, j * nv:(j + 1) * nv].set(g)
        if j >= 1:
            a = a.at[(j - 1) * nv:j * nv, j * nv:(j + 1) * nv].set(jnp.diag(r))
    a = a.at[:nv, layers * nv:].set(jnp.eye(nv))
    row0 = jnp.concatenate([start.reshape(-1), jnp.zeros(nv)])

    def one(t: Any) -> Any:
        return row0 @ jax.scipy.linalg.expm(a * t)

    rows = jax.vmap(one)(jnp.asarray(times))
    drows = rows @ a
    x = rows[:, :layers * nv].reshape(-1, layers, nv)
    dx = drows[:, :layers * nv].reshape(-1, layers, nv)
    return x, dx, rows[:, layers * nv:]


def dense_vertex_moments(structure: Any, theta: Any, nr_moments: int,
                         rewards: Any = None) -> Any:
    """E[Y^k | X_0 = v], k = 1..nr_moments, shape (K, V); 0 on non-transient vertices."""
    import jax.numpy as jnp

    g, nv, doc = _jax_generator(structure, theta)
    tr = np.flatnonzero(_transient_mask(doc, nv))
    s = g[np.ix_(tr, tr)]
    r = jnp.ones(len(tr)) if rewards is None else jnp.asarray(rewards)[tr]
    ur = jnp.linalg.solve(-s, jnp.diag(r))
    m = jnp.ones(len(tr))
    out = []
    for k in range(1, nr_moments + 1):
        m = k * (ur @ m)
        out.append(jnp.zeros(nv).at[tr].set(m))
    return jnp.stack(out)


def full_generator(structure: Any, theta: Any) -> tuple[np.ndarray, np.ndarray]:
    """numpy (G (V, V), initial distribution (V,)) over all vertices, for piecewise checks."""
    if hasattr(structure, "to_json"):
        structure = structure.to_json()
    doc = json.loads(structure) if isinstance(structure, str) else structure
    theta = np.asarray(theta, dtype=np.float64)
    nv = len(doc["states"])
    src = np.array(doc["edges"]["from"], dtype=int)
    dst = np.array(doc["edges"]["to"], dtype=int)
    w = _weights(doc, theta)
    g = np.zeros((nv, nv))
    init = np.zeros(nv)
    for a, b, x in zip(src, dst, w, strict=True):
        if a == 0:
            init[b] += x
        else:
            g[a, b] += x
            g[a, a] -= x
    return g, init / init.sum()


def piecewise_state(structure: Any, thetas: Any, tau: Any, t: float) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """(P(X_t = v), E[time in v during [0, t]]) by the product of per-epoch exponentials
    of [[G_e, I], [0, 0]] (scipy), over all vertices (acc unmasked)."""
    bounds = [0.0, *np.asarray(tau, dtype=float).tolist(), math.inf]
    row = None
    for e, theta in enumerate(np.asarray(thetas)):
        g, init = full_generator(structure, theta)
        nv = len(init)
        if row is None:
            row = np.concatenate([init, np.zeros(nv)])
        big = np.zeros((2 * nv, 2 * nv))
        big[:nv, :nv] = g
        big[:nv, nv:] = np.eye(nv)
        span = min(t, bounds[e + 1]) - bounds[e]
        if span <= 0:
            break
        row = row @ scipy.linalg.expm(big * span)
    return row[:nv], row[nv:]


def piecewise_pdf(structure: Any, thetas: Any, tau: Any, t: float) -> float:
    """alpha e^{S_1 tau_1} e^{S_2 (tau_2 - tau_1)} ... e^{S_e (t - tau_{e-1})} s_e over the
    transient states (dense(), scipy expm), the density at t in epoch e."""
    bounds = [0.0, *np.asarray(tau, dtype=float).tolist(), math.inf]
    alpha = None
    for e, theta in enumerate(np.asarray(thetas)):
        d = dense(structure, theta)
        if alpha is None:
            alpha = d.alpha
        if t < bounds[e + 1]:
            return float(alpha @ scipy.linalg.expm(d.T * (t - bounds[e])) @ d.exit)
        alpha = alpha @ scipy.linalg.expm(d.T * (bounds[e + 1] - bounds[e]))
    raise AssertionError("unreachable: the last epoch is unbounded")


def piecewise_cdf(structure: Any, thetas: Any, tau: Any, t: float) -> float:
    """1 - alpha e^{S_1 tau_1} ... e^{S_e (t - tau_{e-1})} 1 (the defect is absorbed at 0)."""
    bounds = [0.0, *np.asarray(tau, dtype=float).tolist(), math.inf]
    alpha = None
    for e, theta in enumerate(np.asarray(thetas)):
        d = dense(structure, theta)
        if alpha is None:
            alpha = d.alpha
        span = min(t, bounds[e + 1]) - bounds[e]
        alpha = alpha @ scipy.linalg.expm(d.T * span)
        if t < bounds[e + 1]:
            break
    return float(1.0 - alpha.sum())
