"""The state at a time: state probabilities and accumulated times next to the plain pdf.

    python bench/states.py           # Kingman n = 10, 20, 30, 40
    python bench/states.py --quick   # n = 10, 20 (seconds)

Per Kingman sample size, warm jitted calls with one theta each, 7 times:

  pdf        compute_pmf_ffi (the plain density, the gather sweep);
  states     compute_state_probabilities_ffi, every vertex at every time;
  states jac the Jacobian of the state probabilities in theta (jacfwd).

Accuracy: each row's sum against 1 and the absorbed mass against the cdf (largest
absolute error; the cdf kernel's own ~1e-10 tolerance dominates the latter: against
scipy's expm the state probabilities are within ~3e-15 at n = 10). Writes bench/results/states[-quick].json and .png.
"""

from __future__ import annotations

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
    theta = jnp.array([1.0])
    pdf = jax.jit(lambda th: phasic.compute_pmf_ffi(text, th, TIMES))
    states = jax.jit(lambda th: phasic.compute_state_probabilities_ffi(text, th, TIMES))
    jac = jax.jit(jax.jacfwd(lambda th: phasic.compute_state_probabilities_ffi(text, th, TIMES)))
    row: dict[str, Any] = {"n": n, "vertices": g.vertices_length()}
    for name, fn in (("pdf", lambda: pdf(theta).block_until_ready()),
                     ("states", lambda: states(theta).block_until_ready()),
                     ("states_jac", lambda: jac(theta).block_until_ready())):
        row[f"{name}_s"] = common.timeit(fn, repeat=5)
    p = np.asarray(states(theta))
    absorbing = [v.index() for v in g.vertices()[1:] if not v.edges()]
    row["row_sum_error"] = float(np.max(np.abs(p.sum(axis=1) - 1.0)))
    row["absorbed_vs_cdf_error"] = float(np.max(np.abs(p[:, absorbing].sum(axis=1)
                                                       - g.cdf(TIMES, theta=[1.0]))))
    print(f"  n={n:2d} ({row['vertices']:5d} vertices): pdf {row['pdf_s'] * 1e3:8.3f} ms, "
          f"states {row['states_s'] * 1e3:8.3f} ms, jac {row['states_jac_s'] * 1e3:8.3f} ms; "
          f"row sums {row['row_sum_error']:.1e}, absorbed vs cdf "
          f"{row['absorbed_vs_cdf_error']:.1e}")
    return row


def plot(rows: list[dict[str, Any]], quick: bool) -> None:
    fig, (ax,) = common.figure()
    ns = [r["n"] for r in rows]
    for key, label in (("pdf_s", "pdf, 7 times"), ("states_s", "state probabilities"),
                       ("states_jac_s", "state probabilities + Jacobian")):
        ax.plot(ns, [r[key] for r in rows], "o-", label=label)
    common.log_log_axes((ax,), "Kingman sample size n", ("seconds per theta",),
                        ("State at a time vs plain pdf",))
    common.save_figure(fig, "states", quick)


def run(quick: bool) -> dict[str, Any]:
    load_start = common.load()
    sizes = (10, 20) if quick else (10, 20, 30, 40)
    rows = [measure(n) for n in sizes]
    result = {"times": TIMES.tolist(), "rows": rows}
    common.finish("states", quick, result, load_start, plot=lambda: plot(rows, quick))
    return result


if __name__ == "__main__":
    common.cli(run, "n = 10, 20 only (seconds)")
