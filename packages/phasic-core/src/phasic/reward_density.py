"""The distribution of a reward-weighted time, from the C++ kernels, differentiable in theta.

For rewards r >= 0 with one entry per vertex (index 0 is the starting vertex; the
entries of the starting and absorbing vertices have no effect), Y is the integral of
r(X_t) dt over the time before absorption (continuous graphs) or the sum of r over the
visited transient states (discrete graphs, whole-number rewards). The kernel
transforms the graph per theta: a vertex's rates are divided by its reward, a vertex
with reward 0 takes no time and is eliminated numerically, so derivatives in theta
stay exact with zero rewards.

The atom at Y = 0 (the defect: mass that starts in, or reaches, absorption through
zero-reward vertices only) is not part of a continuous graph's density, which then
integrates to 1 minus the atom; a discrete graph's pmf(0) includes it. All-zero
transient rewards give Y = 0 surely: density 0 everywhere, discrete pmf(0) = 1.

Rewards are data: a tangent for them raises TypeError (wrap them in
`jax.lax.stop_gradient`). One FFI call serves R reward vectors, each at its own row of
times, and `jax.vmap` over rewards (or theta, or times) stays one call.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import ffi


@functools.lru_cache(maxsize=64)
def _reward_fn(text: str, discrete: bool, log: bool) -> Any:
    """A custom_jvp over phasic_reward_[log_]pmf: (theta, times (R, T), rewards (R, V)) -> (R, T)."""
    info = ffi._info(text)
    attrs = dict(digest=info.digest, discrete=discrete)
    p = info.param_length
    target = "phasic_reward_log_pmf" if log else "phasic_reward_pmf"

    @jax.custom_jvp
    def reward_pmf(theta: jax.Array, times: jax.Array, rewards: jax.Array) -> jax.Array:
        call = jax.ffi.ffi_call(target, ffi._sds(*times.shape), vmap_method="broadcast_all")
        return ffi._varying_like(call(theta, times, rewards, **attrs), theta, times, rewards)

    @functools.partial(reward_pmf.defjvp, symbolic_zeros=True)
    def _(primals: tuple, tangents: tuple) -> tuple:
        theta, times, rewards = primals
        dtheta, dtimes, drewards = tangents
        ffi._refuse_tangent(dtimes, "times")
        ffi._refuse_tangent(drewards, "rewards")
        call = jax.ffi.ffi_call(f"{target}_jac", (ffi._sds(*times.shape), ffi._sds(*times.shape, p)),
                                vmap_method="broadcast_all")
        what = "derivative of a reward-weighted log pmf" if log else "derivative of a reward-weighted pmf"
        call = ffi._first_order_only(functools.partial(call, **attrs), what)
        value, jac = ffi._varying_like(call(theta, times, rewards), theta, times, rewards, dtheta)
        return value, ffi._jvp_out(jac, dtheta)

    return reward_pmf


def _check_concrete_rewards(rewards: jax.Array, discrete: bool) -> None:
    """Early errors naming the entry, for rewards known at trace time (the kernel
    checks traced ones at run time)."""
    if isinstance(rewards, jax.core.Tracer):
        return
    r = np.asarray(rewards)
    bad = np.argwhere(~np.isfinite(r) | (r < 0))
    if bad.size:
        at = tuple(int(i) for i in bad[0])
        raise ValueError(f"rewards{list(at)} is {float(r[at])!r}; rewards must be finite and >= 0")
    if discrete:
        frac = np.argwhere(r != np.floor(r))
        if frac.size:
            at = tuple(int(i) for i in frac[0])
            raise ValueError(
                f"rewards{list(at)} is {float(r[at])!r}; a discrete graph's rewards must be whole "
                "numbers (each visit to a vertex adds its reward to Y)"
            )


def prepare_rewards(rewards: Any, info: Any, discrete: bool) -> jax.Array:
    """Rewards as float64 of shape (V,) or (R, V), checked; ValueError naming the problem."""
    rewards = ffi._as_f64(rewards, "rewards")
    v = info.vertices_length
    if rewards.ndim not in (1, 2) or rewards.shape[-1] != v or rewards.size == 0:
        raise ValueError(
            f"rewards must have shape ({v},) (one entry per vertex) or (R, {v}) for R >= 1 "
            f"reward vectors, got shape {rewards.shape}"
        )
    _check_concrete_rewards(rewards, discrete)
    return rewards


def reward_distribution(structure_json: Any, theta: Any, times: Any, discrete: bool,
                        rewards: Any, log: bool) -> jax.Array:
    """Y's pdf/pmf (or its log) at `times`: shaped like times for rewards (V,), and
    (R, *times.shape) for rewards (R, V), all R in one FFI call."""
    text, info = ffi._setup(structure_json, discrete)
    discrete = ffi._check_discrete(discrete, info)
    theta = ffi._prepare_theta(theta, info)
    rewards = prepare_rewards(rewards, info, discrete)
    times = ffi._as_f64(times, "times")
    fn = _reward_fn(text, discrete, log)
    flat = ffi._flat(times)
    if rewards.ndim == 1:
        return ffi._unflat(fn(theta, flat[None, :], rewards[None, :])[0], times.shape)
    rows = jnp.broadcast_to(flat, (rewards.shape[0], flat.shape[0]))
    return fn(theta, rows, rewards).reshape((rewards.shape[0], *times.shape))


def reward_rows(structure_json: Any, theta: Any, times: Any, rewards: Any, discrete: bool,
                log: bool = False) -> jax.Array:
    """pdf/pmf (or log) of reward row i at its own row of times, in one FFI call:
    times (R, ...) and rewards (R, V) -> shape of times."""
    text, info = ffi._setup(structure_json, discrete)
    discrete = ffi._check_discrete(discrete, info)
    theta = ffi._prepare_theta(theta, info)
    rewards = prepare_rewards(rewards, info, discrete)
    times = ffi._as_f64(times, "times")
    if rewards.ndim != 2 or times.ndim < 1 or times.shape[0] != rewards.shape[0]:
        raise ValueError(
            f"with rewards of shape (R, V) = {rewards.shape}, times must have shape (R, ...): "
            f"one row of observations per reward vector, got shape {times.shape}"
        )
    rows = times.reshape(times.shape[0], -1)
    return _reward_fn(text, discrete, log)(theta, rows, rewards).reshape(times.shape)
