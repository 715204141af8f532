"""Building from a callback: cost per vertex beyond the callback, next to phasic 0.32.1.

    python bench/callbacks.py            # Kingman n = 20, 25, ..., 50 (628 to 204,227 vertices)
    python bench/callbacks.py --quick    # n = 20, 25, 30

Two forms of the same model. Per state: `phasic.models.kingman_transitions` (a state
copy per transition, loops over pairs of lineage classes), one call per state.
Batched: `phasic.models.kingman_batched_transitions`, one call per batch of up to 4096
states returning (rows, next_states, weights) arrays (`Graph.from_callback(...,
batched=True)`). Per n, in microseconds per vertex of CPU time (the build runs on one
thread; on a shared machine wall time also counts other processes' turns), the least of
several runs made in turn (the wall times are in the JSON too):
  callback   the per-state callback alone, called once on every state of the graph;
  ours       `Graph.from_callback` (building included the callback's calls);
  overhead   ours minus callback: what the builder adds;
  batched_callback, batched, batched_overhead   the same for the batched form (its
             callback alone: called on every state, in the builder's batches);
  upstream   phasic 0.32.1's `Graph(callback, ipv=...)` on the per-state function (its
             source handed to bench/_callback_worker.py in bench/.venv-previous);
  ratio      upstream / ours (the same callback); batched_ratio upstream / batched;
and the overhead per returned transition (the work per vertex grows with n).
Every built graph is checked against `phasic.models.kingman(n)` (same number of
vertices and edges, same mean at theta = 1), the batched one against the per-state
one (the same JSON text). Targets (reported, never asserted): the builder's overhead
<= 10 us per vertex at every size, and >= 3x faster than 0.32.1 on the same
callback. Writes bench/results/callbacks[-quick].json and .png.
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


def best_of(fns: dict[str, Any], repeat: int) -> dict[str, tuple[float, float]]:
    """The shortest wall and CPU time (seconds) of `repeat` runs of each fn, the fns run
    in turn in every round so that a change of load on a shared machine hits all alike."""
    best = {name: (float("inf"), float("inf")) for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


def measure(n: int) -> dict[str, Any]:
    import numpy as np

    from phasic import Graph, batched_callbacks, models

    fn = models.kingman_transitions
    ipv = [n] + [0] * (n - 1)
    repeat = 5 if n <= 40 else 3
    graph = Graph.from_callback(fn, ipv)
    reference = models.kingman(n)
    if (graph.vertices_length(), graph.edges_length()) != (reference.vertices_length(),
                                                           reference.edges_length()):
        raise RuntimeError(f"n = {n}: the callback graph differs from models.kingman(n)")
    mean = float(graph.expectation(theta=[1.0]))
    if abs(mean - 2 * (1 - 1 / n)) > 1e-9:
        raise RuntimeError(f"n = {n}: E[T_MRCA] = {mean}, expected {2 * (1 - 1 / n)}")
    batched_fn = models.kingman_batched_transitions
    if Graph.from_callback(batched_fn, ipv, batched=True).to_json() != graph.to_json():
        raise RuntimeError(f"n = {n}: the batched callback built another graph")
    all_states = np.ascontiguousarray(graph.states()[1:], dtype=np.int32)
    states = list(all_states)
    vertices = graph.vertices_length()
    size = batched_callbacks.DEFAULT_BATCH_SIZE

    def callback_alone() -> None:
        for s in states:
            fn(s)

    def batched_alone() -> None:
        for first in range(0, len(all_states), size):
            batched_fn(all_states[first:first + size])

    row: dict[str, Any] = {"n": n, "vertices": vertices, "edges": graph.edges_length()}
    best = best_of({"callback": callback_alone, "ours": lambda: Graph.from_callback(fn, ipv),
                    "batched_callback": batched_alone,
                    "batched": lambda: Graph.from_callback(batched_fn, ipv, batched=True)},
                   repeat)
    # CPU time is what the figures below use: the build is one thread, and on a shared
    # machine its wall time also counts the other processes' turns on the cores.
    for key, (wall, cpu) in best.items():
        row[f"{key}_wall_s"] = wall
        row[f"{key}_s"] = cpu
        row[f"{key}_us"] = cpu / vertices * 1e6
        row[f"{key}_wall_us"] = wall / vertices * 1e6
    row["overhead_us"] = row["ours_us"] - row["callback_us"]
    row["batched_overhead_us"] = row["batched_us"] - row["batched_callback_us"]
    row["overhead_wall_us"] = row["ours_wall_us"] - row["callback_wall_us"]
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
            row["upstream_s"] = up.get("build_cpu_s", up["build_s"])
            row["upstream_wall_s"] = up["build_s"]
            row["upstream_us"] = row["upstream_s"] / row["vertices"] * 1e6
            row["ratio"] = row["upstream_us"] / row["ours_us"]
            row["batched_ratio"] = row["upstream_us"] / row["batched_us"]
        print(f"  n = {row['n']:2d} ({row['vertices']:7,d} vertices): callback "
              f"{row['callback_us']:6.1f}, ours {row['ours_us']:6.1f}, overhead "
              f"{row['overhead_us']:5.1f} us/vertex; batched: callback "
              f"{row['batched_callback_us']:5.1f}, total {row['batched_us']:5.1f}, overhead "
              f"{row['batched_overhead_us']:5.1f} us/vertex"
              + (f"; 0.32.1 {row['upstream_us']:6.1f} us/vertex (x{row['ratio']:.1f})"
                 if up is not None else ""))
    results: dict[str, Any] = {"rows": rows, "upstream_version": version}
    if problem:
        results["upstream_skipped"] = problem
        print(f"  phasic 0.32.1 NOT measured: {problem}")
    results["max_overhead_us"] = max(r["overhead_us"] for r in rows)
    results["max_batched_overhead_us"] = max(r["batched_overhead_us"] for r in rows)
    results["max_batched_us"] = max(r["batched_us"] for r in rows)
    ratios = [r["ratio"] for r in rows if "ratio" in r]
    results["min_ratio"] = min(ratios) if ratios else None
    batched_ratios = [r["batched_ratio"] for r in rows if "batched_ratio" in r]
    results["min_batched_ratio"] = min(batched_ratios) if batched_ratios else None
    results["targets"] = targets(results)
    common.finish("callbacks", quick, results, start, plot=lambda: plot(results, quick))
    return results


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The callback-building targets with the measured value (met or not; never asserted)."""
    rows = results["rows"]
    out = [{"target": "builder overhead per vertex, per-state callback (largest)",
            "measured": results["max_overhead_us"], "limit": 10.0, "unit": "us"},
           {"target": "builder overhead per vertex, batched callback (largest)",
            "measured": results["max_batched_overhead_us"], "limit": 10.0, "unit": "us"}]
    if results["min_ratio"] is not None:
        out.append({"target": "0.32.1 / ours, same per-state callback (smallest)",
                    "measured": results["min_ratio"], "limit": 3.0, "unit": "x"})
        out.append({"target": "0.32.1 / ours batched, same model (smallest)",
                    "measured": results["min_batched_ratio"], "limit": 3.0, "unit": "x"})
    for t in out:
        t["met"] = (t["measured"] >= t["limit"]) if t["unit"] == "x" else (
            t["measured"] <= t["limit"])
        print(f"  {t['target']:56s} {t['measured']:6.2f} {t['unit']} (limit {t['limit']:g}) "
              f"{'met' if t['met'] else 'NOT met'}")
    print(f"  overhead per vertex from {rows[0]['vertices']:,} to {rows[-1]['vertices']:,} "
          f"vertices: per state {rows[0]['overhead_us']:.1f} .. {rows[-1]['overhead_us']:.1f} us, "
          f"batched {rows[0]['batched_overhead_us']:.1f} .. {rows[-1]['batched_overhead_us']:.1f} us")
    return out


def plot(results: dict[str, Any], quick: bool) -> None:
    fig, (ax,) = common.figure(1, width=6.5)
    rows = results["rows"]
    v = [r["vertices"] for r in rows]
    for key, style, label in (("callback_us", "o:", "callback alone"),
                              ("ours_us", "o-", "Graph.from_callback (total)"),
                              ("overhead_us", "D-", "ours minus callback"),
                              ("upstream_us", "s--", "0.32.1 Graph(callback) (total)"),
                              ("batched_callback_us", "v:", "batched callback alone"),
                              ("batched_us", "v-", "batched=True (total)"),
                              ("batched_overhead_us", "x-", "batched minus its callback")):
        pts = [(x, r[key]) for x, r in zip(v, rows, strict=True) if key in r and r[key] > 0]
        if pts:
            ax.plot(*zip(*pts, strict=True), style, label=label)
    ax.axhline(10.0, color="grey", lw=0.8, ls="--", label="10 us/vertex")
    common.log_log_axes([ax], "vertices (Kingman n = 20 ... 50)", ["CPU microseconds per vertex"],
                        ["building from a callback"])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    common.save_figure(fig, "callbacks", quick)


if __name__ == "__main__":
    common.cli(run, "n = 20, 25, 30 only")
