"""Epoch models: the cost of E epochs (E = 1, 2, 4, 8) next to one epoch, side by side.

    python bench/epochs.py            # Kingman n = 20
    python bench/epochs.py --quick    # Kingman n = 8 (seconds)

For each E, warm jitted calls with a new history each (theta of shape (E, 1): the
pair-coalescence rate of each epoch, sizes alternating around 1; E - 1 breakpoints
spread over 0.05..2):

  pdf        compute_pmf_ffi(..., epochs=tau) at the 7 PDF_TIMES, and at 50 times;
  pdf grad   value and gradient of phasic.loglik at the 7 times, in theta and tau;
  sfs        models.expected_sfs(n, SizeHistory(sizes, tau)): E[L_i], i = 1..n-1;
  sfs grad   value and gradient of sum_i E[L_i] / i in the sizes and times.

E = 1 is the plain call (no epochs): the homogeneous kernels. From E = 2 on, the
epoch composition runs (one propagation of the state distribution per epoch), so
time(E) / time(2) should grow about linearly in E; time(E) / time(1) also holds the
fixed price of the composition against the plain kernels. Every E is timed in turn
within each round (the median over rounds is kept), so load on the shared machine
touches all E alike. The E-epoch pdf is checked against a dense piecewise scipy expm
(largest relative error recorded). Writes bench/results/epochs[-quick].json and .png.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

EPOCHS = (1, 2, 4, 8)
MANY_TIMES = np.linspace(0.02, 6.0, 50)


def history(e: int, jitter: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """theta (e, 1) and tau (e - 1,): sizes alternating around 1, breakpoints 0.05..2."""
    sizes = np.array([1.0, 3.0, 0.5, 2.0, 0.8, 4.0, 1.5, 0.3])[:e]
    theta = (jitter / sizes)[:, None]
    tau = np.geomspace(0.05, 2.0, e - 1) if e > 1 else np.zeros(0)
    return theta, tau


def piecewise_pdf(structure: str, theta: np.ndarray, tau: np.ndarray,
                  times: np.ndarray) -> np.ndarray:
    """The epoch density by dense matrices (common.sub_intensity) and scipy expm."""
    from scipy.linalg import expm

    mats = [common.sub_intensity(structure, th) for th in theta]
    alpha = mats[0][0]
    subs = [m[1].toarray() for m in mats]
    starts = np.concatenate([[0.0], tau])
    rows = [alpha]
    for e in range(len(tau)):
        rows.append(rows[-1] @ expm(subs[e] * (starts[e + 1] - starts[e])))
    out = []
    for t in times:
        k = int(np.searchsorted(tau, t, side="right"))
        sub = subs[k]
        out.append(rows[k] @ expm(sub * (t - starts[k])) @ (-sub.sum(axis=1)))
    return np.array(out)


def calls(n: int, e: int) -> dict[str, Any]:
    """The five jitted calls for E = e epochs, each taking a fresh history per call."""
    import jax
    import jax.numpy as jnp

    import phasic
    from phasic import models

    text = models.kingman(n).to_json()
    weights = jnp.asarray(1.0 / np.arange(1, n))
    jitters = iter(np.linspace(0.9, 1.1, 1 << 22))
    times7 = jnp.asarray(common.PDF_TIMES)
    many = jnp.asarray(MANY_TIMES)

    def point() -> tuple[jax.Array, jax.Array]:
        theta, tau = history(e, next(jitters))
        return jnp.asarray(theta if e > 1 else theta[0]), jnp.asarray(tau)

    def kw(tau: jax.Array) -> dict[str, Any]:
        return {"epochs": tau} if e > 1 else {}  # E = 1: the plain call

    def sfs(th: jax.Array, tau: jax.Array) -> jax.Array:
        sizes = 1.0 / th.reshape(-1)
        return models.expected_sfs(n, models.SizeHistory(sizes, tau))

    argnums = (0, 1) if e > 1 else 0
    fns = {
        "pdf7_s": jax.jit(lambda th, tau: phasic.compute_pmf_ffi(text, th, times7, **kw(tau))),
        "pdf50_s": jax.jit(lambda th, tau: phasic.compute_pmf_ffi(text, th, many, **kw(tau))),
        "pdf_grad_s": jax.jit(jax.value_and_grad(
            lambda th, tau: phasic.loglik(text, th, times7, **kw(tau)), argnums=argnums)),
        "sfs_s": jax.jit(sfs),
        "sfs_grad_s": jax.jit(jax.value_and_grad(
            lambda th, tau: jnp.sum(sfs(th, tau) * weights), argnums=argnums)),
    }
    return {key: (lambda fn=fn: jax.block_until_ready(fn(*point()))) for key, fn in fns.items()}


def check(n: int, e: int) -> float:
    """Largest relative error of the E-epoch pdf at PDF_TIMES against piecewise expm."""
    import jax.numpy as jnp

    import phasic
    from phasic import models

    text = models.kingman(n).to_json()
    theta, tau = history(e)
    times = np.asarray(common.PDF_TIMES)
    kw = {"epochs": jnp.asarray(tau)} if e > 1 else {}
    got = np.asarray(phasic.compute_pmf_ffi(text, jnp.asarray(theta if e > 1 else theta[0]),
                                            jnp.asarray(times), **kw))
    return common.max_rel_error(got, piecewise_pdf(text, theta, tau, times))


KEYS = ("pdf7_s", "pdf50_s", "pdf_grad_s", "sfs_s", "sfs_grad_s")


def ratio_key(key: str) -> str:
    """pdf7_s -> pdf7_ratio."""
    return key.removesuffix("_s") + "_ratio"


def measure(n: int, rounds: int) -> list[dict[str, Any]]:
    """Rows per E; each time the median of `rounds` rounds that visit every E in turn,
    so load changes on the shared machine touch all E alike."""
    fns = {e: calls(n, e) for e in EPOCHS}
    samples: dict[tuple[int, str], list[float]] = {(e, k): [] for e in EPOCHS for k in KEYS}
    for _ in range(rounds):
        for key in KEYS:
            for e in EPOCHS:
                samples[e, key].append(common.timeit(fns[e][key], repeat=3, min_time=0.02))
    rows = []
    for e in EPOCHS:
        row: dict[str, Any] = {"n": n, "epochs": e}
        row.update({key: float(np.median(samples[e, key])) for key in KEYS})
        row["pdf_max_rel_error"] = check(n, e)
        rows.append(row)
    base, two = rows[0], rows[1]
    for row in rows:
        for key in KEYS:
            row[ratio_key(key)] = row[key] / base[key]
            # growth per epoch beyond the first change: time(E) / time(2)
            row[key.removesuffix("_s") + "_over_two"] = row[key] / two[key]
    return rows


def run(quick: bool) -> dict[str, Any]:
    start = common.load()
    n = 8 if quick else 20
    rows = measure(n, 2 if quick else 5)
    for row in rows:
        print(f"  E = {row['epochs']}: pdf {row['pdf7_s'] * 1e3:7.3f} ms (x{row['pdf7_ratio']:.2f}),"
              f" 50 times x{row['pdf50_ratio']:.2f}, grad x{row['pdf_grad_ratio']:.2f}; SFS "
              f"{row['sfs_s'] * 1e3:7.3f} ms (x{row['sfs_ratio']:.2f}), grad "
              f"x{row['sfs_grad_ratio']:.2f}; pdf error {row['pdf_max_rel_error']:.1e}")
    result = {"n": n, "rows": rows, "times": list(common.PDF_TIMES)}
    common.finish("epochs", quick, result, start, plot=lambda: plot(rows, quick))
    return result


def plot(rows: list[dict[str, Any]], quick: bool) -> None:
    fig, (ax_t, ax_1, ax_2) = common.figure(ncols=3, width=5.0)
    es = [r["epochs"] for r in rows]
    labels = {"pdf7_s": "pdf, 7 times", "pdf50_s": "pdf, 50 times",
              "pdf_grad_s": "log-pdf value and grad", "sfs_s": "expected SFS",
              "sfs_grad_s": "expected SFS, value and grad"}
    for key, label in labels.items():
        stem = key.removesuffix("_s")
        ax_t.plot(es, [r[key] * 1e3 for r in rows], marker="o", label=label)
        ax_1.plot(es, [r[stem + "_ratio"] for r in rows], marker="o", label=label)
        ax_2.plot(es[1:], [r[stem + "_over_two"] for r in rows[1:]], marker="o", label=label)
    ax_2.plot(es[1:], [e / 2 for e in es[1:]], "k:", label="linear in E")
    common.log_log_axes([ax_t, ax_1, ax_2], "epochs E",
                        ["ms per call", "time / time at E = 1", "time / time at E = 2"],
                        [f"Kingman n = {rows[0]['n']}", "against the plain call (E = 1)",
                         "growth per epoch"])
    for ax in (ax_t, ax_1, ax_2):
        ax.set_xticks(es, [str(e) for e in es])
    common.save_figure(fig, "epochs", quick)


if __name__ == "__main__":
    common.cli(run, "Kingman n = 8 (seconds)")
