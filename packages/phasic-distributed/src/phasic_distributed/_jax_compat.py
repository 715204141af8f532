"""The only module that touches JAX's private modules (``jax._src``).

JAX has no public way to ask "has the backend started?" or to reach the
jax.distributed key-value client and this process's rank without starting the
backend. Both live in ``jax._src`` and may move in any release; when they do, the
functions here raise `JaxCompatibilityError` naming the installed jax version
instead of failing somewhere else with an AttributeError.
"""

from __future__ import annotations

import sys
from typing import Any

from .errors import JaxCompatibilityError

#: The jax versions this module was written against.
TESTED_JAX = "0.9.1 to 0.10.2"


def _changed(what: str, exc: BaseException) -> JaxCompatibilityError:
    version = getattr(sys.modules.get("jax"), "__version__", "unknown")
    return JaxCompatibilityError(
        f"jax {version} has no {what} ({type(exc).__name__}: {exc}); phasic_distributed "
        f"needs it and was tested with jax {TESTED_JAX}. Install a jax in that range or "
        "a phasic-distributed that supports this jax."
    )


def backend_started() -> bool:
    """True if a JAX backend exists in this process (a JAX computation already ran).

    Never starts a backend and never imports jax: without jax imported, nothing
    can have run.
    """
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
    except ImportError as exc:
        raise _changed("jax._src.xla_bridge", exc) from exc
    probe = getattr(xla_bridge, "backends_are_initialized", None)
    if probe is not None:
        return bool(probe())
    if hasattr(xla_bridge, "_backends"):  # jax before backends_are_initialized()
        return bool(xla_bridge._backends)
    raise _changed("xla_bridge.backends_are_initialized()", AttributeError("missing"))


def _global_state() -> Any:
    try:
        from jax._src import distributed

        return distributed.global_state
    except (ImportError, AttributeError) as exc:
        raise _changed("jax._src.distributed.global_state", exc) from exc


def distributed_client() -> Any | None:
    """The jax.distributed client (its key-value store), or None before initialization."""
    if "jax" not in sys.modules:
        return None
    try:
        return _global_state().client
    except AttributeError as exc:
        raise _changed("jax._src.distributed.global_state.client", exc) from exc


def distributed_process() -> tuple[int, int] | None:
    """(process id, number of processes) of jax.distributed, or None before initialization.

    Unlike jax.process_index() this does not start the backend (a multi-process
    CPU backend waits for every rank to start its own).
    """
    if distributed_client() is None:
        return None
    state = _global_state()
    try:
        return int(state.process_id), int(state.num_processes)
    except (AttributeError, TypeError) as exc:
        raise _changed("global_state.process_id / num_processes", exc) from exc
