"""Batching: vmap against separate calls, OpenMP threads, sharding over CPU devices.

    python bench/batching.py [--quick]

Side by side in one run, Kingman n = 20 (10 with --quick), pdf at 6 times:
  * jit(vmap) over B thetas against B separate warm jitted calls;
  * the same vmapped batch with the C++ OpenMP team at 1 and at 2 threads
    (`phasic._core.set_num_threads`);
  * shard_map of the batch over 1, 2, 4, 8 CPU devices (1, 8 with --quick), one subprocess per count
    (the count is fixed when the backend starts); every sharded result is checked
    against the one-device result in the same process.
Writes bench/results/batching.json and batching.png.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from common import BENCH, cli, figure, finish, load, nice_env, run_json, save_figure, timeit  # noqa: E402

import phasic  # noqa: E402
from phasic import models  # noqa: E402
from phasic._ext import core  # noqa: E402

N = 20  # Kingman n of the full run (the model of the jit(vmap) speed target); --quick uses 10
TIMES = 6


def _fns(n: int):
    structure = models.kingman(n).to_json()
    times = jnp.linspace(0.1, 3.0, TIMES)
    single = jax.jit(lambda th: phasic.compute_pmf_ffi(structure, th, times))
    batched = jax.jit(jax.vmap(lambda th: phasic.compute_pmf_ffi(structure, th, times)))
    return single, batched


def bench_vmap(n: int, batches: list[int]) -> list[dict[str, Any]]:
    """jit(vmap) over B thetas against a Python loop of B warm jitted single calls."""
    single, batched = _fns(n)
    rows = []
    for b in batches:
        thetas = jnp.linspace(0.5, 2.0, b)[:, None]
        rows_of = [thetas[i] for i in range(b)]

        def loop(rows_of=rows_of) -> None:
            for th in rows_of:
                out = single(th)
            out.block_until_ready()

        t_vmap = timeit(lambda thetas=thetas: batched(thetas).block_until_ready(), repeat=3)
        t_loop = timeit(loop, repeat=3)
        rows.append({"batch": b, "vmap_s": t_vmap, "loop_s": t_loop,
                     "loop_over_vmap": t_loop / t_vmap})
        print(f"  B={b:4d}: jit(vmap) {t_vmap * 1e3:8.2f} ms, {b} separate calls "
              f"{t_loop * 1e3:8.2f} ms -> separate / vmap = {t_loop / t_vmap:.2f}")
    return rows


def bench_threads(n: int, batch: int) -> dict[str, Any]:
    """The same vmapped batch with 1 and 2 OpenMP threads, interleaved."""
    _, batched = _fns(n)
    thetas = jnp.linspace(0.5, 2.0, batch)[:, None]
    before = core().get_num_threads()
    result: dict[str, Any] = {"batch": batch, "cores": len(os.sched_getaffinity(0))}
    try:
        for threads in (1, 2, 1, 2):  # twice each, keep the better: load drifts
            core().set_num_threads(threads)
            t = timeit(lambda: batched(thetas).block_until_ready(), repeat=3)
            key = f"threads_{threads}_s"
            result[key] = min(t, result.get(key, t))
    finally:
        core().set_num_threads(before)
    result["speedup"] = result["threads_1_s"] / result["threads_2_s"]
    print(f"  OpenMP, batch {batch}: 1 thread {result['threads_1_s'] * 1e3:.2f} ms, 2 threads "
          f"{result['threads_2_s'] * 1e3:.2f} ms -> speedup {result['speedup']:.2f} "
          f"({result['cores']} cores available)")
    return result


def bench_sharding(n: int, device_counts: list[int], batch: int) -> list[dict[str, Any]]:
    """One subprocess per device count; the same batch sharded with shard_map."""
    rows = []
    for d in device_counts:
        env = nice_env({"JAX_PLATFORMS": "cpu", "PHASIC_AUTO_INIT": "0"})
        env.pop("XLA_FLAGS", None)
        res, problem = run_json([sys.executable, str(BENCH / "_sharding_worker.py"), str(d),
                                 str(batch), str(n)], env=env, timeout=300, cwd=BENCH)
        if res is None:
            print(f"  sharding over {d} devices FAILED: {problem}")
            rows.append({"devices": d, "problem": problem})
            continue
        rows.append(res)
    base = next((r["seconds"] for r in rows if r.get("devices") == 1 and "seconds" in r), None)
    for r in rows:
        if "seconds" in r and base:
            r["speedup_vs_1"] = base / r["seconds"]
            print(f"  shard_map over {r['devices']} devices ({r['threads_per_device']} OpenMP "
                  f"threads each), batch {r['batch']}: {r['seconds'] * 1e3:8.2f} ms, "
                  f"speedup vs 1 device {r['speedup_vs_1']:.2f}, max |diff| vs one device "
                  f"{r['max_abs_diff_vs_one_device']:.1e}")
    return rows


def plot(results: dict[str, Any], quick: bool) -> None:
    fig, (ax_v, ax_s) = figure(2, width=5.0)
    rows = results["vmap"]
    b = [r["batch"] for r in rows]
    ax_v.loglog(b, [r["vmap_s"] * 1e3 for r in rows], "o-", label="jit(vmap), one call")
    ax_v.loglog(b, [r["loop_s"] * 1e3 for r in rows], "s--", label="B separate jitted calls")
    ax_v.set_xlabel("batch size B (thetas)")
    ax_v.set_ylabel("ms")
    ax_v.set_title(f"Kingman n={results['n']}, pdf at {TIMES} times")
    ok = [r for r in results["sharding"] if "seconds" in r]
    if ok:
        ax_s.plot([r["devices"] for r in ok], [r["speedup_vs_1"] for r in ok], "o-",
                  label="shard_map speedup")
    th = results["threads"]
    ax_s.axhline(th["speedup"], color="gray", ls=":", label="OpenMP 2 vs 1 thread")
    ax_s.set_xlabel(f"CPU devices (on {th['cores']} cores)")
    ax_s.set_ylabel("speedup vs 1")
    ax_s.set_title(f"same batch of {results['sharding_batch']} thetas")
    for ax in (ax_v, ax_s):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, "batching", quick)


def run(quick: bool) -> dict[str, Any]:
    """Run the batching benchmarks; write batching.json/png; return the results."""
    start_load = load()
    n = 10 if quick else N
    sharding_batch = 64 if quick else 512
    results: dict[str, Any] = {
        "n": n, "times": TIMES,
        "vmap": bench_vmap(n, [1, 16, 64] if quick else [1, 4, 16, 64, 256]),
        "threads": bench_threads(n, 64 if quick else 256),
        "sharding_batch": sharding_batch,
        "sharding": bench_sharding(n, [1, 8] if quick else [1, 2, 4, 8], sharding_batch),
    }
    finish("batching", quick, results, start_load, plot=lambda: plot(results, quick))
    return results


if __name__ == "__main__":
    cli(run, "small batches, seconds")
