"""One rank of the multi-process scaling benchmark (started by phasic-launch or srun).

    python _scaling_worker.py TOTAL N

Every rank: initialize jax.distributed through phasic_distributed (timed), compute
its 1/P share of TOTAL thetas (Kingman N, pdf at 6 times; compile excluded, the
warm call timed), then all-gather the results to every rank (timed, after a
barrier so waiting for slower ranks is not counted as communication). Rank 0
checks the gathered batch against the whole batch computed locally. Each rank
prints `RESULT <json>`.
"""

from __future__ import annotations

import os
import sys
import time

STARTED = time.perf_counter()
os.environ["PHASIC_AUTO_INIT"] = "0"  # under srun: initialize below, where it is timed

import jax  # noqa: E402

import phasic  # noqa: E402
import phasic_distributed  # noqa: E402

IMPORTED = time.perf_counter()


def main() -> None:
    total, n = int(sys.argv[1]), int(sys.argv[2])
    start = time.perf_counter()
    plan = phasic_distributed.initialize(timeout=60)
    init_s = time.perf_counter() - start
    jax.config.update("jax_enable_x64", True)

    import jax.numpy as jnp
    import numpy as np
    from common import emit, timeit
    from jax.experimental import multihost_utils

    from phasic import models

    nproc, rank = jax.process_count(), jax.process_index()
    if nproc != plan.num_processes or total % nproc:
        raise SystemExit(f"rank {rank}: {nproc} JAX processes (plan {plan.num_processes}); "
                         f"TOTAL={total} must be a multiple of the process count")
    structure = models.kingman(n).to_json()
    times = jnp.linspace(0.1, 3.0, 6)
    all_thetas = np.linspace(0.5, 2.0, total)[:, None]
    share = total // nproc
    mine = jnp.asarray(all_thetas[rank * share:(rank + 1) * share])
    batched = jax.jit(jax.vmap(lambda th: phasic.compute_pmf_ffi(structure, th, times)))
    start = time.perf_counter()
    local = batched(mine).block_until_ready()
    compile_s = time.perf_counter() - start
    compute_s = timeit(lambda: batched(mine).block_until_ready(), repeat=3, min_time=0.0)

    multihost_utils.sync_global_devices("before gather")  # everyone is done computing
    start = time.perf_counter()
    gathered = np.asarray(multihost_utils.process_allgather(np.asarray(local), tiled=True))
    gather_s = time.perf_counter() - start
    result = {"rank": rank, "processes": nproc, "source": plan.source,
              "omp_threads": plan.omp_threads_per_device, "host": os.uname().nodename,
              "import_s": IMPORTED - STARTED, "init_s": init_s, "compile_s": compile_s,
              "compute_s": compute_s, "gather_s": gather_s, "share": share}
    if rank == 0:
        whole = np.asarray(batched(jnp.asarray(all_thetas)))
        result["max_abs_diff_vs_local"] = float(np.max(np.abs(gathered - whole)))
        result["gathered_shape"] = list(gathered.shape)
    emit(result)
    multihost_utils.sync_global_devices("done")  # nobody leaves while others still gather


if __name__ == "__main__":
    main()
