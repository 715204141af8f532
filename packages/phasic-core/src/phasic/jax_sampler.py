"""`phasic.sample`: exact draws of T (or reward totals) driven by a JAX PRNG key.

The draws come from the C++ kernel (`sampler.cpp`, FFI target `phasic_sample`),
which walks the jump chain once per draw. Its random numbers are Philox-4x32-10
blocks: draw i uses the blocks with counter (i, visit), under a 64-bit Philox key
taken from the JAX key with `jax.random.bits`. So a draw depends on the key and its
index only: the same key gives the same draws on any number of OpenMP threads or
devices, under jit and vmap, and a typed key and its raw `key_data` agree.

Under `jax.vmap` over θ with one key, every θ reuses the same random numbers
(common random numbers); vmap over keys (e.g. `jax.random.split`) for independent
draws per batch element.

Draws are not differentiable in θ: the jump choices are discontinuous in θ, so no
pathwise derivative exists. A θ tangent raises a TypeError naming the fix
(`jax.lax.stop_gradient`, or the exact densities and moments, which are
differentiable).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from .ffi import _as_f64, _check_discrete, _info, _prepare_theta, _setup, _varying_like
from .graph import Graph
from .sampling import check_output_size

_NOT_DIFFERENTIABLE = {
    "theta": "phasic.sample: draws are not differentiable in theta (which vertex comes next "
             "jumps as theta changes, so no pathwise derivative exists). Wrap theta in "
             "jax.lax.stop_gradient(...) to use the draws as data, or differentiate the "
             "exact densities and moments (compute_pmf_ffi, compute_moments_ffi) instead.",
    "rewards": "phasic.sample: draws are not differentiable in rewards (no derivative "
               "is carried through the sampler). Wrap rewards in jax.lax.stop_gradient(...) "
               "to use the draws as data.",
}


def _check_shape(shape: Any) -> tuple[int, ...]:
    """`shape` (an int or a sequence of ints >= 0) as a tuple."""
    dims = (shape,) if isinstance(shape, int | np.integer) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}") from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int | np.integer):
            raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}")
        if d < 0:
            raise ValueError(f"shape must not have negative entries, got {shape!r}")
    return tuple(int(d) for d in dims)


def _key_words(key: Any) -> jax.Array:
    """The two uint32 words of the Philox key for a typed JAX key or a raw uint32[2] key."""
    if isinstance(key, jax.Array | np.ndarray) and jax.dtypes.issubdtype(
            key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(
                f"key must be a single PRNG key, got an array of keys of shape {key.shape}; "
                "use jax.vmap over the keys for a batch of samples"
            )
        return jax.random.bits(key, (2,), jnp.uint32)
    dtype = getattr(key, "dtype", None)
    if dtype is None or np.dtype(dtype) != np.uint32 or np.shape(key) != (2,):
        raise TypeError(
            "key must be a JAX PRNG key: jax.random.key(seed), or a raw key of dtype "
            f"uint32 and shape (2,) such as jax.random.PRNGKey(seed); got {key!r}"
        )
    return jax.random.bits(jax.random.wrap_key_data(jnp.asarray(key)), (2,), jnp.uint32)


def _reward_rows(rewards: Any, v: int) -> tuple[jax.Array, bool]:
    """Rewards as (R, V) rows and whether the caller gave a matrix (no rewards: one row
    of ones, whose total is T)."""
    if rewards is None:
        return jnp.ones((1, v), jnp.float64), False
    rewards = _as_f64(rewards, "rewards")
    matrix = rewards.ndim == 2
    rows = rewards if matrix else rewards.reshape(1, -1)
    if rewards.ndim not in (1, 2) or rows.shape[1] != v or rows.shape[0] < 1:
        raise ValueError(
            f"rewards must have shape ({v},) (one entry per vertex) or (R, {v}) with R >= 1 "
            f"reward vectors, got shape {rewards.shape}"
        )
    return rows, matrix


def _refuse(tangent: Any, name: str) -> None:
    if not isinstance(tangent, SymbolicZero):
        raise TypeError(_NOT_DIFFERENTIABLE[name])


@functools.lru_cache(maxsize=64)
def _sample_fn(text: str, discrete: bool, n_draws: int) -> Any:
    """A custom_jvp over phasic_sample: draws (n_draws, R) for (theta, words, rewards)."""
    attrs = dict(digest=_info(text).digest, discrete=discrete)

    @jax.custom_jvp
    def draws(theta: jax.Array, rewards: jax.Array, words: jax.Array) -> jax.Array:
        out = jax.ShapeDtypeStruct((n_draws, rewards.shape[0]), jnp.float64)
        call = jax.ffi.ffi_call("phasic_sample", out, vmap_method="broadcast_all")
        return _varying_like(call(theta, words, rewards, **attrs), theta, rewards, words)

    @functools.partial(draws.defjvp, symbolic_zeros=True)
    def _(primals: tuple, tangents: tuple) -> tuple:
        _refuse(tangents[0], "theta")
        _refuse(tangents[1], "rewards")
        out = draws(*primals)
        return out, jnp.zeros_like(out)

    return draws


def sample(
    structure: str | Graph | Mapping[str, Any],
    theta: Any,
    key: Any,
    shape: int | tuple[int, ...],
    rewards: Any = None,
    discrete: bool = False,
) -> jax.Array:
    """Exact draws of the absorption time T (or of accumulated rewards) from a PRNG key.

    `key` is a typed key (`jax.random.key(seed)`) or a raw uint32[2] key
    (`jax.random.PRNGKey(seed)`); the same key gives the same draws on any thread
    or device count. `shape` is the shape of the draws. `rewards` of shape (V,)
    gives draws of Y = the reward accumulated until absorption; of shape (R, V),
    draws of shape `shape + (R,)`: the R totals of the same path. Discrete graphs
    (`discrete=True`) give whole numbers of steps. Works under jit and vmap (over
    keys, θ or rewards). Not differentiable in θ: a θ tangent raises TypeError.
    """
    text, info = _setup(structure, discrete)
    discrete = _check_discrete(discrete, info)
    theta = _prepare_theta(theta, info)
    dims = _check_shape(shape)
    rows, matrix = _reward_rows(rewards, info.vertices_length)
    n_draws = math.prod(dims)
    check_output_size(n_draws * rows.shape[0], "phasic.sample")
    words = _key_words(key)
    out = _sample_fn(text, discrete, n_draws)(theta, rows, words)
    return out.reshape(dims + (rows.shape[0],)) if matrix else out.reshape(dims)
