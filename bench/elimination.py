"""Elimination: compile + moments on graphs with large fill, against scipy's SuperLU.

    python bench/elimination.py           # chord cycles of 2,000 / 4,000 / 8,000 vertices
    python bench/elimination.py --quick   # 500 / 1,000 vertices (seconds)

The graphs are directed cycles with random chords (out-degree 6, one vertex in 20
absorbing; packages/phasic-core/tests/graphs.py `chord_cycle`): one strongly connected
component whose elimination fill is large. Each measurement runs in its own child
process, which reports its peak RSS (the high-water mark, VmHWM) before and after
the measured step:

  phasic  Structure.from_json (order, symbolic factorization) and moments(k=2) (the
          numeric factorization and two solves);
  splu    scipy.sparse.linalg.splu of -S (COLAMD column order) and the two solves
          for the same moments.

Both report E[T] and E[T^2] (their relative difference is recorded) and the nonzeros
of L and U off the diagonal. Writes
bench/results/elimination[-quick].json and .png.
"""

from __future__ import annotations

import pathlib
import sys
import time
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "packages" / "phasic-core" / "tests"))
import common  # noqa: E402

THETA = 1.3
TIMEOUT = 1800.0


def worker(kind: str, n: int) -> None:
    """One measurement in this (child) process; prints RESULT <json>."""
    from core_graphs import chord_cycle

    c = chord_cycle(n, seed=n)
    if kind == "phasic":
        from phasic._ext import core

        text = c.graph().to_json()
        before = common.peak_mib()
        t0 = time.perf_counter()
        s = core().Structure.from_json(text)
        t1 = time.perf_counter()
        m = np.asarray(s.moments(np.array([THETA]), 2, None))
        t2 = time.perf_counter()
        nonzeros = int(s.fill_length) + int((~c.absorbing).sum())  # fill plus T->T edges
        extra = {"nonzeros": nonzeros, "json_kib": len(text) / 1024}
    else:
        import scipy.sparse
        import scipy.sparse.linalg

        tt = ~c.absorbing
        rate = np.where(tt, c.coef * THETA, c.coef)
        minus_s = scipy.sparse.csc_matrix((-rate[tt], (c.src[tt], c.dst[tt])), shape=(n, n))
        minus_s = (minus_s + scipy.sparse.diags(np.bincount(c.src, rate, n))).tocsc()
        before = common.peak_mib()
        t0 = time.perf_counter()
        lu = scipy.sparse.linalg.splu(minus_s, permc_spec="COLAMD")
        t1 = time.perf_counter()
        y1 = lu.solve(np.ones(n))
        y2 = lu.solve(y1)
        m = np.array([y1[0], 2.0 * y2[0]])  # the chain starts in vertex 0
        t2 = time.perf_counter()
        extra = {"nonzeros": int(lu.L.nnz + lu.U.nnz - 2 * n)}
    common.emit({"kind": kind, "n": n, "compile_s": t1 - t0, "moments_s": t2 - t1,
                 "total_s": t2 - t0, "peak_before_mib": before, "peak_mib": common.peak_mib(),
                 "moments": m.tolist(), **extra})


def measure(kind: str, n: int) -> dict[str, Any]:
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--worker", kind, str(n)]
    result, problem = common.run_json(cmd, env=common.nice_env(), timeout=TIMEOUT)
    if result is None:
        print(f"  {kind} n={n}: {problem}")
        return {"kind": kind, "n": n, "error": problem}
    result["peak_increase_mib"] = result["peak_mib"] - result["peak_before_mib"]
    print(f"  {kind:6s} n={n:5d}: compile {result['compile_s']:7.2f} s, moments "
          f"{result['moments_s']:7.2f} s, peak RSS +{result['peak_increase_mib']:7.1f} MiB, "
          f"L+U nonzeros {result['nonzeros']:,}")
    return result


def plot(rows: list[dict[str, Any]], quick: bool) -> None:
    fig, (ax1, ax2) = common.figure(ncols=2)
    for kind, label in (("phasic", "phasic compile + moments"), ("splu", "scipy splu + solves")):
        ok = [r for r in rows if r["kind"] == kind and "error" not in r]
        ns = [r["n"] for r in ok]
        ax1.plot(ns, [r["total_s"] for r in ok], "o-", label=label)
        ax2.plot(ns, [max(r["peak_increase_mib"], 0.1) for r in ok], "o-", label=label)
    common.log_log_axes((ax1, ax2), "transient vertices (chord cycle, degree 6)",
                        ("seconds", "peak RSS increase (MiB)"), ("Time", "Memory"))
    common.save_figure(fig, "elimination", quick)


def run(quick: bool) -> dict[str, Any]:
    load_start = common.load()
    sizes = (500, 1000) if quick else (2000, 4000, 8000)
    rows = [measure(kind, n) for n in sizes for kind in ("phasic", "splu")]
    by = {(r["kind"], r["n"]): r for r in rows if "error" not in r}
    ratios = []
    for n in sizes:
        p, s = by.get(("phasic", n)), by.get(("splu", n))
        if p is None or s is None:
            continue
        rel = float(np.max(np.abs(np.subtract(p["moments"], s["moments"])) / np.abs(s["moments"])))
        ratios.append({"n": n, "time_ratio": p["total_s"] / s["total_s"],
                       "memory_ratio": p["peak_increase_mib"] / max(s["peak_increase_mib"], 1e-9),
                       "nonzeros_ratio": p["nonzeros"] / s["nonzeros"], "moments_rel_diff": rel})
        r = ratios[-1]
        print(f"  n={n}: phasic / splu time {r['time_ratio']:.2f}, memory "
              f"{r['memory_ratio']:.2f}, L+U nonzeros {r['nonzeros_ratio']:.2f}; "
              f"moments differ by {rel:.1e}")
    result = {"sizes": list(sizes), "theta": THETA, "rows": rows, "ratios": ratios}
    common.finish("elimination", quick, result, load_start, plot=lambda: plot(rows, quick))
    return result


if __name__ == "__main__":
    common.cli(run, "small sizes only (seconds)",
               worker=lambda args: worker(args[0], int(args[1])),  # --worker KIND N
               failed=lambda result: any("error" in r for r in result["rows"]))
