"""Epochs: piecewise-constant parameters in time, checked and split.

Breakpoints 0 < tau_1 < ... < tau_{E-1} cut time into E epochs; epoch e is
[tau_e, tau_{e+1}) with tau_0 = 0, and the last epoch, [tau_{E-1}, inf), runs for
ever. theta then has shape (E, P): during epoch e the edge weights are those of
theta[e]. `epochs=None` (or an empty sequence) is one epoch, today's homogeneous
chain. The composition over epochs is in `phasic.epoch_ffi`.

Values are checked only when they are concrete; under `jax.jit` the breakpoints
are traced and only their shapes are checked.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .ffi import _as_f64


def _concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_epochs(epochs: Any) -> jax.Array | None:
    """The breakpoints as a float64 vector (E - 1,), or None for one epoch.

    None or an empty sequence means no breakpoint. Otherwise `epochs` must be 1-D
    and, when its values are concrete, finite, > 0 and strictly increasing.
    """
    if epochs is None:
        return None
    tau = _as_f64(epochs, "epochs")
    if tau.ndim != 1:
        raise ValueError(
            f"epochs must be a 1-D array of breakpoints 0 < tau_1 < ... < tau_(E-1), got "
            f"shape {tau.shape}; for many breakpoint vectors use jax.vmap"
        )
    if tau.shape[0] == 0:
        return None
    if _concrete(tau):
        _check_values(np.asarray(tau))
    return tau


def _check_values(tau: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(tau))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"epochs[{i}] is {float(tau[i])!r}; breakpoints must be finite (the last "
                         "epoch already runs for ever: leave an infinite breakpoint out)")
    bad = np.flatnonzero(tau <= 0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"epochs[{i}] is {float(tau[i])!r}; breakpoints must be > 0 (the first "
                         "epoch starts at time 0 by itself: leave 0 out)")
    steps = np.diff(tau)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        i = int(bad[0])
        what = "a duplicate" if steps[i] == 0 else "not increasing"
        raise ValueError(
            f"epochs[{i + 1}] = {float(tau[i + 1])!r} after epochs[{i}] = {float(tau[i])!r} is {what}; "
            "breakpoints must be strictly increasing (sort them and merge equal ones, "
            "with their theta rows)"
        )


def check_epoch_theta(theta: Any, n_epochs: int, param_length: int) -> jax.Array:
    """theta as a float64 (E, P) array: one row of parameters per epoch."""
    theta = _as_f64(theta, "theta")
    if theta.shape != (n_epochs, param_length):
        raise ValueError(
            f"with {n_epochs - 1} breakpoint(s) in epochs, theta must have shape "
            f"({n_epochs}, {param_length}): one row of param_length = {param_length} "
            f"parameters per epoch, got shape {theta.shape}; to evaluate many thetas "
            "use jax.vmap"
        )
    if _concrete(theta):
        arr = np.asarray(theta)
        bad = np.argwhere(~np.isfinite(arr))
        if bad.size:
            e, p = (int(x) for x in bad[0])
            raise ValueError(f"theta[{e}, {p}] is {float(arr[e, p])!r}; parameters must be finite")
    return theta


def homogeneous_theta(theta: Any) -> Any:
    """theta for the one-epoch path: (P,) as given, or the single row of a (1, P) array."""
    if np.ndim(theta) == 2 and np.shape(theta)[0] == 1:
        return theta[0]
    return theta


def split_epochs(epochs: Any, theta: Any) -> tuple[jax.Array | None, Any]:
    """(checked breakpoints, theta) when `epochs` has breakpoints; else (None, theta of
    the one-epoch path), so None or an empty `epochs` is the homogeneous chain."""
    if epochs is None:
        return None, theta
    tau = check_epochs(epochs)
    return (tau, theta) if tau is not None else (None, homogeneous_theta(theta))


def epoch_starts(tau: jax.Array) -> jax.Array:
    """tau_0 = 0, tau_1, ..., tau_{E-1}: the start of each epoch, shape (E,)."""
    return jnp.concatenate([jnp.zeros((1,), tau.dtype), tau])


def epoch_index(times: jax.Array, tau: jax.Array) -> jax.Array:
    """The epoch of each time: e with tau_e <= t < tau_{e+1} (a breakpoint opens its epoch)."""
    return jnp.sum(times[..., None] >= tau, axis=-1)


def check_concrete_times(times: Any, name: str = "times") -> None:
    """Concrete times must be finite and >= 0 (traced ones are checked by the kernels)."""
    if not _concrete(times):
        return
    arr = np.asarray(times, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}] (flattened) is {float(arr[i])!r}; times must be finite and >= 0")
