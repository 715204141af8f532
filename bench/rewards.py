"""Reward-weighted densities: cost per theta next to the plain pdf, Kingman n = 10..30.

    python bench/rewards.py            # n = 10, 15, 20, 25, 30
    python bench/rewards.py --quick    # n = 10, 15 (seconds)

For each n, warm jitted calls at the seven PDF_TIMES (each call a new theta):
  plain      compute_pmf_ffi: the T_MRCA density;
  length     compute_pmf_ffi(rewards=total branch length): every transient reward
             positive, rates divided per theta;
  singleton  compute_pmf_ffi(rewards=singleton branch length): the SFS class with
             zero rewards, eliminated per theta (Schur complement of the zero block);
  *_grad     jax.value_and_grad of the summed log density for the two reward kinds.
Ratios to `plain` are what to compare. The total-length density is checked against
its closed form d/dx (1 - e^(-x/2))^(n-1) (max relative error recorded). Writes
bench/results/rewards[-quick].json and .png.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402


def length_pdf(n: int, x: np.ndarray) -> np.ndarray:
    """Density of Kingman's total branch length at theta = 1."""
    e = np.exp(-x / 2)
    return (n - 1) * (1 - e) ** (n - 2) * e / 2


def measure(n: int) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    import phasic
    from phasic import models

    g = models.kingman(n)
    text = g.to_json()
    states = g.states()
    rewards = {"length": states.sum(axis=1).astype(float), "singleton": states[:, 0].astype(float)}
    times = jnp.asarray(common.PDF_TIMES)
    thetas = iter(np.linspace(0.9, 1.1, 1 << 20))

    def theta() -> jax.Array:
        return jnp.array([next(thetas)])

    plain = jax.jit(lambda t: phasic.compute_pmf_ffi(text, t, times))
    row: dict[str, Any] = {"n": n, "vertices": g.vertices_length()}
    row["plain_s"] = common.timeit(lambda: plain(theta()).block_until_ready())
    for name, r in rewards.items():
        pdf = jax.jit(lambda t, r=r: phasic.compute_pmf_ffi(text, t, times, rewards=r))
        grad = jax.jit(jax.value_and_grad(lambda t, r=r: phasic.loglik(text, t, times, rewards=r)))
        row[f"{name}_s"] = common.timeit(lambda pdf=pdf: pdf(theta()).block_until_ready())
        row[f"{name}_grad_s"] = common.timeit(lambda grad=grad: grad(theta())[1].block_until_ready())
        row[f"{name}_ratio"] = row[f"{name}_s"] / row["plain_s"]
        row[f"{name}_zero_rewards"] = int((r[1:] == 0).sum())
    got = np.asarray(phasic.compute_pmf_ffi(text, jnp.array([1.0]), times,
                                            rewards=rewards["length"]))
    row["length_max_rel_error"] = common.max_rel_error(got, length_pdf(n, np.asarray(times)))
    return row


def run(quick: bool) -> dict[str, Any]:
    start = common.load()
    sizes = (10, 15) if quick else (10, 15, 20, 25, 30)
    rows = []
    for n in sizes:
        row = measure(n)
        rows.append(row)
        print(f"  n = {n:2d}: plain {row['plain_s'] * 1e3:8.3f} ms, length "
              f"{row['length_s'] * 1e3:8.3f} ms (x{row['length_ratio']:.2f}), singleton "
              f"{row['singleton_s'] * 1e3:8.3f} ms (x{row['singleton_ratio']:.2f}); grads "
              f"{row['length_grad_s'] * 1e3:.3f} / {row['singleton_grad_s'] * 1e3:.3f} ms; "
              f"length error {row['length_max_rel_error']:.1e}")
    common.finish("rewards", quick, {"rows": rows, "times": list(common.PDF_TIMES)}, start,
                  plot=lambda: plot(rows, quick))
    return {"rows": rows}


def plot(rows: list[dict[str, Any]], quick: bool) -> None:
    fig, (ax,) = common.figure()
    ns = [r["n"] for r in rows]
    for key, label in (("plain_s", "plain pdf"), ("length_s", "total length (positive)"),
                       ("singleton_s", "singletons (zero rewards)"),
                       ("length_grad_s", "total length, value and grad"),
                       ("singleton_grad_s", "singletons, value and grad")):
        ax.plot(ns, [r[key] * 1e3 for r in rows], marker="o", label=label)
    common.log_log_axes([ax], "Kingman n", ["ms per theta (7 times)"],
                        ["reward-weighted densities"])
    common.save_figure(fig, "rewards", quick)


if __name__ == "__main__":
    common.cli(run, "small sizes (seconds)")
