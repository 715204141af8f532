"""phasic.svgd across devices and processes: sharding, aggregation, layout independence.

The same SVGD run (exponential data, Gamma prior, 21 particles padded to 24 on 8
devices, 60 adagrad steps) on

- 1 process x 8 CPU devices (tests/conftest.py sets 8),
- 2 processes x 4 devices and 4 processes x 2 devices (phasic-testkit's
  ``multiprocess`` marker spawns the ranks and joins them with jax.distributed),
- the tasks of a SLURM step (TestSlurm; skipped outside `srun`).

Every layout must reproduce the independent numpy SVGD (packages/phasic-core/tests/
core_svgd_reference.py) to 5e-11 relative, so any two layouts agree to 1e-10 (measured:
4e-16). Sharding: the log-likelihood records where it is evaluated; each process
evaluates exactly its own shard of the (padded) particles at every step, and at
step 1 exactly its own initial particles; padding particles are evaluated but
masked. Aggregation: the kernel term uses all
particles, which the reference check proves (a device using only its own particles
would move them differently in the first step). Convergence: particle mean within
0.02 posterior sd of the exact Gamma posterior mean and sd within 10 % (SVGD with
~20 particles under-disperses by about 6.5 %, measured with the reference itself).

The Kingman test runs the phasic likelihood (phasic.loglik: a custom_jvp over the
C++ FFI call) inside shard_map on 8 devices, checks it against the same run on one
device (1e-10) and against the exact grid posterior of the example script.
"""

from __future__ import annotations

import os
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phasic
import phasic_distributed
from phasic.auto_parallel import in_multi_process_step

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "packages" / "phasic-core" / "tests"))
import core_svgd_reference as ref  # noqa: E402

N_PARTICLES, N_STEPS, STEP, SEED = 21, 60, 0.3, 4
LAYOUT_RTOL = 5e-11
MEAN_TOL_SD, SD_RTOL = 0.02, 0.10
DATA = ref.exponential_data(40, 2.0, seed=3)

_seen: list[np.ndarray] = []


def _record(theta) -> None:
    _seen.append(np.array(theta))


def exp_loglik(theta, t):
    return jnp.sum(jnp.log(theta[0]) - theta[0] * t)


def counting_loglik(theta, t):
    """exp_loglik that records, on the host of the evaluating device, each theta."""
    jax.debug.callback(_record, theta)
    return exp_loglik(theta, t)


def gamma_log_prior(theta):
    return (ref.PRIOR_A - 1) * jnp.log(theta[0]) - ref.PRIOR_B * theta[0]


def reference_particles() -> np.ndarray:
    x0 = ref.initial_particles(N_PARTICLES, 1, SEED, np.ones(1), 0.5)
    z = ref.svgd(np.log(x0), lambda z: ref.exp_gamma_grad_log_z(z, DATA), N_STEPS, STEP,
                 "adagrad")
    return np.exp(z)


def run() -> phasic.SVGDResult:
    """The layout run; its likelihood records every theta it is evaluated at."""
    _seen.clear()
    return phasic.svgd(None, DATA, log_likelihood=counting_loglik,
                       log_prior=gamma_log_prior, init=np.ones(1), n_particles=N_PARTICLES,
                       n_steps=N_STEPS, step_size=STEP, seed=SEED, progress=False,
                       chunk_size=30)


def check_evaluations(rank: int, nprocs: int) -> None:
    """This process evaluated exactly its own shard of particles at every step.

    svgd first evaluates all particles once on each process (to name bad starting
    points). Then, with the padded array split into equal contiguous shards, process
    `rank` evaluates its shard at each step: at step 1 at the initial positions (the
    padding, copies of particle 0, stays there). Later positions are far from the
    initial ones (adagrad's first move is the full step, 0.3 in log theta), so
    counting the evaluations near each initial value separates step 1 from the rest.
    """
    devices = jax.device_count()
    n_pad = -(-N_PARTICLES // devices) * devices
    share = n_pad // nprocs
    mine = range(rank * share, (rank + 1) * share)
    x0 = ref.initial_particles(N_PARTICLES, 1, SEED, np.ones(1), 0.5)[:, 0]
    seen = np.concatenate(_seen)
    assert seen.size == N_PARTICLES + N_STEPS * share, (rank, seen.size)
    counts = np.array([np.sum(np.isclose(seen, v, rtol=1e-13, atol=0)) for v in x0])
    expected = 1 + np.array([i in mine for i in range(N_PARTICLES)], dtype=int)
    expected[0] += N_STEPS * sum(i in mine for i in range(N_PARTICLES, n_pad))
    np.testing.assert_array_equal(counts, expected, err_msg=f"rank {rank}")


def check_converged(particles: np.ndarray) -> None:
    a, b = ref.gamma_posterior(DATA)
    mean, sd = a / b, np.sqrt(a) / b  # of the Gamma(a, rate b) posterior
    assert abs(particles.mean() - mean) < MEAN_TOL_SD * sd, (particles.mean(), mean, sd)
    np.testing.assert_allclose(particles.std(), sd, rtol=SD_RTOL)


# ---- one process, 8 CPU devices ----------------------------------------------------


def test_one_process_eight_devices(device_setup) -> None:
    _, error = device_setup
    assert error is None, error
    if in_multi_process_step():
        pytest.skip("a scheduler's ranks set their own devices; TestSlurm covers SLURM")
    assert jax.device_count() == 8
    res = run()
    assert res.n_devices == 8 and res.n_processes == 1
    np.testing.assert_allclose(res.particles, reference_particles(), rtol=LAYOUT_RTOL)
    check_converged(res.particles)
    # sharding: the 24 padded particles evaluated once per step (not 8 x 24)
    check_evaluations(0, 1)


def test_kingman_phasic_loglik_on_eight_devices() -> None:
    """The FFI likelihood (custom_jvp over ffi_call) inside shard_map, vs one device."""
    if in_multi_process_step():
        pytest.skip("a scheduler's ranks set their own devices; TestSlurm covers SLURM")
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "examples"))
    import kingman_inference as ki

    n = 5
    data = ki.simulate_tmrca(n, 2.0, 40, seed=2)
    kw = dict(log_prior=ki.log_prior, n_particles=21, n_steps=60, step_size=0.3, seed=1,
              progress=False, chunk_size=30)
    graph = phasic.models.kingman(n)
    eight = phasic.svgd(graph, data, **kw)
    one = phasic.svgd(graph, data, devices=jax.devices()[:1], **kw)
    assert eight.n_devices == 8
    np.testing.assert_allclose(eight.particles, one.particles, rtol=LAYOUT_RTOL)
    grid = np.linspace(0.05, 8.0, 4000)
    dens = ki.grid_posterior(data, n, grid)
    mean = np.trapezoid(grid * dens, grid)
    sd = np.sqrt(np.trapezoid((grid - mean) ** 2 * dens, grid))
    assert abs(eight.mean()[0] - mean) < MEAN_TOL_SD * sd, (eight.mean(), mean, sd)
    np.testing.assert_allclose(eight.sd()[0], sd, rtol=SD_RTOL)


# ---- several processes ---------------------------------------------------------------


def check_layout(nprocs: int, local: int) -> None:
    from phasic_testkit import assert_equal_across_processes

    assert jax.process_count() == nprocs, (
        f"expected {nprocs} processes joined by jax.distributed, got "
        f"{jax.process_count()}: run these tests with the phasic-testkit plugin active "
        "(pip install -e packages/phasic-testkit) or under srun"
    )
    assert jax.local_device_count() == local and jax.device_count() == nprocs * local
    res = run()
    assert res.n_processes == nprocs and res.n_devices == nprocs * local
    # every process returns all particles, identical on every rank
    assert_equal_across_processes(res.particles)
    if jax.process_index() == 0:  # the others equal rank 0 exactly (checked above)
        np.testing.assert_allclose(res.particles, reference_particles(), rtol=LAYOUT_RTOL)
    check_converged(res.particles)
    # sharding: each process evaluates only its own shard, at every step
    check_evaluations(jax.process_index(), nprocs)


@pytest.mark.multiprocess(nprocs=2, devices_per_process=4, timeout=180)
def test_two_processes_four_devices() -> None:
    check_layout(2, 4)


@pytest.mark.multiprocess(nprocs=4, devices_per_process=2, timeout=180)
def test_four_processes_two_devices() -> None:
    check_layout(4, 2)


# ---- SLURM ---------------------------------------------------------------------------


@pytest.mark.skipif(getattr(phasic_distributed.scheduler_step(), "scheduler", None) != "slurm",
                    reason="needs a multi-task srun step")
class TestSlurm:
    """The same checks on the ranks of an srun step (jax.distributed started by phasic)."""

    def test_svgd_across_slurm_tasks(self) -> None:
        n = int(os.environ["SLURM_NTASKS"])
        check_layout(n, jax.local_device_count())
