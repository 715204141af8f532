"""Open MPI's ``mpirun`` / ``mpiexec`` behind the scheduler seam.

What Open MPI sets on every rank (4.x and 5.x): ``OMPI_COMM_WORLD_SIZE``,
``OMPI_COMM_WORLD_RANK``, ``OMPI_COMM_WORLD_LOCAL_RANK`` and
``OMPI_COMM_WORLD_LOCAL_SIZE`` (ranks on this node), and the PMIx job name
``PMIX_NAMESPACE`` (4.x also ``OMPI_MCA_ess_base_jobid``).

Coordinator: when every rank is on this node (local size = world size) it is
rank 0's host, this one, reached on loopback. Across nodes Open MPI does not say
where rank 0 runs (mpirun's own host is not necessarily in the job), so
``PHASIC_COORDINATOR_HOST`` must name it. The port is derived from the PMIx
namespace (the same on every rank of one mpirun, different for another mpirun);
``PHASIC_COORDINATOR_PORT`` overrides.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..env_vars import read_int
from ..errors import MpiEnvironmentError
from . import Placement, Step

SIZE = "OMPI_COMM_WORLD_SIZE"
RANK = "OMPI_COMM_WORLD_RANK"
LOCAL_RANK = "OMPI_COMM_WORLD_LOCAL_RANK"
LOCAL_SIZE = "OMPI_COMM_WORLD_LOCAL_SIZE"
#: Names of this mpirun's job, tried in order, for the coordinator port.
JOB_VARS = ("PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid")
LOOPBACK = "127.0.0.1"
_RUN = "mpirun -n N python your_script.py"


class OpenMpi:
    """Ranks started by Open MPI's mpirun (or mpiexec, or prterun)."""

    name = "openmpi"
    error = MpiEnvironmentError
    variable_prefixes = ("OMPI_", "PMIX_")

    def is_present(self, env: Mapping[str, str]) -> bool:
        return SIZE in env

    def step(self, env: Mapping[str, str]) -> Step | None:
        size = read_int(env, SIZE, MpiEnvironmentError)
        rank = read_int(env, RANK, MpiEnvironmentError)
        if size is None or rank is None or size < 2:
            return None
        return Step(self.name, rank, size)

    def placement(self, env: Mapping[str, str]) -> Placement:
        from ..slurm import Problem

        problems: list[Problem] = []

        def error(code: str, message: str, fix: str | None) -> None:
            problems.append(Problem(severity="error", code=code, message=message, fix=fix))

        values: dict[str, int | None] = {}
        for name, minimum in ((SIZE, 1), (RANK, 0), (LOCAL_RANK, 0), (LOCAL_SIZE, 1)):
            try:
                values[name] = read_int(env, name, ValueError)
            except ValueError as exc:
                error("not-a-number", str(exc), f"{name} is set by mpirun; do not set it by hand")
                values[name] = None
                continue
            if values[name] is not None and values[name] < minimum:
                error("out-of-range", f"{name}={values[name]} is below {minimum}",
                      f"{name} is set by mpirun; do not set it by hand")
                values[name] = None
        size, rank = values[SIZE], values[RANK]
        local_rank, local_size = values[LOCAL_RANK], values[LOCAL_SIZE]
        if rank is None and not problems:
            error("missing", f"{RANK} is not set (which rank is this?)", f"start it with {_RUN}")
        if size is not None and rank is not None and rank >= size:
            error("contradiction", f"{RANK}={rank} but {SIZE}={size}", f"start it with {_RUN}")
        if local_size is not None and size is not None and local_size > size:
            error("contradiction", f"{LOCAL_SIZE}={local_size} but {SIZE}={size}",
                  f"start it with {_RUN}")
        one_host = size is not None and local_size == size
        host = LOOPBACK if one_host else env.get("PHASIC_COORDINATOR_HOST") or None
        if host is None and (size or 1) > 1:
            error("coordinator-host",
                  f"the {size} ranks are on several hosts ({LOCAL_SIZE}={local_size}) and "
                  "Open MPI does not say which one runs rank 0",
                  "set PHASIC_COORDINATOR_HOST to rank 0's host and pass it to every rank: "
                  "mpirun -x PHASIC_COORDINATOR_HOST=<host> ...")
        job = next((env[n] for n in JOB_VARS if env.get(n)), None)
        if job is None and (size or 1) > 1:
            problems.append(Problem(
                severity="warning", code="missing",
                message=f"none of {', '.join(JOB_VARS)} is set; every mpirun job gets "
                        "the same coordinator port",
                fix="set PHASIC_COORDINATOR_PORT (the same on every rank: mpirun -x ...)"))
        return Placement(
            scheduler=self.name,
            label="Open MPI environment (mpirun)",
            active=size is not None and rank is not None,
            world_size=size,
            rank=rank,
            local_rank=local_rank,
            local_size=local_size,
            coordinator_host=host,
            port_key=f"openmpi:{job or 0}",
            host=env.get("PMIX_HOSTNAME") or None,
            problems=tuple(problems),
        )
