"""What a process under SLURM can learn from its environment, and what is wrong with it.

`SlurmEnvironment.from_env` never raises for a bad environment: it records each
problem (with the ``srun`` command that fixes it) so that ``doctor`` can show all
of them; `SlurmEnvironment.raise_for_problems` turns the errors into one
`SlurmEnvironmentError`.

Where values come from (first present wins):

* node list: ``SLURM_STEP_NODELIST`` (the step's), then ``SLURM_JOB_NODELIST``
  (the job's, with a warning: the step may use fewer nodes), then ``SLURM_NODELIST``;
* tasks per node: ``SLURM_STEP_TASKS_PER_NODE``, then ``SLURM_TASKS_PER_NODE``;
* task count: ``SLURM_NTASKS``, ``SLURM_NPROCS``, ``SLURM_STEP_NUM_TASKS``, then
  nodes x tasks per node. Two explicit counts that disagree are an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .env_vars import COORDINATOR_HOST
from .errors import SlurmEnvironmentError
from .hostlist import MAX_HOSTS, expand_hostlist
from .schedulers import format_problems
from .schedulers.slurm import MARKERS, TASK_COUNT_VARS

Context = Literal["step", "batch", "salloc", "ssh", "partial", "none"]

#: The fix for a SLURM variable that cannot be read: srun sets it, people should not.
_SET_BY_SRUN = "{name} is set by srun; do not set it by hand (unset it)"
_TPN_ELEMENT = re.compile(r"^(\d+)(?:\(x(\d+)\))?$")


class Problem(BaseModel):
    """One thing wrong with the environment, and how to fix it."""

    model_config = ConfigDict(frozen=True)

    severity: Literal["error", "warning"]
    code: str
    message: str
    fix: str | None = None


def parse_tasks_per_node(text: str) -> list[int]:
    """Expand SLURM's tasks-per-node form: ``"2(x3),1"`` -> ``[2, 2, 2, 1]``.

    Raises ``ValueError`` naming the bad element, or when the text describes more
    than `MAX_HOSTS` nodes (checked before anything is expanded).
    """
    runs: list[tuple[int, int]] = []
    nodes = 0
    for element in text.strip().split(","):
        m = _TPN_ELEMENT.match(element.strip())
        if not m:
            raise ValueError(
                f"tasks-per-node element {element!r} in {text!r} is not N or N(xM)"
            )
        count, repeat = int(m.group(1)), int(m.group(2) or 1)
        if repeat < 1:
            raise ValueError(f"tasks-per-node element {element!r} in {text!r} repeats 0 times")
        nodes += repeat
        if nodes > MAX_HOSTS:
            raise ValueError(
                f"tasks-per-node {text[:80]!r} describes more than {MAX_HOSTS} nodes "
                "(the limit of a node list)"
            )
        runs.append((count, repeat))
    return [count for count, repeat in runs for _ in range(repeat)]


class _Reader:
    """Reads typed values from an environment mapping, collecting problems."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[Problem] = []

    def first(self, *names: str) -> tuple[str | None, str | None]:
        for name in names:
            value = self.env.get(name)
            if value is not None and value.strip() != "":
                return name, value.strip()
        return None, None

    def integer(self, *names: str, minimum: int = 0) -> tuple[int | None, str | None]:
        name, value = self.first(*names)
        if name is None or value is None:
            return None, None
        try:
            number = int(value)
        except ValueError:
            self.error(
                "not-a-number",
                f"{name}={value!r} is not an integer",
                _SET_BY_SRUN.format(name=name),
            )
            return None, name
        if number < minimum:
            self.error("out-of-range", f"{name}={number} is below {minimum}", None)
            return None, name
        return number, name

    def error(self, code: str, message: str, fix: str | None) -> None:
        self.problems.append(Problem(severity="error", code=code, message=message, fix=fix))

    def warning(self, code: str, message: str, fix: str | None = None) -> None:
        self.problems.append(Problem(severity="warning", code=code, message=message, fix=fix))


class SlurmEnvironment(BaseModel):
    """The SLURM facts visible to this process (see the module docstring for sources)."""

    model_config = ConfigDict(frozen=True)

    context: Context
    job_id: int | None = None
    step_id: int | None = None
    procid: int | None = None
    ntasks: int | None = None
    ntasks_source: str | None = None
    localid: int | None = None
    nodeid: int | None = None
    node_name: str | None = None
    step_nodelist: str | None = None
    job_nodelist: str | None = None
    nodes: tuple[str, ...] = ()
    nodelist_source: str | None = None
    cpus_per_task: int | None = None
    tasks_per_node: tuple[int, ...] | None = None
    het_size: int | None = None
    het_offset: int | None = None
    array_job_id: int | None = None
    array_task_id: int | None = None
    problems: tuple[Problem, ...] = ()

    # -- derived -------------------------------------------------------------------------

    @property
    def errors(self) -> list[Problem]:
        """The problems that make a distributed setup impossible."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def local_tasks(self) -> int | None:
        """Tasks of this step on this node (from tasks per node and SLURM_NODEID)."""
        tpn = self.tasks_per_node
        if tpn is None:
            return None
        if len(tpn) == 1:
            return tpn[0]
        if self.nodeid is not None and self.nodeid < len(tpn):
            return tpn[self.nodeid]
        return None

    def srun_command(self, program: str = "python your_script.py") -> str:
        """The srun command that would run `program` as a proper multi-task step."""
        ntasks = self.ntasks or max(len(self.nodes), 1)
        parts = ["srun"]
        if self.context == "ssh" and self.job_id is not None:
            parts.append(f"--jobid={self.job_id}")
        if len(self.nodes) > 1:
            parts.append(f"--nodes={len(self.nodes)}")
        parts.append(f"--ntasks={ntasks}")
        if self.cpus_per_task:
            parts.append(f"--cpus-per-task={self.cpus_per_task}")
        return " ".join(parts + [program])

    def raise_for_problems(self) -> None:
        """Raise `SlurmEnvironmentError` listing every error (warnings are not raised)."""
        if self.errors:
            raise SlurmEnvironmentError(format_problems(
                f"SLURM environment ({self.context}) cannot run a distributed job:", self.errors))

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SlurmEnvironment:
        """Read the SLURM variables of `env` (default: ``os.environ``); never raises."""
        env = os.environ if env is None else env
        r = _Reader(env)
        fields: dict[str, object] = {}

        fields["job_id"], _ = r.integer("SLURM_JOB_ID", "SLURM_JOBID")
        fields["step_id"], _ = r.integer("SLURM_STEP_ID", "SLURM_STEPID")
        fields["procid"], _ = r.integer("SLURM_PROCID")
        fields["localid"], _ = r.integer("SLURM_LOCALID")
        fields["nodeid"], _ = r.integer("SLURM_NODEID")
        fields["cpus_per_task"], _ = r.integer("SLURM_CPUS_PER_TASK", minimum=1)
        fields["het_size"], _ = r.integer("SLURM_HET_SIZE", "SLURM_PACK_SIZE", minimum=1)
        fields["het_offset"], _ = r.integer("SLURM_HET_JOB_OFFSET", "SLURM_PACK_JOB_OFFSET")
        fields["array_job_id"], _ = r.integer("SLURM_ARRAY_JOB_ID")
        fields["array_task_id"], _ = r.integer("SLURM_ARRAY_TASK_ID")
        fields["node_name"] = r.first("SLURMD_NODENAME")[1]
        step_list = r.first("SLURM_STEP_NODELIST")[1]
        job_var, job_list = r.first("SLURM_JOB_NODELIST", "SLURM_NODELIST")
        fields["step_nodelist"], fields["job_nodelist"] = step_list, job_list

        if not any(name in env for name in MARKERS):
            r.error("no-slurm", "no SLURM variables are set: this is not a SLURM job", None)
            return cls(context="none", problems=tuple(r.problems), **fields)  # type: ignore[arg-type]

        in_step = "SLURM_STEP_NODELIST" in env or "SLURM_STEP_NUM_TASKS" in env
        if in_step:
            context: Context = "step"
        elif env.get("ENVIRONMENT") == "BATCH":
            context = "batch"
        elif "SSH_CONNECTION" in env or "SSH_CLIENT" in env:
            context = "ssh"
        elif fields["job_id"] is not None and "SLURM_PROCID" not in env:
            context = "salloc"
        else:
            context = "partial"

        # Node list: the step's, else the job's.
        nodes: list[str] = []
        source = None
        for name, text, var in (("step", step_list, "SLURM_STEP_NODELIST"),
                                ("job", job_list, job_var)):
            if text is None:
                continue
            try:
                nodes = expand_hostlist(text)
            except ValueError as exc:
                r.error("bad-nodelist", f"the {name} node list {text[:200]!r} is malformed: {exc}",
                        _SET_BY_SRUN.format(name=var))
                source = name
                break
            if not nodes:
                r.error("empty-nodelist", f"the {name} node list is empty", None)
            source = name
            break
        fields["nodes"], fields["nodelist_source"] = tuple(nodes), source

        # Tasks per node.
        tpn_name, tpn_text = r.first("SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE")
        tpn: list[int] | None = None
        if tpn_text is not None:
            try:
                tpn = parse_tasks_per_node(tpn_text)
            except ValueError as exc:
                r.error("bad-tasks-per-node", f"{tpn_name}: {exc}",
                        _SET_BY_SRUN.format(name=tpn_name))
        fields["tasks_per_node"] = tuple(tpn) if tpn is not None else None

        # Task count, in the documented order; explicit counts must agree.
        explicit: list[tuple[str, int]] = []
        for name in TASK_COUNT_VARS:
            value, _ = r.integer(name, minimum=1)
            if value is not None:
                explicit.append((name, value))
        derived: int | None = None
        if tpn is not None and nodes:
            if len(tpn) == len(nodes):
                derived = sum(tpn)
            elif len(tpn) == 1:
                derived = tpn[0] * len(nodes)
            else:
                r.error(
                    "contradiction",
                    f"{tpn_name}={tpn_text!r} describes {len(tpn)} nodes "
                    f"but the {source} node list has {len(nodes)}",
                    None,
                )
        if explicit:
            fields["ntasks_source"], fields["ntasks"] = explicit[0]
            for name, value in explicit[1:]:
                if value != explicit[0][1]:
                    r.error(
                        "contradiction",
                        f"{explicit[0][0]}={explicit[0][1]} but {name}={value}",
                        None,
                    )
            if derived is not None and derived != explicit[0][1] and context == "step":
                r.error(
                    "contradiction",
                    f"{explicit[0][0]}={explicit[0][1]} but {tpn_name}={tpn_text!r} "
                    f"adds up to {derived} tasks",
                    None,
                )
        elif derived is not None:
            fields["ntasks_source"], fields["ntasks"] = f"{len(nodes)} nodes x {tpn_name}", derived

        model = cls(context=context, problems=(), **fields)  # type: ignore[arg-type]
        _check(model, r, env)
        return model.model_copy(update={"problems": tuple(r.problems)})


def _check(s: SlurmEnvironment, r: _Reader, env: Mapping[str, str]) -> None:
    """Add the problems that depend on several values at once."""
    fix = s.srun_command()
    many = (s.ntasks or 1) > 1 or len(s.nodes) > 1
    if s.context in ("batch", "salloc", "ssh"):
        where = {
            "batch": "the batch script itself (outside srun)",
            "salloc": "an salloc shell (outside srun)",
            "ssh": "an ssh session into the allocation (not a SLURM task)",
        }[s.context]
        msg = (
            f"running in {where}: this is one process, but job {s.job_id} has "
            f"{len(s.nodes) or '?'} node(s) and {s.ntasks or '?'} task(s)"
        )
        if many:
            r.error("outside-srun", msg + "; start one process per task with srun", fix)
        else:
            r.warning("outside-srun", msg + "; running as a single process", fix)
        return
    if s.context == "partial":
        present = sorted(k for k in env if k.startswith("SLURM"))
        r.error(
            "partial",
            "incomplete SLURM environment (no step node list, no batch or salloc marker); "
            f"present: {', '.join(present) or 'none'}",
            fix,
        )
        return
    if s.context != "step":
        return
    if s.procid is None and not any(p.message.startswith("SLURM_PROCID") for p in r.problems):
        r.error("missing", "SLURM_PROCID is not set (which task is this?)", fix)
    if s.ntasks is None:
        r.error(
            "missing",
            "the task count is unknown: none of SLURM_NTASKS, SLURM_NPROCS, "
            "SLURM_STEP_NUM_TASKS, SLURM_STEP_TASKS_PER_NODE is usable",
            fix,
        )
    if s.nodelist_source is None:
        r.error("missing", "no node list: SLURM_STEP_NODELIST and SLURM_JOB_NODELIST unset", fix)
    elif s.nodelist_source == "job" and len(s.nodes) > 1:
        r.warning(
            "job-nodelist",
            "SLURM_STEP_NODELIST is unset; using the job's node list, whose first node "
            "may not be in this step",
        )
    if s.job_id is None:
        r.warning("missing", "SLURM_JOB_ID is not set; the coordinator port uses job id 0")
    if s.procid is not None and s.ntasks is not None and s.procid >= s.ntasks:
        r.error(
            "contradiction",
            f"SLURM_PROCID={s.procid} but the step has only {s.ntasks} task(s) "
            f"(from {s.ntasks_source})",
            fix,
        )
    if s.nodes and s.nodeid is not None and s.nodeid >= len(s.nodes):
        r.error(
            "contradiction",
            f"SLURM_NODEID={s.nodeid} but the node list has {len(s.nodes)} node(s)",
            fix,
        )
    if s.nodes and s.node_name and s.node_name not in s.nodes:
        r.warning(
            "contradiction",
            f"SLURMD_NODENAME={s.node_name!r} is not in the node list {list(s.nodes)[:8]}",
        )
    if s.procid == 0 and s.nodes and s.node_name and s.node_name != s.nodes[0]:
        if s.node_name in s.nodes and COORDINATOR_HOST not in env:
            r.error(
                "rank0-placement",
                f"task 0 runs on {s.node_name!r} but the coordinator is the first node "
                f"{s.nodes[0]!r}",
                "use the default task distribution (srun --distribution=block) or set "
                "PHASIC_COORDINATOR_HOST to task 0's node",
            )
    local = s.local_tasks
    if s.localid is not None and local is not None and s.localid >= local:
        r.warning(
            "contradiction",
            f"SLURM_LOCALID={s.localid} but this node runs {local} task(s) of the step",
        )


def detect_slurm_environment(env: Mapping[str, str] | None = None) -> SlurmEnvironment | None:
    """The SLURM environment of this process, or None when there is no SLURM at all."""
    s = SlurmEnvironment.from_env(env)
    return None if s.context == "none" else s


def require_step(env: Mapping[str, str] | None = None) -> SlurmEnvironment:
    """The environment of an srun task; raise `SlurmEnvironmentError` otherwise."""
    s = SlurmEnvironment.from_env(env)
    if s.context != "step" and not s.errors:
        raise SlurmEnvironmentError(
            f"not inside an srun step ({s.context}); fix: {s.srun_command()}"
        )
    s.raise_for_problems()
    return s
