"""Many Python threads calling the FFI functions at once get exactly the serial results.

Each task is (structure, theta batch, function, transform); every task is computed
once serially on the main thread, then all of them (several times over, shuffled)
from a thread pool that starts together behind a barrier. Results must be
bitwise identical: the kernels are deterministic per (structure, theta, times),
so any difference means shared state leaked between threads (the per-thread
structure cache, the per-thread kernel workspaces, the OpenMP batch loop).

The same run with the structure cache capacity at 2 forces evictions and
re-parsing under contention; the cache bound must hold: the cache is per thread,
so `entries` can never exceed capacity x (threads alive in the process).
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phasic
from phasic import models

jax.config.update("jax_enable_x64", True)

THREADS = 12
REPEATS = 3
TIMES = np.array([0.05, 0.3, 1.0, 2.5])


def _structures() -> list[tuple[str, int]]:
    """(JSON, param_length): acyclic Kingman models and cyclic two-island models."""
    out = [(models.kingman(n).to_json(), 1) for n in (3, 4, 5, 7)]
    out += [(models.two_island(n).to_json(), 2) for n in (2, 3)]
    return out


def _functions(js: str) -> dict[str, Callable[[jax.Array], jax.Array]]:
    """For one structure: each maps thetas of shape (B, P) to one float64 array.

    Built once and shared by all threads, as a program would share its jitted
    functions (and so that the test measures the FFI calls, not retracing).
    """
    times = jnp.asarray(TIMES)

    def pmf(th: jax.Array) -> jax.Array:
        return phasic.compute_pmf_ffi(js, th, times)

    def moments(th: jax.Array) -> jax.Array:
        return phasic.compute_moments_ffi(js, th, 3)

    def both(th: jax.Array) -> jax.Array:
        p, m = phasic.compute_pmf_and_moments_ffi(js, th, times, 2)
        return jnp.concatenate([p, m])

    out: dict[str, Callable[[jax.Array], jax.Array]] = {}
    for name, f in (("pmf", pmf), ("moments", moments), ("both", both)):
        jitted, vmapped = jax.jit(f), jax.jit(jax.vmap(f))
        out[f"{name}/eager"] = lambda th, f=f: f(th[0])
        out[f"{name}/jit"] = lambda th, jitted=jitted: jitted(th[0])
        out[f"{name}/vmap"] = vmapped
    return out


Task = tuple[int, int, str]  # (structure index, theta batch index, function name)


class Workload:
    """Structures, their theta batches, their shared functions, and the task list."""

    def __init__(self) -> None:
        rng = np.random.default_rng(2024)
        self.structures = _structures()
        # three batches of 5 thetas per structure, rates in [0.3, 3]
        self.thetas = [[jnp.asarray(rng.uniform(0.3, 3.0, size=(5, p))) for _ in range(3)]
                       for _, p in self.structures]
        self.functions = [_functions(js) for js, _ in self.structures]
        self.tasks: list[Task] = [(s, b, f) for s in range(len(self.structures))
                                  for b in range(3) for f in self.functions[s]]

    def run(self, task: Task) -> np.ndarray:
        s, b, f = task
        return np.asarray(self.functions[s][f](self.thetas[s][b]))


@pytest.fixture(scope="module")
def workload() -> Workload:
    return Workload()


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)


def _concurrent(w: Workload) -> tuple[list[tuple[Task, np.ndarray]], int, dict[str, int]]:
    """Every task REPEATS times, shuffled, from THREADS threads released together.

    Returns the results, the number of threads alive in the process while the
    workers still exist (a thread's cache entries are dropped when it exits) and
    the cache counters at that moment.
    """
    order = [t for _ in range(REPEATS) for t in w.tasks]
    random.Random(7).shuffle(order)
    chunks = [order[i::THREADS] for i in range(THREADS)]
    start = threading.Barrier(THREADS)
    finish = threading.Barrier(THREADS + 1)
    alive: list[int] = []

    def worker(chunk: list[Task]) -> list[tuple[Task, np.ndarray]]:
        start.wait()
        out = [(t, w.run(t)) for t in chunk]
        finish.wait()  # stay alive until the main thread has counted threads
        finish.wait()
        return out

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(worker, c) for c in chunks]
        finish.wait(timeout=300)
        alive.append(len(os.listdir("/proc/self/task")))
        stats = phasic.cache_stats()
        finish.wait(timeout=30)
        results = [r for fut in futures for r in fut.result(timeout=300)]
    return results, alive[0], stats


def _check_exact(results: list[tuple[Task, np.ndarray]], serial: dict[Task, np.ndarray]
                 ) -> None:
    assert len(results) == REPEATS * len(serial)
    for task, value in results:
        ref = serial[task]
        assert value.shape == ref.shape, task
        mismatch = np.flatnonzero(_bits(value) != _bits(ref))
        assert mismatch.size == 0, (
            f"{task}: {mismatch.size} entries differ from the serial run, e.g. "
            f"{value.reshape(-1)[mismatch[0]]!r} vs {ref.reshape(-1)[mismatch[0]]!r}")


def test_threads_match_serial_bitwise(workload: Workload) -> None:
    serial = {t: workload.run(t) for t in workload.tasks}
    # the serial results are finite and differ between tasks (no constant output);
    # jit and eager agree bitwise (the same kernel on the same inputs)
    assert all(np.all(np.isfinite(v)) for v in serial.values())
    distinct = {v.tobytes() for t, v in serial.items() if not t[2].endswith("/jit")}
    assert len(distinct) == len(serial) * 2 // 3
    for (s, b, f), v in serial.items():
        if f.endswith("/jit"):
            assert v.tobytes() == serial[(s, b, f.replace("/jit", "/eager"))].tobytes()
    results, _, _ = _concurrent(workload)
    _check_exact(results, serial)


def test_small_cache_under_contention(workload: Workload) -> None:
    serial = {t: workload.run(t) for t in workload.tasks}
    saved = phasic.cache_stats()["capacity"]
    capacity = 2
    try:
        phasic.set_cache_capacity(capacity)
        phasic.cache_clear()
        before = phasic.cache_stats()
        results, threads_alive, during = _concurrent(workload)
        after = phasic.cache_stats()
    finally:
        phasic.set_cache_capacity(saved)
    _check_exact(results, serial)
    assert during["capacity"] == capacity
    # per-thread LRU: never more than `capacity` entries on any thread
    assert 1 <= during["entries"] <= capacity * threads_alive, (during, threads_alive)
    assert after["entries"] <= capacity * len(os.listdir("/proc/self/task")), after
    # six structures through caches of two entries: evictions must have happened,
    # and every lookup is either a hit or a miss (a parse), none lost
    misses = after["misses"] - before["misses"]
    assert after["evictions"] - before["evictions"] >= misses - capacity * threads_alive
    assert after["evictions"] > before["evictions"]
    assert misses >= len(workload.structures)
