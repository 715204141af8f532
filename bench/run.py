"""phasic benchmarks: every figure is a ratio measured side by side in one run.

    python bench/run.py                 # full run (tens of minutes on 2 busy cores)
    python bench/run.py --quick         # small sizes, about a minute; what CI runs
    python bench/run.py --only core,batching
    nox -s bench -- --quick             # the same inside the nox environment

Modules (each also runs alone, e.g. `python bench/core.py --quick`):
  core      dispatch, moments and pdf vs Kingman n against the dense/sparse scipy
            routes, errors against exact values, jit(vmap), n = 50 build
  previous  the published phasic 0.32.1 on the same models (its own venv)
  batching  vmap vs separate calls, OpenMP 1 vs 2 threads, shard_map over 1-8 devices
  scaling   1, 2, 4 processes with phasic-launch and on the local Slurm cluster
  gradients bench/gradients.py, when present (another engineer's; its own process)
  memory    bench/memory.py, likewise
  elimination  compile + moments on chord cycles (large elimination fill) against
            scipy's splu: time and peak RSS of child processes
  scale     Kingman n up to 60: build, to_json, parse, first and warm jitted call,
            pdf and log-likelihood gradient, lowered program size and peak RSS
  reward_graph  Graph.reward_transform (positive and zero rewards) and discretize on
            Kingman n, and the pdf of the transformed graphs next to the plain pdf
  rewards   reward-weighted pdf (positive rewards; SFS-class rewards with zeros) and its
            gradient per theta next to the plain pdf, Kingman n = 10..30
  inference log-likelihood value + gradient over up to 10,000 observed times and SVGD
            steps (64 particles x 200 times) against a dense eigendecomposition route,
            with both routes' errors; the sweep's roofline point per graph size
  epochs    E = 1, 2, 4, 8 epochs: pdf, expected SFS and their gradients against E = 1

Each writes bench/results/<module>[-quick].json and .png; this driver then prints
the speed targets (docs/pages/benchmarks.md) with measured value and ratio and writes summary[-quick].json.
Absolute times drift on a shared machine (the JSON records the load average); the
ratios printed next to them are what to compare. Nothing here asserts a time: the
exit status is non-zero only when a benchmark script itself fails.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import traceback
from typing import Any

from common import BENCH, load, write_json

MODULES = ("core", "previous", "batching", "scaling", "gradients", "memory", "elimination",
           "scale", "reward_graph", "sampling", "rewards", "mutation", "states", "callbacks",
           "propagate", "inference", "epochs")
#: Scripts other engineers own: run as their own processes when they exist.
EXTERNAL = ("gradients", "memory")


def run_external(name: str, quick: bool) -> dict[str, Any]:
    """bench/<name>.py as a subprocess (it writes its own results), if it exists."""
    script = BENCH / f"{name}.py"
    if not script.exists():
        print(f"  bench/{name}.py does not exist yet: skipped")
        return {"skipped": f"bench/{name}.py does not exist"}
    code = subprocess.call([sys.executable, str(script), *(["--quick"] if quick else [])],
                           cwd=BENCH.parent)
    if code != 0:
        raise RuntimeError(f"bench/{name}.py exited with code {code}")
    return {"exit_code": code}


def run_module(name: str, quick: bool, slurm: bool) -> dict[str, Any]:
    if name in EXTERNAL:
        return run_external(name, quick)
    module = __import__(name)
    if name == "scaling":
        return module.run(quick, slurm=slurm)
    return module.run(quick)


def print_targets(rows: list[dict[str, Any]]) -> None:
    print("\nspeed targets (docs/pages/benchmarks.md; measured here, this run):")
    print(f"  {'target':46s} {'measured':>12s} {'limit':>10s} {'ratio':>7s}  met")
    for r in rows:
        print(f"  {r['target']:46s} {r['measured']:10.3f} {r['unit']:>2s}"
              f"{r['limit']:8.1f} {r['unit']:>2s} {r['ratio']:6.2f}  {'yes' if r['met'] else 'NO'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--only", default=",".join(MODULES),
                        help=f"comma-separated subset of {','.join(MODULES)}")
    parser.add_argument("--no-slurm", action="store_true", help="skip the Slurm scaling runs")
    args = parser.parse_args()
    chosen = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(MODULES))
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}")

    start_load, started = load(), time.perf_counter()
    import jax

    import phasic

    print(f"phasic {phasic.__version__}, jax {jax.__version__}; load average {start_load}"
          f"{' (quick)' if args.quick else ''}")
    results: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for name in chosen:
        print(f"\n== {name}")
        t0 = time.perf_counter()
        try:
            results[name] = run_module(name, args.quick, slurm=not args.no_slurm)
        except Exception as exc:  # noqa: BLE001 - report, run the others, fail at the end
            traceback.print_exc()
            failed[name] = f"{type(exc).__name__}: {exc}"
        print(f"  ({name}: {time.perf_counter() - t0:.1f} s)")

    summary: dict[str, Any] = {"modules": chosen, "failed": failed,
                               "seconds": time.perf_counter() - started}
    if "core" in results:
        import core

        summary["targets"] = core.targets(results["core"])
        print_targets(summary["targets"])
    path = write_json("summary", args.quick, summary, start_load)
    print(f"\nwrote {path}; total {summary['seconds']:.0f} s; load average now {load()}")
    if failed:
        print("FAILED: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
