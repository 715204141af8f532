"""Mutation counts: the exact pmf of mutation counts per theta next to the plain pdf.

    python bench/mutation.py           # Kingman n = 10, 15, 20, 25, 30
    python bench/mutation.py --quick   # n = 10, 15, 20 (seconds)

Per Kingman sample size, warm jitted calls with one theta each:

  pdf        compute_pmf_ffi at 7 times (the plain density);
  segsites   compute_mutation_pmf_ffi, total branch length, kmax = 20 (one reward row);
  sfs        compute_mutation_pmf_ffi, the n - 1 SFS classes at once, kmax = 20;
  sfs grad   value and gradient of the SFS pmf's log-likelihood in (theta, mu).

Accuracy: the segregating-sites pmf against Tavare's closed form (exact rationals),
the largest relative error over k = 0..20. Writes bench/results/mutation[-quick].json
and .png.
"""

from __future__ import annotations

import math
import pathlib
import sys
from fractions import Fraction
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

KMAX = 20
MU = 0.75  # per unit of branch length; Tavare's theta = 2 mu at theta = [1]
TIMES = np.linspace(0.2, 4.0, 7)


def tavare(n: int, theta: Fraction, kmax: int) -> np.ndarray:
    """P(S = k), k = 0..kmax (Tavare 1984), exact rationals rounded once."""
    return np.array([float(sum(
        (-1) ** i * math.comb(n - 1, i - 1) * Fraction(i - 1) / (theta + i - 1)
        * (theta / (theta + i - 1)) ** k for i in range(2, n + 1))) for k in range(kmax + 1)])


def measure(n: int) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    import phasic
    from phasic import models

    g = models.kingman(n)
    text = g.to_json()
    theta = jnp.array([1.0])
    length = jnp.asarray(models.kingman_total_length_rewards(g))
    sfs = jnp.asarray(np.stack([models.kingman_sfs_rewards(g, i) for i in range(1, n)]))
    counts = jnp.asarray(np.arange(n - 1) % 3)  # some observed count per class

    pdf = jax.jit(lambda th: phasic.compute_pmf_ffi(text, th, TIMES))
    seg = jax.jit(lambda th: phasic.compute_mutation_pmf_ffi(text, th, MU, length, KMAX))
    per_class = jax.jit(lambda th: phasic.compute_mutation_pmf_ffi(text, th, MU, sfs, KMAX))

    def loglik(th: Any, mu: Any) -> Any:
        pmf = phasic.compute_mutation_pmf_ffi(text, th, mu, sfs, KMAX)
        return jnp.sum(jnp.log(pmf[jnp.arange(n - 1), counts]))

    grad = jax.jit(jax.value_and_grad(loglik, argnums=(0, 1)))
    row: dict[str, Any] = {"n": n, "vertices": g.vertices_length()}
    for name, fn in (("pdf", lambda: pdf(theta).block_until_ready()),
                     ("segsites", lambda: seg(theta).block_until_ready()),
                     ("sfs", lambda: per_class(theta).block_until_ready()),
                     ("sfs_grad", lambda: jax.block_until_ready(grad(theta, MU)))):
        row[f"{name}_s"] = common.timeit(fn, repeat=5)
    got = np.asarray(seg(theta))
    row["tavare_max_rel_error"] = common.max_rel_error(got, tavare(n, Fraction(2 * MU), KMAX))
    print(f"  n={n:2d} ({row['vertices']:5d} vertices): pdf {row['pdf_s'] * 1e3:8.3f} ms, "
          f"segsites {row['segsites_s'] * 1e3:8.3f} ms ({row['segsites_s'] / row['pdf_s']:5.2f}x), "
          f"sfs {row['sfs_s'] * 1e3:8.3f} ms ({row['sfs_s'] / row['pdf_s']:5.2f}x), "
          f"sfs+grad {row['sfs_grad_s'] * 1e3:8.3f} ms; Tavare error "
          f"{row['tavare_max_rel_error']:.1e}")
    return row


def plot(rows: list[dict[str, Any]], quick: bool) -> None:
    fig, (ax,) = common.figure()
    ns = [r["n"] for r in rows]
    for key, label in (("pdf_s", "pdf, 7 times"), ("segsites_s", "segregating sites, kmax 20"),
                       ("sfs_s", "SFS classes, kmax 20"), ("sfs_grad_s", "SFS + gradient")):
        ax.plot(ns, [r[key] for r in rows], "o-", label=label)
    common.log_log_axes((ax,), "Kingman sample size n", ("seconds per theta",),
                        ("Mutation pmf vs plain pdf",))
    common.save_figure(fig, "mutation", quick)


def run(quick: bool) -> dict[str, Any]:
    load_start = common.load()
    sizes = (10, 15, 20) if quick else (10, 15, 20, 25, 30)
    rows = [measure(n) for n in sizes]
    result = {"kmax": KMAX, "mutation_rate": MU, "times": TIMES.tolist(), "rows": rows}
    common.finish("mutation", quick, result, load_start, plot=lambda: plot(rows, quick))
    return result


if __name__ == "__main__":
    common.cli(run, "n = 10, 15, 20 only (seconds)")
