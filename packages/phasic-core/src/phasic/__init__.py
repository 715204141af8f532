"""phasic: phase-type distributions in JAX.

`import phasic` is cheap: jax and the C++ extension load on first use of what
needs them. It turns on JAX's 64-bit mode, as upstream phasic does
(PHASIC_ENABLE_X64=0 opts out), and under a multi-task `srun` step it initializes
`jax.distributed` (see `phasic.auto_parallel`; PHASIC_AUTO_INIT=0 turns that off).
"""

from __future__ import annotations

import importlib
from typing import Any

from .auto_parallel import EnvironmentInfo, ParallelConfig, init_parallel, set_cpu_devices
from .auto_parallel import auto_init as _auto_init
from .auto_parallel import enable_x64_default as _enable_x64_default

__version__ = "0.1.0"

# name -> submodule that defines it; loaded on first attribute access (PEP 562).
_LAZY = {
    "Graph": "graph",
    "Vertex": "vertices",
    "Edge": "vertices",
    "MatrixRepresentation": "matrices",
    "callback": "callbacks",
    "compute_pmf_ffi": "ffi",
    "compute_moments_ffi": "ffi",
    "compute_covariance_ffi": "ffi",
    "compute_pmf_and_moments_ffi": "ffi",
    "cache_stats": "structure_transport",
    "cache_clear": "structure_transport",
    "set_cache_capacity": "structure_transport",
    "structure_key": "structure_transport",
    "compute_log_pmf_ffi": "ffi",
    "compute_mutation_pmf_ffi": "mutation_ffi",
    "compute_state_probabilities_ffi": "state_ffi",
    "compute_accumulated_visiting_time_ffi": "state_ffi",
    "propagate": "propagate_ffi",
    "vertex_moments": "propagate_ffi",
    "loglik": "likelihood",
    "sample": "jax_sampler",
    "svgd": "inference",
    "SVGDResult": "inference",
    "SVGDHistory": "inference",
    "SVGDError": "inference",
    "ExpStepSize": "upstream_svgd",
    "ExpRegularization": "upstream_svgd",
    "clear_caches": "upstream_svgd",
}
_SUBMODULES = {"graph", "vertices", "distributions", "epochs", "epoch_ffi", "callbacks", "models", "ffi", "structure_transport", "ffi_wrappers", "likelihood", "inference",
               "auto_parallel", "sampling", "upstream_svgd", "serialized", "plotting",
               "transforms", "jax_sampler", "reward_density", "mutations", "mutation_ffi",
               "state_ffi", "states", "propagate_ffi"}

__all__ = [
    "Edge",
    "EnvironmentInfo",
    "ExpRegularization",
    "ExpStepSize",
    "Graph",
    "MatrixRepresentation",
    "ParallelConfig",
    "SVGDError",
    "SVGDHistory",
    "SVGDResult",
    "Vertex",
    "__version__",
    "cache_clear",
    "cache_stats",
    "callback",
    "clear_caches",
    "compute_accumulated_visiting_time_ffi",
    "compute_covariance_ffi",
    "compute_log_pmf_ffi",
    "compute_moments_ffi",
    "compute_mutation_pmf_ffi",
    "compute_pmf_and_moments_ffi",
    "compute_pmf_ffi",
    "compute_state_probabilities_ffi",
    "init_parallel",
    "loglik",
    "models",
    "propagate",
    "sample",
    "set_cache_capacity",
    "set_cpu_devices",
    "structure_key",
    "svgd",
    "vertex_moments",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'phasic' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)


_enable_x64_default()
_auto_init()
