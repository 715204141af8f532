"""Distributions of a chain whose parameters change at given times (epochs).

Pure JAX composition over two FFI primitives of `phasic.propagate_ffi`:

- `propagate(structure, theta, start, times)` moves a distribution over the
  vertices (with layers for reward moments) forward in time under one theta, and
- `vertex_moments(structure, theta, K)` gives E[Y^k | X_0 = v] for every vertex.

With breakpoints tau_1 < ... < tau_{E-1} (`phasic.epochs`), v_0 is the initial
distribution under theta[0] and v_{e+1} is v_e propagated for tau_{e+1} - tau_e
under theta[e]. A time t in epoch e is read off v_e propagated for t - tau_e under
theta[e]: the density is the flow into the absorbing vertices, the cdf the mass
there, the state probabilities the distribution itself. Every epoch is one
propagate call with all times: times outside the epoch are evaluated at 0 (no work)
and masked out, so traced times need no Python branching. Everything is
differentiable in theta and in the breakpoints (through the time derivative
propagate returns) and works under jit and vmap. The last epoch runs for ever.

Only continuous graphs: a discrete graph with epochs is a ValueError for now.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._ext import core
from .epochs import (
    check_concrete_times,
    check_epoch_theta,
    epoch_index,
    epoch_starts,
)
from .ffi import _as_f64, _check_nr_moments, _prepare_rewards, _setup, _StructureInfo
from .graph import Graph

Structure = str | Graph | Mapping[str, Any]


def _propagate(text: str, theta: jax.Array, start: jax.Array, times: jax.Array,
               rewards: Any = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    from .propagate_ffi import propagate

    return propagate(text, theta, start, times, rewards)


def _vertex_moments(text: str, theta: jax.Array, nr_moments: int,
                    rewards: Any = None) -> jax.Array:
    from .propagate_ffi import vertex_moments

    return vertex_moments(text, theta, nr_moments, rewards)


@functools.lru_cache(maxsize=64)
def _absorbing(text: str) -> np.ndarray:
    """A bool mask of the absorbing vertices: those other than vertex 0 without out-edges.

    Read from the compiled structure (the kernels' own transient set), not by parsing
    the JSON again, which for a large graph is slow and big."""
    _, info = _setup(text)
    absorbing = np.asarray(core().transient_indicator(info.digest)) == 0.0
    absorbing[0] = False
    return absorbing


def _setup_epochs(structure: Any, theta: Any, tau: jax.Array,
                  what: str) -> tuple[str, _StructureInfo, jax.Array]:
    text, info = _setup(structure)
    if info.discrete:
        raise ValueError(
            f"{what} with epochs: discrete graphs are not supported yet (epochs are for "
            "continuous-time graphs); leave epochs out or use a continuous graph"
        )
    theta = check_epoch_theta(theta, tau.shape[0] + 1, info.param_length)
    return text, info, theta


def _initial(text: str, theta0: jax.Array) -> jax.Array:
    """The initial distribution over the vertices (a defect on its absorbing vertex)."""
    from .state_ffi import compute_state_probabilities_ffi

    return compute_state_probabilities_ffi(text, theta0, jnp.zeros(()))


def _at_times(text: str, theta: jax.Array, tau: jax.Array, times: jax.Array,
              rewards: Any = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(x (T, V), dx (T, V), acc (T, V)) of the one-layer chain at flat `times`."""
    n_epochs = theta.shape[0]
    starts = epoch_starts(tau)
    index = epoch_index(times, tau)
    start = _initial(text, theta[0])[None, :]
    acc_before = jnp.zeros(start.shape[1:], start.dtype)
    x = dx = acc = None
    for e in range(n_epochs):
        inside = index == e
        # outside its epoch a time is evaluated at 0 (free) and masked out below
        local = jnp.where(inside, times - starts[e], 0.0)
        last = e == n_epochs - 1
        if not last:
            local = jnp.concatenate([local, (starts[e + 1] - starts[e])[None]])
        xe, dxe, acce = _propagate(text, theta[e], start, local, rewards)
        xe, dxe, acce = xe[:, 0], dxe[:, 0], acce + acc_before
        if not last:
            start = xe[-1][None, :]
            acc_before = acce[-1]
            xe, dxe, acce = xe[:-1], dxe[:-1], acce[:-1]
        col = inside[:, None]
        x = xe if x is None else jnp.where(col, xe, x)
        dx = dxe if dx is None else jnp.where(col, dxe, dx)
        acc = acce if acc is None else jnp.where(col, acce, acc)
    return x, dx, acc


def _flat_times(times: Any) -> tuple[jax.Array, tuple[int, ...]]:
    check_concrete_times(times)
    times = _as_f64(times, "times")
    return times.reshape(-1), times.shape


def epoch_pdf(structure: Structure, theta: Any, times: Any, tau: jax.Array,
              cumulative: bool = False) -> jax.Array:
    """The density (or cdf) of the absorption time at `times` (any shape)."""
    what = "cdf" if cumulative else "compute_pmf_ffi"
    text, _, theta = _setup_epochs(structure, theta, tau, what)
    flat, shape = _flat_times(times)
    x, dx, _ = _at_times(text, theta, tau, flat)
    absorbing = jnp.asarray(_absorbing(text))
    out = (x if cumulative else dx) @ absorbing.astype(x.dtype)
    return out.reshape(shape)


def checked_epoch_pdf(structure: Structure, theta: Any, times: Any, discrete: Any,
                      rewards: Any, tau: jax.Array, what: str) -> jax.Array:
    """`epoch_pdf` behind the checks only epochs need: `what` names the caller."""
    if isinstance(discrete, (bool, np.bool_)) and discrete:
        raise ValueError(f"{what} with epochs: discrete graphs are not supported yet (epochs "
                         "are for continuous-time graphs); leave epochs out")
    if rewards is not None:
        raise ValueError(f"{what} with epochs: the density of a reward-weighted time is not "
                         "supported with epochs; pass rewards=None (moments take rewards)")
    return epoch_pdf(structure, theta, times, tau)


def epoch_state(structure: Structure, theta: Any, times: Any, tau: jax.Array,
                which: int) -> jax.Array:
    """State probabilities (which = 0) or accumulated visiting times (1): (T, V) or (V,)."""
    what = ("compute_state_probabilities_ffi", "compute_accumulated_visiting_time_ffi")[which]
    text, _, theta = _setup_epochs(structure, theta, tau, what)
    check_concrete_times(times)
    times = _as_f64(times, "times")
    if times.ndim > 1:
        raise ValueError(
            f"times must be a scalar or 1-D, got shape {times.shape}; flatten it or use jax.vmap"
        )
    x, _, acc = _at_times(text, theta, tau, times.reshape(-1))
    if which == 0:
        out = x
    else:  # time is spent only in transient vertices (the start vertex holds no mass)
        transient = ~_absorbing(text)
        transient[0] = False
        out = acc * jnp.asarray(transient, acc.dtype)
    return out[0] if times.ndim == 0 else out


def _transient_rewards(text: str, info: _StructureInfo, rewards: Any) -> jax.Array:
    """Rewards with 0 on the start and absorbing vertices (None: 1 on transient ones)."""
    transient = ~_absorbing(text)
    transient[0] = False
    mask = jnp.asarray(transient, jnp.float64)
    if rewards is None:
        return mask
    return _prepare_rewards(rewards, info) * mask


def epoch_moments(structure: Structure, theta: Any, nr_moments: int, tau: jax.Array,
                  rewards: Any = None) -> jax.Array:
    """E[Y^k], k = 1..nr_moments (Y = T without rewards), shape (nr_moments,)."""
    text, info, theta = _setup_epochs(structure, theta, tau, "compute_moments_ffi")
    nr_moments = _check_nr_moments(nr_moments)
    r = _transient_rewards(text, info, rewards)
    n_epochs = theta.shape[0]
    starts = epoch_starts(tau)
    # layer j holds E[Y_t^j / j!; X_t = v]
    x = jnp.zeros((nr_moments + 1, info.vertices_length)).at[0].set(_initial(text, theta[0]))
    for e in range(n_epochs - 1):
        length = (starts[e + 1] - starts[e])[None]
        x = _propagate(text, theta[e], x, length, r)[0][0]
    m = _vertex_moments(text, theta[-1], nr_moments, r)  # (K, V): E[Y^k | X_0 = v]
    scaled = jnp.concatenate([jnp.ones((1, m.shape[1]), m.dtype), m], axis=0)
    scaled = scaled / jnp.asarray([math.factorial(k) for k in range(nr_moments + 1)],
                                  m.dtype)[:, None]
    out = []
    for k in range(1, nr_moments + 1):
        # E[Y^k]/k! = sum_j sum_v x_j(v) m_{k-j}(v) / (k-j)!
        total = sum(x[j] @ scaled[k - j] for j in range(k + 1))
        out.append(total * math.factorial(k))
    return jnp.stack(out)
