"""The checks and conversions `phasic.svgd` applies to its arguments before a run.

Step sizes (a constant or a schedule), the starting particles (given or drawn from
the seed), and the likelihood: phasic.loglik of a structure, optionally at
parameterize(x), or the caller's own function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

StepSize = float | Callable[[int], Any]


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _step_sizes(step_size: StepSize, n_steps: int) -> np.ndarray:
    """The step size of each step: a constant, or `schedule(step)` for step = 0..n-1."""
    if callable(step_size):
        try:
            sizes = np.array([float(step_size(i)) for i in range(n_steps)], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                "step_size(step) must return a number for step = 0, 1, ...; calling the "
                f"schedule failed: {exc}"
            ) from exc
    elif isinstance(step_size, int | float | np.floating | np.integer) and not isinstance(
        step_size, bool
    ):
        sizes = np.full(n_steps, float(step_size))
    else:
        raise TypeError(
            f"step_size must be a positive number or a callable step -> size, got {step_size!r}"
        )
    bad = np.flatnonzero(~(np.isfinite(sizes) & (sizes > 0)))
    if bad.size:
        raise ValueError(
            f"step sizes must be finite and > 0; step {bad[0]} has {float(sizes[bad[0]])!r}"
        )
    return sizes


def _initial_particles(
    init: Any, n: int, dim: int | None, seed: int, log_transform: bool, init_scale: float
) -> np.ndarray:
    """(n, d) starting particles in theta space, from `init` or drawn from the seed."""
    if init is None:
        if dim is None:
            raise ValueError(
                "cannot tell the number of parameters: pass `structure`, or `init` "
                "(initial particles (n_particles, d), or a centre of length d)"
            )
        centre = np.ones(dim)
    else:
        centre = np.asarray(init, dtype=np.float64)
        if centre.ndim == 2:
            if centre.shape[0] != n:
                raise ValueError(
                    f"init has {centre.shape[0]} particles but n_particles={n}; "
                    "pass n_particles=init.shape[0] or a centre of shape (d,)"
                )
            particles = centre.copy()
            _check_particles(particles, log_transform, dim, "init")
            return particles
        if centre.ndim != 1:
            raise ValueError(
                f"init must be (n_particles, d) particles or a centre (d,), got shape "
                f"{centre.shape}"
            )
    _check_particles(centre[None, :], log_transform, dim, "init")
    if not (np.isfinite(init_scale) and init_scale > 0):
        raise ValueError(f"init_scale must be finite and > 0, got {init_scale!r}")
    # host-side draw of the whole global array: independent of the device layout
    noise = np.random.default_rng(seed).standard_normal((n, centre.size))
    if log_transform:
        return centre * np.exp(init_scale * noise)
    return centre + init_scale * noise


def _check_particles(x: np.ndarray, log_transform: bool, dim: int | None, name: str) -> None:
    if dim is not None and x.shape[1] != dim:
        raise ValueError(
            f"{name} has {x.shape[1]} parameter(s) per particle but the model has {dim}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains non-finite values")
    if log_transform and not np.all(x > 0):
        raise ValueError(
            f"{name} must be > 0: SVGD runs on log(theta) (log_transform=True); pass "
            "positive values, or log_transform=False for unconstrained parameters"
        )


@dataclass(frozen=True)
class _StructureLoglik:
    """phasic.loglik for one structure; hashable, so compiled steps can be reused.

    With `parameterize`, a particle x is first mapped to the model's parameters:
    ``parameterize(x)`` is theta, or a pair (theta, epochs) for an epoch model.
    """

    text: str
    discrete: bool
    parameterize: Callable[[jax.Array], Any] | None = None

    def __call__(self, x: jax.Array, data: jax.Array) -> jax.Array:
        from .likelihood import loglik

        if self.parameterize is None:
            return loglik(self.text, x, data, discrete=self.discrete)
        mapped = self.parameterize(x)
        if isinstance(mapped, tuple):
            if len(mapped) != 2:
                raise ValueError(
                    "parameterize(x) must return theta or a pair (theta, epochs), got a "
                    f"tuple of {len(mapped)} items"
                )
            theta, epochs = mapped
            return loglik(self.text, theta, data, discrete=self.discrete, epochs=epochs)
        return loglik(self.text, mapped, data, discrete=self.discrete)


def _resolve_likelihood(
    structure: Any,
    log_likelihood: Callable | None,
    discrete: bool,
    parameterize: Callable | None = None,
) -> tuple[Callable[[jax.Array, jax.Array], jax.Array], int | None]:
    """(loglik(x, data), number of parameters per particle, or None when unknown)."""
    dim = None
    if parameterize is not None:
        if not callable(parameterize):
            raise TypeError(
                "parameterize must be a callable x -> theta or x -> (theta, epochs), got "
                f"{parameterize!r}"
            )
        if log_likelihood is not None:
            raise ValueError(
                "pass either parameterize (with `structure`: the likelihood is then "
                "phasic.loglik at parameterize(x)) or log_likelihood, not both; map the "
                "particles inside log_likelihood instead"
            )
        if structure is None:
            raise ValueError(
                "parameterize needs `structure` (a Graph or its JSON) to evaluate "
                "phasic.loglik at parameterize(x)"
            )
    if structure is not None:
        from .ffi import _setup

        text, info = _setup(structure)
        # mapped particles: their length is the caller's choice, told by `init`
        dim = info.param_length if parameterize is None else None
    if parameterize is not None:
        return _StructureLoglik(text, bool(discrete), parameterize), None
    if log_likelihood is not None:
        if not callable(log_likelihood):
            raise TypeError(
                f"log_likelihood must be a callable (theta, data) -> scalar, got "
                f"{log_likelihood!r}"
            )
        return log_likelihood, dim
    if structure is None:
        raise ValueError(
            "svgd needs a model: pass `structure` (a Graph or its JSON; the likelihood is "
            "then phasic.loglik) or `log_likelihood=f(theta, data)`"
        )
    return _StructureLoglik(text, bool(discrete)), dim
