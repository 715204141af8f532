"""The log-likelihood of observed absorption times, differentiable in theta.

`loglik` sums log f(t_i | theta) over the observations, where f is the density of a
continuous graph or the PMF of a discrete one. The logs come from C++ with scaled
sums (as `compute_log_pmf_ffi`), so a density of 1e-320, or one far below the float64
range, still gives a finite and accurate log; the gradient d/dtheta is exact. The sum
itself is taken in C++ too (one FFI call returns it with its gradient, whatever the
number of observations).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .ffi import _split_epochs, compute_log_pmf_ffi, summed_log_pmf
from .graph import Graph


def _check_concrete_times(times: Any, discrete: bool) -> None:
    """Early, precise errors for observations known at trace time.

    Traced observations (inside jit) are checked by the C++ kernel instead, which
    raises with the offending index at run time.
    """
    if isinstance(times, jax.core.Tracer):
        return
    try:
        t = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"observed_times must be numeric, got {times!r}") from exc
    flat = t.reshape(-1)
    bad = np.flatnonzero(~np.isfinite(flat) | (flat < 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"observed_times[{i}] (flattened) is {flat[i]!r}; absorption times must be "
            "finite and >= 0. Drop or fix that observation."
        )
    if discrete:
        frac = np.flatnonzero(flat != np.floor(flat))
        if frac.size:
            i = int(frac[0])
            raise ValueError(
                f"observed_times[{i}] (flattened) is {flat[i]!r}; a discrete graph's "
                "absorption times are whole numbers of steps."
            )


def loglik(
    structure: str | Graph | Mapping[str, Any],
    theta: Any,
    observed_times: Any,
    discrete: bool = False,
    rewards: Any = None,
    epochs: Any = None,
) -> jax.Array:
    """Log-likelihood sum_i log f(observed_times[i] | theta), a float64 scalar.

    Args:
        structure: the graph (JSON text from `Graph.to_json()`, a `Graph`, or a dict).
        theta: parameter vector, shape (param_length,).
        observed_times: absorption times, any shape (all are summed); whole numbers
            of steps for a discrete graph.
        discrete: True for a discrete-time graph (f is then the PMF).
        rewards: None, or one non-negative entry per vertex (shape (V,)): f is then
            the density of the reward-weighted time (its continuous part; see
            `phasic.reward_density`), or rewards of shape (R, V) with observations
            of shape (R, ...): row i of the observations under reward vector i.
        epochs: None, or breakpoints 0 < tau_1 < ... < tau_{E-1} (see
            `phasic.epochs`): theta then has shape (E, P), row e the parameters of
            epoch e (the last epoch runs for ever); continuous graphs without rewards.

    Returns:
        The log-likelihood; -inf only where some observation has probability exactly
        0 (for instance a discrete time 0 when the graph has no defect).

    Works under `jax.jit`, `jax.vmap` and `shard_map`, and `jax.grad` /
    `jax.value_and_grad` / `jax.jacfwd` with respect to theta (and to the
    breakpoints, with epochs) give exact derivatives.
    Negative or non-finite times raise ValueError (at call time when the times are
    concrete, at run time from the kernel when they are traced).
    """
    _check_concrete_times(observed_times, discrete)
    if epochs is not None:
        tau, one_epoch_theta = _split_epochs(epochs, theta)
        if tau is not None:
            return jnp.sum(compute_log_pmf_ffi(structure, theta, observed_times,
                                               discrete=discrete, rewards=rewards,
                                               epochs=epochs))
        epochs, theta = None, one_epoch_theta  # no breakpoints: the homogeneous chain
    if rewards is not None and np.ndim(rewards) == 2:
        from .reward_density import reward_rows

        return jnp.sum(reward_rows(structure, theta, observed_times, rewards, discrete, log=True))
    if rewards is not None:
        return jnp.sum(compute_log_pmf_ffi(structure, theta, observed_times,
                                           discrete=discrete, rewards=rewards))
    return summed_log_pmf(structure, theta, observed_times, discrete)
