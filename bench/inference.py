"""Likelihoods over many observations: cost per observed time, SVGD steps, roofline.

    python bench/inference.py           # Kingman n = 5, 10, 15, 20; up to 10,000 times
    python bench/inference.py --quick   # n = 5, 10; up to 2,000 times (seconds)

Per Kingman sample size n and number N of observed times (T_MRCA simulated at rate 1,
unsorted), warm jitted calls of

  phasic   jax.value_and_grad of phasic.loglik (one FFI call, exact gradient);
  eig      the dense eigendecomposition route in numpy: S = V diag(w) V^-1 per theta,
           f(t) = alpha V exp(w t) V^-1 s and, since S is theta times a fixed matrix,
           d f / d theta = f / theta + (t / theta) alpha V (w exp(w t)) V^-1 s. Fast but
           without any accuracy guarantee (a speed bound, not a method).

Both routes' errors at the first 200 times against the exact hypoexponential density
(phasic.reference): the largest relative error of f, and of d log f / d theta relative
to max(|d log f / d theta|, 1 / theta) (it crosses zero). The
cost per additional observed time is (time at the largest N - time at N = 200) /
(difference in N). One SVGD step: value_and_grad of 64 particles x 200 times under
jit(vmap) (one FFI call for the batch; the program's custom calls are counted).

Lumping: the block-counting graph lumps exactly to its n - 1 lineage counts for the time
to absorption, and the densities run on that chain (the "swept" states). The SVGD step
is also timed with lumping off (`_core.set_lumping(False)`): what a graph of the same
size without that symmetry costs.

Roofline: the multiply-adds of the sweeps (counted by the kernels) per second for a
single observed time at the largest simulated time, with lumping and without (the
graph's own size), next to a memory-bandwidth bound
(a numpy triad's bytes per second over the sweep's 20 bytes per multiply-add: an
in-edge weight and source value with their tangent, and a 4-byte index).

`BASELINE_FILE` (bench/results/inference-baseline[-quick].json) holds the same table
measured before the per-time path; when present the printed table shows both.
The full run also times examples/kingman_inference.py end to end.
Writes bench/results/inference[-quick].json and .png.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import (  # noqa: E402
    RESULTS,
    ROOT,
    cli,
    figure,
    finish,
    load,
    save_figure,
    sub_intensity,
    timeit,
)

import phasic  # noqa: E402
from phasic import models  # noqa: E402
from phasic._ext import core  # noqa: E402
from phasic.reference import kingman_tmrca  # noqa: E402

PARTICLES, SVGD_TIMES = 64, 200
ERROR_TIMES = 200  # times checked against the exact density (decimal arithmetic: slow)
BYTES_PER_MADD = 20.0


def simulate(n: int, count: int, seed: int = 7) -> np.ndarray:
    """T_MRCA of Kingman(n) at rate 1: sum over k = n..2 of Exp(k(k-1)/2), unsorted."""
    k = np.arange(2, n + 1)
    rng = np.random.default_rng(seed + n)
    return rng.exponential(2.0 / (k * (k - 1)), size=(count, k.size)).sum(axis=1)


class EigRoute:
    """Log-likelihood and its theta-derivative from a dense eigendecomposition."""

    def __init__(self, text: str) -> None:
        self.alpha, sub = sub_intensity(text, [1.0])
        self.s0 = sub.toarray()

    def __call__(self, theta: float, t: np.ndarray) -> tuple[float, float]:
        f, df = self.density(theta, t)
        return float(np.sum(np.log(f))), float(np.sum(df / f))

    def density(self, theta: float, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = theta * self.s0
        w, v = np.linalg.eig(s)
        a = self.alpha @ v
        b = np.linalg.solve(v, -s.sum(axis=1))
        ab = a * b
        e = np.exp(np.outer(t, w))
        f = (e @ ab).real
        df = f / theta + t / theta * (e @ (ab * w)).real
        return f, df


def exact(n: int, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f and d log f / d theta at theta = 1 (f_theta(t) = theta f_1(theta t))."""
    ref = kingman_tmrca(n, t, digits=60)
    return ref.pdf, 1.0 + t * ref.slope / ref.pdf


def rel(got: np.ndarray, ref: np.ndarray, floor: float = 1e-300) -> float:
    """Largest |got - ref| / max(|ref|, floor)."""
    return float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), floor)))


def measure(n: int, sizes: tuple[int, ...]) -> dict[str, Any]:
    g = models.kingman(n)
    text = g.to_json()
    times = simulate(n, max(sizes))
    theta = jnp.array([1.0])
    vg = jax.jit(jax.value_and_grad(lambda th, t: phasic.loglik(text, th, t)))
    eig = EigRoute(text)
    row: dict[str, Any] = {"n": n, "vertices": g.vertices_length(),
                           "states": int(eig.s0.shape[0]),
                           "swept_states": int(g.structure().lumped_length), "by_N": []}
    for N in sizes:
        t = jnp.asarray(times[:N])
        tn = times[:N]
        ph = timeit(lambda t=t: jax.block_until_ready(vg(theta, t)), repeat=5)
        ei = timeit(lambda tn=tn: eig(1.0, tn), repeat=5, min_time=0.02)
        row["by_N"].append({"N": N, "phasic_s": ph, "eig_s": ei})
        print(f"  n={n:2d} ({row['states']:4d} states) N={N:6d}: phasic {ph * 1e3:9.3f} ms "
              f"({ph / N * 1e6:7.3f} us/time), eig {ei * 1e3:9.3f} ms", flush=True)
    a, b = row["by_N"][-1], next(r for r in row["by_N"] if r["N"] == SVGD_TIMES)
    row["per_time_us"] = (a["phasic_s"] - b["phasic_s"]) / (a["N"] - b["N"]) * 1e6
    row["eig_per_time_us"] = (a["eig_s"] - b["eig_s"]) / (a["N"] - b["N"]) * 1e6
    # Errors against the exact density.
    te = times[:ERROR_TIMES]
    f_ex, g_ex = exact(n, te)
    lf = np.asarray(phasic.compute_log_pmf_ffi(text, theta, jnp.asarray(te)))
    dlogf = np.asarray(jax.jacfwd(
        lambda th: phasic.compute_log_pmf_ffi(text, th, jnp.asarray(te)))(theta))[:, 0]
    f_eig, df_eig = eig.density(1.0, te)
    row["phasic_pdf_err"] = rel(np.exp(lf), f_ex)
    # d log f / d theta crosses 0; 1 / theta = 1 is its natural scale
    row["phasic_dlog_err"] = rel(dlogf, g_ex, 1.0)
    row["eig_pdf_err"] = rel(f_eig, f_ex)
    row["eig_dlog_err"] = rel(df_eig / f_eig, g_ex, 1.0)
    print(f"  n={n:2d} errors vs exact: phasic f {row['phasic_pdf_err']:.1e}, dlogf "
          f"{row['phasic_dlog_err']:.1e}; eig f {row['eig_pdf_err']:.1e}, dlogf "
          f"{row['eig_dlog_err']:.1e}; per extra time phasic {row['per_time_us']:.3f} us, "
          f"eig {row['eig_per_time_us']:.3f} us", flush=True)
    row["roofline"] = roofline(text, float(times.max()))
    row["roofline_unlumped"] = unlumped(lambda: roofline(text, float(times.max())))
    return row


def unlumped(fn: Any) -> Any:
    """fn() with the densities on the graph as it is (no lumping)."""
    try:
        core().set_lumping(False)
        return fn()
    finally:
        core().set_lumping(True)


def svgd_step(n: int) -> dict[str, Any]:
    """value_and_grad of 64 particles x 200 times under jit(vmap), and the eig route."""
    text = models.kingman(n).to_json()
    rng = np.random.default_rng(3)
    thetas = jnp.asarray(rng.uniform(0.5, 2.0, size=(PARTICLES, 1)))
    t = jnp.asarray(simulate(n, SVGD_TIMES))
    fn = jax.jit(jax.vmap(jax.value_and_grad(lambda th: phasic.loglik(text, th, t))))
    calls = fn.lower(thetas).as_text().count("custom_call")
    ph = timeit(lambda: jax.block_until_ready(fn(thetas)), repeat=5)
    whole = unlumped(lambda: timeit(lambda: jax.block_until_ready(fn(thetas)), repeat=3))
    eig = EigRoute(text)
    tn = np.asarray(t)
    few = 4 if eig.s0.shape[0] > 300 else PARTICLES  # big eigs: time 4, scale to 64
    ei = timeit(lambda: [eig(float(th[0]), tn) for th in np.asarray(thetas)[:few]],
                repeat=3, min_time=0.02) * PARTICLES / few
    print(f"  SVGD step n={n:2d}, {PARTICLES} x {SVGD_TIMES}: phasic {ph * 1e3:8.3f} ms "
          f"({calls} custom call(s) in the program; without lumping {whole * 1e3:8.3f} ms), "
          f"eig {ei * 1e3:8.3f} ms", flush=True)
    return {"n": n, "phasic_s": ph, "phasic_unlumped_s": whole, "eig_s": ei,
            "custom_calls": calls, "eig_particles_timed": few}


def bandwidth() -> float:
    """Bytes per second of a numpy triad c = a + 2 b on 3 x 64 MB arrays (best of 5)."""
    a, b, c = (np.ones(8 << 20) for _ in range(3))
    best = np.inf
    for _ in range(5):
        t0 = time.perf_counter()
        np.multiply(b, 2.0, out=c)
        np.add(a, c, out=c)
        best = min(best, time.perf_counter() - t0)
    return 5 * 8 * a.size / best  # reads a, b, c once and writes c twice


def roofline(text: str, t_max: float) -> dict[str, Any]:
    """Multiply-adds per second of the sweeps for value_and_grad at one time t_max."""
    vg = jax.jit(jax.value_and_grad(lambda th, t: phasic.loglik(text, th, t)))
    theta, t = jnp.array([1.0]), jnp.array([t_max])
    jax.block_until_ready(vg(theta, t))
    before = core().sweep_counts().get("madds", 0)
    jax.block_until_ready(vg(theta, t))
    madds = core().sweep_counts().get("madds", 0) - before
    sec = timeit(lambda: jax.block_until_ready(vg(theta, t)), repeat=5)
    return {"t": t_max, "madds_per_call": madds, "seconds": sec,
            "madds_per_s": madds / sec if madds else None}


def run_example() -> float | None:
    """Seconds for examples/kingman_inference.py end to end (a fresh process)."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "kingman_inference.py"),
                          "--out", str(RESULTS / "_example_posterior.png")],
                         capture_output=True, text=True, check=False, timeout=1800)
    sec = time.perf_counter() - t0
    (RESULTS / "_example_posterior.png").unlink(missing_ok=True)
    if out.returncode != 0:
        print(f"  example failed: {out.stderr.strip().splitlines()[-1:]}")
        return None
    print(f"  examples/kingman_inference.py end to end: {sec:.1f} s")
    return sec


def baseline(quick: bool) -> dict[str, Any] | None:
    path = RESULTS / f"inference-baseline{'-quick' if quick else ''}.json"
    return json.loads(path.read_text()) if path.exists() else None


def table(result: dict[str, Any], base: dict[str, Any] | None) -> None:
    def lookup(res: dict[str, Any] | None, n: int, N: int) -> float | None:
        for r in (res or {}).get("rows", []):
            for x in r["by_N"]:
                if r["n"] == n and x["N"] == N:
                    return x["phasic_s"]
        return None

    print(f"\n  {'case':34s} {'before':>10s} {'after':>10s} {'eig':>10s}  (swept states)")
    for r in result["rows"]:
        for x in r["by_N"]:
            b = lookup(base, r["n"], x["N"])
            print(f"  n={r['n']:2d} N={x['N']:6d} value+grad (ms)   "
                  f"{b * 1e3 if b else float('nan'):10.3f} {x['phasic_s'] * 1e3:10.3f} "
                  f"{x['eig_s'] * 1e3:10.3f}  ({r['swept_states']} of {r['states']})")
    for s in result["svgd"]:
        b = next((x["phasic_s"] for x in (base or {}).get("svgd", []) if x["n"] == s["n"]), None)
        print(f"  SVGD step n={s['n']:2d} 64x200 (ms)       "
              f"{b * 1e3 if b else float('nan'):10.3f} {s['phasic_s'] * 1e3:10.3f} "
              f"{s['eig_s'] * 1e3:10.3f}")
        print(f"  SVGD step n={s['n']:2d}, no lumping (ms)    {'':10s} "
              f"{s['phasic_unlumped_s'] * 1e3:10.3f}")
    for r in result["rows"]:
        b = next((x["per_time_us"] for x in (base or {}).get("rows", []) if x["n"] == r["n"]),
                 None)
        print(f"  n={r['n']:2d} per extra time (us)        "
              f"{b if b else float('nan'):10.3f} {r['per_time_us']:10.3f} "
              f"{r['eig_per_time_us']:10.3f}")


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of docs/pages/benchmarks.md (Likelihoods over many observations)."""
    rows: list[tuple[str, str, float, float, str]] = []
    by_n = {r["n"]: r for r in result["rows"]}
    for r in result["rows"]:
        if r["states"] <= 50:
            rows.append((f"per_time_n{r['n']}", f"cost per extra time, n={r['n']} "
                         f"({r['states']} states)", r["per_time_us"], 0.3, "us"))
    if 10 in by_n:
        big = by_n[10]["by_N"][-1]
        rows.append((f"n10_N{big['N']}", f"n=10, {big['N']} times, value+grad",
                     big["phasic_s"] * 1e3, 3.0 if big["N"] == 10000 else 0.6, "ms"))
    for s in result["svgd"]:
        rows.append((f"svgd_n{s['n']}", f"SVGD step n={s['n']}, 64 x 200",
                     s["phasic_s"] * 1e3, {10: 5.0, 20: 60.0}[s["n"]], "ms"))
    cases = [(f"n = {r['n']} at {x['N']:,} times", x) for r in result["rows"]
             for x in r["by_N"]]
    cases += [(f"the SVGD step at n = {s['n']}", s) for s in result["svgd"]]
    slower = [name for name, x in cases if x["phasic_s"] >= x["eig_s"]]
    rows.append(("eig_cases_slower", "cases where eig is faster (of "
                 f"{len(cases)})", float(len(slower)), 0.0, "#"))
    # The documented bounds: f within 1e-10; d log f = df / f adds the bounds of df and f.
    rows.append(("accuracy_f", "largest phasic error of f vs exact",
                 max(r["phasic_pdf_err"] for r in result["rows"]), 1e-10, "rel"))
    rows.append(("accuracy_dlog", "largest phasic error of dlog f vs exact",
                 max(r["phasic_dlog_err"] for r in result["rows"]), 2e-10, "rel"))
    out = [{"id": i, "target": t, "measured": v, "limit": lim, "unit": u, "met": v <= lim}
           for i, t, v, lim, u in rows]
    for row in out:  # which cases, in words (the benchmarks page quotes them)
        if row["id"] == "eig_cases_slower":
            row["cases"] = ", ".join(slower) if slower else "none"
    return out


def print_targets(rows: list[dict[str, Any]]) -> None:
    print(f"\n  {'target':44s} {'measured':>10s} {'limit':>9s}  met")
    for r in rows:
        print(f"  {r['target']:44s} {r['measured']:10.3g} {r['limit']:9.3g} {r['unit']:>3s}  "
              f"{'yes' if r['met'] else 'NO'}")


def plot(result: dict[str, Any], quick: bool) -> None:
    fig, (ax, ax2) = figure(ncols=2)
    for r in result["rows"]:
        Ns = [x["N"] for x in r["by_N"]]
        line, = ax.plot(Ns, [x["phasic_s"] for x in r["by_N"]], "o-",
                        label=f"phasic n={r['n']} ({r['swept_states']} of {r['states']} "
                              "states swept)")
        ax.plot(Ns, [x["eig_s"] for x in r["by_N"]], "x--", color=line.get_color(),
                label=f"dense eig n={r['n']}")
        before = next((b for b in result.get("baseline", {}).get("rows", []) if b["n"] == r["n"]),
                      None)
        if before is not None:
            ax.plot([x["N"] for x in before["by_N"]], [x["phasic_s"] for x in before["by_N"]],
                    ":", color=line.get_color(), alpha=0.6, label=f"before, n={r['n']}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("observed times N")
    ax.set_ylabel("seconds per value + gradient")
    ax.set_title("log-likelihood and gradient")
    ax.legend(fontsize=7)
    bw = result["bandwidth_bytes_per_s"] / BYTES_PER_MADD
    for key, states, label in (("roofline", "swept_states", "sweep, lumped graph"),
                               ("roofline_unlumped", "states", "sweep, graph as it is")):
        pts = [(r[states], r[key]["madds_per_s"]) for r in result["rows"]
               if r[key]["madds_per_s"]]
        if pts:
            ax2.plot(*zip(*pts, strict=True), "o-", label=label)
    ax2.axhline(bw, color="k", ls="--", label="memory bandwidth bound")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("transient states")
    ax2.set_ylabel("multiply-adds per second")
    ax2.set_title("roofline: sweep throughput")
    ax2.legend(fontsize=7)
    save_figure(fig, "inference", quick)


def run(quick: bool, baseline_run: bool = False) -> dict[str, Any]:
    load_start = load()
    ns = (5, 10) if quick else (5, 10, 15, 20)
    sizes = (10, SVGD_TIMES, 2000) if quick else (10, SVGD_TIMES, 2000, 10000)
    rows = [measure(n, sizes) for n in ns]
    svgd = [svgd_step(n) for n in ((10,) if quick else (10, 20))]
    result: dict[str, Any] = {"rows": rows, "svgd": svgd, "bandwidth_bytes_per_s": bandwidth(),
                              "bytes_per_madd": BYTES_PER_MADD}
    print(f"  memory bandwidth (triad): {result['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s")
    result["example_s"] = None if quick else run_example()
    name = "inference-baseline" if baseline_run else "inference"
    base = None if baseline_run else baseline(quick)
    if base is not None:
        result["baseline"] = {"rows": base["rows"], "svgd": base["svgd"],
                              "example_s": base.get("example_s"),
                              "git_commit": base["environment"].get("git_commit")}
    table(result, base)
    result["targets"] = targets(result)
    print_targets(result["targets"])
    finish(name, quick, result, load_start,
           plot=None if baseline_run else (lambda: plot(result, quick)))
    return result


if __name__ == "__main__":
    from common import Flag

    cli(run, "n = 5, 10 and up to 2,000 times (seconds)",
        flags=(Flag("--baseline", "baseline_run",
                    "write bench/results/inference-baseline[-quick].json (the code before)"),))
