"""One rank of a multi-node JAX check, run under ``srun`` (one process per task).

    srun -N4 -n4 python cluster/probe_jax.py                 # plain jax, explicit coordinator
    srun -N4 -n4 python cluster/probe_jax.py --init phasic   # phasic_distributed.initialize()
    srun -N4 -n4 python cluster/probe_jax.py --kill-rank 2   # rank 2 dies mid-collective
    srun -N4 -n4 python cluster/probe_jax.py --init phasic --heartbeat 10 --stall-rank 3 --stall 60
                                             # rank 3 late for a collective (cut its link meanwhile)

Every rank checks ``jax.process_count() == SLURM_NTASKS``,
``jax.process_index() == SLURM_PROCID`` and that an all-gather of the rank ids
returns 0..N-1 on every rank, then prints one ``PROBE OK`` line. Exit status 0
means this rank saw a consistent world. Rank 0 also prints a ``COORDINATOR`` line:
the address the coordinator's host name resolves to and the addresses its port
listens on in this node's network namespace (from /proc/net/tcp*), so that a
coordinator reachable only on loopback is visible.

``--init jax`` does not rely on JAX's own SLURM detection (it slices the node
list as a string and picks a port from the job id only, so two steps of one job
collide): rank 0's host comes from ``scontrol show hostnames`` and the port from
the job id *and* step id.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
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


def report_coordinator(coordinator: str) -> None:
    """One line: where the coordinator's name points and what its port listens on."""
    host, port = coordinator.rsplit(":", 1)
    resolved = socket.gethostbyname(host)
    from phasic_distributed import listening_addresses

    listens = listening_addresses(int(port))
    print(f"COORDINATOR {coordinator} resolves={resolved} "
          f"listens={','.join(listens) or 'none'}", flush=True)


def main() -> int:
    """Initialize jax.distributed in this rank, check the world, optionally die on purpose."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init", choices=["jax", "phasic"], default="jax")
    parser.add_argument("--kill-rank", type=int, default=None,
                        help="this rank SIGKILLs itself after initialization")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="seconds to stay in the job after the check (overlap steps)")
    parser.add_argument("--heartbeat", type=int, default=None,
                        help="seconds without heartbeats before JAX declares a "
                             "rank dead (JAX's default is 100)")
    parser.add_argument("--stall-rank", type=int, default=None,
                        help="this rank sleeps --stall seconds before a second collective, "
                             "so the others wait in it")
    parser.add_argument("--stall", type=float, default=0.0)
    args = parser.parse_args()
    rank, ntasks = int(_slurm("SLURM_PROCID")), int(_slurm("SLURM_NTASKS"))
    cpus = int(os.environ.get("SLURM_CPUS_PER_TASK", "1"))

    import jax

    jax.config.update("jax_enable_x64", True)
    if args.init == "phasic":
        import phasic_distributed

        plan = phasic_distributed.initialize(timeout=60.0, heartbeat_timeout=args.heartbeat)
        coordinator = plan.coordinator_address
    else:
        coordinator = explicit_coordinator()
        jax.config.update("jax_num_cpu_devices", cpus)
        extra = {} if args.heartbeat is None else {"heartbeat_timeout_seconds": args.heartbeat}
        jax.distributed.initialize(
            coordinator_address=coordinator, num_processes=ntasks, process_id=rank,
            initialization_timeout=60, **extra,
        )
    if rank == 0:
        report_coordinator(coordinator)

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
    if args.stall_rank is not None:
        node = os.environ.get("SLURMD_NODENAME")
        print(f"READY rank={rank} node={node}", flush=True)
        if rank == args.stall_rank:
            time.sleep(args.stall)
        multihost_utils.process_allgather(np.array([rank]))  # the others wait here
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
