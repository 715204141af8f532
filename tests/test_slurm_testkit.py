"""phasic-testkit's ``multiprocess`` marker, with the plugin on, in both of its modes.

- Under a scheduler (a multi-task ``srun`` step: ``cluster/slurm_test_ffi.sh`` runs
  this file that way on the local Slurm cluster; ``mpirun -n 4``: ``nox -s mpi``)
  the tests run in place on the ranks the scheduler started: the rank and process
  count must be the scheduler's (SLURM_PROCID / SLURM_NTASKS,
  OMPI_COMM_WORLD_RANK / OMPI_COMM_WORLD_SIZE), and rank 0's report merges every
  rank's outcome.
- Anywhere else the plugin spawns the ranks itself (2 of them) and the same
  assertions hold with its own variables.

The process count is the scheduler's under one (the plugin skips a test whose
count differs), else 2.
"""

from __future__ import annotations

import os
import socket

import jax.numpy as jnp
import numpy as np
import pytest

import phasic_distributed
from phasic_testkit import (
    assert_allclose_across_processes,
    assert_equal_across_processes,
    barrier,
    gather,
)

STEP = phasic_distributed.scheduler_step()
IN_STEP = STEP is not None
NPROCS = STEP.size if STEP else 2
#: The variables each scheduler states rank and size in (checked against the plugin's).
RANK_AND_SIZE = {"slurm": ("SLURM_PROCID", "SLURM_NTASKS"),
                 "openmpi": ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE")}


@pytest.mark.multiprocess(nprocs=NPROCS, devices_per_process=1, timeout=120)
def test_ranks_are_the_step_tasks(rank, nprocs, jax_devices_info) -> None:
    """Rank and size come from Slurm (or the plugin), and JAX agrees on every rank."""
    assert nprocs == NPROCS
    assert jax_devices_info["process_index"] == rank
    assert jax_devices_info["process_count"] == nprocs
    assert jax_devices_info["global_device_count"] == nprocs * jax_devices_info[
        "local_device_count"]
    if STEP:
        rank_var, size_var = RANK_AND_SIZE[STEP.scheduler]
        assert rank == int(os.environ[rank_var])
        assert nprocs == int(os.environ[size_var])
    # every rank sees every other rank, in order, through the key-value store
    ranks = gather(np.array([rank]))
    assert [int(r[0]) for r in ranks] == list(range(nprocs))
    hosts = gather(np.frombuffer(
        os.environ.get("SLURMD_NODENAME", socket.gethostname()).encode().ljust(64), np.uint8))
    names = [bytes(h).rstrip().decode() for h in hosts]
    if IN_STEP and os.environ.get("SLURM_NTASKS_PER_NODE", "") == "1":
        assert len(set(names)) == nprocs, names  # one task per node: all nodes distinct
    assert_equal_across_processes(np.array([nprocs, jax_devices_info["global_device_count"]]))
    barrier("ranks-checked")


@pytest.mark.multiprocess(nprocs=NPROCS, devices_per_process=1, timeout=120)
def test_ffi_results_agree_across_ranks(rank, nprocs) -> None:
    """A rank-independent theta gives bit-identical moments everywhere; rank-dependent
    thetas, gathered, equal this rank's own serial computation of all of them."""
    import phasic
    from phasic import models

    js = models.kingman(6).to_json()
    same = phasic.compute_moments_ffi(js, jnp.array([1.5]), 3)
    assert_equal_across_processes(np.asarray(same))  # exact: same kernel, same input
    mine = phasic.compute_pmf_ffi(
        js, jnp.array([1.0 + 0.25 * rank]), jnp.array([0.1, 0.5, 2.0]))
    everyone = np.stack(gather(np.asarray(mine)))
    serial = np.stack([np.asarray(phasic.compute_pmf_ffi(
        js, jnp.array([1.0 + 0.25 * r]), jnp.array([0.1, 0.5, 2.0]))) for r in range(nprocs)])
    np.testing.assert_array_equal(everyone, serial)
    assert_allclose_across_processes(everyone, rtol=0.0)  # every rank gathered the same
    # E[T_MRCA] of the Kingman coalescent at rate theta is 2 (1 - 1/n) / theta
    np.testing.assert_allclose(float(same[0]), 2 * (1 - 1 / 6) / 1.5, rtol=1e-12)
