"""Multi-process scaling: the same total work on 1, 2, 4 processes (phasic-launch, Slurm).

    python bench/scaling.py [--quick] [--no-slurm]

Each run splits the same batch of thetas (Kingman n = 20, pdf at 6 times; n = 10
and P = 1, 2 with --quick) over P ranks; every rank reports the time to initialize
jax.distributed, its warm compute time, and the time of the all-gather that puts
the whole result on every rank (bench/_scaling_worker.py). Efficiency is
T_compute(1) / (P * max_rank T_compute(P)). On this 2-core machine P = 4 cannot
be efficient: the numbers show what oversubscription costs.

The same is run under Slurm (`srun -N P -n P`) on the local cluster of
cluster/local when this process is root and Slurm is installed; a cluster that is
already up is used and left up, one brought up here is torn down afterwards.
Writes bench/results/scaling.json and scaling.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any

from common import BENCH, ROOT, Flag, cli, figure, finish, load, nice_env, save_figure

WORKER = BENCH / "_scaling_worker.py"
RESULT_LINE = re.compile(r"^(?:\[rank (\d+)\] |(\d+): )?RESULT (.*)$")


def parse_ranks(output: str) -> list[dict[str, Any]]:
    """The RESULT lines of every rank (prefixed `[rank k] ` by phasic-launch, `k: ` by srun)."""
    rows = []
    for line in output.splitlines():
        m = RESULT_LINE.match(line.strip())
        if m:
            rows.append(json.loads(m.group(3)))
    return sorted(rows, key=lambda r: r["rank"])


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[list[dict], str, float]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, cwd=BENCH, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return [], f"timed out after {timeout:.0f} s: {' '.join(cmd)}", timeout
    wall = time.perf_counter() - start
    ranks = parse_ranks(proc.stdout)
    if proc.returncode != 0 or not ranks:
        tail = " | ".join((proc.stderr + proc.stdout).strip().splitlines()[-4:])
        return ranks, f"exit code {proc.returncode}: {tail}", wall
    return ranks, "", wall


def summarize(p: int, ranks: list[dict], wall: float, problem: str) -> dict[str, Any]:
    """One row: the slowest rank's init, compute and gather times (the critical path)."""
    row: dict[str, Any] = {"processes": p, "wall_s": wall, "ranks": ranks}
    if problem or len(ranks) != p:
        row["problem"] = problem or f"{len(ranks)} of {p} ranks reported a result"
        return row
    for key in ("import_s", "init_s", "compile_s", "compute_s", "gather_s"):
        row[key] = max(r[key] for r in ranks)
    row["max_abs_diff_vs_local"] = ranks[0]["max_abs_diff_vs_local"]
    return row


def add_efficiency(rows: list[dict[str, Any]], label: str) -> None:
    base = next((r for r in rows if r["processes"] == 1 and "compute_s" in r), None)
    for r in rows:
        if "problem" in r:
            print(f"  {label} P={r['processes']}: FAILED: {r['problem']}")
            continue
        if base:
            r["speedup"] = base["compute_s"] / r["compute_s"]
            r["efficiency"] = r["speedup"] / r["processes"]
            r["efficiency_with_gather"] = (base["compute_s"] + base["gather_s"]) / (
                r["processes"] * (r["compute_s"] + r["gather_s"]))
        print(f"  {label} P={r['processes']}: init {r['init_s'] * 1e3:7.1f} ms, compute "
              f"{r['compute_s'] * 1e3:8.2f} ms, gather {r['gather_s'] * 1e3:6.2f} ms, "
              f"efficiency {r.get('efficiency', float('nan')):.2f} "
              f"(with gather {r.get('efficiency_with_gather', float('nan')):.2f}); wall "
              f"{r['wall_s']:.1f} s; max |diff| vs one process {r['max_abs_diff_vs_local']:.1e}")


def bench_launcher(counts: list[int], total: int, n: int) -> list[dict[str, Any]] | str:
    """phasic-launch -n P for each P; a string says why it could not run."""
    env = nice_env({"JAX_PLATFORMS": "cpu"})
    launcher = shutil.which("phasic-launch", path=env["PATH"])
    if launcher is None:
        return "phasic-launch is not on PATH (install packages/phasic-distributed)"
    rows = []
    for p in counts:
        cmd = [launcher, "-n", str(p), "--timeout", "240", "--", sys.executable, str(WORKER),
               str(total), str(n)]
        ranks, problem, wall = _run(cmd, env, timeout=300)
        rows.append(summarize(p, ranks, wall, problem))
    add_efficiency(rows, "phasic-launch")
    return rows


def slurm_unavailable() -> str:
    """Why the local Slurm cluster cannot be used here, or '' if it can."""
    if os.geteuid() != 0:
        return "not root: cluster/local needs root to start munge, slurmctld and slurmd"
    missing = [b for b in ("srun", "slurmctld", "slurmd", "munged") if shutil.which(b) is None]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} missing)"
    if not (ROOT / "cluster" / "local" / "slurm_cluster.py").exists():
        return "cluster/local/slurm_cluster.py is missing"
    return ""


def _cluster_already_up() -> bool:
    if slurm_unavailable():
        return False
    sys.path.insert(0, str(ROOT / "cluster" / "local"))
    import slurm_cluster

    return slurm_cluster.is_up()


def bench_slurm(counts: list[int], total: int, n: int) -> list[dict[str, Any]] | str:
    """srun -N P -n P on the local cluster for each P; a string says why it could not run."""
    why = slurm_unavailable()
    if why:
        return why
    sys.path.insert(0, str(ROOT / "cluster" / "local"))
    import slurm_cluster  # cluster/local is not a package

    brought_up = False
    try:
        if not slurm_cluster.is_up():
            took = slurm_cluster.up(slurm_cluster.ClusterShape())
            brought_up = True
            print(f"  local Slurm cluster up in {took:.2f} s")
        env = slurm_cluster.client_env(nice_env({"JAX_PLATFORMS": "cpu"}))
        # The first job after bring-up waits for the nodes to register; keep that
        # scheduling delay out of the measured runs.
        warm = subprocess.run(["srun", "-N", str(max(counts)), "-n", str(max(counts)), "true"],
                              env=env, capture_output=True, text=True, timeout=180, check=False)
        if warm.returncode != 0:
            return f"srun on the local cluster failed: {warm.stderr.strip()[-300:]}"
        rows = []
        for p in counts:
            cmd = ["srun", "--label", "-N", str(p), "-n", str(p), "--cpus-per-task", "1",
                   "--kill-on-bad-exit=1", "--time", "5", sys.executable, str(WORKER),
                   str(total), str(n)]
            ranks, problem, wall = _run(cmd, env, timeout=300)
            rows.append(summarize(p, ranks, wall, problem))
        add_efficiency(rows, "slurm")
        return rows
    except slurm_cluster.ClusterError as exc:
        return f"the local Slurm cluster could not be brought up: {exc}"
    finally:
        if brought_up:
            slurm_cluster.down()


def plot(results: dict[str, Any], quick: bool) -> None:
    fig, (ax_e, ax_t) = figure(2, width=5.0)
    for key, style in (("launcher", "o-"), ("slurm", "s--")):
        rows = results.get(key)
        if not isinstance(rows, list):
            continue
        ok = [r for r in rows if "efficiency" in r]
        if not ok:
            continue
        ax_e.plot([r["processes"] for r in ok], [r["efficiency"] for r in ok], style,
                  label=key)
        for part, color in (("init_s", "C0"), ("compute_s", "C1"), ("gather_s", "C2")):
            ax_t.semilogy([r["processes"] for r in ok], [r[part] * 1e3 for r in ok], style,
                          color=color, label=f"{key}: {part[:-2]}")
    ax_e.set_ylim(0, 1.2)
    ax_e.set_xlabel("processes")
    ax_e.set_ylabel("parallel efficiency")
    ax_e.set_title(f"same total work ({results['total']} thetas, Kingman n={results['n']})")
    ax_t.set_xlabel("processes")
    ax_t.set_ylabel("ms (slowest rank)")
    ax_t.set_title("initialization, compute, all-gather")
    for ax in (ax_e, ax_t):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, "scaling", quick)


def run(quick: bool, slurm: bool = True) -> dict[str, Any]:
    """Run the scaling benchmarks; write scaling.json/png; return the results."""
    start_load = load()
    n, total, counts = (10, 64, [1, 2]) if quick else (20, 512, [1, 2, 4])
    results: dict[str, Any] = {"n": n, "total": total, "cores": len(os.sched_getaffinity(0))}
    results["launcher"] = bench_launcher(counts, total, n)
    if not slurm:
        results["slurm"] = "skipped (--no-slurm)"
    elif quick and not _cluster_already_up():
        results["slurm"] = ("skipped with --quick unless the local cluster is already up "
                            "(bring-up and the first job's scheduling take most of a minute)")
    else:
        results["slurm"] = bench_slurm(counts, total, n)
    for key in ("launcher", "slurm"):
        if isinstance(results[key], str):
            print(f"  {key}: not measured: {results[key]}")
    finish("scaling", quick, results, start_load, plot=lambda: plot(results, quick))
    return results


if __name__ == "__main__":
    cli(run, "small work, seconds",
        flags=[Flag("--no-slurm", "slurm", "skip the Slurm runs", lambda no_slurm: not no_slurm)])
