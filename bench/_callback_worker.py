"""Runs inside bench/.venv-previous: the previous phasic (0.32.1) building from a callback.

    python _callback_worker.py SPEC.json

SPEC: {"source": the callback's Python source, "name": its function name, "sizes": [n,
...]}. The callback is the current phasic's `kingman_transitions`, handed over as
source text so that both phasics run the same function. For each n the graph is
built twice with `Graph(callback, ipv=[n, 0, ...], graph_cache=False)` (no disk cache:
the build itself is measured), the shorter wall and CPU times kept. Prints `RESULT <json>`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence

import numpy as np
from common import emit


def load_callback(source: str, name: str):
    """The callback defined by `source` (it may use numpy as np and Sequence)."""
    namespace = {"np": np, "Sequence": Sequence}
    exec(compile(source, "<callback>", "exec"), namespace)  # noqa: S102 - our own source
    return namespace[name]


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    import importlib.metadata

    import phasic  # the previous one: this runs in its own virtualenv

    fn = load_callback(spec["source"], spec["name"])
    rows = []
    for n in spec["sizes"]:
        best, best_cpu = float("inf"), float("inf")
        for _ in range(2):  # the shorter of two: the least disturbed by other load
            start, cpu = time.perf_counter(), time.process_time()
            graph = phasic.Graph(fn, ipv=[n] + [0] * (n - 1), graph_cache=False)
            best = min(best, time.perf_counter() - start)
            best_cpu = min(best_cpu, time.process_time() - cpu)
        rows.append({"n": n, "vertices": graph.vertices_length(), "edges": graph.edges_length()
                     if hasattr(graph, "edges_length") else None,
                     "build_s": best, "build_cpu_s": best_cpu})
    emit({"version": importlib.metadata.version("phasic"), "rows": rows})


if __name__ == "__main__":
    main()
