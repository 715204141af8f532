"""Upstream phasic's SVGD entry points over our `phasic.svgd`.

`Graph.svgd(observed_data, ...)` takes upstream phasic's keyword names and maps
them onto `phasic.svgd` (sharded SVGD over every JAX device); `ExpStepSize` and
`ExpRegularization` are upstream's exponential schedules; `clear_caches()` empties
our caches. Keywords upstream has and we do not implement raise
NotImplementedError naming the missing piece, unless they hold upstream's default.

Differences from upstream (also in the migration guide): SVGD runs on log(theta)
(`positive_params=True`, upstream uses softplus) and `.particles` are in theta
space; `prior(theta)` is a log density of theta, and `prior=None` is a flat prior
(upstream builds a data-driven prior); the kernel bandwidth is the median heuristic
(`bandwidth='median'`, our default; upstream's default 'median_per_dim' is not
implemented); `seed=None` means seed 0, so that every process starts from the same
particles.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .inference import SVGDResult

# upstream keyword -> (its default, what it needs that we lack). A keyword holding
# its default is accepted; any other value raises NotImplementedError.
_NOT_IMPLEMENTED: dict[str, tuple[Any, str]] = {
    "optimizer": (None, "upstream's optimizer objects (we use Adagrad-scaled steps)"),
    "compilation_config": (None, "upstream's CompilationConfig"),
    "regularization": (0.0, "moment regularization of the SVGD objective"),
    "param_transform": (None, "custom parameter transforms (positive_params=True gives "
                              "a log transform)"),
    "joint_index": (False, "joint-index likelihoods"),
    "rewards": (None, "reward-transformed likelihoods in SVGD"),
    "fixed": (None, "fixing parameters during SVGD"),
    "tied": (None, "tying parameters across epochs"),
    "callback": (None, "per-iteration callbacks"),
    "epoch_starts": (None, "daisy-chained epochs"),
    "daisy_chain_t_eval": (None, "daisy-chained epochs"),
    "daisy_chain_granularity": (0, "daisy-chained epochs"),
    "daisy_chain_probe_theta": (None, "daisy-chained epochs"),
    "daisy_chain_t_eval_tol": (1e-3, "daisy-chained epochs"),
    "final_read": ("sojourn", "daisy-chained epochs"),
    "exposure": (None, "exposure-scaled likelihoods"),
    "exposure_param_index": (None, "exposure-scaled likelihoods"),
}
# upstream keywords that only tune upstream's machinery: accepted, no effect here
_NO_EFFECT = {"return_history", "precompile", "nr_moments", "validate_rewards", "progress"}
_PRECONDITIONERS = ("auto", None)


class ExpStepSize:
    """Step size first_step * e^(-i/tau) + last_step * (1 - e^(-i/tau)) at iteration i."""

    def __init__(self, first_step: float = 0.01, last_step: float = 1e-6,
                 tau: float = 1000.0) -> None:
        self.first_step, self.last_step, self.tau = _schedule_args(
            first_step, last_step, tau, "first_step", "last_step")

    def __call__(self, iteration: int, particles: Any = None) -> float:
        return _exp_blend(self.first_step, self.last_step, self.tau, iteration)

    def __repr__(self) -> str:
        return f"ExpStepSize({self.first_step}, {self.last_step}, tau={self.tau})"


class ExpRegularization:
    """Regularization first_reg * e^(-i/tau) + last_reg * (1 - e^(-i/tau)) at iteration i.

    Provided for upstream scripts that build one; `Graph.svgd(regularization=...)`
    with a non-zero value raises NotImplementedError (no moment regularization here).
    """

    def __init__(self, first_reg: float = 1.0, last_reg: float = 0.0,
                 tau: float = 1000.0) -> None:
        self.first_reg, self.last_reg, self.tau = _schedule_args(
            first_reg, last_reg, tau, "first_reg", "last_reg", allow_zero=True)

    def __call__(self, iteration: int, particles: Any = None) -> float:
        return _exp_blend(self.first_reg, self.last_reg, self.tau, iteration)

    def __repr__(self) -> str:
        return f"ExpRegularization({self.first_reg}, {self.last_reg}, tau={self.tau})"


def _schedule_args(first: Any, last: Any, tau: Any, first_name: str, last_name: str,
                   allow_zero: bool = False) -> tuple[float, float, float]:
    values = []
    for name, value in ((first_name, first), (last_name, last), ("tau", tau)):
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise TypeError(f"{name} must be a number, got {value!r}")
        value = float(value)
        low_ok = value >= 0 if (allow_zero and name != "tau") else value > 0
        if not (np.isfinite(value) and low_ok):
            bound = ">= 0" if (allow_zero and name != "tau") else "> 0"
            raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
        values.append(value)
    return values[0], values[1], values[2]


def _exp_blend(first: float, last: float, tau: float, iteration: Any) -> float:
    decay = float(np.exp(-float(iteration) / tau))
    return first * decay + last * (1.0 - decay)


def clear_caches() -> None:
    """Empty phasic's caches: the FFI's compiled-structure cache on every thread.

    Upstream also clears trace and graph caches on disk; we keep neither, and the
    compiled structure of a Graph is dropped whenever the graph changes.
    """
    from .ffi import cache_clear

    cache_clear()


@dataclass(frozen=True)
class UpstreamSVGD:
    """`Graph.svgd`'s result, with upstream's attribute names.

    particles: (n_particles, d) in theta space (upstream keeps them in its
    unconstrained space); theta_mean, theta_std: their mean and standard deviation;
    result: our `phasic.SVGDResult` (history, devices, timing).
    """

    particles: np.ndarray
    theta_mean: np.ndarray
    theta_std: np.ndarray
    result: SVGDResult

    @property
    def history(self) -> Any:
        """Per-step particle mean/sd, bandwidth and step sizes (`phasic.SVGDHistory`)."""
        return self.result.history

    def get_results(self) -> dict[str, Any]:
        """Upstream's results dict: particles, theta_mean, theta_std."""
        return {"particles": self.particles, "theta_mean": self.theta_mean,
                "theta_std": self.theta_std}


def _reject_unsupported(options: dict[str, Any]) -> None:
    for name, value in options.items():
        if name in _NO_EFFECT:
            continue
        if name == "preconditioner":
            if value not in _PRECONDITIONERS:
                raise NotImplementedError(
                    f"Graph.svgd(preconditioner={value!r}): preconditioners are not "
                    "implemented; leave it at 'auto'")
            continue
        if name not in _NOT_IMPLEMENTED:
            raise TypeError(f"Graph.svgd() got an unexpected keyword argument {name!r}")
        default, missing = _NOT_IMPLEMENTED[name]
        same = value is default or (
            not callable(value) and np.ndim(value) == 0 and value == default)
        if not same:
            raise NotImplementedError(
                f"Graph.svgd({name}=...) needs {missing}, which phasic does not implement; "
                f"leave {name} at {default!r} (or use phasic.svgd directly)")


def _devices(parallel: str | None, n_devices: int | None) -> list[Any] | None:
    import jax

    if parallel not in (None, "pmap", "vmap", "none"):
        raise ValueError(f"parallel must be None, 'pmap', 'vmap' or 'none', got {parallel!r}")
    if parallel in ("vmap", "none"):
        if n_devices is not None:
            raise ValueError(f"n_devices={n_devices!r} needs parallel='pmap' or None")
        if jax.process_count() > 1:
            raise ValueError(f"parallel={parallel!r} runs on one device, but this is one of "
                             f"{jax.process_count()} processes; use parallel='pmap' or None")
        return [jax.local_devices()[0]]
    if n_devices is None:
        return None
    everything = jax.devices()
    if isinstance(n_devices, bool) or not isinstance(n_devices, int) or not (
            1 <= n_devices <= len(everything)):
        raise ValueError(f"n_devices must be an int in 1..{len(everything)}, got {n_devices!r}")
    return everything[:n_devices]


def _same_data_on_every_process(data: np.ndarray) -> np.ndarray:
    """Process 0's data on every process; a warning when some process had other data.

    Our SVGD runs one posterior over all processes, so all must use the same data.
    Upstream scripts often draw `observed_data = graph.sample(n)` on every rank
    without a seed, which gives each rank different data.
    """
    import jax

    if jax.process_count() == 1:
        return data
    from jax.experimental import multihost_utils

    digest = np.frombuffer(hashlib.sha256(
        np.ascontiguousarray(data).tobytes() + str(data.shape).encode()).digest()[:8], np.int64)
    digests = np.asarray(multihost_utils.process_allgather(digest))
    if np.all(digests == digests[0]):
        return data
    differ = [i for i in range(digests.shape[0]) if not np.all(digests[i] == digests[0])]
    warnings.warn(
        f"observed_data differs between processes (processes {differ} differ from process "
        "0); SVGD runs one posterior over all processes, so it uses process 0's data on "
        "every process. Draw the data with a fixed seed (graph.sample(n, seed=...)) or "
        "load it from a file to make every process agree.",
        RuntimeWarning, stacklevel=4)  # the caller of Graph.svgd
    shape = np.asarray(multihost_utils.broadcast_one_to_all(np.array(data.shape)))
    zeros = data if data.shape == tuple(shape) else np.zeros(tuple(shape), data.dtype)
    return np.asarray(multihost_utils.broadcast_one_to_all(zeros))


def graph_svgd(
    graph: Any,
    observed_data: Any,
    discrete: bool | None = None,
    prior: Callable | None = None,
    n_particles: int | None = None,
    n_iterations: int = 1000,
    learning_rate: float | Callable | None = None,
    bandwidth: str = "median",
    theta_init: Any = None,
    theta_dim: int | None = None,
    seed: int | None = None,
    verbose: bool = False,
    jit: bool | None = None,
    parallel: str | None = None,
    n_devices: int | None = None,
    positive_params: bool = True,
    **upstream_options: Any,
) -> UpstreamSVGD:
    """`Graph.svgd`: upstream's keywords mapped onto `phasic.svgd` (see the module doc)."""
    from .inference import svgd

    _reject_unsupported(upstream_options)
    if discrete is not None and bool(discrete) != graph.discrete:
        kind = "discrete" if graph.discrete else "continuous"
        raise TypeError(f"discrete={discrete!r} but this graph is {kind}; leave discrete=None")
    if bandwidth != "median":
        raise NotImplementedError(
            f"Graph.svgd(bandwidth={bandwidth!r}): only the median heuristic "
            "(bandwidth='median') is implemented")
    if jit is False:
        raise NotImplementedError("Graph.svgd(jit=False): SVGD steps are always compiled")
    if prior is not None and not callable(prior):
        raise NotImplementedError(
            "Graph.svgd(prior=[...]): per-parameter Prior objects are not implemented; pass "
            "one callable prior(theta) -> log density")
    dim = graph.param_length()
    if theta_dim is not None and theta_dim != dim:
        raise ValueError(f"theta_dim={theta_dim!r} but the graph has {dim} parameter(s) "
                         "(param_length()); leave theta_dim=None")
    if dim == 0:
        raise ValueError("the graph has no parameterized edges, so there is nothing to infer")
    data = np.asarray(observed_data, dtype=np.float64)
    if data.ndim != 1 or not np.all(np.isfinite(data)):
        raise ValueError("observed_data must be a 1-d array of finite observations "
                         f"(got shape {data.shape})")
    data = _same_data_on_every_process(data)
    result = svgd(
        graph, data, log_prior=prior, discrete=graph.discrete,
        n_particles=20 * dim if n_particles is None else n_particles,
        n_steps=n_iterations,
        step_size=0.05 if learning_rate is None else learning_rate,
        init=theta_init, log_transform=bool(positive_params),
        seed=0 if seed is None else seed,
        devices=_devices(parallel, n_devices),
        progress=None if verbose else False,
    )
    particles = result.particles
    if verbose:
        print(f"SVGD: {particles.shape[0]} particles, {n_iterations} iterations on "
              f"{result.n_devices} device(s) in {result.seconds:.1f} s; posterior mean "
              f"{particles.mean(axis=0)}, sd {particles.std(axis=0)}")
    return UpstreamSVGD(particles, particles.mean(axis=0), particles.std(axis=0), result)
