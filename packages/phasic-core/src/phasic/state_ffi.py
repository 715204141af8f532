"""JAX functions for the chain's state at given times.

`compute_state_probabilities_ffi` gives P(X_t = v) for every vertex v and
`compute_accumulated_visiting_time_ffi` the expected time spent in each vertex during
[0, t] (discrete graphs: the expected number of visits among steps 0..t-1). Both call
the FFI target `phasic_state_at_time` (uniformization for continuous graphs, exact
stepping for discrete ones); `phasic_state_at_time_jac` adds the exact Jacobian in
theta from forward-mode dual numbers. Pure, usable under jit and vmap, differentiable
in theta (first derivatives).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax

from .ffi import (
    _as_f64,
    _first_order_only,
    _flat,
    _info,
    _is_zero,
    _jvp_out,
    _prepare_theta,
    _refuse_tangent,
    _sds,
    _setup,
    _varying_like,
)
from .graph import Graph


@functools.lru_cache(maxsize=64)
def _state_fn(text: str) -> Any:
    """A custom_jvp over phasic_state_at_time(theta, times (T,)) -> (prob, acc), each (T, V)."""
    info = _info(text)
    v = info.vertices_length
    p = info.param_length

    @jax.custom_jvp
    def state(theta: jax.Array, times: jax.Array) -> tuple:
        t = times.shape[0]
        call = jax.ffi.ffi_call("phasic_state_at_time", (_sds(t, v), _sds(t, v)),
                                vmap_method="broadcast_all")
        return _varying_like(call(theta, times, digest=info.digest), theta, times)

    @functools.partial(state.defjvp, symbolic_zeros=True)
    def _(primals: tuple, tangents: tuple) -> tuple:
        theta, times = primals
        dtheta, dtimes = tangents
        _refuse_tangent(dtimes, "times")
        t = times.shape[0]
        call = jax.ffi.ffi_call("phasic_state_at_time_jac",
                                (_sds(t, v), _sds(t, v), _sds(t, v, p), _sds(t, v, p)),
                                vmap_method="broadcast_all")
        call = _first_order_only(functools.partial(call, digest=info.digest),
                                 "derivative of a state probability")
        live = [] if _is_zero(dtheta) else [dtheta]
        prob, acc, jp, ja = _varying_like(call(theta, times), theta, times, *live)
        return (prob, acc), (_jvp_out(jp, dtheta), _jvp_out(ja, dtheta))

    return state


def _state_call(structure_json: Any, theta: Any, times: Any, which: int) -> jax.Array:
    """Validate, run the kernel on flat times, keep output `which` (0 prob, 1 acc)."""
    text, info = _setup(structure_json)
    theta = _prepare_theta(theta, info)
    times = _as_f64(times, "times")
    if times.ndim > 1:
        raise ValueError(
            f"times must be a scalar or 1-D, got shape {times.shape}; flatten it or use jax.vmap"
        )
    out = _state_fn(text)(theta, _flat(times))[which]
    return out[0] if times.ndim == 0 else out


def _epoch_or_state_call(structure_json: Any, theta: Any, times: Any, epochs: Any,
                         which: int) -> jax.Array:
    """The epoch composition (phasic.epoch_ffi) when `epochs` has breakpoints, else the
    one-epoch kernel: output `which` (0: probabilities, 1: accumulated time)."""
    if epochs is not None:
        from .epochs import split_epochs

        tau, theta = split_epochs(epochs, theta)
        if tau is not None:
            from .epoch_ffi import epoch_state

            return epoch_state(structure_json, theta, times, tau, which)
    return _state_call(structure_json, theta, times, which)


def compute_state_probabilities_ffi(
    structure_json: str | Graph | Mapping[str, Any], theta: Any, times: Any,
    epochs: Any = None,
) -> jax.Array:
    """P(X_t = v) for each time t and vertex v: shape (T, V) (a scalar time: (V,)).

    Index 0 is the starting vertex (always 0: the chain leaves it at once); an
    absorbing vertex holds the probability of absorption there by t (a defect, start
    mass on an absorbing vertex, is there from t = 0); each row sums to 1. On a
    discrete graph t counts steps (whole numbers) and row t is the distribution after
    t steps. Times must be finite and >= 0. Differentiable in theta.

    With `epochs` (breakpoints, theta of shape (E, P); see `phasic.epochs`; continuous
    graphs only): the distribution of the chain whose parameters change at the
    breakpoints, differentiable in theta and in the breakpoints.
    """
    return _epoch_or_state_call(structure_json, theta, times, epochs, 0)


def compute_accumulated_visiting_time_ffi(
    structure_json: str | Graph | Mapping[str, Any], theta: Any, times: Any,
    epochs: Any = None,
) -> jax.Array:
    """E[∫_0^t 1{X_s = v} ds] for each time t and vertex v: shape (T, V) (scalar: (V,)).

    Absorbing vertices and the starting vertex get 0, so each row sums to E[min(T, t)].
    On a discrete graph it is the expected number of visits to v among steps 0..t-1.
    Differentiable in theta. With `epochs` (theta of shape (E, P)), as
    `compute_state_probabilities_ffi`: the time accumulates over the epochs.
    """
    return _epoch_or_state_call(structure_json, theta, times, epochs, 1)


__all__ = ["compute_accumulated_visiting_time_ffi", "compute_state_probabilities_ffi"]
