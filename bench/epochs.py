"""Epoch models: the cost of E epochs (E = 1, 2, 4, 8) next to one epoch, side by side.

    python bench/epochs.py            # Kingman n = 20
    python bench/epochs.py --quick    # Kingman n = 8 (seconds)

For each E, warm jitted calls with a new (theta, tau) each (theta of shape (E, 1):
the pair-coalescence rate of each epoch; E - 1 breakpoints spread over 0.05..2):

  pdf        compute_pmf_ffi(..., epochs=tau) at the 7 PDF_TIMES, and at 50 times;
  pdf grad   value and gradient of the summed log-density (phasic.loglik) in theta and tau;
  sfs        the expected SFS, E[L_i] for the n - 1 classes (compute_moments_ffi with
             the class rewards and epochs=tau);
  sfs grad   its Jacobian-vector product's cost: value and gradient of sum_i E[L_i] * w_i.

E = 1 is the plain call (no epochs). Ratios to E = 1 are what to compare: an epoch
adds one propagation of the state distribution to its breakpoint, so the cost should
grow about linearly in E. The E-epoch pdf is checked against a dense piecewise
scipy expm (largest relative error recorded). Writes bench/results/epochs[-quick].json
and .png.
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


def measure(n: int, e: int) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    import phasic
    from phasic import models

    g = models.kingman(n)
    text = g.to_json()
    classes = np.stack([models.kingman_sfs_rewards(g, i) for i in range(1, n)])
    weights = jnp.asarray(1.0 / np.arange(1, n))
    jitters = iter(np.linspace(0.9, 1.1, 1 << 20))

    def point() -> tuple[jax.Array, jax.Array]:
        theta, tau = history(e, next(jitters))
        return jnp.asarray(theta if e > 1 else theta[0]), jnp.asarray(tau)

    def kw(tau: jax.Array) -> dict[str, Any]:
        return {"epochs": tau} if e > 1 else {}  # E = 1: the plain call

    def pdf_fn(times: np.ndarray):
        t = jnp.asarray(times)
        return jax.jit(lambda th, tau: phasic.compute_pmf_ffi(text, th, t, **kw(tau)))

    def sfs(th: jax.Array, tau: jax.Array) -> jax.Array:
        return jnp.concatenate([phasic.compute_moments_ffi(text, th, 1, rewards=r, **kw(tau))
                                for r in classes])

    times7 = np.asarray(common.PDF_TIMES)
    pdf7, pdf50 = pdf_fn(times7), pdf_fn(MANY_TIMES)
    argnums = (0, 1) if e > 1 else 0
    pdf_grad = jax.jit(jax.value_and_grad(
        lambda th, tau: phasic.loglik(text, th, jnp.asarray(times7), **kw(tau)), argnums=argnums))
    sfs_jit = jax.jit(sfs)
    sfs_grad = jax.jit(jax.value_and_grad(lambda th, tau: jnp.sum(sfs(th, tau) * weights),
                                          argnums=argnums))

    def timed(fn) -> float:
        return common.timeit(lambda: jax.block_until_ready(fn(*point())))

    row: dict[str, Any] = {"n": n, "epochs": e, "vertices": g.vertices_length()}
    row["pdf7_s"] = timed(pdf7)
    row["pdf50_s"] = timed(pdf50)
    row["pdf_grad_s"] = timed(pdf_grad)
    row["sfs_s"] = timed(sfs_jit)
    row["sfs_grad_s"] = timed(sfs_grad)
    theta, tau = history(e)
    got = np.asarray(pdf7(jnp.asarray(theta if e > 1 else theta[0]), jnp.asarray(tau)))
    row["pdf_max_rel_error"] = common.max_rel_error(got, piecewise_pdf(text, theta, tau, times7))
    return row


KEYS = ("pdf7_s", "pdf50_s", "pdf_grad_s", "sfs_s", "sfs_grad_s")


def ratio_key(key: str) -> str:
    """pdf7_s -> pdf7_ratio."""
    return key.removesuffix("_s") + "_ratio"


def run(quick: bool) -> dict[str, Any]:
    start = common.load()
    n = 8 if quick else 20
    rows = [measure(n, e) for e in EPOCHS]
    base = rows[0]
    for row in rows:
        for key in KEYS:
            row[ratio_key(key)] = row[key] / base[key]
        print(f"  E = {row['epochs']}: pdf {row['pdf7_s'] * 1e3:7.3f} ms (x{row['pdf7_ratio']:.2f}),"
              f" 50 times x{row['pdf50_ratio']:.2f}, grad x{row['pdf_grad_ratio']:.2f}; SFS "
              f"{row['sfs_s'] * 1e3:7.3f} ms (x{row['sfs_ratio']:.2f}), grad "
              f"x{row['sfs_grad_ratio']:.2f}; pdf error {row['pdf_max_rel_error']:.1e}")
    result = {"n": n, "rows": rows, "times": list(common.PDF_TIMES)}
    common.finish("epochs", quick, result, start, plot=lambda: plot(rows, quick))
    return result


def plot(rows: list[dict[str, Any]], quick: bool) -> None:
    fig, (ax_t, ax_r) = common.figure(ncols=2)
    es = [r["epochs"] for r in rows]
    labels = {"pdf7_s": "pdf, 7 times", "pdf50_s": "pdf, 50 times",
              "pdf_grad_s": "log-pdf value and grad", "sfs_s": "expected SFS",
              "sfs_grad_s": "expected SFS, value and grad"}
    for key, label in labels.items():
        ax_t.plot(es, [r[key] * 1e3 for r in rows], marker="o", label=label)
        ax_r.plot(es, [r[ratio_key(key)] for r in rows], marker="o", label=label)
    ax_r.plot(es, es, "k:", label="ratio = E")
    common.log_log_axes([ax_t, ax_r], "epochs E", ["ms per call", "time / time at E = 1"],
                        [f"Kingman n = {rows[0]['n']}", "cost relative to one epoch"])
    for ax in (ax_t, ax_r):
        ax.set_xticks(es, [str(e) for e in es])
    common.save_figure(fig, "epochs", quick)


if __name__ == "__main__":
    common.cli(run, "Kingman n = 8 (seconds)")
