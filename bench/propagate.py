"""propagate: the layered state from any start, next to the state-at-time kernel.

    python bench/propagate.py           # Kingman n = 10, 20, 30
    python bench/propagate.py --quick   # n = 10, 20 (seconds)

Per Kingman sample size, warm jitted calls with one theta at 7 times, side by side:

  states       compute_state_probabilities_ffi (one layer from the graph's start);
  layers 1     propagate with one layer from e_0 (the same sweep, plus dx and ddx);
  layers 3     propagate with three layers (E[T^j / j!; X_t = v], j < 3);
  grad theta   jax.grad in theta of a sum over the three layers (dual numbers);
  grad start   jax.grad in start of the same sum (the adjoint sweep, reverse mode).

Accuracy: the largest difference between `layers 1` and `states` (0: the same kernel),
and the layers at t = 60 (absorbed) against compute_moments_ffi (E[T], E[T^2] / 2,
relative). Writes bench/results/propagate[-quick].json and .png.
"""

from __future__ import annotations

import math
import pathlib
import sys
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

TIMES = np.linspace(0.2, 4.0, 7)


def measure(n: int) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    import phasic
    from phasic import models

    g = models.kingman(n)
    text = g.to_json()
    nv = g.vertices_length()
    theta = jnp.array([1.0])
    e1 = jnp.zeros((1, nv)).at[0, 0].set(1.0)
    e3 = jnp.zeros((3, nv)).at[0, 0].set(1.0)

    def layered_sum(th: jax.Array, start: jax.Array) -> jax.Array:
        x, dx, acc = phasic.propagate(text, th, start, TIMES)
        return jnp.sum(x) + jnp.sum(dx) + jnp.sum(acc)

    states = jax.jit(lambda th: phasic.compute_state_probabilities_ffi(text, th, TIMES))
    one = jax.jit(lambda th: phasic.propagate(text, th, e1, TIMES)[0])
    three = jax.jit(lambda th: phasic.propagate(text, th, e3, TIMES)[0])
    grad_theta = jax.jit(jax.grad(layered_sum))
    grad_start = jax.jit(jax.grad(layered_sum, argnums=1))
    row: dict[str, Any] = {"n": n, "vertices": nv}
    for name, fn in (("states", lambda: states(theta).block_until_ready()),
                     ("layers1", lambda: one(theta).block_until_ready()),
                     ("layers3", lambda: three(theta).block_until_ready()),
                     ("grad_theta", lambda: grad_theta(theta, e3).block_until_ready()),
                     ("grad_start", lambda: grad_start(theta, e3).block_until_ready())):
        row[f"{name}_s"] = common.timeit(fn, repeat=5)
    row["layers1_vs_states_max_diff"] = float(
        np.max(np.abs(np.asarray(one(theta))[:, 0] - np.asarray(states(theta)))))
    x_end = np.asarray(phasic.propagate(text, theta, e3, jnp.array([60.0]))[0][0])
    got = x_end[1:].sum(axis=1) * np.array([1.0, 2.0])
    want = np.asarray(phasic.compute_moments_ffi(text, theta, 2))
    row["absorbed_layers_vs_moments_rel"] = float(np.max(np.abs(got - want) / want))
    assert math.isfinite(row["absorbed_layers_vs_moments_rel"])
    print(f"  n={n:2d} ({nv:5d} vertices): states {row['states_s'] * 1e3:7.3f} ms, "
          f"L=1 {row['layers1_s'] * 1e3:7.3f} ms, L=3 {row['layers3_s'] * 1e3:7.3f} ms, "
          f"grad theta {row['grad_theta_s'] * 1e3:7.3f} ms, grad start "
          f"{row['grad_start_s'] * 1e3:7.3f} ms; L=1 vs states "
          f"{row['layers1_vs_states_max_diff']:.1e}, layers vs moments "
          f"{row['absorbed_layers_vs_moments_rel']:.1e}")
    return row


def plot(rows: list[dict[str, Any]], quick: bool) -> None:
    fig, (ax,) = common.figure()
    ns = [r["n"] for r in rows]
    for key, label in (("states_s", "state probabilities"), ("layers1_s", "propagate, 1 layer"),
                       ("layers3_s", "propagate, 3 layers"),
                       ("grad_theta_s", "grad in theta, 3 layers"),
                       ("grad_start_s", "grad in start, 3 layers (adjoint)")):
        ax.plot(ns, [r[key] for r in rows], "o-", label=label)
    common.log_log_axes((ax,), "Kingman sample size n", ("seconds per theta, 7 times",),
                        ("propagate next to the state at a time",))
    common.save_figure(fig, "propagate", quick)


def run(quick: bool) -> dict[str, Any]:
    load_start = common.load()
    sizes = (10, 20) if quick else (10, 20, 30)
    rows = [measure(n) for n in sizes]
    result = {"times": TIMES.tolist(), "rows": rows}
    common.finish("propagate", quick, result, load_start, plot=lambda: plot(rows, quick))
    return result


if __name__ == "__main__":
    common.cli(run, "n = 10, 20 only (seconds)")
