"""Runs inside bench/.venv-previous: the previous phasic (0.32.1) on given graphs.

    python _previous_worker.py SPEC.json

SPEC: {"graphs": [{"n": .., "path": structure.json}], "thetas": [...], "times": [...],
"quick": bool}. Each structure file is the current phasic's serialized graph; it is
rebuilt vertex by vertex through the previous phasic's graph API (the same states
and the same edges, every edge rate = coefficient * theta). Prints `RESULT <json>`.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from common import emit, timeit


def build(structure: dict):
    """The same graph through the previous phasic's Graph / find_or_create_vertex API."""
    import phasic  # the previous one: this runs in its own virtualenv

    graph = phasic.Graph(structure["state_length"])
    vertices = [graph.starting_vertex()]
    vertices += [graph.find_or_create_vertex(s) for s in structure["states"][1:]]
    coef = dict(zip(structure["coefficients"]["edge"], structure["coefficients"]["value"],
                    strict=True))
    edges = structure["edges"]
    for e, (src, dst, weight) in enumerate(zip(edges["from"], edges["to"], edges["weight"],
                                               strict=True)):
        # the previous phasic wants one edge form per graph: all coefficient vectors
        vertices[src].add_edge(vertices[dst], [coef.get(e, weight)])
    return graph


def measure(n: int, path: str, thetas: list[float], times: list[float]) -> dict:
    structure = json.loads(open(path).read())
    start = time.perf_counter()
    graph = build(structure)
    row: dict = {"n": n, "vertices": graph.vertices_length(),
                 "build_s": time.perf_counter() - start}
    counter = iter(range(1 << 40))

    def moments_call() -> list[float]:  # a new theta each call, 3 moments
        graph.update_weights([thetas[next(counter) % len(thetas)]])
        return [graph.moments(k) for k in (1, 2, 3)]

    row["moments_s"] = timeit(moments_call, repeat=3, min_time=0.05)
    graph.update_weights([1.0])
    row["mean"], row["variance"] = float(graph.expectation()), float(graph.variance())
    values = np.asarray(graph.pdf(np.asarray(times)), dtype=float)

    def pdf_call() -> object:  # a new theta each call: repeated identical calls are cached
        graph.update_weights([thetas[next(counter) % len(thetas)]])
        return graph.pdf(np.asarray(times))

    start = time.perf_counter()
    pdf_call()
    first = time.perf_counter() - start
    # One call takes seconds at n >= 30; repeat only when it is cheap.
    row["pdf_s"] = timeit(pdf_call, repeat=3) if first < 0.5 else first
    row["pdf"] = values.tolist()
    return row


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    import importlib.metadata

    import phasic

    out = {"version": importlib.metadata.version("phasic"),
           "module_version": getattr(phasic, "__version__", "?"), "rows": []}
    for g in spec["graphs"]:
        out["rows"].append(measure(g["n"], g["path"], spec["thetas"], spec["times"]))
    emit(out)


if __name__ == "__main__":
    main()
