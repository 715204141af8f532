"""The FFI functions on ranks joined by jax.distributed, checked across ranks.

Under a scheduler (``nox -s mpi`` runs ``mpirun -n 4 python -m pytest`` on this
file; a multi-task ``srun`` step works the same way) the tests run in place on
the scheduler's ranks: ``import phasic`` initialized jax.distributed from the
scheduler's variables, and phasic-testkit's rank 0 reports every rank's outcome.
Anywhere else phasic-testkit spawns 2 ranks itself.

Every rank evaluates its own thetas; the gathered results must equal the dense
matrix reference of ``packages/phasic-core/tests/core_reference.py`` for every rank's
thetas (moments 1e-10, density 1e-8 relative, as in test_multi_process_ffi.py),
and every rank must have gathered the same bits.
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phasic_distributed
from phasic_distributed import listening_addresses
from phasic_testkit import assert_equal_across_processes, barrier, gather

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "packages" / "phasic-core" / "tests"))
import core_reference as reference  # noqa: E402

STEP = phasic_distributed.scheduler_step()
NPROCS = STEP.size if STEP else 2
N = 6  # Kingman sample size
TIMES = np.array([0.05, 0.2, 0.5, 1.0, 2.0, 4.0])
BATCH = 6  # thetas per rank
PDF_RTOL = 1e-8
MOMENT_RTOL = 1e-10


def rank_thetas(rank: int) -> np.ndarray:
    """A batch of thetas that differs between ranks."""
    return 0.5 + 0.1 * rank + np.linspace(0.0, 1.5, BATCH)


@pytest.mark.multiprocess(nprocs=NPROCS, timeout=120)
def test_ranks_come_from_the_scheduler(rank, nprocs) -> None:
    plan = phasic_distributed.current_plan()
    assert plan is not None and plan.num_processes == nprocs == jax.process_count()
    assert plan.process_id == rank == jax.process_index()
    assert plan.source == (STEP.scheduler if STEP else "launcher")
    assert [int(r[0]) for r in gather(np.array([rank]))] == list(range(nprocs))
    if rank == 0:
        # every rank is on this machine: the coordinator listens on loopback only
        host, port = plan.coordinator_address.rsplit(":", 1)
        assert host == "127.0.0.1"
        assert listening_addresses(int(port)) == ["127.0.0.1"]
    barrier("coordinator-checked")


@pytest.mark.multiprocess(nprocs=NPROCS, timeout=120)
def test_ffi_results_match_the_reference_on_every_rank(rank, nprocs) -> None:
    import phasic
    from phasic import compute_moments_ffi, compute_pmf_ffi, models

    jax.config.update("jax_enable_x64", True)
    js = models.kingman(N).to_json()
    thetas = jnp.asarray(rank_thetas(rank))[:, None]
    moments = jax.jit(jax.vmap(lambda th: compute_moments_ffi(js, th, 2)))(thetas)
    pdf = jax.jit(jax.vmap(lambda th: compute_pmf_ffi(js, th, jnp.asarray(TIMES))))(thetas)
    all_moments = np.stack(gather(np.asarray(moments)))  # [rank, theta, k]
    all_pdf = np.stack(gather(np.asarray(pdf)))
    assert all_moments.shape == (nprocs, BATCH, 2) and all_pdf.shape == (nprocs, BATCH, 6)
    for r in range(nprocs):
        for i, theta in enumerate(rank_thetas(r)):
            np.testing.assert_allclose(all_moments[r, i], reference.moments(js, [theta], 2),
                                       rtol=MOMENT_RTOL, err_msg=f"rank {r}, theta {theta}")
            np.testing.assert_allclose(all_pdf[r, i], reference.pdf(js, [theta], TIMES),
                                       rtol=PDF_RTOL, err_msg=f"rank {r}, theta {theta}")
    # E[T_MRCA] of the Kingman coalescent at rate theta is 2 (1 - 1/n) / theta
    np.testing.assert_allclose(all_moments[:, :, 0],
                               2 * (1 - 1 / N) / np.stack([rank_thetas(r) for r in range(nprocs)]),
                               rtol=1e-12)
    assert_equal_across_processes(all_pdf)  # every rank gathered the same bits
    assert phasic.cache_stats()["misses"] >= 1
