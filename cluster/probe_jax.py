"""One rank of a multi-node JAX check, run under ``srun`` (one process per task).

    srun -N4 -n4 python cluster/probe_jax.py                 # plain jax, explicit coordinator
    srun -N4 -n4 python cluster/probe_jax.py --init phasic   # phasic_distributed.initialize()
    srun -N4 -n4 python cluster/probe_jax.py --kill-rank 2   # rank 2 dies mid-collective

Every rank checks ``jax.process_count() == SLURM_NTASKS``,
``jax.process_index() == SLURM_PROCID`` and that an all-gather of the rank ids
returns 0..N-1 on every rank, then prints one ``PROBE OK`` line. Exit status 0
means this rank saw a consistent world.

``--init jax`` does not rely on JAX's own SLURM detection (it slices the node
list as a string and picks a port from the job id only, so two steps of one job
collide): rank 0's host comes from ``scontrol show hostnames`` and the port from
the job id *and* step id.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time


def _slurm(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError:
        sys.exit(f"probe_jax.py: {name} is not set; run this under srun inside a Slurm job")


def explicit_coordinator() -> str:
    """``host:port`` of rank 0 for this step, derived from the step's own environment."""
    nodelist = _slurm("SLURM_STEP_NODELIST")
    hosts = subprocess.run(
        ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True
    ).stdout.split()
    job, step = int(_slurm("SLURM_JOB_ID")), int(os.environ.get("SLURM_STEP_ID", "0"))
    # distinct steps of one job get distinct ports; 20000-29999 avoids Slurm's own ports
    port = 20000 + (job * 37 + step) % 10000
    return f"{hosts[0]}:{port}"


def main() -> int:
    """Initialize jax.distributed in this rank, check the world, optionally die on purpose."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init", choices=["jax", "phasic"], default="jax")
    parser.add_argument("--kill-rank", type=int, default=None,
                        help="this rank SIGKILLs itself after initialization")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="seconds to stay in the job after the check (overlap steps)")
    args = parser.parse_args()
    rank, ntasks = int(_slurm("SLURM_PROCID")), int(_slurm("SLURM_NTASKS"))
    cpus = int(os.environ.get("SLURM_CPUS_PER_TASK", "1"))

    import jax

    jax.config.update("jax_enable_x64", True)
    if args.init == "phasic":
        import phasic_distributed

        plan = phasic_distributed.initialize(timeout=60.0)
        coordinator = plan.coordinator_address
    else:
        coordinator = explicit_coordinator()
        jax.config.update("jax_num_cpu_devices", cpus)
        jax.distributed.initialize(
            coordinator_address=coordinator, num_processes=ntasks, process_id=rank,
            initialization_timeout=60,
        )

    import numpy as np
    from jax.experimental import multihost_utils

    assert jax.process_count() == ntasks, (jax.process_count(), ntasks)
    assert jax.process_index() == rank, (jax.process_index(), rank)
    if args.kill_rank == rank:
        print(f"rank {rank}: killing myself on purpose", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    # a collective: every rank blocks here until all ranks arrive
    ranks = np.asarray(multihost_utils.process_allgather(np.array([rank]))).ravel()
    assert ranks.tolist() == list(range(ntasks)), ranks
    time.sleep(args.hold)
    print(
        f"PROBE OK rank={rank}/{ntasks} node={os.environ.get('SLURMD_NODENAME')} "
        f"step={os.environ.get('SLURM_JOB_ID')}.{os.environ.get('SLURM_STEP_ID')} "
        f"coordinator={coordinator} local_devices={jax.local_device_count()} "
        f"global_devices={jax.device_count()}",
        flush=True,
    )
    jax.distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
