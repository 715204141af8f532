"""Upstream phasic's `phasic.ffi_wrappers` names and signatures, on our FFI functions.

Code written for the upstream package (0.32.1) that does
`from phasic.ffi_wrappers import compute_pmf_ffi, ...` runs unchanged: each function
here has upstream's name, parameter order and defaults and delegates to the function
of the same name in `phasic.ffi`, so results are bit-for-bit ours under jit, vmap and
grad. Upstream's `granularity` (the step count of its discretized PDF) is accepted
and checked but has no effect: our kernels are exact.

`compute_pmf_multivariate_ffi` runs on the reward-density kernel
(`phasic.reward_density`). Upstream functions whose semantics we do not provide raise
`NotImplementedError` naming what is missing. Importing this module imports jax (via `phasic.ffi`);
`import phasic` alone does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import numpy as np

from . import ffi
from .graph import Graph

Structure = str | Graph | Mapping[str, Any]

__all__ = [
    "backward_probabilities_ffi",
    "compute_daisy_chain_joint_probs_ffi",
    "compute_daisy_chain_sojourn_ffi",
    "compute_moments_ffi",
    "compute_pmf_and_moments_ffi",
    "compute_pmf_ffi",
    "compute_pmf_multivariate_ffi",
    "compute_reward_visit_probability_ffi",
    "compute_sojourn_times_ffi",
    "sample_path_conditioned_ffi",
]


def _check_granularity(granularity: Any) -> None:
    """Refuse what upstream would not take as a step count; the value itself is unused."""
    if isinstance(granularity, bool) or not isinstance(granularity, (int, np.integer)):
        raise TypeError(
            f"granularity must be a Python int (static), got {granularity!r} of type "
            f"{type(granularity).__name__}; it has no effect here (our kernels are exact), "
            "so pass an int such as 0 or leave it out"
        )
    if granularity < 0:
        raise ValueError(
            f"granularity must be >= 0, got {granularity}; it has no effect here "
            "(our kernels are exact), so pass 0 or leave it out"
        )


def compute_pmf_ffi(
    structure_json: Structure,
    theta: Any,
    times: Any,
    discrete: bool = False,
    granularity: int = 0,
) -> Any:
    """PDF (continuous graph) or PMF (discrete graph) at `times`: `phasic.ffi.compute_pmf_ffi`.

    Upstream's signature. `granularity` must be an int >= 0 and has no effect: our
    kernels are exact, not discretized. The result has the shape of `times`.
    """
    _check_granularity(granularity)
    return ffi.compute_pmf_ffi(structure_json, theta, times, discrete)


def compute_moments_ffi(structure_json: Structure, theta: Any, nr_moments: int) -> Any:
    """The first `nr_moments` raw moments, shape (nr_moments,): `phasic.ffi.compute_moments_ffi`.

    Upstream's signature (no rewards); for reward-transformed moments use
    `phasic.compute_moments_ffi(..., rewards=...)`.
    """
    return ffi.compute_moments_ffi(structure_json, theta, nr_moments)


def compute_pmf_and_moments_ffi(
    structure_json: Structure,
    theta: Any,
    times: Any,
    nr_moments: int,
    discrete: bool = False,
    granularity: int = 0,
    rewards: Any = None,
) -> tuple[Any, Any]:
    """`(pmf, moments)` in one call: `phasic.ffi.compute_pmf_and_moments_ffi`.

    Upstream's signature. `granularity` must be an int >= 0 and has no effect (our
    kernels are exact). `rewards` is None or one entry per vertex; upstream's 2-D
    (n_vertices, n_features) rewards raise NotImplementedError.
    """
    _check_granularity(granularity)
    if rewards is not None and len(np.shape(rewards)) == 2:
        raise NotImplementedError(
            "compute_pmf_and_moments_ffi with 2-D rewards (one column per feature) is not "
            "implemented: pass one reward vector at a time (shape (n_vertices,)) and "
            "stack the results, e.g. with jax.vmap over the columns"
        )
    return ffi.compute_pmf_and_moments_ffi(
        structure_json, theta, times, nr_moments, discrete, rewards
    )


def _missing(name: str, what: str) -> NoReturn:
    raise NotImplementedError(
        f"phasic.ffi_wrappers.{name} is not implemented: {what}. "
        "The FFI functions available are compute_pmf_ffi, compute_moments_ffi, "
        "compute_pmf_and_moments_ffi and compute_pmf_multivariate_ffi (see phasic.ffi)."
    )


def compute_pmf_multivariate_ffi(
    structure_json: Structure,
    theta: Any,
    times: Any,
    rewards: Any,
    discrete: bool = False,
    granularity: int = 0,
    compute_joint: bool = False,
) -> Any:
    """Per-feature PDF/PMF of reward-weighted times, upstream's sparse mode.

    `times` has shape (n_times, n_features) and `rewards` (n_features, n_vertices):
    column j of the result, shape (n_times, n_features), is the pdf (pmf when
    `discrete`) of Y_j, the time weighted by rewards[j], at times[:, j], and 0 where
    times[i, j] == 0 (upstream's "no observation"). One FFI call for all features;
    differentiable in theta. `granularity` is checked and unused (our kernel is exact).

    `compute_joint=True` (a joint density of the features) raises ValueError, as
    upstream does: the joint law of several reward-weighted times is not a phase-type
    density this kernel computes.
    """
    _check_granularity(granularity)
    if compute_joint:
        raise ValueError(
            "compute_pmf_multivariate_ffi(compute_joint=True): a joint PDF across features "
            "is not implemented (nor upstream); use compute_joint=False for one PDF per "
            "feature (sparse mode)"
        )
    import jax.numpy as jnp

    from .reward_density import reward_rows

    times = ffi._as_f64(times, "times")
    if times.ndim != 2:
        raise ValueError(f"times must be 2-D (n_times, n_features), got shape {times.shape}")
    if np.ndim(rewards) != 2 or np.shape(rewards)[0] != times.shape[1]:
        raise ValueError(
            f"rewards must have shape (n_features, n_vertices) with n_features = "
            f"{times.shape[1]} (the columns of times), got shape {np.shape(rewards)}"
        )
    per_feature = reward_rows(structure_json, theta, times.T, rewards, discrete).T
    return jnp.where(times == 0.0, 0.0, per_feature)


def compute_sojourn_times_ffi(structure_json: Structure, theta: Any, indices: Any) -> NoReturn:
    """Not implemented: upstream's expected sojourn times of chosen vertices."""
    _missing("compute_sojourn_times_ffi", "there is no expected-sojourn-time kernel")


def sample_path_conditioned_ffi(
    structure_json: Structure, theta: Any, target_vertex: Any, seed: Any, max_length: int
) -> NoReturn:
    """Not implemented: upstream's path sampling conditioned on the absorbing vertex."""
    _missing("sample_path_conditioned_ffi", "there is no conditioned path sampler")


def backward_probabilities_ffi(
    structure_json: Structure, theta: Any, target_vertices: Any, n_vertices: int
) -> NoReturn:
    """Not implemented: upstream's probabilities of reaching target vertices."""
    _missing("backward_probabilities_ffi", "there is no backward-probability kernel")


def compute_reward_visit_probability_ffi(
    structure_json: Structure, theta: Any, target_vertices: Any, initial_ipv: Any
) -> NoReturn:
    """Not implemented: upstream's probability of visiting a target vertex before absorption."""
    _missing("compute_reward_visit_probability_ffi", "there is no visit-probability kernel")


def compute_daisy_chain_joint_probs_ffi(
    structure_json: Structure, theta: Any, initial_ipv: Any
) -> NoReturn:
    """Not implemented: upstream's daisy-chained (per-epoch) joint probabilities."""
    _missing("compute_daisy_chain_joint_probs_ffi", "there are no daisy-chain (epoch) models")


def compute_daisy_chain_sojourn_ffi(
    structure_json: Structure, sojourn_structure_json: Structure, theta: Any, initial_ipv: Any
) -> NoReturn:
    """Not implemented: upstream's daisy chain with a sojourn-time final epoch."""
    _missing("compute_daisy_chain_sojourn_ffi", "there are no daisy-chain (epoch) models")
