"""The FFI functions on several CPU devices of one machine (the main job, `nox -s local`).

The device count (PHASIC_CPUS, default 8) is set by tests/conftest.py before any
JAX computation. Every "matches" below is an assertion against the independent
dense-matrix reference (packages/phasic-core/tests/core_reference.py), with the
tolerances justified there: moments 1e-10 relative (two backward-stable methods on
well-conditioned graphs), PDF 1e-8 relative (the acceptance bar; the reference sums a
non-negative series, ~1e-13). Batched results are compared with unbatched calls at
1e-13 (same kernel per element; only summation order may differ).

Models: the Kingman coalescent (acyclic) and a two-island coalescent with
migration (cyclic), so both kinds of graph go through every path.
"""

from __future__ import annotations

import pathlib
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import phasic
from phasic import compute_moments_ffi, compute_pmf_and_moments_ffi, compute_pmf_ffi, models

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "packages" / "phasic-core" / "tests"))
import core_reference as reference  # noqa: E402

PDF_RTOL = 1e-8
MOMENT_RTOL = 1e-10
BATCH_RTOL = 1e-13
TIMES = np.array([0.01, 0.05, 0.2, 0.5, 1.0, 2.0, 4.0])


@pytest.fixture(scope="module", params=["kingman8", "island4"])
def model(request):
    """(structure JSON, a batch of 24 thetas) for an acyclic and a cyclic model."""
    rng = np.random.default_rng(42)
    if request.param == "kingman8":
        g = models.kingman(8)
        thetas = rng.uniform(0.5, 2.0, (24, 1))
    else:
        g = models.two_island(4)
        thetas = rng.uniform(0.5, 2.0, (24, 2))
    return g.to_json(), jnp.asarray(thetas)


def ref_pdf(js: str, thetas, times=TIMES) -> np.ndarray:
    return np.stack([reference.pdf(js, np.asarray(th), times) for th in thetas])


def ref_moments(js: str, thetas, k: int) -> np.ndarray:
    return np.stack([reference.moments(js, np.asarray(th), k) for th in thetas])


def ffi_ops(fn, *args) -> int:
    return len(re.findall(r"custom_call @phasic_", jax.jit(fn).lower(*args).as_text()))


class TestComputePmfFfiMultiProcess:
    def test_basic_pmf_serialization(self, model) -> None:
        js, thetas = model
        out = compute_pmf_ffi(js, thetas[0], jnp.asarray(TIMES))
        np.testing.assert_allclose(out, ref_pdf(js, thetas[:1])[0], rtol=PDF_RTOL)
        # the structure is a plain string attribute: a jitted call lowers without closures
        assert ffi_ops(lambda th: compute_pmf_ffi(js, th, jnp.asarray(TIMES)), thetas[0]) == 1

    def test_pmf_vmap_batching(self, model) -> None:
        js, thetas = model
        f = jax.vmap(lambda th: compute_pmf_ffi(js, th, jnp.asarray(TIMES)))
        out = f(thetas)
        np.testing.assert_allclose(out, ref_pdf(js, thetas), rtol=PDF_RTOL)
        assert ffi_ops(f, thetas) == 1  # one batched call, not 24

    def test_pmf_jit_vmap(self, model) -> None:
        js, thetas = model
        times = jnp.asarray(np.outer(np.linspace(0.5, 1.5, 24), TIMES))  # batch both
        out = jax.jit(jax.vmap(lambda th, t: compute_pmf_ffi(js, th, t)))(thetas, times)
        expect = np.stack([reference.pdf(js, np.asarray(th), np.asarray(t))
                           for th, t in zip(thetas, times, strict=True)])
        np.testing.assert_allclose(out, expect, rtol=PDF_RTOL)


class TestComputeMomentsFfiMultiProcess:
    def test_basic_moments(self, model) -> None:
        js, thetas = model
        out = compute_moments_ffi(js, thetas[0], 3)
        assert out.shape == (3,)
        np.testing.assert_allclose(out, ref_moments(js, thetas[:1], 3)[0], rtol=MOMENT_RTOL)

    def test_moments_vmap(self, model) -> None:
        js, thetas = model
        f = jax.vmap(lambda th: compute_moments_ffi(js, th, 3))
        np.testing.assert_allclose(f(thetas), ref_moments(js, thetas, 3), rtol=MOMENT_RTOL)
        assert ffi_ops(f, thetas) == 1

    def test_moments_jit_vmap(self, model) -> None:
        js, thetas = model
        out = jax.jit(jax.vmap(lambda th: compute_moments_ffi(js, th, 4)))(thetas)
        np.testing.assert_allclose(out, ref_moments(js, thetas, 4), rtol=MOMENT_RTOL)

    def test_thread_local_caching(self, model) -> None:
        js, thetas = model
        f = jax.jit(jax.vmap(lambda th: compute_moments_ffi(js, th, 2)))
        sharded = jax.device_put(thetas, NamedSharding(_mesh(), P("b")))
        phasic.cache_clear()
        s0 = phasic.cache_stats()
        first = f(sharded).block_until_ready()
        s1 = phasic.cache_stats()
        calls = 10
        for _ in range(calls):
            again = f(sharded).block_until_ready()
        s2 = phasic.cache_stats()
        devices = len(jax.devices())
        # The first call parses the structure on every thread that runs a shard.
        assert 1 <= s1["misses"] - s0["misses"] <= devices
        # Every shard looks the structure up exactly once per call...
        lookups = (s2["hits"] - s1["hits"]) + (s2["misses"] - s1["misses"])
        assert lookups == calls * devices, (s1, s2)
        # ...and XLA may hand a shard to a thread that has not seen it yet, which parses
        # once more; a thread never parses twice, so misses stay far below lookups.
        assert s2["misses"] - s1["misses"] <= devices, (s1, s2)
        assert s2["hits"] - s1["hits"] >= lookups - devices, (s1, s2)
        assert 1 <= s2["entries"] <= s2["misses"] - s0["misses"]
        np.testing.assert_array_equal(first, again)


class TestComputePmfAndMomentsFfiMultiProcess:
    def test_basic_pmf_and_moments(self, model) -> None:
        js, thetas = model
        pmf, mom = compute_pmf_and_moments_ffi(js, thetas[0], jnp.asarray(TIMES), 3)
        np.testing.assert_allclose(pmf, ref_pdf(js, thetas[:1])[0], rtol=PDF_RTOL)
        np.testing.assert_allclose(mom, ref_moments(js, thetas[:1], 3)[0], rtol=MOMENT_RTOL)

    def test_pmf_and_moments_vmap(self, model) -> None:
        js, thetas = model
        f = jax.vmap(lambda th: compute_pmf_and_moments_ffi(js, th, jnp.asarray(TIMES), 2))
        pmf, mom = f(thetas)
        np.testing.assert_allclose(pmf, ref_pdf(js, thetas), rtol=PDF_RTOL)
        np.testing.assert_allclose(mom, ref_moments(js, thetas, 2), rtol=MOMENT_RTOL)
        assert ffi_ops(f, thetas) == 1


def _mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), ("b",))


class TestMultiCPU:
    def test_device_count_awareness(self, device_setup) -> None:
        n, error = device_setup
        assert error is None, error
        assert jax.local_device_count() == n, f"asked for {n} CPU devices"
        assert all(d.platform == "cpu" for d in jax.devices())
        # too late to change now: a clear error naming the fix
        with pytest.raises(RuntimeError, match="before the first JAX computation"):
            phasic.set_cpu_devices(n + 1)
        phasic.set_cpu_devices(n)  # the count already in force is accepted

    def test_all_functions_together(self, model) -> None:
        js, thetas = model

        @jax.jit
        def everything(th):
            t = jnp.asarray(TIMES)
            pmf = jax.vmap(lambda x: compute_pmf_ffi(js, x, t))(th)
            mom = jax.vmap(lambda x: compute_moments_ffi(js, x, 2))(th)
            both = jax.vmap(lambda x: compute_pmf_and_moments_ffi(js, x, t, 2))(th)
            return pmf, mom, both

        pmf, mom, (pmf2, mom2) = everything(thetas)
        np.testing.assert_allclose(pmf, ref_pdf(js, thetas), rtol=PDF_RTOL)
        np.testing.assert_allclose(mom, ref_moments(js, thetas, 2), rtol=MOMENT_RTOL)
        np.testing.assert_allclose(pmf2, pmf, rtol=BATCH_RTOL)
        np.testing.assert_allclose(mom2, mom, rtol=BATCH_RTOL)


class TestShardedBatch:
    def test_shard_map_matches_single_device(self, model) -> None:
        js, thetas = model
        n_dev = jax.device_count()
        batch = 21  # not a multiple of the device count: pad, then drop the padding
        padded_len = -(-batch // n_dev) * n_dev
        th = jnp.concatenate([thetas[:batch],
                              jnp.repeat(thetas[batch - 1:batch], padded_len - batch, 0)])
        mesh = _mesh()
        per_device = jax.vmap(lambda x: compute_pmf_and_moments_ffi(
            js, x, jnp.asarray(TIMES), 3))
        sharded = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=P("b"),
                                        out_specs=(P("b"), P("b"))))
        th_sharded = jax.device_put(th, NamedSharding(mesh, P("b")))
        pmf, mom = sharded(th_sharded)
        # each device ran its own shard of padded_len / n_dev thetas
        assert len(pmf.addressable_shards) == n_dev
        assert {s.data.shape for s in mom.addressable_shards} == {(padded_len // n_dev, 3)}
        text = sharded.lower(th_sharded).as_text()
        assert len(re.findall(r"custom_call @phasic_", text)) == 1

        one = jax.device_put(thetas[:batch], jax.devices()[0])  # one device, whole batch
        pmf1, mom1 = jax.jit(per_device)(one)
        np.testing.assert_allclose(np.asarray(pmf)[:batch], pmf1, rtol=BATCH_RTOL)
        np.testing.assert_allclose(np.asarray(mom)[:batch], mom1, rtol=BATCH_RTOL)
        np.testing.assert_allclose(np.asarray(mom)[:batch], ref_moments(js, thetas[:batch], 3),
                                   rtol=MOMENT_RTOL)
