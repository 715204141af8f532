"""Structures reach the FFI targets by digest: the compiled program holds no JSON text.

The Python call registers the JSON text in a process-local C++ registry under its
SHA-256 digest; the program carries only the digest. These tests pin that the
program's size does not depend on the graph, that evicted structures are recompiled
from the registry, and that a program loaded from JAX's persistent compilation
cache in a fresh process finds its structure (tracing registers it there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phasic
from phasic import models


def _kingman_mean(n: int, theta: float) -> float:
    """E[T_MRCA] of the Kingman coalescent with pair-coalescence rate theta: 2(1 - 1/n)/theta."""
    return 2.0 * (1.0 - 1.0 / n) / theta


def _lowered_text(n: int) -> str:
    text = models.kingman(n).to_json()

    def f(theta: jax.Array) -> jax.Array:
        value = phasic.compute_moments_ffi(text, theta, 2)[0]
        pdf = phasic.compute_pmf_ffi(text, theta, jnp.array([0.5, 1.0]))
        return value + jax.grad(lambda th: phasic.compute_pmf_ffi(text, th, jnp.array([1.0]))[0])(
            theta)[0] + pdf.sum()

    return jax.jit(f).lower(jnp.array([1.0])).as_text()


def test_program_text_does_not_grow_with_the_structure() -> None:
    small, large = _lowered_text(10), _lowered_text(30)
    assert len(models.kingman(30).to_json()) > 1_000_000  # the text it used to embed
    # equal up to the digits of the shapes and digests
    assert abs(len(large) - len(small)) < 300, (len(small), len(large))
    assert len(large) < 20_000
    digest = phasic.structure_key(models.kingman(30).to_json())
    assert f'digest = "{digest}"' in large and '"vertices"' not in large


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(float(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def test_the_registry_keeps_the_callers_string_not_a_copy() -> None:
    # A 15 MB text registered: the registry holds one more reference to the same
    # string and no copy of it (RSS grows by far less than the text; a copy adds all
    # of it). Registering it again adds neither.
    from phasic import _core
    from phasic.ffi import text_digest

    text = models.kingman(40).to_json()
    digest = text_digest(text)
    refs, rss = sys.getrefcount(text), _rss_mib()
    _core.register_structure(digest, text)
    assert sys.getrefcount(text) == refs + 1
    assert _rss_mib() - rss < 0.25 * len(text) / 2**20, (len(text) / 2**20, _rss_mib() - rss)
    _core.register_structure(digest, text)
    assert sys.getrefcount(text) == refs + 1
    with pytest.raises(ValueError, match="already registered with a different text"):
        _core.register_structure(digest, text[:-1] + " ")
    assert sys.getrefcount(text) == refs + 1


def test_evicted_structures_are_recompiled_from_the_registry() -> None:
    texts = {n: models.kingman(n).to_json() for n in (4, 5, 6)}
    fs = {n: jax.jit(lambda th, t=t: phasic.compute_moments_ffi(t, th, 1)[0])
          for n, t in texts.items()}
    theta = jnp.array([1.7])
    phasic.set_cache_capacity(1)
    try:
        phasic.cache_clear()  # a structure an earlier test left cached would make a hit
        before = phasic.cache_stats()
        for _ in range(2):
            for n, f in fs.items():
                np.testing.assert_allclose(f(theta), _kingman_mean(n, 1.7), rtol=1e-13)
        after = phasic.cache_stats()
        assert after["evictions"] - before["evictions"] >= 5  # every call after the first
        assert after["misses"] - before["misses"] >= 5  # each recompiled from its text
        phasic.cache_clear()
        np.testing.assert_allclose(fs[4](theta), _kingman_mean(4, 1.7), rtol=1e-13)
    finally:
        phasic.set_cache_capacity(32)
    stats = phasic.cache_stats()
    assert stats["registered"] >= 3
    assert stats["registered_bytes"] >= sum(len(t) for t in texts.values())


def test_first_call_reuses_the_structure_compiled_while_tracing() -> None:
    g = phasic.Graph(1)  # a graph no other test uses: start -> a -> b at rate 0.8123 theta
    a, b = g.find_or_create_vertex((1,)), g.find_or_create_vertex((2,))
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, [0.8123])
    text = g.to_json()
    before = phasic.cache_stats()
    f = jax.jit(lambda th: phasic.compute_moments_ffi(text, th, 1)[0])
    np.testing.assert_allclose(f(jnp.array([0.9])), 1 / (0.8123 * 0.9), rtol=1e-14)
    after = phasic.cache_stats()
    assert after["misses"] - before["misses"] == 1  # new to this thread's cache ...
    assert after["compiles"] == before["compiles"]  # ... but validated once, compiled once
    assert after["registered"] == before["registered"] + 1


_PERSISTENT_CACHE_RUN = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp
    jax.config.update("jax_compilation_cache_dir", sys.argv[1])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    events = []
    jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
    import phasic
    from phasic import models
    text = models.kingman(8).to_json()
    f = jax.jit(jax.value_and_grad(lambda th: phasic.compute_moments_ffi(text, th, 2)[0]))
    value, grad = f(jnp.array([1.3]))
    print(json.dumps({"value": float(value), "grad": float(grad[0]),
                      "hits": events.count("/jax/compilation_cache/cache_hits"),
                      "registered": phasic.cache_stats()["registered"]}))
""")


def test_persistent_compilation_cache_hit_finds_the_structure(tmp_path: Path) -> None:
    cache = tmp_path / "jax-cache"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}

    def run() -> dict:
        done = subprocess.run([sys.executable, "-c", _PERSISTENT_CACHE_RUN, str(cache)],
                              capture_output=True, text=True, env=env, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    assert first["hits"] == 0 and second["hits"] >= 1  # the second process loaded the program
    assert any(cache.iterdir())
    for out in (first, second):
        assert out["registered"] >= 1  # tracing registered the structure in each process
        np.testing.assert_allclose(out["value"], _kingman_mean(8, 1.3), rtol=1e-13)
        np.testing.assert_allclose(out["grad"], -_kingman_mean(8, 1.3) / 1.3, rtol=1e-13)
    assert second["value"] == first["value"] and second["grad"] == first["grad"]


def test_structure_key_is_the_sha256_of_the_text() -> None:
    import hashlib

    text = models.kingman(5).to_json()
    assert phasic.structure_key(text) == hashlib.sha256(text.encode()).hexdigest()
    with pytest.raises(ValueError, match="version"):
        phasic.structure_key(text.replace('"version": 1', '"version": 7'))


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 22])
def test_text_digest_in_chunks_is_the_sha256_of_the_whole_text(chunk: int) -> None:
    import hashlib

    from phasic.ffi import text_digest

    # Multi-byte characters at every chunk boundary: each chunk encodes whole characters.
    text = '{"name": "\u00e9\u4e2d\U0001f600x", "v": 1}' * 5
    assert text_digest(text, chunk) == hashlib.sha256(text.encode()).hexdigest()
    assert text_digest("", chunk) == hashlib.sha256(b"").hexdigest()
