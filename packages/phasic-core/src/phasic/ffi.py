"""The JAX FFI functions: PDF/PMF, its logarithm, moments, PDF/PMF with moments at once, covariance.

Each is a pure function of its arguments. The graph does not travel with the call:
the Python call registers its JSON text once per content in a process-local C++
registry under its SHA-256 digest, and the FFI call carries only that digest as a
static attribute `digest` (64 hex characters, whatever the graph's size), so the
compiled program does not grow with the structure. The C++ side finds the compiled
structure in a per-thread LRU cache by digest, and recompiles it from the registered
text after an eviction. Tracing registers, so every process that traces a function
(jit, multi-process runs, a program loaded from JAX's persistent compilation cache)
has the structure its program names. `vmap_method="broadcast_all"` turns every vmap (over theta, times,
rewards, any mix, nested) into one FFI call whose leading dimensions are the batch;
the C++ side loops over it with OpenMP.

The structure argument is a `Graph`, its JSON text (`Graph.to_json()`) or the parsed
JSON dict, or upstream phasic's dict (`Graph.serialize()`, see `phasic.serialized`),
recognized by its keys and converted to our canonical JSON once per distinct content,
so equal dicts, and the graph's own `to_json()`, share one compiled structure.

All of them are differentiable with respect to theta (`jax.grad`, `jax.jacrev`,
`jax.jacfwd`, under jit, vmap and shard_map): each is a `jax.custom_jvp` whose rule
calls a companion FFI target (`phasic_*_jac`) that returns the values together with
their exact Jacobian in theta, computed in C++ with forward-mode dual numbers. The
tangent is Jacobian · tangent(theta). Tangents for `times` or `rewards` raise a
clear error instead of being silently dropped.

This module imports jax; `import phasic` does not, it loads this module on first use.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from ._ext import core
from .graph import Graph
from .structure_transport import (  # noqa: F401  (re-exported: phasic.ffi's public names)
    _ensure_registered,
    _info,
    _structure_text,
    _StructureInfo,
    cache_clear,
    cache_stats,
    set_cache_capacity,
    structure_key,
    text_digest,
)

X64_FIX = 'jax.config.update("jax_enable_x64", True)'


def _check_x64() -> None:
    if not jax.config.read("jax_enable_x64"):
        raise TypeError(
            "phasic's FFI functions compute in float64, but JAX's 64-bit mode is off "
            f"(arrays would silently become float32). Call {X64_FIX} before creating "
            "any arrays (or set JAX_ENABLE_X64=1)."
        )


def _as_f64(x: Any, name: str) -> jax.Array:
    """`x` as a float64 JAX value; explicit arrays of another dtype are an error."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:  # Python scalars and lists carry no dtype intent
        try:
            return jnp.asarray(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be numeric (float64), got {x!r}") from exc
    if np.dtype(dtype) != np.float64:
        raise TypeError(
            f"{name} has dtype {np.dtype(dtype)}; phasic's FFI functions need float64. "
            f"Convert it with jnp.asarray({name}, dtype=jnp.float64) and make sure "
            f"{X64_FIX} ran before arrays were created."
        )
    return jnp.asarray(x)


def _prepare_theta(theta: Any, info: _StructureInfo) -> jax.Array:
    theta = _as_f64(theta, "theta")
    p = info.param_length
    if theta.shape != (p,):
        raise ValueError(
            f"theta must have shape ({p},) for this structure (param_length = {p}), "
            f"got shape {theta.shape}; to evaluate many thetas use jax.vmap"
        )
    return theta


# "no rewards" is an empty operand; a numpy constant avoids a device op per eager call
_NO_REWARDS = np.zeros((0,), dtype=np.float64)


def _prepare_rewards(rewards: Any, info: _StructureInfo) -> jax.Array | np.ndarray:
    if rewards is None:
        return _NO_REWARDS
    rewards = _as_f64(rewards, "rewards")
    v = info.vertices_length
    if rewards.shape != (v,):
        raise ValueError(
            f"rewards must have one entry per vertex, shape ({v},), got shape {rewards.shape}"
        )
    return rewards


def _check_nr_moments(nr_moments: Any) -> int:
    if isinstance(nr_moments, bool) or not isinstance(nr_moments, (int, np.integer)):
        raise TypeError(f"nr_moments must be a Python int (static), got {nr_moments!r}")
    if nr_moments <= 0:
        raise ValueError(f"nr_moments must be >= 1, got {nr_moments}")
    limit = core().max_moments
    if nr_moments > limit:
        raise ValueError(
            f"nr_moments must be at most {limit}, got {nr_moments}: moment k of a "
            "continuous graph carries a factor k!, which overflows a double past k = 170"
        )
    return int(nr_moments)


def _check_discrete(discrete: Any, info: _StructureInfo) -> bool:
    if not isinstance(discrete, (bool, np.bool_)):
        raise TypeError(f"discrete must be a Python bool (static), got {discrete!r}")
    if bool(discrete) != info.discrete:
        graph_kind = "discrete" if info.discrete else "continuous"
        raise ValueError(
            f"discrete={bool(discrete)} but the structure is a {graph_kind} graph; "
            f"pass discrete={info.discrete}"
        )
    return bool(discrete)


def _flat(x: jax.Array) -> jax.Array:
    """x as 1-D (no reshape op when it already is: eager calls pay per op)."""
    return x if x.ndim == 1 else x.reshape(-1)


def _unflat(y: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return y if y.shape == shape else y.reshape(shape)


def _setup(structure_json: Any, discrete: Any = None) -> tuple[str, _StructureInfo]:
    _check_x64()
    kind = bool(discrete) if isinstance(discrete, (bool, np.bool_)) else None
    text = _structure_text(structure_json, kind)
    info = _info(text)
    _ensure_registered()
    return text, info


# -- differentiable FFI calls ----------------------------------------------------------
#
# One custom_jvp function per (structure, static options), cached: the structure's
# digest and the options are closed over, so only arrays flow through JAX's tracing.

_GRAD_ONLY_THETA = (
    "phasic's FFI functions are differentiable with respect to theta only; {name} "
    "received a tangent. Treat {name} as data: wrap it in jax.lax.stop_gradient(...) "
    "or differentiate a function of theta alone."
)


def _is_zero(tangent: Any) -> bool:
    return isinstance(tangent, SymbolicZero)


def _refuse_tangent(tangent: Any, name: str) -> None:
    if not _is_zero(tangent):
        raise TypeError(_GRAD_ONLY_THETA.format(name=name))


def _jvp_out(jac: jax.Array, dtheta: Any) -> jax.Array:
    """Jacobian [..., P] contracted with the theta tangent (zeros for a symbolic zero)."""
    if _is_zero(dtheta):
        return jnp.zeros(jac.shape[:-1], jac.dtype)
    return jac @ dtheta


def _vma(x: Any) -> frozenset:
    """Mesh axes over which x varies inside shard_map (empty outside, or on old jax)."""
    typeof = getattr(jax, "typeof", None)
    if typeof is None:
        return frozenset()
    aval = typeof(x)
    mat = getattr(aval, "manual_axis_type", None)  # jax >= 0.9
    if mat is not None:
        return frozenset(mat.varying)
    return frozenset(getattr(aval, "vma", ()))  # jax 0.7 - 0.8


def _varying_like(outs: Any, *inputs: Any) -> Any:
    """Cast FFI outputs to vary over every manual axis an input varies over.

    An ffi_call's outputs carry no varying-axes type inside shard_map, while the
    tangents computed from them (Jacobian · varying tangent) do; custom_jvp requires
    the primal and tangent types to match, so the outputs are cast explicitly.
    """
    axes = frozenset().union(*(_vma(x) for x in inputs))
    if not axes or not hasattr(jax.lax, "pcast"):
        return outs

    def cast(y: jax.Array) -> jax.Array:
        missing = axes - _vma(y)
        return jax.lax.pcast(y, tuple(sorted(missing)), to="varying") if missing else y

    return jax.tree.map(cast, outs)


def _first_order_only(call: Any, name: str) -> Any:
    """`call` (a Jacobian FFI call) with a JVP rule that refuses second derivatives."""
    wrapped = jax.custom_jvp(call)

    @wrapped.defjvp
    def _(primals: tuple, tangents: tuple) -> tuple:
        raise NotImplementedError(
            f"{name}: phasic computes exact first derivatives in theta (jax.grad, jacrev, "
            "jacfwd); second and higher derivatives (jax.hessian, grad of grad) are not "
            "implemented."
        )

    return wrapped


def _sds(*shape: int) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, jnp.float64)


@functools.lru_cache(maxsize=64)
def _pmf_fn(text: str, discrete: bool) -> Any:
    return _per_time_fn(text, discrete, "phasic_pmf", "derivative of a pmf")


def _per_time_fn(text: str, discrete: bool, target: str, what: str, *,
                 jac_target: str | None = None, summed: bool = False,
                 times_name: str = "times") -> Any:
    """A custom_jvp over the FFI target `target` (one value per time, or with `summed`
    their sum) and its Jacobian companion (`target`_jac unless named)."""
    info = _info(text)
    attrs = dict(digest=info.digest, discrete=discrete)
    p = info.param_length
    jac_target = jac_target or f"{target}_jac"

    def shape(times: jax.Array) -> tuple[int, ...]:
        return () if summed else times.shape

    @jax.custom_jvp
    def per_time(theta: jax.Array, times: jax.Array) -> jax.Array:
        call = jax.ffi.ffi_call(target, _sds(*shape(times)), vmap_method="broadcast_all")
        return _varying_like(call(theta, times, **attrs), theta, times)

    @functools.partial(per_time.defjvp, symbolic_zeros=True)
    def _(primals: tuple, tangents: tuple) -> tuple:
        theta, times = primals
        dtheta, dtimes = tangents
        _refuse_tangent(dtimes, times_name)
        call = jax.ffi.ffi_call(
            jac_target, (_sds(*shape(times)), _sds(*shape(times), p)),
            vmap_method="broadcast_all")
        call = _first_order_only(functools.partial(call, **attrs), what)
        value, jac = _varying_like(call(theta, times), theta, times, dtheta)
        return value, _jvp_out(jac, dtheta)

    return per_time


def _theta_and_rewards_fn(text: str, target: str, shape: Any, what: str, **options: Any) -> Any:
    """A custom_jvp over the FFI target `target`(theta, rewards) and `target`_jac.

    `shape(rewards)` is the output shape for one theta; the Jacobian adds a last axis P.
    """
    info = _info(text)
    attrs = dict(digest=info.digest, **options)
    p = info.param_length

    @jax.custom_jvp
    def value_of(theta: jax.Array, rewards: jax.Array) -> jax.Array:
        call = jax.ffi.ffi_call(target, _sds(*shape(rewards)), vmap_method="broadcast_all")
        return _varying_like(call(theta, rewards, **attrs), theta, rewards)

    @functools.partial(value_of.defjvp, symbolic_zeros=True)
    def _(primals: tuple, tangents: tuple) -> tuple:
        theta, rewards = primals
        dtheta, drewards = tangents
        _refuse_tangent(drewards, "rewards")
        out = shape(rewards)
        call = jax.ffi.ffi_call(f"{target}_jac", (_sds(*out), _sds(*out, p)),
                                vmap_method="broadcast_all")
        call = _first_order_only(functools.partial(call, **attrs), what)
        value, jac = _varying_like(call(theta, rewards), theta, rewards, dtheta)
        return value, _jvp_out(jac, dtheta)

    return value_of


@functools.lru_cache(maxsize=64)
def _moments_fn(text: str, nr_moments: int) -> Any:
    return _theta_and_rewards_fn(text, "phasic_moments", lambda _: (nr_moments,),
                                 "derivative of moments", nr_moments=np.int64(nr_moments))


@functools.lru_cache(maxsize=64)
def _covariance_fn(text: str) -> Any:
    # rewards (R, V) -> the R x R matrix (inside vmap the shape is one batch element's)
    return _theta_and_rewards_fn(text, "phasic_covariance",
                                 lambda rewards: (rewards.shape[0], rewards.shape[0]),
                                 "derivative of a covariance")


@functools.lru_cache(maxsize=64)
def _pmf_and_moments_fn(text: str, discrete: bool, nr_moments: int) -> Any:
    info = _info(text)
    attrs = dict(digest=info.digest, discrete=discrete, nr_moments=np.int64(nr_moments))
    p = info.param_length

    @jax.custom_jvp
    def both(theta: jax.Array, times: jax.Array, rewards: jax.Array) -> tuple:
        call = jax.ffi.ffi_call("phasic_pmf_and_moments", (_sds(*times.shape), _sds(nr_moments)),
                                vmap_method="broadcast_all")
        return _varying_like(tuple(call(theta, times, rewards, **attrs)), theta, times, rewards)

    @functools.partial(both.defjvp, symbolic_zeros=True)
    def _(primals: tuple, tangents: tuple) -> tuple:
        theta, times, rewards = primals
        dtheta, dtimes, drewards = tangents
        _refuse_tangent(dtimes, "times")
        _refuse_tangent(drewards, "rewards")
        call = jax.ffi.ffi_call(
            "phasic_pmf_and_moments_jac",
            (_sds(*times.shape), _sds(*times.shape, p), _sds(nr_moments), _sds(nr_moments, p)),
            vmap_method="broadcast_all")
        call = _first_order_only(functools.partial(call, **attrs), "derivative")
        pmf, pmf_jac, mom, mom_jac = _varying_like(
            call(theta, times, rewards), theta, times, rewards, dtheta)
        return (pmf, mom), (_jvp_out(pmf_jac, dtheta), _jvp_out(mom_jac, dtheta))

    return both


@functools.lru_cache(maxsize=64)
def _log_pmf_fn(text: str, discrete: bool) -> Any:
    return _per_time_fn(text, discrete, "phasic_log_pmf", "derivative of a log pmf")


@functools.lru_cache(maxsize=64)
def _loglik_fn(text: str, discrete: bool) -> Any:
    """sum_i log f(times[i]) as one FFI call (phasic_loglik), with its gradient in theta.

    The sum is taken in C++ (one log per call rather than one per time, and no
    per-time gradient leaves the kernel); the value equals jnp.sum of
    compute_log_pmf_ffi up to rounding.
    """
    return _per_time_fn(text, discrete, "phasic_loglik", "derivative of loglik",
                        jac_target="phasic_loglik_grad", summed=True,
                        times_name="observed_times")


def summed_log_pmf(structure_json: Any, theta: Any, times: Any, discrete: bool) -> jax.Array:
    """sum of log pdf / log pmf over `times` (any shape), for one theta (see _loglik_fn)."""
    text, info = _setup(structure_json, discrete)
    discrete = _check_discrete(discrete, info)
    theta = _prepare_theta(theta, info)
    times = _as_f64(times, "observed_times")
    return _loglik_fn(text, discrete)(theta, _flat(times))


def _split_epochs(epochs: Any, theta: Any) -> tuple[Any, Any]:
    """phasic.epochs.split_epochs (imported here: phasic.epochs builds on this module)."""
    if epochs is None:
        return None, theta
    from .epochs import split_epochs

    return split_epochs(epochs, theta)


def _per_time_call(factory: Any, structure_json: Any, theta: Any, times: Any,
                   discrete: bool) -> jax.Array:
    """Validate the arguments, run `factory(text, discrete)` on flat times, restore the shape."""
    text, info = _setup(structure_json, discrete)
    discrete = _check_discrete(discrete, info)
    theta = _prepare_theta(theta, info)
    times = _as_f64(times, "times")
    out = factory(text, discrete)(theta, _flat(times))
    return _unflat(out, times.shape)


def compute_pmf_ffi(
    structure_json: str | Graph | Mapping[str, Any],
    theta: Any,
    times: Any,
    discrete: bool = False,
    rewards: Any = None,
    epochs: Any = None,
) -> jax.Array:
    """PDF (continuous graphs) or PMF (discrete graphs) at `times`, for one theta.

    `theta` has shape (param_length,); `times` any shape, and the result has the
    shape of `times`. Use `jax.vmap` for many thetas or time grids. Differentiable
    with respect to theta (exact derivatives from C++).

    With `rewards` (shape (V,), or (R, V) for R reward vectors, non-negative, whole
    numbers on discrete graphs): the pdf/pmf of the reward-weighted time Y instead,
    shaped like `times`, or (R, *times.shape) from one FFI call. A continuous density
    leaves out the atom at Y = 0 (the defect); a discrete pmf(0) includes it. See
    `phasic.reward_density`. Not differentiable in rewards.

    With `epochs` (breakpoints 0 < tau_1 < ... < tau_{E-1}, see `phasic.epochs`),
    `theta` has shape (E, P) and row e holds the parameters of epoch e; the last epoch
    runs for ever. Differentiable in theta and in the breakpoints. Continuous graphs
    without rewards only. `epochs=None` (or empty) is the homogeneous chain.
    """
    tau, theta = _split_epochs(epochs, theta)
    if tau is not None:
        from .epoch_ffi import checked_epoch_pdf

        return checked_epoch_pdf(structure_json, theta, times, discrete, rewards, tau,
                                 "compute_pmf_ffi")
    if rewards is not None:
        from .reward_density import reward_distribution

        return reward_distribution(structure_json, theta, times, discrete, rewards, log=False)
    return _per_time_call(_pmf_fn, structure_json, theta, times, discrete)


def compute_log_pmf_ffi(
    structure_json: str | Graph | Mapping[str, Any],
    theta: Any,
    times: Any,
    discrete: bool = False,
    rewards: Any = None,
    epochs: Any = None,
) -> jax.Array:
    """log PDF / log PMF at `times`, accurate however small the density.

    Computed in C++ with scaled sums: a density of 1e-320, or one far below the
    float64 range, has a finite and accurate log; the result is -inf only where the
    density is exactly 0 (e.g. a discrete PMF at 0 without a defect). Differentiable
    with respect to theta; d log f / d theta is exact (0 where f is exactly 0).
    With `rewards`, the log pdf/pmf of the reward-weighted time, as `compute_pmf_ffi`.

    With `epochs` (theta of shape (E, P), as `compute_pmf_ffi`): the log of the
    density composed over the epochs, accurate while the density is a normal float64.
    """
    tau, theta = _split_epochs(epochs, theta)
    if tau is not None:
        from .epoch_ffi import checked_epoch_pdf

        return jnp.log(checked_epoch_pdf(structure_json, theta, times, discrete, rewards, tau,
                                         "compute_log_pmf_ffi"))
    if rewards is not None:
        from .reward_density import reward_distribution

        return reward_distribution(structure_json, theta, times, discrete, rewards, log=True)
    return _per_time_call(_log_pmf_fn, structure_json, theta, times, discrete)


def compute_moments_ffi(
    structure_json: str | Graph | Mapping[str, Any],
    theta: Any,
    nr_moments: int,
    rewards: Any = None,
    epochs: Any = None,
) -> jax.Array:
    """The first `nr_moments` raw moments E[T^k] (or E[Y^k] with rewards), shape (nr_moments,).

    `rewards`, if given, has one non-negative entry per vertex. Differentiable with
    respect to theta (not rewards). With `epochs` (theta of shape (E, P), row e for
    epoch e, the last epoch running for ever; see `phasic.epochs`): the moments of the
    chain whose parameters change at the breakpoints, differentiable in theta and in
    the breakpoints.
    """
    tau, theta = _split_epochs(epochs, theta)
    if tau is not None:
        from .epoch_ffi import epoch_moments

        return epoch_moments(structure_json, theta, nr_moments, tau, rewards)
    text, info = _setup(structure_json)
    nr_moments = _check_nr_moments(nr_moments)
    theta = _prepare_theta(theta, info)
    rewards = _prepare_rewards(rewards, info)
    return _moments_fn(text, nr_moments)(theta, rewards)


def compute_covariance_ffi(
    structure_json: str | Graph | Mapping[str, Any],
    theta: Any,
    rewards: Any,
) -> jax.Array:
    """Cov(Y_i, Y_j) for the reward vectors in the rows of `rewards`, shape (R, R).

    `rewards` has shape (R, V): R reward vectors with one finite, non-negative entry
    per vertex (index 0 is the starting vertex), and Y_i = integral of r_i(X_t) dt
    (continuous) or the sum of r_i over the visited states (discrete). A single
    vector of shape (V,) is one row: the result is its variance as a (1, 1) matrix.
    Differentiable with respect to theta (not rewards); vmap over theta and over
    batches of reward matrices becomes one FFI call.
    """
    text, info = _setup(structure_json)
    theta = _prepare_theta(theta, info)
    rewards = _as_f64(rewards, "rewards")
    v = info.vertices_length
    if rewards.ndim == 1:
        rewards = rewards.reshape(1, -1)
    if rewards.ndim != 2 or rewards.shape[1] != v or rewards.shape[0] < 1:
        raise ValueError(
            f"rewards must have shape (R, {v}) with R >= 1 reward vectors of one entry per "
            f"vertex (or ({v},) for one vector), got shape {rewards.shape}"
        )
    return _covariance_fn(text)(theta, rewards)


def compute_pmf_and_moments_ffi(
    structure_json: str | Graph | Mapping[str, Any],
    theta: Any,
    times: Any,
    nr_moments: int,
    discrete: bool = False,
    rewards: Any = None,
    epochs: Any = None,
) -> tuple[jax.Array, jax.Array]:
    """`(compute_pmf_ffi(...), compute_moments_ffi(...))` in one FFI call.

    With `epochs` (theta of shape (E, P)): the density (no rewards) and the moments
    (with `rewards`, of the reward-weighted time) composed over the epochs.
    """
    tau, theta = _split_epochs(epochs, theta)
    if tau is not None:
        from .epoch_ffi import checked_epoch_pdf, epoch_moments

        pmf = checked_epoch_pdf(structure_json, theta, times, discrete, None, tau,
                                "compute_pmf_and_moments_ffi")
        return pmf, epoch_moments(structure_json, theta, nr_moments, tau, rewards)
    text, info = _setup(structure_json, discrete)
    discrete = _check_discrete(discrete, info)
    nr_moments = _check_nr_moments(nr_moments)
    theta = _prepare_theta(theta, info)
    rewards = _prepare_rewards(rewards, info)
    times = _as_f64(times, "times")
    pmf, moments = _pmf_and_moments_fn(text, discrete, nr_moments)(theta, _flat(times), rewards)
    return _unflat(pmf, times.shape), moments
