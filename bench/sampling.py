"""Sampling: draws per second of phasic.sample (the C++ jump-chain kernel driven by a
JAX key) and of the numpy Graph.sample, Kingman n = 10.

    python bench/sampling.py           # 2,000,000 draws per call (numpy: 200,000)
    python bench/sampling.py --quick   # 200,000 draws per call (numpy: 20,000); seconds

Rows: T_MRCA and the total branch length (reward: the number of lineages) on one
OpenMP thread (the target: >= 1e6 draws/s on one core), the same on two threads,
the (R = 9) SFS reward matrix (all nine totals of one path per draw), and the numpy
sampler on the same graph. Each row records the z-score of its sample mean against
the exact mean (compute_moments_ffi), so a fast but wrong sampler shows. Nothing is
asserted. Writes bench/results/sampling[-quick].json and .png.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

N_SAMPLES = 10
TARGET = 1e6  # draws per second on one core


def measure(row_id: str, label: str, draw: Any, count: int, exact_mean: Any,
            threads: int | None) -> dict:
    """Draws per second of `draw()` (count draws per call) and the z-scores of its means."""
    import numpy as np

    seconds = common.timeit(draw, repeat=3, min_time=0.2)
    y = np.asarray(draw()).reshape(count, -1)
    var = y.var(axis=0)
    z = np.abs(y.mean(axis=0) - np.asarray(exact_mean)) / np.sqrt(var / count)
    row = {"id": row_id, "label": label, "draws": count, "threads": threads, "seconds": seconds,
           "draws_per_s": count / seconds, "max_mean_z": float(z.max())}
    print(f"  {label:44s} {row['draws_per_s']:12,.0f} draws/s  (mean z {row['max_mean_z']:.2f})")
    return row


def run(quick: bool) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    import phasic
    from phasic import models
    from phasic._ext import core

    load_start = common.load()
    count, numpy_count = (200_000, 20_000) if quick else (2_000_000, 200_000)
    g = models.kingman(N_SAMPLES)
    theta = jnp.array([1.0])
    lineages = g.states().sum(axis=1).astype(float)
    sfs = np.stack([models.kingman_sfs_rewards(g, i) for i in range(1, N_SAMPLES)])
    key = jax.random.key(1)

    def mean_of(r: Any) -> float:
        return float(phasic.compute_moments_ffi(g, theta, 1, rewards=r)[0])

    def jitted(rewards: Any) -> Any:
        f = jax.jit(lambda k: phasic.sample(g, theta, k, count, rewards=rewards))
        return lambda: f(key).block_until_ready()

    before = core().get_num_threads()
    rows = []
    try:
        for threads in (1, 2):
            core().set_num_threads(threads)
            rows.append(measure(f"tmrca_{threads}t", f"phasic.sample T_MRCA, {threads} "
                                "thread(s)", jitted(None), count, [mean_of(None)], threads))
            rows.append(measure(f"total_{threads}t", f"phasic.sample total length, {threads} "
                                "thread(s)", jitted(lineages), count, [mean_of(lineages)],
                                threads))
        core().set_num_threads(1)
        rows.append(measure("sfs_1t", "phasic.sample SFS matrix (R = 9), 1 thread",
                            jitted(sfs), count, [mean_of(r) for r in sfs], 1))
    finally:
        core().set_num_threads(before)
    rows.append(measure("numpy_total", "Graph.sample (numpy) total length", lambda: g.sample(
        numpy_count, theta=[1.0], rewards=lineages, seed=1), numpy_count,
        [mean_of(lineages)], None))
    one_core = rows[1]["draws_per_s"]
    print(f"  target >= {TARGET:,.0f} draws/s on one core (total length): measured "
          f"{one_core:,.0f} ({'met' if one_core >= TARGET else 'NOT met'}); "
          f"numpy Graph.sample is {one_core / rows[-1]['draws_per_s']:,.0f}x slower")
    result = {"kingman_n": N_SAMPLES, "target_draws_per_s": TARGET, "rows": rows,
              "kernel_over_numpy": one_core / rows[-1]["draws_per_s"]}
    common.finish("sampling", quick, result, load_start, plot=lambda: plot(rows, quick))
    return result


def plot(rows: list[dict[str, Any]], quick: bool) -> None:
    fig, (ax,) = common.figure(width=8.0)
    ax.barh([r["label"] for r in rows], [r["draws_per_s"] for r in rows])
    ax.axvline(TARGET, color="k", linestyle="--", label="target, one core")
    ax.set_xscale("log")
    ax.set_xlabel("draws per second (Kingman n = 10)")
    ax.legend()
    common.save_figure(fig, "sampling", quick)


if __name__ == "__main__":
    common.cli(run, "fewer draws per call (seconds)")
