"""Bad inputs across every public entry point: each gives a documented exception.

Covers what packages/phasic-core/tests/test_bad_inputs.py does not: the graph JSON
(truncated, wrong schema version, huge and negative indices, duplicate vertices,
unknown vertices, non-finite numbers), graph building, the three FFI functions
under `jax.jit` and `jax.vmap` (errors found inside the C++ batch loop), graphs
without an absorbing state or with unreachable absorption, SLURM and launcher
environment parsing (phasic-distributed) and the testkit marker's arguments.
The exception types are documented in docs/pages/hardening.md.

Every case runs in a child process (this file run as a script), so a crash (a
signal, an abort) or a hang fails the case that caused it, not pytest. One child
runs a whole group; after a crash or a hang the rest of the group continues in a
fresh child.
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import re
import subprocess
import sys
import tempfile
import threading
from typing import IO, NamedTuple

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FUZZ = ROOT / "packages" / "phasic-core" / "fuzz"


class Case(NamedTuple):
    group: str  # "core" (jax, x64 on), "dist" (phasic_distributed), "testkit"
    code: str  # an expression evaluated in the child
    raises: tuple[str, ...]  # accepted exception class names (any class in the MRO);
    # "<none>": returning is accepted too, and then `message` must match repr(result)
    message: str  # regex the message must match (re.S)
    timeout: float = 20.0  # seconds without a result before the case counts as a hang
    xfail: str = ""  # a known, reported bug: the case must fail until it is fixed


# Names the child defines for the cases (see _setup_core).
K = "kjs"  # Kingman n = 4, one parameter, as JSON
TH = "jnp.array([1.0])"
T = "jnp.array([0.5, 1.0])"
VAL, TYP = ("ValueError",), ("TypeError",)
# Found by the C++ kernel while XLA runs the FFI call: JAX re-raises it as
# jax.errors.JaxRuntimeError (a RuntimeError) carrying the C++ message.
KERNEL = ("ValueError", "RuntimeError")
SLURM = ("SlurmEnvironmentError",)
USAGE = ("UsageError",)


def _from_kjs(old: str, new: str) -> str:
    """Code reading Kingman(4)'s JSON with its first `old` replaced by `new`."""
    return f"phasic.Graph.from_json(kjs.replace({old!r}, {new!r}, 1))"


def _from_base(fields: str) -> str:
    """Code reading the small valid graph `base` with some fields changed ("k=v, ...")."""
    return f"phasic.Graph.from_json(json.dumps({{**base, **dict({fields})}}))"


CASES: dict[str, Case] = {
    # -- graph JSON: Graph.from_json and the FFI functions (structure given as text) ------
    "json truncated": Case("core", "phasic.Graph.from_json(kjs[: len(kjs) // 2])", VAL,
                           r"text ended|unterminated"),
    "json empty string": Case("core", "phasic.Graph.from_json('')", VAL, r"JSON.*expected '\{'"),
    "json trailing garbage": Case("core", "phasic.Graph.from_json(kjs + ' x')", VAL,
                                  r"unexpected text after"),
    "json unknown schema version": Case(
        "core", _from_kjs('"version": 1', '"version": 2'), VAL,
        r"version.*supports version 1, got 2"),
    "json wrong format name": Case("core", _from_kjs("phasic.graph", "other.graph"), VAL,
                                   r'format: expected "phasic.graph"'),
    "json missing key": Case("core", "phasic.Graph.from_json(json.dumps({k: v for k, v in "
                                     "base.items() if k != 'edges'}))", VAL,
                             r"missing key 'edges'"),
    "json duplicate key": Case(
        "core", _from_kjs('"discrete": false', '"discrete": false, "discrete": true'), VAL,
        r"duplicate key 'discrete'"),
    "json bytes, not str": Case("core", "phasic.Graph.from_json(kjs.encode())", TYP,
                                r"JSON string or dict"),
    "json negative vertex index": Case(
        "core", _from_base("edges={'from': [0, -1], 'to': [1, 2], 'weight': [1.0, 1.0]}"),
        VAL, r"edges\.from\[1\]: -1 is not a vertex index"),
    "json huge vertex index": Case(
        "core", _from_base("edges={'from': [0, 1], 'to': [1, 2**40], 'weight': [1.0, 1.0]}"),
        VAL, r"edges\.to\[1\]: 1099511627776 is not a vertex index"),
    "json index beyond int64": Case(
        "core", _from_base("edges={'from': [0, 1], 'to': [1, 10**23], 'weight': [1.0, 1.0]}"),
        VAL, r"edges\.to\[1\]: integer 10+ is out of range"),
    "json edge to unknown vertex": Case(
        "core", _from_base("edges={'from': [0, 1], 'to': [1, 7], 'weight': [1.0, 1.0]}"),
        VAL, r"edges\.to\[1\]: vertex 7 does not exist \(the graph has 3 vertices\)"),
    "json duplicate vertices": Case("core", _from_base("states=[[0], [1], [1]]"), VAL,
                                    r"states\[2\]: duplicates states\[1\]"),
    "json duplicate edge": Case(
        "core", _from_base("edges={'from': [0, 1, 1], 'to': [1, 2, 2], 'weight': [1, 1, 1]}"),
        VAL, r"edges\[2\]: duplicate edge 1 -> 2"),
    "json edge into start": Case(
        "core", _from_base("edges={'from': [0, 1], 'to': [1, 0], 'weight': [1.0, 1.0]}"),
        VAL, r"edges\.to\[1\]: edges into vertex 0"),
    "json NaN weight": Case("core", "phasic.Graph.from_json(json.dumps(base).replace("
                                    "'[1.0, 2.0]', '[1.0, NaN]'))", VAL,
                            r"edges\.weight\[1\]: non-finite numbers"),
    "json overflowing weight": Case("core", "phasic.Graph.from_json(json.dumps(base).replace("
                                            "'[1.0, 2.0]', '[1.0, 1e400]'))", VAL,
                                    r"edges\.weight\[1\]: number 1e400 is not a finite double"),
    "json non-zero start state": Case(
        "core", _from_base("states=[[5], [1], [2]]"), VAL,
        r"states\[0\]: the starting vertex's state must be all zeros"),
    "json ragged states": Case("core", _from_base("states=[[0], [1, 1], [2]]"), VAL,
                               r"states\[1\]: has 2 entries but states\[0\] has 1"),
    "json coefficient param >= param_length": Case(
        "core", _from_base("param_length=1, coefficients={'edge': [1], 'param': [3], "
                           "'value': [1.0]}"),
        VAL, r"coefficients\.param\[0\]: parameter 3 is not below param_length 1"),
    "json column lengths differ": Case(
        "core", _from_base("edges={'from': [0, 1], 'to': [1, 2], 'weight': [1.0]}"),
        VAL, r"edges\.weight: has 1 entries but edges\.from has 2"),
    "ffi json truncated (jit)": Case("core", f"jax.jit(lambda th: phasic.compute_moments_ffi("
                                             f"kjs[:-3], th, 1))({TH})", VAL, r"text ended"),
    # -- graph building ---------------------------------------------------------------
    "Graph negative state_length": Case("core", "phasic.Graph(-1)", VAL,
                                        r"state_length must be >= 0"),
    "Graph state_length not int": Case("core", "phasic.Graph('3')", TYP,
                                       r"state_length must be an int"),
    "state of wrong length": Case("core", "phasic.Graph(2).find_or_create_vertex((1,))", VAL,
                                  r"state \(1,\) has length 1.*length 2"),
    "state with float entries": Case("core", "phasic.Graph(1).find_or_create_vertex((1.5,))",
                                     TYP, r"state entries must be ints"),
    "state entry beyond int32": Case("core", "phasic.Graph(1).find_or_create_vertex((2**40,))",
                                     VAL, r"does not fit in 32 bits"),
    "edge to unknown vertex": Case("core", "phasic.Graph(1).starting_vertex().add_edge(99, 1.0)",
                                   VAL, r"target vertex 99 does not exist"),
    "edge to negative vertex": Case("core",
                                    "phasic.Graph(1).starting_vertex().add_edge(-1, 1.0)",
                                    VAL, r"target vertex -1 does not exist"),
    "duplicate edge": Case("core", "[small.vertex_at(1).add_edge(2, 1.0) for _ in range(2)]",
                           VAL, r"duplicate edge 1 -> 2"),
    "self-loop": Case("core", "small.vertex_at(1).add_edge(1, 1.0)", VAL,
                      r"self-loop on vertex 1"),
    "edge into the start": Case("core", "small.vertex_at(1).add_edge(0, 1.0)", VAL,
                                r"edges into vertex 0"),
    "NaN edge weight": Case("core", "small.vertex_at(1).add_edge(2, float('nan'))", VAL,
                            r"edge weight must be finite, got nan"),
    "inf edge weight": Case("core", "small.vertex_at(1).add_edge(2, float('inf'))", VAL,
                            r"edge weight must be finite, got inf"),
    "inf coefficient": Case("core", "small.vertex_at(1).add_edge(2, [1.0, float('inf')])", VAL,
                            r"edge coefficients must be finite"),
    "vertex_at out of range": Case("core", "small.vertex_at(10**12)", ("IndexError",),
                                   r"vertex index 1000000000000 out of range"),
    "edge to another graph's vertex": Case(
        "core", "small.vertex_at(1).add_edge(phasic.Graph(1).find_or_create_vertex((1,)), 1.0)",
        VAL, r"another graph"),
    "callback self transition": Case(
        "core", "phasic.Graph.from_callback(lambda s: [(s, 1.0)], (1,))", VAL,
        r"transitions from state \[1\] include the state itself"),
    "callback bad return": Case("core", "phasic.Graph.from_callback(lambda s: [3], (1,))", TYP,
                                r"from state \[1\]: 3 is not a transition"),
    "batched callback bad return": Case(
        "core", "phasic.Graph.from_callback(lambda s: [1], (1,), batched=True)", TYP,
        r"batched callback must return \(rows, next_states, weights\)"),
    "batched callback row out of range": Case(
        "core", "phasic.Graph.from_callback(lambda s: (np.array([5]), np.array([[2]]), "
                "np.array([1.0])), (1,), batched=True)", VAL,
        r"rows\[0\] = 5 is not a row of the 1 states it was given"),
    "batched callback self transition": Case(
        "core", "phasic.Graph.from_callback(lambda s: (np.array([0]), s.copy(), "
                "np.array([1.0])), (1,), batched=True)", VAL,
        r"transition 0 goes from state \[1\] to itself"),
    "batched callback negative batch_size": Case(
        "core", "phasic.Graph.from_callback(models.kingman_batched_transitions, (2, 0), "
                "batched=True, batch_size=-1)", VAL, r"batch_size must be >= 1"),
    "no absorbing state": Case("core", "phasic.Graph.from_json(cyclic).expectation()", VAL,
                               r"vertex 1 \(state \[1\]\) cannot reach an absorbing vertex"),
    "unreachable absorption (jit)": Case(
        "core", f"jax.jit(lambda th: phasic.compute_pmf_ffi(cyclic3, th, {T}))(jnp.zeros(0))",
        VAL, r"cannot reach an absorbing vertex"),
    # -- the FFI functions under jit and vmap -------------------------------------------
    "theta wrong length (jit)": Case("core", f"jax.jit(lambda th: phasic.compute_pmf_ffi("
                                             f"{K}, th, {T}))(jnp.ones(3))", VAL,
                                     r"theta must have shape \(1,\).*got shape \(3,\)"),
    "theta wrong length (vmap)": Case("core", f"jax.vmap(lambda th: phasic.compute_moments_ffi("
                                              f"{K}, th, 2))(jnp.ones((4, 2)))", VAL,
                                      r"theta must have shape \(1,\).*got shape \(2,\)"),
    "theta float32 (jit)": Case("core", f"jax.jit(lambda th: phasic.compute_moments_ffi({K}, "
                                        "th, 2))(jnp.ones(1, dtype=jnp.float32))", TYP,
                                r"theta has dtype float32.*float64"),
    "theta complex": Case("core", f"phasic.compute_moments_ffi({K}, jnp.ones(1, "
                                  "dtype=jnp.complex128), 2)", TYP, r"theta has dtype complex"),
    "vmap batch sizes differ": Case(
        "core", f"jax.vmap(lambda th, t: phasic.compute_pmf_ffi({K}, th, t))("
                "jnp.ones((3, 1)), jnp.ones((4, 2)))", VAL, r"vmap got inconsistent sizes"),
    "negative rate (jit)": Case("core", f"jax.jit(lambda th: phasic.compute_pmf_ffi({K}, th, "
                                        f"{T}))(jnp.array([-2.0]))", KERNEL,
                                r"edge \d+ .*weight -\d.*>= 0"),
    "negative rate in one vmap element": Case(
        "core", f"jax.vmap(lambda th: phasic.compute_moments_ffi({K}, th, 2))("
                "jnp.array([[1.0], [2.0], [-1.0], [1.0]]))", KERNEL,
        r"batch (element|index) 2.*weight"),
    "inf theta": Case("core", f"phasic.compute_moments_ffi({K}, jnp.array([np.inf]), 2)",
                      KERNEL, r"theta\[0\] is inf"),
    "NaN time (vmap)": Case("core", f"jax.vmap(lambda t: phasic.compute_pmf_ffi({K}, {TH}, t))"
                                    "(jnp.array([[0.5], [np.nan]]))", KERNEL,
                            r"batch (element|index) 1.*(?i:nan)"),
    "negative time (pmf_and_moments, jit)": Case(
        "core", f"jax.jit(lambda t: phasic.compute_pmf_and_moments_ffi({K}, {TH}, t, 2))("
                "jnp.array([1.0, -3.0]))", KERNEL, r"times\[1\] is -3"),
    "inf time": Case("core", f"phasic.compute_pmf_ffi({K}, {TH}, jnp.array([np.inf]))", KERNEL,
                     r"times\[0\] is inf; times must be finite"),
    "negative time (log pmf)": Case("core", f"phasic.compute_log_pmf_ffi({K}, {TH}, "
                                            "jnp.array([-1.0]))", KERNEL, r"times\[0\] is -1"),
    "fractional step (discrete)": Case("core", "phasic.compute_pmf_ffi(disc, jnp.zeros(0), "
                                               "jnp.array([1.5]), discrete=True)", KERNEL,
                                       r"times\[0\] is 1\.5; .* whole numbers"),
    "nr_moments zero (jit)": Case("core", f"jax.jit(lambda th: phasic.compute_moments_ffi({K}, "
                                          "th, 0))(jnp.ones(1))", VAL, r"nr_moments must be >= 1"),
    "nr_moments negative (vmap)": Case(
        "core", f"jax.vmap(lambda th: phasic.compute_pmf_and_moments_ffi({K}, th, {T}, -1))("
                "jnp.ones((2, 1)))", VAL, r"nr_moments must be >= 1, got -1"),
    "NaN theta (pmf_and_moments)": Case(
        "core", f"phasic.compute_pmf_and_moments_ffi({K}, jnp.array([np.nan]), {T}, 2)",
        KERNEL, r"theta\[0\] is nan"),
    "negative rate (log pmf, jit)": Case(
        "core", f"jax.jit(lambda th: phasic.compute_log_pmf_ffi({K}, th, {T}))("
                "jnp.array([-1.0]))", KERNEL, r"edge \d+ .*weight -\d.*>= 0"),
    # an empty time grid is not an error: the result is empty, with the grid's shape
    "empty times (eager, vmap)": Case(
        "core", f"(phasic.compute_pmf_ffi({K}, {TH}, jnp.zeros(0)).shape, jax.vmap(lambda t: "
                f"phasic.compute_pmf_ffi({K}, {TH}, t))(jnp.zeros((3, 0))).shape)",
        ("<none>",), r"^\(\(0,\), \(3, 0\)\)$"),
    "NaN reward": Case("core", f"phasic.compute_moments_ffi({K}, {TH}, 1, rewards=jnp.full("
                               "k.vertices_length(), np.nan))", KERNEL, r"rewards\[0\] is nan"),
    "start weights sum to 0 (vmap)": Case(
        "core", "jax.vmap(lambda th: phasic.compute_pmf_ffi(zero_start, th, jnp.ones(1)))("
                "jnp.array([[0.0], [1.0]]))", KERNEL,
        r"batch element 0 of 2: the starting vertex's out-edge weights sum to 0 at "
        r"theta = \[0\]"),
    "discrete out-probabilities > 1": Case(
        "core", "phasic.compute_pmf_ffi(disc_over, jnp.zeros(0), jnp.array([1.0]), "
                "discrete=True)", KERNEL,
        r"vertex 1 \(state \[1\]\) has out-probabilities summing to 1\.5 > 1"),
    # -- inputs found by the fuzzer (packages/phasic-core/fuzz) -------------------------------
    "fuzz: stiff rate (1.9e19) pdf": Case(
        "core", "phasic.Graph.from_json(open(fuzz / 'regressions' / "
                "'stiff_rate_uniformization_hang.json').read()).pdf([1.0], "
                "theta=[1.0])", KERNEL,
        r"uniformization would need about 1\.92.*e\+19 steps .* too stiff", timeout=5.0),
    # -- SLURM and launcher environments (phasic-distributed) ----------------------------
    "SLURM_PROCID >= SLURM_NTASKS": Case("dist", "step(SLURM_PROCID='5')", SLURM,
                                         r"SLURM_PROCID=5 but the step has only 2 task"),
    "SLURM_PROCID negative": Case("dist", "step(SLURM_PROCID='-1')", SLURM,
                                  r"SLURM_PROCID=-1 is below 0"),
    "SLURM_NTASKS zero": Case("dist", "step(SLURM_NTASKS='0', SLURM_STEP_NUM_TASKS='0')", SLURM,
                              r"SLURM_NTASKS=0 is below 1"),
    "SLURM_NTASKS not a number": Case("dist", "step(SLURM_NTASKS='two')", SLURM,
                                      r"SLURM_NTASKS='two' is not an integer"),
    "SLURM_NTASKS disagree": Case("dist", "step(SLURM_NPROCS='3')", SLURM,
                                  r"SLURM_NTASKS=2 but SLURM_NPROCS=3"),
    "SLURM_NODEID beyond node list": Case("dist", "step(SLURM_NODEID='7')", SLURM,
                                          r"SLURM_NODEID=7 but the node list has 2 node"),
    "SLURM node list reversed range": Case("dist", "step(SLURM_STEP_NODELIST='node[3-1]')",
                                           SLURM, r"node list 'node\[3-1\]' is malformed"),
    "SLURM node list huge range": Case("dist", "step(SLURM_STEP_NODELIST='n[0-99999999]')",
                                       SLURM, r"node list 'n\[0-99999999\]' is malformed"),
    "SLURM tasks per node repeats 0": Case("dist", "step(SLURM_STEP_TASKS_PER_NODE='1(x0)')",
                                           SLURM, r"1\(x0\).*repeats 0 times"),
    "SLURM tasks per node vs nodes": Case("dist", "step(SLURM_STEP_TASKS_PER_NODE='1,1,1')",
                                          SLURM, r"describes 3 nodes but the step node list "
                                                 r"has 2"),
    "SLURM_CPUS_PER_TASK zero": Case("dist", "step(SLURM_CPUS_PER_TASK='0')", SLURM,
                                     r"SLURM_CPUS_PER_TASK=0 is below 1"),
    "SLURM step without node list": Case(
        "dist", "step(SLURM_STEP_NODELIST=None, SLURM_JOB_NODELIST=None, "
                "SLURM_STEP_NUM_TASKS='2')", SLURM, r"no node list"),
    "launcher process id out of range": Case(
        "dist", "pd.plan({'PHASIC_COORDINATOR': 'localhost:1234', 'PHASIC_NUM_PROCESSES': '2', "
                "'PHASIC_PROCESS_ID': '2'})", ("LauncherEnvironmentError",),
        r"PHASIC_PROCESS_ID=2 is outside 0\.\.1"),
    "launcher coordinator port out of range": Case(
        "dist", "pd.plan({'PHASIC_COORDINATOR': 'localhost:99999', 'PHASIC_NUM_PROCESSES': '2', "
                "'PHASIC_PROCESS_ID': '0'})", ("CoordinatorError",), r"99999"),
    # -- the testkit marker -----------------------------------------------------------------
    "marker nprocs zero": Case("testkit", "marker(nprocs=0)", USAGE,
                               r"nprocs must be a positive int.*got 0"),
    "marker nprocs negative": Case("testkit", "marker(nprocs=-2)", USAGE, r"got -2"),
    "marker nprocs string": Case("testkit", "marker(nprocs='4')", USAGE, r"got '4'"),
    "marker nprocs bool": Case("testkit", "marker(nprocs=True)", USAGE, r"got True"),
    "marker nprocs empty list": Case("testkit", "marker(nprocs=[])", USAGE,
                                     r"nprocs=\[\] lists no process count"),
    "marker nprocs list with zero": Case("testkit", "marker(nprocs=[2, 0])", USAGE,
                                         r"got \[2, 0\]"),
    "marker devices zero": Case("testkit", "marker(devices_per_process=0)", USAGE,
                                r"devices_per_process must be a positive int"),
    "marker timeout negative": Case("testkit", "marker(timeout=-1)", USAGE,
                                    r"timeout must be a positive, finite number"),
    "marker timeout NaN": Case("testkit", "marker(timeout=float('nan'))", USAGE,
                               r"timeout must be a positive, finite number.*nan"),
    "marker timeout infinite": Case("testkit", "marker(timeout=float('inf'))", USAGE,
                                    r"finite number of seconds.*inf"),
    "marker nprocs huge": Case("testkit", "marker(nprocs=10**6)", USAGE,
                               r"nprocs=1000000 is more than 128"),
    "marker devices huge": Case("testkit", "marker(devices_per_process=10**6)", USAGE,
                                r"devices_per_process=1000000 is more than 256"),
    "marker positional argument": Case("testkit", "marker(4)", USAGE, r"by name"),
    "marker unknown argument": Case("testkit", "marker(nproc=4)", USAGE,
                                    r"unknown multiprocess argument.*nproc"),
}


# Inputs that once crashed the fuzzer (fuzz/regressions/, see fuzz/run.sh): each goes
# through Graph.from_json, compile and the kernels; rejecting it with a ValueError is
# fine, returning is fine, crashing or hanging is not.
for _path in sorted((FUZZ / "regressions").glob("*")):
    CASES[f"fuzz regression {_path.name}"] = Case(
        "core", f"replay(fuzz / 'regressions' / {_path.name!r})", ("ValueError", "<none>"), "")


def _replay(path: pathlib.Path) -> object:
    """Feed one fuzzer input through the public API the way the harness does."""
    import numpy as np

    import phasic

    graph = phasic.Graph.from_json(path.read_text(errors="replace"))
    theta = np.ones(graph.param_length())
    graph.moments(2, theta=theta)
    times = [0.0, 0.5]
    return graph.cdf(times, theta=theta) if graph.discrete else graph.pdf(times, theta=theta)


# --------------------------------------------------------------------------- child side


def _setup_core() -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    import phasic
    from phasic import models

    k = models.kingman(4)
    # start -> [1] -> [2] (absorbing); the base graph of the JSON cases
    base = {"format": "phasic.graph", "version": 1, "discrete": False, "state_length": 1,
            "param_length": 0, "states": [[0], [1], [2]],
            "edges": {"from": [0, 1], "to": [1, 2], "weight": [1.0, 2.0]},
            "coefficients": {"edge": [], "param": [], "value": []}}
    cyclic = {**base, "edges": {"from": [0, 1, 2], "to": [1, 2, 1], "weight": [1.0, 1.0, 1.0]}}
    # vertex 3 is absorbing but no path from the 1 <-> 2 cycle reaches it
    cyclic3 = {**cyclic, "states": [[0], [1], [2], [3]]}
    small = phasic.Graph(1)
    for i in (1, 2):
        small.find_or_create_vertex((i,))
    zero_start = phasic.Graph(1)  # start weights theta[0] and 0.5 theta[0]: sum 0 at 0
    a, b = zero_start.find_or_create_vertex((1,)), zero_start.find_or_create_vertex((2,))
    zero_start.starting_vertex().add_edge(a, [1.0])
    zero_start.starting_vertex().add_edge(b, [0.5])
    a.add_edge(b, 1.0)
    disc = {**base, "discrete": True, "edges": {"from": [0, 1], "to": [1, 2],
                                                "weight": [1.0, 0.5]}}
    # vertex 1 moves on with probabilities 0.9 + 0.6 = 1.5
    disc_over = {**base, "discrete": True, "states": [[0], [1], [2], [3]],
                 "edges": {"from": [0, 1, 1], "to": [1, 2, 3], "weight": [1.0, 0.9, 0.6]}}
    return dict(phasic=phasic, models=models, jax=jax, jnp=jnp, np=np, json=json, k=k,
                fuzz=FUZZ, replay=_replay,
                kjs=k.to_json(), base=base, cyclic=json.dumps(cyclic),
                cyclic3=json.dumps(cyclic3), small=small, zero_start=zero_start, disc=json.dumps(disc),
                disc_over=json.dumps(disc_over))


def _setup_dist() -> dict:
    import phasic_distributed as pd
    from phasic_distributed.slurm import SlurmEnvironment

    good = {"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0", "SLURM_PROCID": "1",
            "SLURM_LOCALID": "0", "SLURM_NODEID": "1", "SLURM_NTASKS": "2",
            "SLURM_STEP_NODELIST": "node[1-2]", "SLURM_JOB_NODELIST": "node[1-2]",
            "SLURM_STEP_TASKS_PER_NODE": "1(x2)", "SLURMD_NODENAME": "node2"}

    def step(**changes: str | None) -> object:
        """The well-formed 2-task step above with some variables changed (None: unset)."""
        env = {**good, **changes}
        env = {k: v for k, v in env.items() if v is not None}
        SlurmEnvironment.from_env(env).raise_for_problems()
        return pd.plan(env)

    SlurmEnvironment.from_env(good).raise_for_problems()  # the base itself is fine
    return dict(pd=pd, step=step)


def _setup_testkit() -> dict:
    import pytest as pt

    try:
        from phasic_testkit.plugin import parse_marker
    except ImportError:  # a source checkout without phasic-testkit installed
        sys.path.insert(0, str(ROOT / "packages" / "phasic-testkit" / "src"))
        from phasic_testkit.plugin import parse_marker

    def marker(*args: object, **kwargs: object) -> object:
        return parse_marker(pt.mark.multiprocess(*args, **kwargs).mark, "test_x.py::test_y")

    marker(nprocs=[1, 2], devices_per_process=2, timeout=5)  # valid arguments pass
    return dict(marker=marker)


def _child(group: str) -> None:
    """Run the cases named on stdin; "START name" before each, a JSON line after it."""
    names = json.load(sys.stdin)
    env = None
    for name in names:
        print("START", name, flush=True)
        try:
            if env is None:
                env = {"core": _setup_core, "dist": _setup_dist, "testkit": _setup_testkit}[
                    group]()
            out = eval(CASES[name].code, env)
            if hasattr(out, "block_until_ready"):
                out.block_until_ready()
            result = {"name": name, "raised": None, "message": repr(out)[:300]}
        except Exception as exc:  # noqa: BLE001 - recording every exception is the point
            result = {"name": name, "raised": type(exc).__name__,
                      "mro": [c.__name__ for c in type(exc).__mro__], "message": str(exc)}
        print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------- parent side


def _read_lines(stream: IO[str], out: queue.Queue) -> None:
    for line in stream:
        out.put(line.rstrip("\n"))
    out.put(None)  # end of output: the child exited


def _run_group(group: str, names: list[str]) -> dict[str, dict]:
    """Results per case; a crash or hang is attributed to the case that was running."""
    results: dict[str, dict] = {}
    remaining = list(names)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PHASIC_AUTO_INIT": "0"}
    for var in [v for v in env if v.startswith(("SLURM", "PHASIC_C", "PHASIC_N", "PHASIC_P"))]:
        del env[var]  # the cases give their own environments
    while remaining:
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen([sys.executable, __file__, group], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                                    cwd=ROOT)
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(remaining))
            proc.stdin.close()
            lines: queue.Queue = queue.Queue()
            threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
            started, hung = None, False
            first = True  # the first case also pays for importing jax and phasic
            while True:
                wait = CASES[started].timeout if started else 20.0
                try:
                    line = lines.get(timeout=wait + (60.0 if first else 0.0))
                except queue.Empty:
                    hung = True
                    proc.kill()
                    break
                if line is None:
                    break
                if line.startswith("START "):
                    started = line[6:]
                elif line.startswith("{"):
                    res = json.loads(line)
                    results[res["name"]] = res
                    started, first = None, False
            code = proc.wait()
            err.seek(0)
            stderr = err.read()[-3000:]
        if started is not None:  # the child died (or hung) inside this case
            what = (f"hang (no result within {CASES[started].timeout:.0f} s)" if hung
                    else f"exit {code}")
            results[started] = {"name": started, "crash": what, "stderr": stderr}
        elif not any(n in results for n in remaining):
            raise RuntimeError(f"the {group} runner failed before any case (exit {code}):\n"
                               f"{stderr}")
        remaining = [n for n in remaining if n not in results]
    return results


@pytest.fixture(scope="module")
def results() -> dict[str, dict]:
    out: dict[str, dict] = {}
    for group in ("core", "dist", "testkit"):
        out.update(_run_group(group, [n for n, c in CASES.items() if c.group == group]))
    return out


def test_enough_cases() -> None:
    assert len(CASES) >= 40
    assert {c.group for c in CASES.values()} == {"core", "dist", "testkit"}


@pytest.mark.parametrize("seed", sorted(p.name for p in (FUZZ / "seeds").glob("*.json")))
def test_fuzz_seeds_are_valid_graphs(seed: str) -> None:
    """The fuzzer's seeds must stay valid (regenerate with make_corpus.py after a schema
    change), else mutations start from rejected text and never reach the compiler."""
    from phasic import Graph

    text = (FUZZ / "seeds" / seed).read_text()
    assert Graph.from_json(text).to_json() == text


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=c.xfail)) if c.xfail else n
    for n, c in CASES.items()])
def test_bad_input(results: dict[str, dict], name: str) -> None:
    case = CASES[name]
    res = results[name]
    assert "crash" not in res, (f"{case.code!r} killed or hung the process ({res['crash']}; "
                                f"a signal is a negative exit code):\n{res['stderr']}")
    if "<none>" in case.raises and res["raised"] is None:
        # an accepted input (or a fuzzer regression that now parses): check its result
        assert re.search(case.message, res["message"]), res["message"]
        return
    assert res["raised"] is not None, f"{case.code!r} raised nothing, returned {res['message']}"
    assert set(case.raises) & set(res["mro"]), \
        f"{case.code!r} raised {res['raised']} (expected {case.raises}): {res['message']}"
    assert re.search(case.message, res["message"], re.S), \
        f"{case.code!r}: message does not match {case.message!r}: {res['message']}"


if __name__ == "__main__":
    _child(sys.argv[1])
