"""How a structure reaches the C++ kernels: its text, digest, registry and cache.

The Python call registers a structure's JSON text once per content in a
process-local C++ registry under its SHA-256 digest; the FFI calls carry only the
digest, and the C++ side keeps the compiled structures in a per-thread LRU cache.
Upstream phasic's dict form is converted to our canonical JSON once per distinct
content. `phasic.ffi` builds the FFI functions on these.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from ._ext import core
from .graph import Graph
from .serialized import from_upstream, is_upstream_form

_registered = False
_register_lock = threading.Lock()

def _ensure_registered() -> None:
    """Register the C++ FFI targets with XLA, once per process."""
    global _registered
    if _registered:
        return
    with _register_lock:
        if not _registered:
            for name, capsule in core().ffi_targets().items():
                jax.ffi.register_ffi_target(name, capsule, platform="cpu")
            _registered = True


class _StructureInfo:
    """What Python needs to know about a structure string, computed once per string."""

    __slots__ = ("digest", "param_length", "vertices_length", "discrete")

    def __init__(self, text: str) -> None:
        # The program holds only this digest, so it must identify the text without a
        # check against it: a collision-resistant hash (SHA-256; the 64-bit key it
        # replaces was only safe next to a text comparison).
        self.digest = text_digest(text)
        parsed = core().Structure.from_json(text)  # validates; ValueError names the field
        self.param_length = int(parsed.param_length)
        self.vertices_length = int(parsed.vertices_length)
        self.discrete = bool(parsed.discrete)
        core().register_structure(self.digest, text, parsed)  # the first call reuses it


def text_digest(text: str, chunk: int = 1 << 22) -> str:
    """SHA-256 (hex) of `text` in UTF-8, encoded `chunk` characters at a time.

    Equal to hashlib.sha256(text.encode()).hexdigest(), without a second copy of the
    whole text in memory (at Kingman n = 60 the JSON is ~0.6 GB).
    """
    digest = hashlib.sha256()
    for start in range(0, len(text), chunk):
        digest.update(text[start:start + chunk].encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _info(text: str) -> _StructureInfo:
    return _StructureInfo(text)


def structure_key(structure_json: str) -> str:
    """The digest (SHA-256, 64 hex characters) under which a structure's JSON text is
    registered for the FFI targets; validates and registers the text in this process."""
    return _info(structure_json).digest


class _ByContent:
    """An upstream-form dict keyed by a digest of its content, so equal dicts share a cache slot."""

    __slots__ = ("data", "discrete", "key")

    def __init__(self, data: Mapping[str, Any], discrete: bool | None) -> None:
        self.data = data
        self.discrete = discrete
        digest = hashlib.sha256(repr(discrete).encode())  # sha256: hardware-accelerated
        for name in sorted(data, key=str):
            value = data[name]
            digest.update(repr(name).encode())
            if isinstance(value, np.ndarray) and value.dtype.kind != "O":
                digest.update(f"{value.dtype.str}{value.shape}".encode())
                digest.update(np.ascontiguousarray(value).tobytes())
            else:  # numbers, strings, nested lists: their repr is their content
                digest.update(repr(value).encode())
        self.key = digest.digest()

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByContent) and other.key == self.key


@functools.lru_cache(maxsize=64)
def _upstream_text(content: _ByContent) -> str:
    """Our JSON text for an upstream-form dict, converted once per distinct content.

    The text is the builder's canonical one, so it is the same as `to_json()` of the
    graph the dict came from: both share one cache key and one compiled structure.
    """
    return Graph.from_json(from_upstream(content.data, content.discrete)).to_json()


def _structure_text(structure_json: Any, discrete: bool | None = None) -> str:
    """Our JSON text for a structure argument; `discrete` is the kind for an upstream
    dict that does not carry one (upstream keeps it outside the dict)."""
    if isinstance(structure_json, str):
        return structure_json
    if isinstance(structure_json, Graph):
        return structure_json.to_json()
    if isinstance(structure_json, Mapping):
        if is_upstream_form(structure_json):
            return _upstream_text(_ByContent(structure_json, discrete))
        return json.dumps(structure_json)
    raise TypeError(
        "structure_json must be a Graph, its JSON text (Graph.to_json()) or parsed JSON "
        f"dict, or upstream's dict (Graph.serialize()), got {type(structure_json).__name__}"
    )


def cache_stats() -> dict[str, int]:
    """Counters of the C++ structure cache over all threads (hits, misses, evictions,
    entries, capacity) and of the registry of structure texts (registered, registered_bytes)."""
    return dict(core().cache_stats())


def cache_clear() -> None:
    """Empty every thread's structure cache (each thread drops its entries on next use).

    Registered texts stay: a compiled program may run again and recompiles its
    structure from the registry."""
    core().cache_clear()


def set_cache_capacity(n: int) -> None:
    """Entries per thread in the C++ LRU structure cache."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"cache capacity must be an int >= 1, got {n!r}")
    core().set_cache_capacity(int(n))
