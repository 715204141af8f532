"""Graph-level reward transformation: its cost, and the pdf of Y next to the plain pdf.

    python bench/reward_graph.py           # Kingman n = 10, 15, 20, 25
    python bench/reward_graph.py --quick   # n = 5, 10, 15 (seconds)

For each Kingman coalescent (theta = 1), in one process:

  transform   Graph.reward_transform with the total-length rewards (all positive: the
              result stays a function of theta) and with the singleton-class rewards
              (zeros: those states are eliminated at theta = 1);
  pdf         warm Graph.pdf at the seven benchmark times on the original graph (T_MRCA)
              and on both transformed graphs (Y), with the ratio to the plain pdf;
  discretize  Graph.discretize at mutation rate theta_pop / 2 = 1 per lineage;
  error       the largest relative error of the total-length cdf against its closed
              form (1 - exp(-x/2))^(n-1).

Writes bench/results/reward_graph[-quick].json and .png.
"""

from __future__ import annotations

import pathlib
import sys
import warnings
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

THETA = [1.0]


def measure(n: int) -> dict[str, Any]:
    """Times (seconds) and the closed-form error for Kingman(n)."""
    from phasic import models

    g = models.kingman(n)
    total = models.kingman_total_length_rewards(g)
    singletons = models.kingman_sfs_rewards(g, 1)
    times = np.array(common.PDF_TIMES)
    length = g.reward_transform(total)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no mass at zero here; be safe
        branch1 = g.reward_transform(singletons, theta=THETA)
    row: dict[str, Any] = {
        "n": n, "vertices": g.vertices_length(),
        "transform_positive_s": common.timeit(lambda: g.reward_transform(total), repeat=3),
        "transform_zeros_s": common.timeit(
            lambda: g.reward_transform(singletons, theta=THETA, validate_rewards=False),
            repeat=3),
        "discretize_s": common.timeit(
            lambda: g.discretize(lambda s: 1.0 * sum(s), theta=THETA), repeat=3),
        "pdf_plain_s": common.timeit(lambda: g.pdf(times, theta=THETA)),
        "pdf_length_s": common.timeit(lambda: length.pdf(times, theta=THETA)),
        "pdf_singletons_s": common.timeit(lambda: branch1.pdf(times)),
        "singleton_vertices": branch1.vertices_length(),
    }
    x = np.array([0.5, 2.0, 8.0, 20.0])
    exact = (1.0 - np.exp(-x / 2.0)) ** (n - 1)
    row["cdf_max_rel_error"] = common.max_rel_error(length.cdf(x, theta=THETA), exact)
    row["pdf_length_over_plain"] = row["pdf_length_s"] / row["pdf_plain_s"]
    print(f"  n={n:2d} ({row['vertices']:5d} vertices): transform {row['transform_positive_s'] * 1e3:8.2f} ms"
          f" (zeros {row['transform_zeros_s'] * 1e3:8.2f} ms), discretize "
          f"{row['discretize_s'] * 1e3:8.2f} ms; pdf plain {row['pdf_plain_s'] * 1e6:8.1f} us, "
          f"length {row['pdf_length_s'] * 1e6:8.1f} us ({row['pdf_length_over_plain']:.2f} x), "
          f"singletons {row['pdf_singletons_s'] * 1e6:8.1f} us; cdf error "
          f"{row['cdf_max_rel_error']:.1e}")
    return row


def plot(rows: list[dict[str, Any]], quick: bool) -> None:
    vs = [r["vertices"] for r in rows]
    fig, (ax1, ax2) = common.figure(ncols=2)
    for key, label in (("transform_positive_s", "reward_transform, rewards > 0"),
                       ("transform_zeros_s", "reward_transform, zeros eliminated"),
                       ("discretize_s", "discretize")):
        ax1.plot(vs, [r[key] for r in rows], "o-", label=label)
    for key, label in (("pdf_plain_s", "pdf of T_MRCA"), ("pdf_length_s", "pdf of total length"),
                       ("pdf_singletons_s", "pdf of singleton length")):
        ax2.plot(vs, [r[key] for r in rows], "o-", label=label)
    common.log_log_axes((ax1, ax2), "vertices (Kingman coalescent)", ("seconds", "seconds"),
                        ("Building the transformed graph", "pdf at 7 times (warm)"))
    common.save_figure(fig, "reward_graph", quick)


def run(quick: bool) -> dict[str, Any]:
    load_start = common.load()
    sizes = (5, 10, 15) if quick else (10, 15, 20, 25)
    rows = [measure(n) for n in sizes]
    result = {"sizes": list(sizes), "theta": THETA, "rows": rows}
    common.finish("reward_graph", quick, result, load_start, plot=lambda: plot(rows, quick))
    return result


if __name__ == "__main__":
    common.cli(run, "small sizes only (seconds)")
