"""phasic benchmarks: every figure is a ratio measured side by side in one run.

    python bench/run.py            # full run (a few minutes)
    python bench/run.py --quick    # smaller sizes, under a minute; what CI runs

Results go to bench/results/core.json and bench/results/core.png. Absolute times
drift on a shared machine; the ratios printed next to them are what to compare.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import platform
import statistics
import time
from collections.abc import Callable

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

import phasic  # noqa: E402
from phasic import models  # noqa: E402

RESULTS = pathlib.Path(__file__).parent / "results"


def timeit(fn: Callable[[], object], *, repeat: int = 7, min_time: float = 0.05) -> float:
    """Median seconds per call, calls batched so one sample lasts at least min_time."""
    fn()
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or number >= 1 << 20:
            break
        number *= 2
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def kingman_tmrca_pdf_reference(n: int, times: np.ndarray) -> np.ndarray:
    """T_MRCA density of Kingman(n), theta = 1: hypoexponential over k = n..2 by expm."""
    rates = np.array([k * (k - 1) / 2 for k in range(n, 1, -1)], dtype=float)
    m = len(rates)
    sub = np.diag(-rates) + np.diag(rates[:-1], 1)
    exit_rates = np.zeros(m)
    exit_rates[-1] = rates[-1]
    return np.array([scipy.linalg.expm(sub * t)[0] @ exit_rates for t in times])


def bench_moments(sizes: list[int]) -> list[dict]:
    """Warm moments through the FFI against the dense linear solve a user would write."""
    rng = np.random.default_rng(0)
    return [_bench_moments_one(n, rng) for n in sizes]


def _bench_moments_one(n: int, rng: np.random.Generator) -> dict:
    graph = models.kingman(n)
    structure = graph.serialize()
    thetas = [jnp.array([t]) for t in rng.uniform(0.5, 2.0, 64)]
    counter = iter(range(1 << 30))

    def next_theta() -> jax.Array:  # a new theta each call, as a fitting loop would
        return thetas[next(counter) % len(thetas)]

    jitted = jax.jit(lambda th: phasic.compute_moments_ffi(structure, th, 3))
    t_ffi = timeit(lambda: phasic.compute_moments_ffi(structure, next_theta(), 3)
                   .block_until_ready())
    t_jit = timeit(lambda: jitted(next_theta()).block_until_ready())
    row = {"n": n, "states": graph.vertices_length(), "ffi_moments_s": t_ffi,
           "jit_moments_s": t_jit}
    if graph.vertices_length() <= 2000:
        alpha, sub = _dense(graph)

        def dense_call():
            lu = scipy.linalg.lu_factor(-sub)
            u1 = scipy.linalg.lu_solve(lu, np.ones(len(alpha)))
            u2 = scipy.linalg.lu_solve(lu, u1)
            u3 = scipy.linalg.lu_solve(lu, u2)
            return alpha @ u1, 2 * alpha @ u2, 6 * alpha @ u3

        row["dense_moments_s"] = timeit(dense_call, repeat=3)
        row["dense_over_jit"] = row["dense_moments_s"] / t_jit
    expected = 2 * (1 - 1 / n)
    got = float(phasic.compute_moments_ffi(structure, jnp.array([1.0]), 1)[0])
    row["mean_rel_error"] = abs(got - expected) / expected
    print(f"  moments n={n:3d} ({row['states']:6d} states): eager {t_ffi * 1e3:7.3f} ms, "
          f"jit {t_jit * 1e3:7.3f} ms"
          + (f", dense LU {row['dense_moments_s'] * 1e3:9.3f} ms"
             f" ({row['dense_over_jit']:.1f}x the jitted call)"
             if "dense_moments_s" in row else ""))
    return row


def _dense(graph) -> tuple[np.ndarray, np.ndarray]:
    """alpha and the sub-intensity matrix of a constant-rate graph (theta = [1])."""
    data = json.loads(graph.serialize())
    nv = len(data["states"])
    rates = np.array(data["edges"]["weight"], dtype=float)
    for e, p, v in zip(*(data["coefficients"][k] for k in ("edge", "param", "value")),
                       strict=True):
        assert p == 0
        rates[e] += v
    src, dst = np.array(data["edges"]["from"]), np.array(data["edges"]["to"])
    has_out = np.zeros(nv, bool)
    has_out[src] = True
    transient = [v for v in range(1, nv) if has_out[v]]
    index = {v: i for i, v in enumerate(transient)}
    alpha = np.zeros(len(transient))
    sub = np.zeros((len(transient), len(transient)))
    for s, d, r in zip(src, dst, rates, strict=True):
        if s == 0:
            if d in index:
                alpha[index[d]] += r
            continue
        sub[index[s], index[s]] -= r
        if d in index:
            sub[index[s], index[d]] += r
    return alpha, sub


def bench_pdf(n: int, times: np.ndarray) -> dict:
    """PDF at several times: cost and worst relative error against expm."""
    graph = models.kingman(n)
    structure = graph.serialize()
    t = jnp.asarray(times)
    theta = jnp.array([1.0])
    t_pdf = timeit(lambda: phasic.compute_pmf_ffi(structure, theta, t).block_until_ready(),
                   repeat=3)
    got = np.asarray(phasic.compute_pmf_ffi(structure, theta, t))
    ref = kingman_tmrca_pdf_reference(n, times)
    rel = float(np.max(np.abs(got - ref) / ref))
    print(f"  pdf n={n} at {len(times)} times: {t_pdf * 1e3:.2f} ms, max rel error {rel:.1e}")
    return {"n": n, "times": times.tolist(), "pdf_s": t_pdf, "max_rel_error": rel}


def bench_dispatch() -> dict:
    """A jitted FFI call on a two-state graph against an empty jitted jnp function."""
    graph = phasic.Graph(1)
    v = graph.find_or_create_vertex([1])
    graph.starting_vertex().add_edge(v, 1.0)
    v.add_edge(graph.find_or_create_vertex([2]), [1.0])
    structure = graph.serialize()
    theta = jnp.array([1.0])
    ffi = jax.jit(lambda th: phasic.compute_moments_ffi(structure, th, 1))
    empty = jax.jit(lambda th: th * 2.0)
    # Interleave the two so drift hits both alike.
    ratios, t_ffi, t_empty = [], [], []
    for _ in range(5):
        a = timeit(lambda: ffi(theta).block_until_ready(), repeat=3)
        b = timeit(lambda: empty(theta).block_until_ready(), repeat=3)
        t_ffi.append(a)
        t_empty.append(b)
        ratios.append(a / b)
    ratio = statistics.median(ratios)
    print(f"  dispatch: ffi {statistics.median(t_ffi) * 1e6:.1f} us, empty jit "
          f"{statistics.median(t_empty) * 1e6:.1f} us, ratio {ratio:.2f}")
    return {"ffi_s": statistics.median(t_ffi), "empty_jit_s": statistics.median(t_empty),
            "ratio": ratio}


def bench_vmap(n: int, batch: int, ntimes: int) -> dict:
    """jit(vmap) over a batch of thetas against one warm single call, per element."""
    structure = models.kingman(n).serialize()
    times = jnp.linspace(0.1, 3.0, ntimes)
    thetas = jnp.linspace(0.5, 2.0, batch)[:, None]
    batched = jax.jit(jax.vmap(lambda th: phasic.compute_pmf_ffi(structure, th, times)))
    single = jax.jit(lambda th: phasic.compute_pmf_ffi(structure, th, times))
    t_batch = timeit(lambda: batched(thetas).block_until_ready(), repeat=3)
    t_single = timeit(lambda: single(thetas[0]).block_until_ready(), repeat=3)
    per_element = t_batch / batch
    print(f"  jit(vmap) n={n}, {batch} thetas x {ntimes} times: {per_element * 1e3:.3f} ms per "
          f"element, single call {t_single * 1e3:.3f} ms (ratio {per_element / t_single:.2f})")
    return {"n": n, "batch": batch, "per_element_s": per_element, "single_s": t_single,
            "per_element_over_single": per_element / t_single}


def bench_build(n: int) -> dict:
    """Build, serialize and compute moments of Kingman(n) from scratch."""
    start = time.perf_counter()
    graph = models.kingman(n)
    built = time.perf_counter()
    text = graph.serialize()
    serialized = time.perf_counter()
    mean = graph.expectation(theta=[1.0])
    done = time.perf_counter()
    print(f"  kingman n={n}: {graph.vertices_length()} vertices; build {built - start:.2f} s, "
          f"serialize {serialized - built:.2f} s ({len(text) / 1e6:.0f} MB), moments "
          f"{done - serialized:.2f} s; total {done - start:.2f} s")
    return {"n": n, "vertices": graph.vertices_length(), "build_s": built - start,
            "serialize_s": serialized - built, "json_mb": len(text) / 1e6,
            "moments_s": done - serialized, "total_s": done - start,
            "mean_rel_error": abs(mean - 2 * (1 - 1 / n)) / (2 * (1 - 1 / n))}


def plot(results: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["moments"]
    fig, ax = plt.subplots(figsize=(6, 4))
    states = [r["states"] for r in rows]
    ax.loglog(states, [r["ffi_moments_s"] * 1e3 for r in rows], "o-", label="phasic FFI, eager")
    ax.loglog(states, [r["jit_moments_s"] * 1e3 for r in rows], "o-", label="phasic FFI, jit")
    dense = [r for r in rows if "dense_moments_s" in r]
    if dense:
        ax.loglog([r["states"] for r in dense], [r["dense_moments_s"] * 1e3 for r in dense],
                  "s--", label="dense LU (scipy)")
    ax.set_xlabel("transient states (Kingman n = 10 ... 50)")
    ax.set_ylabel("3 moments, ms per warm call")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    args = parser.parse_args()
    quick = args.quick
    print(f"phasic {phasic.__version__}, jax {jax.__version__}, {platform.processor() or 'cpu'}")
    results: dict = {"quick": quick, "jax": jax.__version__}
    results["dispatch"] = bench_dispatch()
    results["moments"] = bench_moments([10, 20] if quick else [10, 20, 30, 40, 50])
    times = np.array([0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0])
    results["pdf"] = bench_pdf(10 if quick else 30, times)
    results["vmap"] = bench_vmap(10 if quick else 20, 64, 6)
    results["build"] = bench_build(20 if quick else 50)
    suffix = "-quick" if quick else ""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"core{suffix}.json"
    out.write_text(json.dumps(results, indent=2, default=lambda x: None if math.isnan(x) else x))
    plot(results, RESULTS / f"core{suffix}.png")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
