"""Lazy access to the compiled extension `phasic._core`.

The extension is loaded on first use so that `import phasic` stays cheap, and a
missing or stale build gives one clear message instead of an opaque ImportError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_core: ModuleType | None = None


def core() -> ModuleType:
    """Return the `phasic._core` extension module, importing it on first call."""
    global _core
    if _core is None:
        try:
            _core = importlib.import_module("phasic._core")
        except ImportError as exc:  # pragma: no cover - depends on the build
            raise ImportError(
                "phasic's C++ extension `phasic._core` could not be imported "
                f"({exc}). Build and install it with `pip install packages/phasic-core`, "
                "or for development `pip install --no-build-isolation -e packages/phasic-core "
                "-Ceditable.rebuild=true -Cbuild-dir=build/phasic-core`."
            ) from exc
    return _core
