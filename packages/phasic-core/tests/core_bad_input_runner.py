"""Runs bad-input cases for test_bad_inputs.py in a separate process.

Reads a JSON list of {"name", "code"} from stdin; prints "START <name>" before each
case and one JSON result line after it, so a crash (a C++ abort, a segfault)
leaves a START without a result and the parent can name the case that killed it.
argv[1] == "x64" turns jax_enable_x64 on before anything runs; otherwise
PHASIC_ENABLE_X64=0 keeps `import phasic` from turning it on.
"""

from __future__ import annotations

import json
import os
import sys

if sys.argv[1] != "x64":
    os.environ["PHASIC_ENABLE_X64"] = "0"

import jax  # noqa: E402

if sys.argv[1] == "x64":
    jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import phasic  # noqa: E402
from phasic import models  # noqa: E402


def setup() -> dict:
    """Objects the cases refer to (built lazily: x64-off cases need no arrays)."""
    k = models.kingman(4)
    island = models.two_island(2)
    no_exit = phasic.Graph(1)  # 1 <-> 2 cycle, vertex 3 absorbing but unreachable
    a, b, c = (no_exit.find_or_create_vertex((i,)) for i in (1, 2, 3))
    no_exit.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, 1.0)
    b.add_edge(a, 1.0)
    zero_exit = phasic.Graph(1)  # the only exit has rate theta[0]: zero for theta = [0]
    a, b = (zero_exit.find_or_create_vertex((i,)) for i in (1, 2))
    zero_exit.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, [1.0])
    zero_start = phasic.Graph(1)  # start weights theta[0] and 0.5 theta[0]: sum 0 at 0
    a, b, c = (zero_start.find_or_create_vertex((i,)) for i in (1, 2, 3))
    zero_start.starting_vertex().add_edge(a, [1.0])
    zero_start.starting_vertex().add_edge(b, [0.5])
    a.add_edge(c, 1.0)
    b.add_edge(c, 1.0)
    no_start = phasic.Graph(1)  # the starting vertex has no out-edge
    a, b = (no_start.find_or_create_vertex((i,)) for i in (1, 2))
    a.add_edge(b, 1.0)
    geo = phasic.Graph(1, discrete=True)  # leaves with probability 0.5 per step
    a, b = (geo.find_or_create_vertex((i,)) for i in (1, 2))
    geo.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, 0.5)
    return dict(phasic=phasic, models=models, jnp=jnp, np=np, jax=jax, k=k,
                kjs=k.to_json(), island=island, no_exit=no_exit, zero_exit=zero_exit,
                zero_start=zero_start, no_start=no_start, geo=geo)


def main() -> None:
    cases = json.load(sys.stdin)
    env = None
    for case in cases:
        print("START", case["name"], flush=True)
        try:
            if env is None:
                env = setup() if sys.argv[1] == "x64" else dict(
                    phasic=phasic, models=models, jnp=jnp, np=np, jax=jax)
            out = eval(case["code"], env)
            if hasattr(out, "block_until_ready"):
                out.block_until_ready()
            np.asarray(out)  # surface errors of asynchronous dispatch here
            result = {"name": case["name"], "raised": None, "message": repr(out)[:300]}
        except Exception as exc:  # noqa: BLE001 - recording every exception is the point
            result = {"name": case["name"], "raised": type(exc).__name__,
                      "mro": [c.__name__ for c in type(exc).__mro__], "message": str(exc)}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
