"""Building from a callback: cost per vertex beyond the callback, next to phasic 0.32.1.

    python bench/callbacks.py            # Kingman n = 20, 25, ..., 50 (628 to 204,226 vertices)
    python bench/callbacks.py --quick    # n = 20, 25, 30

The callback is `phasic.models.kingman_transitions` (a state copy per transition,
loops over pairs of lineage classes). Per n, in microseconds per vertex:
  callback   the callback alone, called once on every state of the graph;
  ours       `Graph.from_callback` (building included the callback's calls);
  overhead   ours minus callback: what the builder adds;
  upstream   phasic 0.32.1's `Graph(callback, ipv=...)` on the same function (its
             source handed to bench/_callback_worker.py in bench/.venv-previous);
  ratio      upstream / ours;
and the overhead per returned transition (the work per vertex grows with n).
Every built graph is checked against `phasic.models.kingman(n)` (same number of
vertices and edges, same mean at theta = 1). Writes bench/results/callbacks[-quick]
.json and .png.
"""

from __future__ import annotations

import inspect
import json
import os
import pathlib
import sys
import time
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402
import previous  # noqa: E402


def best_of(fn: Any, repeat: int) -> float:
    """The shortest of `repeat` single runs (seconds): the least disturbed by other load."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(n: int) -> dict[str, Any]:
    import numpy as np

    from phasic import Graph, models

    fn = models.kingman_transitions
    ipv = [n] + [0] * (n - 1)
    repeat = 3 if n <= 40 else 1
    graph = Graph.from_callback(fn, ipv)
    reference = models.kingman(n)
    if (graph.vertices_length(), graph.edges_length()) != (reference.vertices_length(),
                                                           reference.edges_length()):
        raise RuntimeError(f"n = {n}: the callback graph differs from models.kingman(n)")
    mean = float(graph.expectation(theta=[1.0]))
    if abs(mean - 2 * (1 - 1 / n)) > 1e-9:
        raise RuntimeError(f"n = {n}: E[T_MRCA] = {mean}, expected {2 * (1 - 1 / n)}")
    states = [np.array(s, dtype=np.int32) for s in graph.states()[1:]]
    vertices = graph.vertices_length()

    def callback_alone() -> None:
        for s in states:
            fn(s)

    row: dict[str, Any] = {"n": n, "vertices": vertices, "edges": graph.edges_length()}
    row["callback_s"] = best_of(callback_alone, repeat)
    row["ours_s"] = best_of(lambda: Graph.from_callback(fn, ipv), repeat)
    for key in ("callback", "ours"):
        row[f"{key}_us"] = row[f"{key}_s"] / vertices * 1e6
    row["overhead_us"] = row["ours_us"] - row["callback_us"]
    # The work per vertex grows with n (longer states, more transitions each): the
    # builder's cost per returned transition is what should stay flat.
    row["transitions_per_vertex"] = (row["edges"] - 1) / (vertices - 1)
    row["overhead_per_transition_us"] = row["overhead_us"] / row["transitions_per_vertex"]
    row["overhead_over_callback"] = row["overhead_us"] / row["callback_us"]
    return row


def upstream_rows(sizes: list[int], quick: bool) -> tuple[dict[int, dict[str, Any]], str, str]:
    """phasic 0.32.1's build per n (from bench/.venv-previous), its version, or why not."""
    from phasic import models

    problem = previous.ensure_environment(create=not quick)
    if problem:
        return {}, "", problem
    tmp = common.RESULTS / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    spec = tmp / "callback_spec.json"
    spec.write_text(json.dumps({"source": inspect.getsource(models.kingman_transitions),
                                "name": "kingman_transitions", "sizes": sizes}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["JAX_PLATFORMS"] = "cpu"
    out, problem = common.run_json(
        [str(previous.PYTHON), str(HERE / "_callback_worker.py"), str(spec)],
        env=env, timeout=120 if quick else 1800, cwd=HERE)
    if out is None:
        return {}, "", problem
    return {r["n"]: r for r in out["rows"]}, out["version"], ""


def run(quick: bool) -> dict[str, Any]:
    start = common.load()
    sizes = [20, 25, 30] if quick else [20, 25, 30, 35, 40, 45, 50]
    rows = [measure(n) for n in sizes]
    upstream, version, problem = upstream_rows(sizes, quick)
    for row in rows:
        up = upstream.get(row["n"])
        if up is not None:
            if up["vertices"] != row["vertices"]:
                raise RuntimeError(f"n = {row['n']}: 0.32.1 built {up['vertices']} vertices, "
                                   f"we built {row['vertices']}")
            row["upstream_s"] = up["build_s"]
            row["upstream_us"] = up["build_s"] / row["vertices"] * 1e6
            row["ratio"] = row["upstream_us"] / row["ours_us"]
        print(f"  n = {row['n']:2d} ({row['vertices']:7,d} vertices): callback "
              f"{row['callback_us']:6.1f}, ours {row['ours_us']:6.1f}, overhead "
              f"{row['overhead_us']:5.1f} us/vertex"
              + (f"; 0.32.1 {row['upstream_us']:6.1f} us/vertex (x{row['ratio']:.1f})"
                 if up is not None else ""))
    results: dict[str, Any] = {"rows": rows, "upstream_version": version}
    if problem:
        results["upstream_skipped"] = problem
        print(f"  phasic 0.32.1 NOT measured: {problem}")
    results["max_overhead_us"] = max(r["overhead_us"] for r in rows)
    ratios = [r["ratio"] for r in rows if "ratio" in r]
    results["min_ratio"] = min(ratios) if ratios else None
    common.finish("callbacks", quick, results, start, plot=lambda: plot(results, quick))
    return results


def plot(results: dict[str, Any], quick: bool) -> None:
    fig, (ax,) = common.figure(1, width=6.5)
    rows = results["rows"]
    v = [r["vertices"] for r in rows]
    for key, style, label in (("callback_us", "o:", "callback alone"),
                              ("ours_us", "o-", "Graph.from_callback (total)"),
                              ("overhead_us", "D-", "ours minus callback"),
                              ("upstream_us", "s--", "0.32.1 Graph(callback) (total)")):
        pts = [(x, r[key]) for x, r in zip(v, rows, strict=True) if key in r and r[key] > 0]
        if pts:
            ax.plot(*zip(*pts, strict=True), style, label=label)
    ax.axhline(10.0, color="grey", lw=0.8, ls="--", label="10 us/vertex")
    common.log_log_axes([ax], "vertices (Kingman n = 20 ... 50)", ["microseconds per vertex"],
                        ["building from a callback"])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    common.save_figure(fig, "callbacks", quick)


if __name__ == "__main__":
    common.cli(run, "n = 20, 25, 30 only")
