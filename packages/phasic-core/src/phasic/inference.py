"""Stein variational gradient descent (SVGD) over theta, sharded over every JAX device.

SVGD (Liu & Wang, NeurIPS 2016) moves a set of particles x_1..x_n along

    phi(x_i) = 1/n sum_j [ k(x_j, x_i) grad log p(x_j) + grad_{x_j} k(x_j, x_i) ]

with an RBF kernel k(x, y) = exp(-|x - y|^2 / h) and the median heuristic
h = median_{i<j} |x_i - x_j|^2 / log n (the lower median for an even number of
pairs). The first term pulls particles towards high posterior density, the second
pushes them apart; at the fixed point the particles approximate the posterior.

Rates must stay positive, so by default the particles live in z = log(theta): the
target there is log p(theta = e^z | data) + sum(z) (the log-Jacobian of theta = e^z).
`log_transform=False` runs SVGD on theta itself (for unconstrained parameters).

Distribution: the (padded) particle array is sharded over a one-axis mesh of all
global devices (`jax.devices()`: one process with several CPU devices, or many
processes after `jax.distributed.initialize`). Inside `jax.shard_map`, each device
computes the log-posterior gradients of its own particles only; the particles and
gradients are then all-gathered so that each device evaluates the kernel sums over
all particles, in the same global order on every device. Initial particles are drawn
on the host from the seed for the whole global array and then placed, so the same
seed gives the same run whatever the process/device layout.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ._svgd_inputs import (  # noqa: F401  (_StructureLoglik: the structure likelihood)
    StepSize,
    _initial_particles,
    _positive_int,
    _resolve_likelihood,
    _step_sizes,
    _StructureLoglik,
)

AXIS = "particles"
_X64_FIX = 'jax.config.update("jax_enable_x64", True)'

@dataclass(frozen=True)
class SVGDHistory:
    """Per-step summaries of a run (rows are steps 1..n_steps), in theta space.

    mean, sd: particle mean and standard deviation of theta, shape (n_steps, d).
    bandwidth: the kernel bandwidth h used at each step (in the space SVGD runs in).
    max_update: the largest absolute particle move of each step (same space).
    step_size: the step size of each step.
    snapshots: {step: particles (n, d) in theta space} at the end of every chunk
    (empty unless keep_particles=True).
    """

    mean: np.ndarray
    sd: np.ndarray
    bandwidth: np.ndarray
    max_update: np.ndarray
    step_size: np.ndarray
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class SVGDResult:
    """The outcome of `svgd`: final particles (n, d) in theta space and the history."""

    particles: np.ndarray
    history: SVGDHistory
    n_devices: int
    n_processes: int
    seconds: float

    def mean(self) -> np.ndarray:
        """Posterior mean estimate of theta, shape (d,)."""
        return self.particles.mean(axis=0)

    def sd(self) -> np.ndarray:
        """Posterior standard deviation estimate of theta (ddof=0), shape (d,)."""
        return self.particles.std(axis=0)

    def quantile(self, q: float | Sequence[float]) -> np.ndarray:
        """Posterior quantile(s) of theta from the particles."""
        return np.quantile(self.particles, q, axis=0)


class SVGDError(RuntimeError):
    """A run that cannot continue: a non-finite log-density or a diverging update."""


# ---- the sharded step ---------------------------------------------------------------


def _kth_smallest(values: jax.Array, k: int) -> jax.Array:
    """The k-th smallest (0-based) of non-negative float64 `values` (+inf = excluded).

    Bisection on the IEEE-754 bit patterns, which order non-negative doubles like
    their values: 64 rounds of compare-and-count give the exact order statistic and
    are several times cheaper than XLA's CPU sort of the N^2 pair distances.
    """
    bits = jax.lax.bitcast_convert_type(values, jnp.int64)

    def halve(_: int, bracket: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        lo, hi = bracket
        mid = lo + (hi - lo) // 2
        enough = jnp.sum(bits <= mid) >= k + 1
        return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi)

    start = (jnp.int64(0), jnp.int64(0x7FF0000000000000))  # [0, +inf]
    _, hi = jax.lax.fori_loop(0, 64, halve, start)
    return jax.lax.bitcast_convert_type(hi, jnp.float64)


def _median_bandwidth(x: jax.Array, valid: jax.Array, n: int) -> jax.Array:
    """h = (lower) median_{i<j, both valid} |x_i - x_j|^2 / log n, for n >= 2 valid."""
    sq = jnp.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    m = x.shape[0]
    upper = jnp.triu(jnp.ones((m, m), dtype=bool), k=1) & valid[:, None] & valid[None, :]
    pairs = n * (n - 1) // 2  # static: excluded pairs are +inf and never counted
    med = _kth_smallest(jnp.where(upper, sq, jnp.inf).reshape(-1), (pairs - 1) // 2)
    # all particles on one point: any positive h gives the same (zero) repulsion
    return jnp.maximum(med / math.log(n), 1e-300)


@dataclass(frozen=True)
class _LogPosterior:
    """log p(theta | data) in the space SVGD runs in (z = log theta, or theta).

    Frozen and hashable: runs with the same functions reuse compiled steps.
    """

    loglik: Callable[[jax.Array, jax.Array], jax.Array]
    log_prior: Callable[[jax.Array], jax.Array] | None
    log_transform: bool

    def __call__(self, z: jax.Array, data: jax.Array) -> jax.Array:
        theta = jnp.exp(z) if self.log_transform else z
        lp = self.loglik(theta, data)
        if self.log_prior is not None:
            lp = lp + self.log_prior(theta)
        # the log-Jacobian of theta = exp(z)
        return jnp.sum(z) + lp if self.log_transform else lp


@functools.lru_cache(maxsize=32)
def _start_values(log_post: _LogPosterior) -> Callable:
    return jax.jit(jax.vmap(log_post, in_axes=(0, None)))


@functools.lru_cache(maxsize=32)
def _make_chunk(
    log_post: _LogPosterior, devices: tuple[Any, ...], n: int, optimizer: str
) -> Callable:
    """A jitted function that runs len(sizes) SVGD steps on the sharded particles.

    One all-gather per step carries positions, gradients and finiteness flags of all
    particles to every device (collectives dominate the cost on CPU devices). History
    rows describe the state after each step; they are computed from the gathered
    positions at the start of the next step (and by one extra gather at the end).
    """
    mesh = Mesh(np.array(devices), (AXIS,))
    log_transform = log_post.log_transform
    grad_fn = jax.vmap(jax.value_and_grad(log_post), in_axes=(0, None))

    def summary(x_all: jax.Array, w: jax.Array, prev: jax.Array) -> dict[str, jax.Array]:
        theta = jnp.exp(x_all) if log_transform else x_all
        mean = jnp.sum(w * theta, axis=0) / n
        sd = jnp.sqrt(jnp.sum(w * (theta - mean) ** 2, axis=0) / n)
        return {"mean": mean, "sd": sd, "max_update": jnp.max(jnp.abs(x_all - prev))}

    def chunk(x, acc, valid, data, sizes):
        v_all = jax.lax.all_gather(valid, AXIS, tiled=True)
        w = v_all[:, None].astype(x.dtype)
        d = x.shape[1]

        def one_step(carry, size):
            x, acc, prev = carry  # local particles, optimizer accumulator, last x_all
            logp, g = grad_fn(x, data)
            ok = jnp.isfinite(logp) & jnp.all(jnp.isfinite(g), axis=1)
            g = jnp.where(valid[:, None], g, 0.0)  # padding never contributes
            packed = jnp.concatenate([x, g, ok[:, None].astype(x.dtype)], axis=1)
            every = jax.lax.all_gather(packed, AXIS, tiled=True)
            x_all, g_all = every[:, :d], every[:, d:2 * d]
            all_ok = jnp.all(jnp.where(v_all, every[:, 2 * d] > 0, True))
            h = _median_bandwidth(x_all, v_all, n)
            diff = x[:, None, :] - x_all[None, :, :]  # (m, N, d): x_i - x_j
            k = jnp.where(v_all[None, :], jnp.exp(-jnp.sum(diff**2, axis=-1) / h), 0.0)
            phi = (k @ g_all + (2.0 / h) * jnp.einsum("ij,ijd->id", k, diff)) / n
            if optimizer == "adagrad":
                acc = acc + phi**2
                delta = size * phi / (1e-8 + jnp.sqrt(acc))
            else:
                delta = size * phi
            x = x + jnp.where(valid[:, None], delta, 0.0)
            row = summary(x_all, w, prev) | {"bandwidth": h, "all_finite": all_ok}
            return (x, acc, x_all), row

        x_start = jax.lax.all_gather(x, AXIS, tiled=True)
        (x, acc, last), before = jax.lax.scan(one_step, (x, acc, x_start), sizes)
        final = summary(jax.lax.all_gather(x, AXIS, tiled=True), w, last)
        # before[k] describes the state before step k: shift by one to "after step k"
        after = {
            key: jnp.concatenate([before[key][1:], final[key][None]])
            for key in ("mean", "sd", "max_update")
        }
        after["bandwidth"] = before["bandwidth"]
        after["all_finite"] = before["all_finite"]
        return x, acc, after

    sharded = P(AXIS)
    stat_specs = {k: P() for k in ("mean", "sd", "bandwidth", "max_update", "all_finite")}
    mapped = jax.shard_map(
        chunk,
        mesh=mesh,
        in_specs=(sharded, sharded, sharded, P(), P()),
        out_specs=(sharded, sharded, stat_specs),
        check_vma=False,
    )
    return jax.jit(mapped)


# ---- host side ----------------------------------------------------------------------


class _Progress:
    """A one-line progress bar on a terminal (rank 0 only); silent otherwise."""

    def __init__(self, total: int, enabled: bool | None) -> None:
        if enabled is None:
            enabled = sys.stdout.isatty()
        self.enabled = bool(enabled) and jax.process_index() == 0
        self.total = total
        self.start = time.monotonic()

    def update(self, done: int, mean: np.ndarray) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / self.total)
        est = ", ".join(f"{v:.4g}" for v in mean[:3])
        sys.stdout.write(
            f"\rSVGD [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
            f"{time.monotonic() - self.start:.1f}s mean=[{est}]"
        )
        sys.stdout.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stdout.write("\n")
            sys.stdout.flush()


def _global_array(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global jax.Array from a host array that every process holds in full."""
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def _to_host(x: jax.Array) -> np.ndarray:
    """All of a (possibly multi-process) sharded array on this host."""
    if x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _replicated_to_host(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda a: np.asarray(a.addressable_data(0)), tree)


def svgd(
    structure: Any = None,
    observed: Any = None,
    *,
    log_prior: Callable[[jax.Array], jax.Array] | None = None,
    log_likelihood: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    parameterize: Callable[[jax.Array], Any] | None = None,
    discrete: bool = False,
    n_particles: int = 64,
    n_steps: int = 500,
    step_size: StepSize = 0.05,
    optimizer: str = "adagrad",
    init: Any = None,
    init_scale: float = 0.5,
    log_transform: bool = True,
    seed: int = 0,
    devices: Sequence[Any] | None = None,
    progress: bool | None = None,
    chunk_size: int = 50,
    keep_particles: bool = False,
) -> SVGDResult:
    """Approximate the posterior of theta with Stein variational gradient descent.

    Args:
        structure: a phasic Graph (or its JSON). The likelihood is then
            ``phasic.loglik(structure, theta, observed, discrete)``.
        observed: the data, passed to the log-likelihood (replicated on every device).
        log_prior: ``f(theta) -> scalar`` log prior density of theta (jax-traceable).
            None means a flat (improper) prior on theta.
        log_likelihood: ``f(theta, observed) -> scalar``; replaces the phasic
            likelihood (then `structure` is optional and only fixes the dimension).
        parameterize: ``f(x) -> theta`` or ``f(x) -> (theta, epochs)``, jax-traceable:
            the particles are then vectors x of your own parameters (their length is
            given by `init`, which is required), and the likelihood is
            ``phasic.loglik(structure, theta, observed, discrete, epochs=epochs)`` with
            exact gradients through the map. For an epoch model x may hold sizes and
            change times, mapped to theta of shape (E, P) and the E - 1 breakpoints.
            The prior, the log transform and the returned particles are in x.
        discrete: passed to phasic.loglik (discrete-time graphs).
        n_particles: number of particles (>= 2). Padded to a multiple of the device
            count; the padding is masked out of every sum.
        n_steps: number of SVGD steps.
        step_size: a constant, or a schedule ``f(step) -> size`` for step = 0..n_steps-1
            (an optax schedule works). Evaluated once on the host.
        optimizer: "adagrad" (step / sqrt(sum of squared updates) per coordinate, the
            usual SVGD choice; scale-free) or "sgd" (plain step * phi).
        init: initial particles (n_particles, d) in theta space, or a centre (d,);
            default a centre of ones. Particles around a centre are drawn from the seed
            as centre * exp(init_scale * N(0, 1)) (centre + init_scale * N(0, 1) when
            log_transform=False).
        log_transform: run SVGD on z = log(theta) (keeps rates positive). The density
            there includes the log-Jacobian sum(z), so the particles mapped back by exp
            still target the posterior of theta.
        seed: the seed of the initial particles; the same seed gives the same result on
            any process/device layout with the same total number of devices.
        devices: the devices to shard the particles over (default: all global devices).
        progress: show a progress bar (default: only when stdout is a terminal; always
            only on process 0).
        chunk_size: steps per compiled chunk (the progress bar and the finiteness check
            advance by chunks).
        keep_particles: keep all particles at the end of every chunk in the history.

    Returns:
        An `SVGDResult` with the final particles (n_particles, d) in theta space, on
        every process, and an `SVGDHistory`.

    Raises:
        ValueError: an argument has a bad value (a count below its minimum, a step size
            that is not positive, initial particles of the wrong shape).
        TypeError: an argument has a bad type, or JAX's 64-bit mode is off.
        SVGDError: the log-density is not finite at some particle, or the particles
            diverge.
    """
    t0 = time.monotonic()
    if not jax.config.read("jax_enable_x64"):
        raise TypeError(
            f"svgd computes in float64 but JAX's 64-bit mode is off; call {_X64_FIX} "
            "before creating any arrays (or set JAX_ENABLE_X64=1)"
        )
    n = _positive_int(n_particles, "n_particles", minimum=2)
    n_steps = _positive_int(n_steps, "n_steps")
    # a short run is one chunk of exactly n_steps (no zero-size padding steps)
    chunk_size = min(_positive_int(chunk_size, "chunk_size"), n_steps)
    if optimizer not in ("adagrad", "sgd"):
        raise ValueError(f"optimizer must be 'adagrad' or 'sgd', got {optimizer!r}")
    if log_prior is not None and not callable(log_prior):
        raise TypeError(f"log_prior must be a callable theta -> scalar, got {log_prior!r}")
    if observed is None:
        raise ValueError("observed (the data passed to the log-likelihood) is required")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    sizes = _step_sizes(step_size, n_steps)
    loglik, dim = _resolve_likelihood(structure, log_likelihood, discrete, parameterize)
    if parameterize is not None and init is None:
        raise ValueError(
            "with parameterize the particles are your own parameters x, of a length only "
            "you know: pass init (a centre (d,) or particles (n_particles, d)) in x"
        )
    theta0 = _initial_particles(init, n, dim, int(seed), log_transform, float(init_scale))
    d = theta0.shape[1]

    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("devices is empty; pass None to use every JAX device")
    mesh = Mesh(np.array(devs), (AXIS,))
    n_pad = -(-n // len(devs)) * len(devs)
    z0 = np.log(theta0) if log_transform else theta0
    # padding: copies of particle 0 (a finite point), masked out of every sum
    z_host = np.concatenate([z0, np.repeat(z0[:1], n_pad - n, axis=0)])
    valid_host = np.arange(n_pad) < n
    shard = NamedSharding(mesh, P(AXIS))
    repl = NamedSharding(mesh, P())
    try:
        data_host = np.asarray(observed, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"observed must be numeric data, got {observed!r}") from exc
    x = _global_array(z_host, shard)
    acc = _global_array(np.zeros_like(z_host), shard)
    valid = _global_array(valid_host, shard)
    data = _global_array(data_host, repl)

    log_post = _LogPosterior(loglik, log_prior, bool(log_transform))
    _check_start(_start_values(log_post), z0, data_host, log_transform)
    chunk = _make_chunk(log_post, tuple(devs), n, optimizer)
    n_chunks = -(-n_steps // chunk_size)
    # pad the schedule to whole chunks with zero steps (one compiled chunk shape)
    padded_sizes = np.zeros(n_chunks * chunk_size)
    padded_sizes[:n_steps] = sizes
    rows: list[dict[str, np.ndarray]] = []
    snapshots: dict[int, np.ndarray] = {}
    bar = _Progress(n_steps, progress)
    try:
        for c in range(n_chunks):
            part = padded_sizes[c * chunk_size:(c + 1) * chunk_size]
            x, acc, stats = chunk(x, acc, valid, data, _global_array(part, repl))
            host = _replicated_to_host(stats)
            done = min((c + 1) * chunk_size, n_steps)
            if not np.all(host["all_finite"]):
                step = c * chunk_size + int(np.argmin(host["all_finite"])) + 1
                raise SVGDError(
                    f"the log-posterior or its gradient is not finite at some particle in "
                    f"step {step}; the particles left the region where the model is "
                    "defined: reduce step_size, or check log_prior and the data"
                )
            if not (np.all(np.isfinite(host["mean"])) and np.all(np.isfinite(host["sd"]))):
                raise SVGDError(
                    f"the particles diverged (non-finite values) by step {done}; "
                    "reduce step_size"
                )
            rows.append({k: v[: done - c * chunk_size] for k, v in host.items()})
            bar.update(done, host["mean"][-1])
            if keep_particles:
                snapshots[done] = _theta(_to_host(x)[:n], log_transform)
    finally:
        bar.close()
    particles = _theta(_to_host(x)[:n], log_transform)
    cat = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    history = SVGDHistory(
        mean=cat["mean"].reshape(n_steps, d),
        sd=cat["sd"].reshape(n_steps, d),
        bandwidth=cat["bandwidth"],
        max_update=cat["max_update"],
        step_size=sizes,
        snapshots=snapshots,
    )
    return SVGDResult(
        particles=particles,
        history=history,
        n_devices=len(devs),
        n_processes=jax.process_count(),
        seconds=time.monotonic() - t0,
    )


def _theta(z: np.ndarray, log_transform: bool) -> np.ndarray:
    return np.exp(z) if log_transform else z


def _check_start(
    values_fn: Callable, z0: np.ndarray, data: np.ndarray, log_transform: bool
) -> None:
    """Evaluate the log-posterior at the initial particles: name the first bad one."""
    values = np.asarray(values_fn(z0, data))
    if values.shape != (z0.shape[0],):
        raise ValueError(
            "log_likelihood + log_prior must return a scalar per particle, got shape "
            f"{values.shape[1:]} per particle"
        )
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = int(bad[0])
        theta = _theta(z0[i], log_transform)
        raise SVGDError(
            f"the log-posterior is {values[i]} at initial particle {i} (theta = {theta}); "
            f"{bad.size} of {z0.shape[0]} initial particles are outside the support: "
            "choose init inside the support of the prior and likelihood"
        )


