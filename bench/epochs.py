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
touches all E alike. The E-epoch pdf is checked against a dense reference that follows the
distribution epoch by epoch with non-negative series (relative-accurate even for
densities of 1e-23 at t = 0.01; the error at each time and the largest are recorded). Writes bench/results/epochs[-quick].json and .png.
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

EPOCHS = (1, 2, 4, 8)
MANY_TIMES = np.linspace(0.02, 6.0, 50)


def history(e: int, jitter: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """theta (e, 1) and tau (e - 1,): sizes within 25 % of 1, breakpoints evenly up to 2.

    Every E > 1 spans the same finite stretch [0, 2] with rates near 1, so the work of
    following the chain through time is about the same for every E and the ratios show
    what each further epoch adds.
    """
    sizes = np.array([1.0, 1.25, 0.8, 1.1, 0.9, 1.2, 0.85, 1.05])[:e]
    theta = (jitter / sizes)[:, None]
    tau = 2.0 * np.arange(1, e) / (e - 1) if e > 1 else np.zeros(0)
    return theta, tau


def _series_step(row: np.ndarray, sub: np.ndarray, t: float) -> np.ndarray:
    """row exp(S t) by uniformization: S = M - lam I with M >= 0 entrywise, so every
    term is non-negative and each entry keeps its relative accuracy (however tiny it
    is), summed until every entry has converged; t is cut into pieces with
    lam dt <= 30 so that no partial sum overflows."""
    lam = float(max(-np.diag(sub).min(), 0.0))
    m = sub + lam * np.eye(len(sub))
    m[m < 0] = 0.0  # rounding in the diagonal shift; the exact entries are >= 0
    pieces = max(1, math.ceil(lam * t / 30.0))
    dt = t / pieces
    for _ in range(pieces):
        term, acc, k = row, row.copy(), 0
        while True:
            k += 1
            term = (term @ m) * (dt / k)
            grew = np.any((term > 0) & (acc == 0))  # a state reached for the first time
            acc += term
            # entrywise: a state reached late has tiny mass but needs its own terms
            if k > lam * dt and not grew and np.all(term <= 1e-17 * acc):
                break
        row = acc * math.exp(-lam * dt)
    return row


def piecewise_pdf(structure: str, theta: np.ndarray, tau: np.ndarray,
                  times: np.ndarray) -> np.ndarray:
    """The epoch density from dense matrices (common.sub_intensity), epoch by epoch,
    relative-accurate also far in the left tail (see _series_step)."""
    subs = [common.sub_intensity(structure, th)[1].toarray() for th in theta]
    alpha = common.sub_intensity(structure, theta[0])[0]
    starts = np.concatenate([[0.0], tau])
    rows = [alpha]
    for e in range(len(tau)):
        rows.append(_series_step(rows[-1], subs[e], starts[e + 1] - starts[e]))
    out = []
    for t in times:
        k = int(np.searchsorted(tau, t, side="right"))
        sub = subs[k]
        out.append(_series_step(rows[k], sub, t - starts[k]) @ (-sub.sum(axis=1)))
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


def check(n: int, e: int) -> list[float]:
    """Relative error of the E-epoch pdf at each of PDF_TIMES against the dense series."""
    import jax.numpy as jnp

    import phasic
    from phasic import models

    text = models.kingman(n).to_json()
    theta, tau = history(e)
    times = np.asarray(common.PDF_TIMES)
    kw = {"epochs": jnp.asarray(tau)} if e > 1 else {}
    got = np.asarray(phasic.compute_pmf_ffi(text, jnp.asarray(theta if e > 1 else theta[0]),
                                            jnp.asarray(times), **kw))
    want = piecewise_pdf(text, theta, tau, times)
    return [float(abs(g / w - 1)) for g, w in zip(got, want, strict=True)]


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
        row["pdf_rel_errors"] = check(n, e)
        row["pdf_max_rel_error"] = max(row["pdf_rel_errors"])
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
    # the largest error with epochs away from the far left tail (t >= 0.1)
    from_01 = [err for row in rows[1:] for t, err in zip(common.PDF_TIMES, row["pdf_rel_errors"],
                                                          strict=True) if t >= 0.1]
    result = {"n": n, "rows": rows, "times": list(common.PDF_TIMES),
              "epochs_max_rel_error_from_t_0_1": max(from_01)}
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
        ax.minorticks_off()  # log axes over 1..8: the E ticks alone
        ax.set_xticks(es, [str(e) for e in es])
    common.save_figure(fig, "epochs", quick)


if __name__ == "__main__":
    common.cli(run, "Kingman n = 8 (seconds)")
