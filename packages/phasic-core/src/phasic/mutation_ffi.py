"""The JAX function `compute_mutation_pmf_ffi`: the exact pmf of mutation counts.

Mutations fall at rate μ per unit of reward, K | Y ~ Poisson(μ Y) (phasic.mutations).
The FFI target `phasic_mutation_pmf` returns P(K_i = k) for R reward vectors and
k = 0..kmax; `phasic_mutation_pmf_jac` adds the exact Jacobian in (theta, μ) from
forward-mode dual numbers, μ being one more derivative direction. Like the functions
of phasic.ffi it is pure, works under jit and vmap (one FFI call for a batch) and is
differentiable in theta and in the mutation rate (first derivatives).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .ffi import (
    _as_f64,
    _first_order_only,
    _info,
    _is_zero,
    _prepare_theta,
    _refuse_tangent,
    _sds,
    _setup,
    _varying_like,
)
from .graph import Graph
from .mutations import check_kmax, check_reward_shape


@functools.lru_cache(maxsize=64)
def _mutation_pmf_fn(text: str, kmax: int) -> Any:
    """A custom_jvp over phasic_mutation_pmf(theta, rate (1,), rewards (R, V))."""
    info = _info(text)
    attrs = dict(digest=info.digest, kmax=np.int64(kmax))
    p = info.param_length

    @jax.custom_jvp
    def pmf(theta: jax.Array, rate: jax.Array, rewards: jax.Array) -> jax.Array:
        call = jax.ffi.ffi_call("phasic_mutation_pmf", _sds(rewards.shape[0], kmax + 1),
                                vmap_method="broadcast_all")
        return _varying_like(call(theta, rate, rewards, **attrs), theta, rate, rewards)

    @functools.partial(pmf.defjvp, symbolic_zeros=True)
    def _(primals: tuple, tangents: tuple) -> tuple:
        theta, rate, rewards = primals
        dtheta, drate, drewards = tangents
        _refuse_tangent(drewards, "rewards")
        r = rewards.shape[0]
        call = jax.ffi.ffi_call("phasic_mutation_pmf_jac",
                                (_sds(r, kmax + 1), _sds(r, kmax + 1, p + 1)),
                                vmap_method="broadcast_all")
        call = _first_order_only(functools.partial(call, **attrs),
                                 "derivative of a mutation pmf")
        live = [t for t in (dtheta, drate) if not _is_zero(t)]
        value, jac = _varying_like(call(theta, rate, rewards), theta, rate, rewards, *live)
        tangent = jnp.zeros(value.shape, value.dtype)
        if not _is_zero(dtheta):
            tangent = tangent + jac[..., :p] @ dtheta
        if not _is_zero(drate):
            tangent = tangent + jac[..., p] * drate[0]
        return value, tangent

    return pmf


def compute_mutation_pmf_ffi(
    structure_json: str | Graph | Mapping[str, Any],
    theta: Any,
    mutation_rate: Any,
    rewards: Any,
    kmax: int,
) -> jax.Array:
    """P(K = k), k = 0..kmax, for K | Y ~ Poisson(mutation_rate · Y), Y the reward-weighted time.

    `rewards` has shape (V,) (one finite, non-negative entry per vertex, index 0 the
    starting vertex; None: the time itself) giving shape (kmax + 1,), or (R, V) for R
    reward vectors at once (e.g. the SFS classes) giving shape (R, kmax + 1).
    `mutation_rate` is a scalar >= 0 (mutations per unit of reward), traceable.
    `kmax` is a static int, 0..100000. On a discrete graph each visit of vertex v adds
    Poisson(mutation_rate · r_v) mutations. Each value is exact; they are not
    renormalized, so 1 - sum is the probability of more than kmax mutations.
    Differentiable in theta and mutation_rate (not rewards); a defect (start mass on
    an absorbing vertex) adds to P(K = 0).
    """
    text, info = _setup(structure_json)
    kmax = check_kmax(kmax)
    theta = _prepare_theta(theta, info)
    rate = _as_f64(mutation_rate, "mutation_rate")
    if rate.shape != ():
        raise ValueError(
            f"mutation_rate must be a scalar (mutations per unit of reward), got shape "
            f"{rate.shape}; to evaluate many rates use jax.vmap"
        )
    v = info.vertices_length
    if rewards is None:
        rows, single = np.ones((1, v)), True
    else:
        rows = _as_f64(rewards, "rewards")
        single = check_reward_shape(rows.shape, v)
        rows = rows.reshape(1, -1) if single else rows
    out = _mutation_pmf_fn(text, kmax)(theta, rate.reshape(1), rows)
    return out[0] if single else out
