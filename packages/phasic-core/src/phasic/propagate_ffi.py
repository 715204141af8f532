"""The chain's state from any start, with stacked reward layers, and per-vertex moments.

`propagate` evolves row vectors x_0..x_{L-1} over all vertices of a continuous graph by
the block generator

    x_0' = x_0 G,    x_j' = x_j G + x_{j-1} R    (R = diag(rewards)),

from x(0) = start, and returns x(t), its time derivative dx(t) = x(t)·𝒢 and the
accumulated time acc(t) = ∫_0^t x_0(s) ds (transient vertices). With layer 0 a
distribution and the others zero, x_j(t)[v] = E[Y_t^j / j!; X_t = v] for the reward
accumulated up to t, Y_t = ∫_0^t r(X_s) ds. `vertex_moments` gives E[Y^k | X_0 = v] for
the reward accumulated until absorption. Together they are the building blocks of
time-inhomogeneous (epoch) models: the end state of one epoch is the start of the next.

Both call C++ kernels through the XLA FFI (uniformization at the largest exit rate for
`propagate`, the moments' elimination solve for `vertex_moments`) and are pure: usable
under jit and vmap, with exact first derivatives (forward and reverse mode) in theta,
and for `propagate` also in start (it is linear in start; the reverse mode runs the
adjoint sweep) and in times. Rewards are data.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from ._ext import core
from .ffi import (
    _as_f64,
    _check_nr_moments,
    _first_order_only,
    _info,
    _is_zero,
    _jvp_out,
    _prepare_rewards,
    _prepare_theta,
    _sds,
    _setup,
    _theta_and_rewards_fn,
    _varying_like,
)
from .graph import Graph

_REWARDS_TANGENT = (
    "propagate is differentiable in theta, start and times, not in rewards; rewards "
    "received a tangent. Treat rewards as data: wrap them in jax.lax.stop_gradient(...)."
)
_SECOND_ORDER = (
    "propagate: phasic computes exact first derivatives (jax.grad, jacrev, jacfwd); second "
    "and higher derivatives (jax.hessian, grad of grad) are not implemented."
)


def _check_continuous(info: Any, name: str) -> None:
    if info.discrete:
        raise ValueError(
            f"{name} supports continuous graphs only (it uniformizes a rate matrix); this "
            "graph is discrete. For a discrete graph use compute_state_probabilities_ffi "
            "(exact stepping)."
        )


@functools.lru_cache(maxsize=64)
def _transient(digest: str) -> np.ndarray:
    """1.0 on transient vertices, 0.0 elsewhere: acc grows only there."""
    return core().transient_indicator(digest)


# -- the linear map start -> (x, dx, acc) and its transpose, as primitives -------------
#
# The start tangent of propagate is propagate of the tangent. For reverse mode JAX must
# transpose that map; an FFI call is opaque to it, so the map and its adjoint are two
# primitives that name each other as their transposes.


def _ffi_outputs(target: str, shapes: list[tuple[int, ...]]) -> Any:
    return jax.ffi.ffi_call(target, tuple(_sds(*s) for s in shapes))


def _start_map_impl(theta: Any, times: Any, rewards: Any, start: Any, *, digest: str) -> list:
    batch, t = theta.shape[:-1], times.shape[-1]
    layers, v = start.shape[-2:]
    call = _ffi_outputs("phasic_propagate", [(*batch, t, layers, v), (*batch, t, layers, v),
                                             (*batch, t, v), (*batch, t, layers, v)])
    x, dx, acc, _ = call(theta, start, times, rewards, digest=digest)
    return [x, dx, acc]


def _start_map_abstract(theta: Any, times: Any, rewards: Any, start: Any, *, digest: str) -> list:
    # theta's type with another shape: the operands share their varying mesh axes
    # (_bind), and the outputs vary over the same ones
    batch, t = theta.shape[:-1], times.shape[-1]
    layers, v = start.shape[-2:]
    return [theta.update(shape=(*batch, t, layers, v)), theta.update(shape=(*batch, t, layers, v)),
            theta.update(shape=(*batch, t, v))]


def _adjoint_impl(theta: Any, times: Any, rewards: Any, gx: Any, gdx: Any, gacc: Any, *,
                  digest: str) -> list:
    call = _ffi_outputs("phasic_propagate_adjoint", [gx.shape[:-3] + gx.shape[-2:]])
    return [call(theta, times, rewards, gx, gdx, gacc, digest=digest)[0]]


def _adjoint_abstract(theta: Any, times: Any, rewards: Any, gx: Any, gdx: Any, gacc: Any, *,
                      digest: str) -> list:
    return [theta.update(shape=gx.shape[:-3] + gx.shape[-2:])]


_start_map_p = Primitive("phasic_propagate_start_map")
_adjoint_p = Primitive("phasic_propagate_adjoint")
for _p, _impl, _abstract in ((_start_map_p, _start_map_impl, _start_map_abstract),
                             (_adjoint_p, _adjoint_impl, _adjoint_abstract)):
    _p.multiple_results = True
    _p.def_impl(_impl)
    _p.def_abstract_eval(_abstract)
    mlir.register_lowering(_p, mlir.lower_fun(_impl, multiple_results=True))

_N_FIXED = 3  # theta, times, rewards: inputs in which both maps are not linear


def _bind(prim: Primitive, *args: Any, **params: Any) -> list:
    """prim.bind with every operand cast to vary over the union of their varying mesh
    axes (inside shard_map; a no-op outside), so the outputs' type is that union. The
    casts sit on the inputs, where their transposes (sums over the axes) are right."""
    return prim.bind(*_varying_like(tuple(args), *args), **params)


def _batch_rule(prim: Primitive) -> Any:
    """vmap: every operand gets the batch axis first (the kernels loop over it)."""
    def rule(args: tuple, dims: tuple, **params: Any) -> tuple:
        # an unbatched operand has dimension None (batching.not_mapped, not exported)
        size = next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)
        moved = [jnp.broadcast_to(a, (size, *a.shape)) if d is None
                 else jnp.moveaxis(a, d, 0) for a, d in zip(args, dims, strict=True)]
        out = _bind(prim, *moved, **params)
        return out, [0] * len(out)
    return rule


def _jvp_rule(prim: Primitive) -> Any:
    """Linear in the operands after the first three; derivatives in those are refused."""
    def rule(primals: tuple, tangents: tuple, **params: Any) -> tuple:
        if any(type(t) is not ad.Zero for t in tangents[:_N_FIXED]):
            raise NotImplementedError(_SECOND_ORDER)
        out = _bind(prim, *primals, **params)
        lin = [ad.instantiate_zeros(t) for t in tangents[_N_FIXED:]]
        return out, _bind(prim, *primals[:_N_FIXED], *lin, **params)
    return rule


def _start_map_transpose(cts: list, theta: Any, times: Any, rewards: Any, start: Any, *,
                         digest: str) -> list:
    assert ad.is_undefined_primal(start)
    gx, gdx, gacc = (jnp.zeros(c.aval.shape, c.aval.dtype) if type(c) is ad.Zero else c
                     for c in cts)
    (g,) = _bind(_adjoint_p, theta, times, rewards, gx, gdx, gacc, digest=digest)
    return [None, None, None, g]


def _adjoint_transpose(cts: list, theta: Any, times: Any, rewards: Any, gx: Any, gdx: Any,
                       gacc: Any, *, digest: str) -> list:
    (ct,) = cts
    if type(ct) is ad.Zero:
        ct = jnp.zeros(ct.aval.shape, ct.aval.dtype)
    x, dx, acc = _bind(_start_map_p, theta, times, rewards, ct, digest=digest)
    return [None, None, None, x, dx, acc]


for _p in (_start_map_p, _adjoint_p):
    batching.primitive_batchers[_p] = _batch_rule(_p)
    ad.primitive_jvps[_p] = _jvp_rule(_p)
ad.primitive_transposes[_start_map_p] = _start_map_transpose
ad.primitive_transposes[_adjoint_p] = _adjoint_transpose


# -- propagate ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _propagate_fn(text: str) -> Any:
    """custom_jvp over phasic_propagate(theta, start (L, V), times (T,), rewards)."""
    info = _info(text)
    v, p, digest = info.vertices_length, info.param_length, info.digest

    def shapes(start: Any, times: Any, jac: bool) -> tuple:
        layers, t = start.shape[0], times.shape[0]
        out = [(t, layers, v), (t, layers, v), (t, v), (t, layers, v)]
        if jac:
            out += [(t, layers, v, p), (t, layers, v, p), (t, v, p)]
        return tuple(_sds(*s) for s in out)

    def kernel(theta: Any, start: Any, times: Any, rewards: Any, jac: bool = False) -> tuple:
        target = "phasic_propagate_jac" if jac else "phasic_propagate"
        call = jax.ffi.ffi_call(target, shapes(start, times, jac), vmap_method="broadcast_all")
        # behind a rule that refuses second derivatives (the plain call too: the time
        # and start tangents use its dx and ddx)
        call = _first_order_only(functools.partial(call, digest=digest),
                                 "derivative of propagate")
        return _varying_like(call(theta, start, times, rewards), theta, start, times, rewards)

    @jax.custom_jvp
    def prop(theta: Any, start: Any, times: Any, rewards: Any) -> tuple:
        return tuple(kernel(theta, start, times, rewards)[:3])

    @functools.partial(prop.defjvp, symbolic_zeros=True)
    def _(primals: tuple, tangents: tuple) -> tuple:
        theta, start, times, rewards = primals
        dtheta, dstart, dtimes, drewards = tangents
        if not _is_zero(drewards):
            raise TypeError(_REWARDS_TANGENT)
        if _is_zero(dtheta):
            x, dx, acc, ddx = kernel(theta, start, times, rewards)
            tangent = [jnp.zeros_like(x), jnp.zeros_like(dx), jnp.zeros_like(acc)]
        else:
            x, dx, acc, ddx, jx, jdx, jacc = kernel(theta, start, times, rewards, jac=True)
            tangent = [_jvp_out(jx, dtheta), _jvp_out(jdx, dtheta), _jvp_out(jacc, dtheta)]
        if not _is_zero(dtimes):  # d/dt: x' = dx, dx' = ddx, acc' = x_0 on transient vertices
            tangent[0] = tangent[0] + dx * dtimes[:, None, None]
            tangent[1] = tangent[1] + ddx * dtimes[:, None, None]
            tangent[2] = tangent[2] + x[:, 0, :] * _transient(digest) * dtimes[:, None]
        if not _is_zero(dstart):  # linear in start
            sx, sdx, sacc = _bind(_start_map_p, theta, times, rewards, dstart, digest=digest)
            tangent = [tangent[0] + sx, tangent[1] + sdx, tangent[2] + sacc]
        return (x, dx, acc), tuple(tangent)

    return prop


def propagate(
    structure_json: str | Graph | Mapping[str, Any],
    theta: Any,
    start: Any,
    times: Any,
    rewards: Any = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The layered state at each time from `start`: (x, dx, acc).

    start is (L, V) float64 with L >= 1 layers over all V vertices (index 0 the starting
    vertex, absorbing vertices included); mass on vertex 0 leaves it at once by the
    graph's initial distribution, so start = e_0 (one layer) is the graph's own start.
    times is (T,) with finite times >= 0; rewards (V,) >= 0 or None (1 on every
    transient vertex); only transient vertices' rewards are used, and only when L > 1.

    With 𝒢 the block generator [[G, R, 0], [0, G, R], [0, 0, G]] (L blocks, G the
    generator over all vertices, R = diag(rewards)), x(t) = start·exp(𝒢 t):

    - x (T, L, V): x_0 the state probabilities from start (vertex 0 holds 0), and for a
      start on layer 0 alone x_j[v] = E[Y_t^j / j!; X_t = v], Y_t = ∫_0^t r(X_s) ds;
    - dx (T, L, V): the time derivative x(t)·𝒢 (the pdf is its layer-0 sum over the
      absorbing vertices);
    - acc (T, V): ∫_0^t x_0(s) ds on transient vertices (0 elsewhere).

    With L = 1 and start = e_0, x[:, 0] and acc equal compute_state_probabilities_ffi
    and compute_accumulated_visiting_time_ffi. Continuous graphs only. Differentiable
    (first order, forward and reverse) in theta, start and times; rewards are data.
    """
    text, info = _setup(structure_json)
    _check_continuous(info, "propagate")
    theta = _prepare_theta(theta, info)
    v = info.vertices_length
    start = _as_f64(start, "start")
    if start.ndim != 2 or start.shape[1] != v or start.shape[0] < 1:
        raise ValueError(
            f"start must have shape (layers, {v}) with layers >= 1 (one row per layer, one "
            f"column per vertex), got shape {start.shape}; a single distribution p is "
            "p[None, :], and many starts are evaluated with jax.vmap"
        )
    times = _as_f64(times, "times")
    if times.ndim != 1:
        raise ValueError(
            f"times must be 1-D, shape (T,), got shape {times.shape}; one time t is "
            "jnp.atleast_1d(t), and many time vectors are evaluated with jax.vmap"
        )
    rewards = _prepare_rewards(rewards, info)
    return _propagate_fn(text)(theta, start, times, rewards)


# -- vertex_moments -----------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _vertex_moments_fn(text: str, nr_moments: int) -> Any:
    v = _info(text).vertices_length
    return _theta_and_rewards_fn(text, "phasic_vertex_moments", lambda _: (nr_moments, v),
                                 "derivative of vertex moments",
                                 nr_moments=np.int64(nr_moments))


def vertex_moments(
    structure_json: str | Graph | Mapping[str, Any],
    theta: Any,
    nr_moments: int,
    rewards: Any = None,
) -> jax.Array:
    """E[Y^k | X_0 = v] for k = 1..nr_moments and every vertex v: shape (nr_moments, V).

    Y is the reward accumulated until absorption (rewards (V,) >= 0; None: the time,
    r = 1; only transient vertices' rewards count). Absorbing vertices get 0; the
    starting vertex 0 gets the graph's own moments (it leaves at once by the initial
    distribution), as compute_moments_ffi. Discrete graphs: Y is the sum of the rewards
    of the visited steps. Differentiable in theta (first order).
    """
    text, info = _setup(structure_json)
    theta = _prepare_theta(theta, info)
    k = _check_nr_moments(nr_moments)
    rewards = _prepare_rewards(rewards, info)
    return _vertex_moments_fn(text, k)(theta, rewards)


__all__ = ["propagate", "vertex_moments"]
