"""The FFI functions across the nodes of a Slurm cluster: one pytest process per rank.

Run under ``srun`` (``cluster/slurm_test_ffi.sh`` does, and ``nox -s slurm --
--local-cluster`` submits that script to a real Slurm cluster on this machine).
Outside a Slurm step every test is skipped with the reason.

Every cross-rank property is asserted by the code: values are all-gathered with
``jax.experimental.multihost_utils.process_allgather`` and each rank checks the
whole gathered array, so a wrong value on any rank fails every rank, and the
message names the rank it came from. Each test runs its collectives before any
assertion, so a failure on one rank cannot leave the others waiting in a
collective that rank skipped.

References are independent of phasic: T_MRCA of the Kingman coalescent is a sum
of independent exponentials with rates theta*k(k-1)/2 (k = n..2), so its density
is that of a small bidiagonal chain (``scipy.linalg.expm``) and its moments are
closed forms (docs/pages/accuracy.md, Reference closed forms).
"""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest


def _skip_reason() -> str | None:
    """Why this process is not one rank of a Slurm step, or None when it is."""
    if "SLURM_PROCID" not in os.environ or "SLURM_NTASKS" not in os.environ:
        return ("needs a Slurm step (SLURM_PROCID/SLURM_NTASKS unset): run it with "
                "`sbatch cluster/slurm_test_ffi.sh` or `nox -s slurm -- --local-cluster`")
    if "SLURM_STEP_ID" not in os.environ:
        # a batch script has SLURM_PROCID=0 and the job's SLURM_NTASKS, but is one process
        return "inside a Slurm job but not in an srun step: launch pytest with `srun`"
    return None


SKIP_REASON = _skip_reason()
pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

N = 6  # Kingman sample size: 10 transient block-counting states, small and fast
TIMES = np.array([0.05, 0.2, 0.5, 1.0, 2.0, 4.0])
BATCH = 16  # thetas per rank in the vmap tests


# --------------------------------------------------------------------- references


def kingman_rates(n: int, theta: float) -> np.ndarray:
    """Rates of leaving k lineages, k = n..2, in units where one pair coalesces at theta."""
    k = np.arange(n, 1, -1)
    return theta * k * (k - 1) / 2.0


def tmrca_pdf_reference(n: int, theta: float, times: np.ndarray) -> np.ndarray:
    """Density of T_MRCA from the lineage-count chain: alpha exp(S t) s (scipy expm)."""
    from scipy.linalg import expm

    rates = kingman_rates(n, theta)
    sub = np.diag(-rates) + np.diag(rates[:-1], 1)
    exit_rates = np.zeros(len(rates))
    exit_rates[-1] = rates[-1]
    return np.array([expm(sub * t)[0] @ exit_rates for t in times])


def tmrca_moments_reference(n: int, theta: float) -> np.ndarray:
    """E[T_MRCA] = 2(1 - 1/n)/theta and E[T_MRCA^2] = Var + E^2, Var = sum 4/(k^2 (k-1)^2)/theta^2."""
    mean = 2.0 * (1.0 - 1.0 / n) / theta
    k = np.arange(2, n + 1)
    var = np.sum(4.0 / (k**2 * (k - 1) ** 2)) / theta**2
    return np.array([mean, var + mean**2])


def rank_thetas(rank: int) -> np.ndarray:
    """A batch of thetas that differs between ranks (offset by the rank)."""
    return 0.5 + 0.1 * rank + np.linspace(0.0, 1.5, BATCH)


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def world():
    """Initialize jax.distributed (``import phasic`` does it under srun) and describe this rank."""
    import phasic

    plan = phasic.init_parallel()  # idempotent: a no-op when the import already initialized
    import jax

    jax.config.update("jax_enable_x64", True)
    return {
        "rank": int(os.environ["SLURM_PROCID"]),
        "ntasks": int(os.environ["SLURM_NTASKS"]),
        "plan": plan,
        "phasic": phasic,
        "jax": jax,
    }


@pytest.fixture(scope="module")
def structure(world):
    """The Kingman(N) graph serialized to JSON, built on every rank independently."""
    return world["phasic"].models.kingman(N).to_json()


def allgather(x) -> np.ndarray:
    """Stack ``x`` from every rank: result[r] is rank r's value."""
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(np.asarray(x)))


def assert_rows_close(gathered: np.ndarray, expected: np.ndarray, rtol: float, what: str,
                      atol: float = 0.0) -> None:
    """Row r of ``gathered`` came from rank r; name every rank whose row is off."""
    bad = [r for r in range(len(gathered))
           if not np.allclose(gathered[r], expected[r], rtol=rtol, atol=atol)]
    if bad:
        r = bad[0]
        err = np.max(np.abs(gathered[r] - expected[r]) / np.maximum(np.abs(expected[r]), 1e-300))
        raise AssertionError(
            f"{what}: ranks {bad} differ from the reference (rank {r}: max rel err {err:.3e}, "
            f"rtol {rtol:g})\n got {gathered[r]}\n want {expected[r]}"
        )


# --------------------------------------------------------------------- tests


def test_slurm_environment_detected(world):
    """phasic_distributed reads this step's rank, size and nodes as Slurm itself reports them."""
    import phasic_distributed

    # collective first, on every rank, before anything can fail on one rank only
    me = os.environ["SLURMD_NODENAME"]
    names = allgather(np.frombuffer(me.encode().ljust(64, b"\0"), dtype=np.uint8))
    env = phasic_distributed.detect_slurm_environment()
    assert env is not None, "detect_slurm_environment() found no Slurm step inside srun"
    assert env.procid == world["rank"]
    assert env.ntasks == world["ntasks"]
    nodelist = os.environ["SLURM_STEP_NODELIST"]
    slurm_hosts = subprocess.run(
        ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True
    ).stdout.split()
    assert phasic_distributed.expand_hostlist(nodelist) == slurm_hosts
    # every rank reports the node it runs on; together they cover the step's nodes
    seen = {bytes(row).rstrip(b"\0").decode() for row in names}
    assert seen == set(slurm_hosts), (seen, slurm_hosts)


def test_distributed_initialized(world):
    """process_count == SLURM_NTASKS, process_index == SLURM_PROCID, devices add up."""
    jax = world["jax"]
    owners = allgather(np.array([d.process_index for d in jax.local_devices()]))
    assert jax.process_count() == world["ntasks"]
    assert jax.process_index() == world["rank"]
    per_rank = int(os.environ.get("PHASIC_CPUS") or os.environ.get("SLURM_CPUS_PER_TASK", "1"))
    assert jax.local_device_count() == per_rank
    assert jax.device_count() == per_rank * world["ntasks"]
    assert owners.tolist() == [[r] * per_rank for r in range(world["ntasks"])]


def test_pmf_multinode(world, structure):
    """compute_pmf_ffi on every rank with a rank-dependent theta, checked on every rank."""
    phasic, jnp = world["phasic"], world["jax"].numpy
    theta = 1.0 + 0.25 * world["rank"]
    pdf = phasic.compute_pmf_ffi(structure, jnp.array([theta]), jnp.array(TIMES))
    gathered = allgather(pdf)
    expected = np.array([tmrca_pdf_reference(N, 1.0 + 0.25 * r, TIMES)
                         for r in range(world["ntasks"])])
    # phasic promises 1e-8 relative on the pdf; expm is accurate to ~1e-14 here
    assert_rows_close(gathered, expected, rtol=1e-8, what="pdf of T_MRCA")


def test_moments_multinode(world, structure):
    """compute_moments_ffi: E[T], E[T^2] of T_MRCA against the closed forms, every rank."""
    phasic, jnp = world["phasic"], world["jax"].numpy
    theta = 1.0 + 0.25 * world["rank"]
    moments = phasic.compute_moments_ffi(structure, jnp.array([theta]), 2)
    gathered = allgather(moments)
    expected = np.array([tmrca_moments_reference(N, 1.0 + 0.25 * r)
                         for r in range(world["ntasks"])])
    # elimination on a 10-state acyclic graph: a few dozen float64 operations
    assert_rows_close(gathered, expected, rtol=1e-12, what="moments of T_MRCA")


def test_vmap_batching_multinode(world, structure):
    """vmap over a per-rank theta batch; the gathered batches match a single-process loop."""
    phasic, jax = world["phasic"], world["jax"]
    jnp = jax.numpy
    thetas = rank_thetas(world["rank"])[:, None]
    batched = jax.vmap(lambda t: phasic.compute_moments_ffi(structure, t, 2))(jnp.array(thetas))
    gathered = allgather(batched)
    # single-process reference: this rank recomputes every rank's batch one theta at a time
    loop = np.array([[np.asarray(phasic.compute_moments_ffi(structure, jnp.array([t]), 2))
                      for t in rank_thetas(r)] for r in range(world["ntasks"])])
    assert_rows_close(gathered, loop, rtol=1e-13, what="vmap vs unbatched loop")
    closed = np.array([[tmrca_moments_reference(N, t) for t in rank_thetas(r)]
                       for r in range(world["ntasks"])])
    assert_rows_close(gathered, closed, rtol=1e-12, what="vmap vs closed forms")


def test_per_process_caching(world):
    """Each process has its own structure cache: a cold miss on every rank, then hits."""
    phasic, jnp = world["phasic"], world["jax"].numpy
    # a structure no other test uses, so its first call here must miss on every rank
    fresh = phasic.models.kingman(N + 1).to_json()
    theta = jnp.array([1.0])
    before = phasic.cache_stats()
    phasic.compute_moments_ffi(fresh, theta, 1).block_until_ready()
    cold = phasic.cache_stats()
    for _ in range(10):
        phasic.compute_moments_ffi(fresh, theta, 1).block_until_ready()
    warm = phasic.cache_stats()
    deltas = np.array([
        cold["misses"] - before["misses"],
        warm["hits"] - cold["hits"],
        warm["misses"] - cold["misses"],
    ])
    gathered = allgather(deltas)
    for r, (cold_miss, warm_hits, warm_miss) in enumerate(gathered):
        assert cold_miss >= 1, f"rank {r}: the first call of a new structure did not miss"
        # XLA may run a call on another thread (per-thread caches), but most calls must hit
        assert warm_hits >= 5 and warm_miss < warm_hits, (
            f"rank {r}: 10 repeated calls gave {warm_hits} hits, {warm_miss} misses"
        )


def test_all_processes_same_result(world, structure):
    """The same theta on every rank gives the same numbers on every rank (asserted, not printed)."""
    phasic, jnp = world["phasic"], world["jax"].numpy
    theta = jnp.array([0.8])
    pdf, moments = phasic.compute_pmf_and_moments_ffi(structure, theta, jnp.array(TIMES), 3)
    mine = np.concatenate([np.asarray(pdf), np.asarray(moments)])
    gathered = allgather(mine)
    # the same property through phasic-testkit's own cross-rank assertion (a collective too)
    from phasic_testkit import assert_allclose_across_processes

    assert_allclose_across_processes(mine, rtol=1e-12)
    # same binary, same inputs, same deterministic kernels: agreement to 1e-12 relative
    assert_rows_close(gathered, np.broadcast_to(gathered[0], gathered.shape), rtol=1e-12,
                      what="rank r vs rank 0")
    expected = np.concatenate([tmrca_pdf_reference(N, 0.8, TIMES),
                               tmrca_moments_reference(N, 0.8)])
    assert_rows_close(gathered[:, :-1], np.broadcast_to(expected, gathered[:, :-1].shape),
                      rtol=1e-8, what="pdf+moments vs reference")


def test_jit_vmap_multinode(world, structure):
    """jit(vmap) over thetas and times together equals the eager per-element results."""
    phasic, jax = world["phasic"], world["jax"]
    jnp = jax.numpy
    thetas = jnp.array(rank_thetas(world["rank"])[:, None])
    times = jnp.array(np.linspace(0.1, 3.0, BATCH)[:, None])  # one time per theta
    f = jax.jit(jax.vmap(lambda t, x: phasic.compute_pmf_ffi(structure, t, x)))
    out = np.asarray(f(thetas, times))[:, 0]
    eager = np.array([float(phasic.compute_pmf_ffi(structure, thetas[i], times[i])[0])
                      for i in range(BATCH)])
    gathered = allgather(out)
    np.testing.assert_allclose(out, eager, rtol=1e-13)
    expected = np.array([
        [tmrca_pdf_reference(N, th, np.array([x]))[0]
         for th, x in zip(rank_thetas(r), np.linspace(0.1, 3.0, BATCH), strict=True)]
        for r in range(world["ntasks"])
    ])
    assert_rows_close(gathered, expected, rtol=1e-8, what="jit(vmap) pdf vs reference")


def epoch_point(rank: int) -> tuple[np.ndarray, np.ndarray]:
    """A rank's three-epoch size history: theta (3, 1) rates and tau (2,) breakpoints."""
    theta = np.array([[1.0], [1.0 / 3.0], [2.0]]) * (1.0 + 0.1 * rank)
    tau = np.array([0.3, 0.9]) * (1.0 + 0.05 * rank)
    return theta, tau


def test_epoch_loglik_multinode(world, structure):
    """An epoch model's loglik and its gradients in theta and tau (traced), every rank.

    Each rank evaluates its own history; every rank checks all of them against the
    dense piecewise-expm reference (each log-density within 1e-8, the pdf's 1e-8
    relative bar) and central finite differences of it (1e-6; their error is ~1e-9).
    """
    import epoch_reference

    phasic, jax = world["phasic"], world["jax"]
    jnp = jax.numpy
    theta, tau = epoch_point(world["rank"])

    @jax.jit
    def value_and_grads(th, ta):
        f = lambda a, b: phasic.loglik(structure, a, jnp.asarray(TIMES), epochs=b)  # noqa: E731
        value, (g_theta, g_tau) = jax.value_and_grad(f, argnums=(0, 1))(th, ta)
        return jnp.concatenate([value[None], g_theta.ravel(), g_tau])

    gathered = allgather(value_and_grads(jnp.asarray(theta), jnp.asarray(tau)))
    values, grads = gathered[:, :1], gathered[:, 1:]
    want_values, want_grads = [], []
    for r in range(world["ntasks"]):
        th, ta = epoch_point(r)
        want_values.append([epoch_reference.loglik(structure, th, ta, TIMES)])
        fd_theta, fd_tau = epoch_reference.fd_gradient(structure, th, ta, TIMES)
        want_grads.append(np.concatenate([fd_theta.ravel(), fd_tau]))
    assert_rows_close(values, np.array(want_values), rtol=0, atol=1e-8 * TIMES.size,
                      what="epoch loglik vs piecewise expm")
    assert_rows_close(grads, np.array(want_grads), rtol=1e-6,
                      what="epoch loglik gradient (theta, tau) vs finite differences")
