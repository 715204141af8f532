"""``phasic-distributed doctor``: the detected environment, the plan and every problem.

Exit code 0 when a plan can be made and no error was found, 1 otherwise. Nothing
here imports jax (its version is read from the installed metadata).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

from .coordinator import _allowed_ports, ephemeral_port_range
from .env_vars import (
    COORDINATOR_HOST,
    COORDINATOR_PORT,
    CPUS,
    DEVICE_VARS,
    LAUNCHER_VARS,
    LOCAL_DEVICES,
    OLD_CPUS,
    OMP_THREADS,
)
from .errors import DistributedError
from .hostlist import compress_hostlist
from .planning import plan
from .schedulers import present_scheduler
from .slurm import Problem, SlurmEnvironment

#: What JAX's own SLURM detection requires (jax._src.clusters.slurm_cluster).
JAX_SLURM_VARS = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
                  "SLURM_LOCALID")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _extra_problems(env: Mapping[str, str], report: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    new, old = env.get(CPUS), env.get(OLD_CPUS)
    if new and old and new != old:
        out.append(Problem(severity="warning", code="cpus-conflict",
                           message=f"PHASIC_CPUS={new} and PTDALG_CPUS={old} differ; "
                                   "PHASIC_CPUS wins", fix="unset PTDALG_CPUS"))
    p = report.get("plan")
    omp = env.get("OMP_NUM_THREADS")
    if p and omp and omp != str(p["omp_threads_per_device"]):
        out.append(Problem(severity="warning", code="omp-override",
                           message=f"OMP_NUM_THREADS={omp} will be replaced by "
                                   f"{p['omp_threads_per_device']} (cores per device)",
                           fix="set PHASIC_OMP_THREADS to choose the thread count"))
    if p and p["local_device_count"] > p["cores"]:
        out.append(Problem(severity="warning", code="oversubscribed",
                           message=f"{p['local_device_count']} CPU devices on {p['cores']} "
                                   "core(s): fine for tests, slow for production",
                           fix=None))
    if report["jax_version"] is None:
        out.append(Problem(severity="warning", code="no-jax",
                           message="jax is not installed; initialize() will fail",
                           fix="pip install 'phasic-distributed[jax]'"))
    return out


def collect(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Everything doctor reports, as plain data (what ``--json`` prints)."""
    env = os.environ if env is None else env
    s = SlurmEnvironment.from_env(env)
    scheduler = present_scheduler(env)
    placement = scheduler.placement(env) if scheduler else None
    report: dict[str, Any] = {
        "jax_version": _version("jax"),
        "phasic_distributed_version": _version("phasic-distributed"),
        "slurm": None if s.context == "none" else s.model_dump(mode="json"),
        "scheduler": None if placement is None else {
            k: v for k, v in dataclasses.asdict(placement).items() if k != "problems"},
        "launcher": {n: env[n] for n in (*LAUNCHER_VARS, LOCAL_DEVICES) if n in env},
        "settings": {n: env[n] for n in (*DEVICE_VARS, OMP_THREADS, "OMP_NUM_THREADS",
                                         COORDINATOR_HOST, COORDINATOR_PORT,
                                         "XLA_FLAGS") if n in env},
        "ephemeral_port_range": list(ephemeral_port_range()),
        "coordinator_port_ranges": [list(r) for r in _allowed_ports(ephemeral_port_range())],
        "plan": None,
        "plan_error": None,
    }
    problems: list[Problem] = list(placement.problems) if placement else []
    if s.context != "none":
        missing = [v for v in JAX_SLURM_VARS if v not in env]
        report["jax_own_detection_missing"] = missing
    try:
        report["plan"] = plan(env).model_dump(mode="json")
    except DistributedError as exc:
        report["plan_error"] = f"{type(exc).__name__}: {exc}"
        if not any(p.severity == "error" for p in problems):
            problems.append(Problem(severity="error", code="plan", message=str(exc)))
    problems += _extra_problems(env, report)
    report["problems"] = [p.model_dump(mode="json") for p in problems]
    report["ok"] = report["plan"] is not None and not any(
        p.severity == "error" for p in problems
    )
    return report


def _pair(a: Any, b: Any) -> str | None:
    return None if a is None and b is None else f"{a} / {b}".replace("None", "-")


def _table(rows: list[tuple[str, Any]]) -> list[str]:
    rows = [(k, "-" if v is None else str(v)) for k, v in rows]
    width = max(len(k) for k, _ in rows)
    return [f"  {k.ljust(width)}  {v}" for k, v in rows]


def render(report: dict[str, Any]) -> str:
    """The human-readable doctor report."""
    out = ["phasic-distributed doctor", ""]
    out.append("Software")
    out += _table([("phasic-distributed", report["phasic_distributed_version"]),
                   ("jax", report["jax_version"] or "not installed")])
    sched = report["scheduler"]
    out += ["", "Scheduler"]
    if sched is None:
        out.append("  none (no SLURM or Open MPI variables)")
    else:
        out += _table([
            ("name", sched["scheduler"]),
            ("this process is a rank", "yes" if sched["active"] else "no"),
            ("rank / ranks", _pair(sched["rank"], sched["world_size"])),
            ("local rank / local ranks", _pair(sched["local_rank"], sched["local_size"])),
            ("coordinator host", sched["coordinator_host"]),
            ("port key / slot", _pair(sched["port_key"], sched["port_slot"])),
        ])
    s = report["slurm"]
    out += ["", "SLURM"]
    if s is None:
        out.append("  not a SLURM job (no SLURM_* variables)")
    else:
        nodes = s["nodes"]
        tpn = s["tasks_per_node"]
        out += _table([
            ("context", s["context"]),
            ("job id / step id", _pair(s["job_id"], s["step_id"])),
            ("task (SLURM_PROCID)", s["procid"]),
            ("tasks", f"{s['ntasks']} (from {s['ntasks_source']})"),
            ("local id / node id", _pair(s["localid"], s["nodeid"])),
            ("this node", s["node_name"]),
            ("nodes", f"{len(nodes)}: {compress_hostlist(nodes) if nodes else '-'} "
                      f"(from the {s['nodelist_source']} node list)"),
            ("tasks per node", ",".join(map(str, tpn)) if tpn else None),
            ("cpus per task", s["cpus_per_task"]),
            ("het job size / offset", _pair(s["het_size"], s["het_offset"])),
            ("array job / task", _pair(s["array_job_id"], s["array_task_id"])),
            ("jax's own detection lacks", ", ".join(report["jax_own_detection_missing"])
             or "nothing"),
        ])
    if report["launcher"]:
        out += ["", "Launcher variables"]
        out += _table(list(report["launcher"].items()))
    if report["settings"]:
        out += ["", "Settings"]
        out += _table(list(report["settings"].items()))
    out += ["", "Plan"]
    p = report["plan"]
    if p is None:
        out.append(f"  none: {report['plan_error']}".replace("\n", "\n  "))
    else:
        lo, hi = report["ephemeral_port_range"]
        out += _table([
            ("source", p["source"]),
            ("processes", p["num_processes"]),
            ("this process", p["process_id"]),
            ("coordinator", p["coordinator_address"] or "none (single process)"),
            ("CPU devices", p["local_device_count"]),
            ("cores", p["cores"]),
            ("OpenMP threads/device", p["omp_threads_per_device"]),
            ("ephemeral ports", f"{lo}-{hi} (coordinator ports avoid them)"),
        ])
    out += ["", "Problems"]
    if not report["problems"]:
        out.append("  none")
    for prob in report["problems"]:
        out.append(f"  [{prob['severity']}] {prob['message']}".replace("\n", "\n    "))
        if prob["fix"]:
            out.append(f"      fix: {prob['fix']}")
    out += ["", "OK" if report["ok"] else "NOT OK: see the problems above"]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``phasic-distributed`` (subcommand ``doctor``)."""
    ap = argparse.ArgumentParser(prog="phasic-distributed",
                                 description="Inspect the distributed JAX environment.")
    sub = ap.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser("doctor", help="show the environment, the plan and every problem")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    report = collect()
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(report))
    return 0 if report["ok"] else 1
