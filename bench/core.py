"""Core kernels against the dense-matrix route, and the speed targets (docs/pages/benchmarks.md).

    python bench/core.py [--quick]

Measured side by side in one run: FFI dispatch against an empty jitted jnp
function; warm moments (phasic eager and jitted, dense LU, sparse LU) and pdf at 7
times (phasic, dense `scipy.linalg.expm`, sparse `expm_multiply`) against graph
size, Kingman n = 10 ... 50, each with its error against the exact value; jit(vmap)
per element against one warm call; building Kingman n = 50 from scratch; building
Kingman n = 20 and 25 from a Python callback (`Graph(callback, ipv)`) against the C++
builder.
Writes bench/results/core.json and core.png.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import scipy.sparse.linalg  # noqa: E402
from common import (  # noqa: E402
    PDF_TIMES,
    cli,
    figure,
    finish,
    kingman_mean_var,
    load,
    max_rel_error,
    save_figure,
    sub_intensity,
    time_once,
    timeit,
)

import phasic  # noqa: E402
from phasic import models  # noqa: E402
from phasic._ext import core  # noqa: E402
from phasic.reference import kingman_tmrca  # noqa: E402

#: Largest transient-state count for which the dense routes are run (O(m^2) memory,
#: O(m^3) time): quick and full mode.
DENSE_MOMENTS_MAX = {True: 700, False: 6000}
DENSE_EXPM_MAX = {True: 100, False: 2000}
SPARSE_EXPM_MAX = {True: 700, False: 40000}


def bench_dispatch() -> dict[str, Any]:
    """A jitted FFI call on a two-state graph against an empty jitted jnp function."""
    graph = phasic.Graph(1)
    v = graph.find_or_create_vertex([1])
    graph.starting_vertex().add_edge(v, 1.0)
    v.add_edge(graph.find_or_create_vertex([2]), [1.0])
    structure = graph.to_json()
    theta = jnp.array([1.0])
    ffi = jax.jit(lambda th: phasic.compute_moments_ffi(structure, th, 1))
    empty = jax.jit(lambda th: th * 2.0)
    # Interleave the two so that drift in the machine's load hits both alike.
    ratios, t_ffi, t_empty = [], [], []
    for _ in range(5):
        a = timeit(lambda: ffi(theta).block_until_ready(), repeat=3)
        b = timeit(lambda: empty(theta).block_until_ready(), repeat=3)
        t_ffi.append(a)
        t_empty.append(b)
        ratios.append(a / b)
    row = {"ffi_s": statistics.median(t_ffi), "empty_jit_s": statistics.median(t_empty),
           "ratio": statistics.median(ratios)}
    print(f"  dispatch: jitted FFI call {row['ffi_s'] * 1e6:.1f} us, empty jitted jnp "
          f"{row['empty_jit_s'] * 1e6:.1f} us -> {row['ratio']:.2f}x")
    return row


def _phasic_mean_var(structure: str) -> tuple[float, float]:
    m = np.asarray(phasic.compute_moments_ffi(structure, jnp.array([1.0]), 2))
    return float(m[0]), float(m[1] - m[0] ** 2)


def _rel(got: tuple[float, float], exact: tuple[float, float]) -> float:
    return max(abs(g - e) / e for g, e in zip(got, exact, strict=True))


def bench_moments_one(n: int, quick: bool) -> dict[str, Any]:
    """Warm 3 moments of Kingman(n): phasic (eager, jit) against dense and sparse LU."""
    graph = models.kingman(n)
    structure = graph.to_json()
    rng = np.random.default_rng(n)
    thetas = [jnp.array([t]) for t in rng.uniform(0.5, 2.0, 64)]
    counter = iter(range(1 << 40))

    def next_theta() -> jax.Array:  # a new theta each call, as in a fitting loop
        return thetas[next(counter) % len(thetas)]

    jitted = jax.jit(lambda th: phasic.compute_moments_ffi(structure, th, 3))
    exact = kingman_mean_var(n)
    alpha, sub = sub_intensity(structure, [1.0])
    m = len(alpha)
    row: dict[str, Any] = {
        "n": n, "states": m,
        "eager_s": timeit(lambda: phasic.compute_moments_ffi(structure, next_theta(), 3)
                          .block_until_ready(), repeat=5),
        "jit_s": timeit(lambda: jitted(next_theta()).block_until_ready(), repeat=5),
        "phasic_rel_error": _rel(_phasic_mean_var(structure), exact),
    }
    ones = np.ones(m)

    def moments_from(solve) -> tuple[float, float]:
        u1 = solve(ones)
        u2 = solve(u1)
        solve(u2)  # the third moment, as the phasic call computes 3
        return float(alpha @ u1), float(2 * alpha @ u2 - (alpha @ u1) ** 2)

    neg = (-sub).tocsc()
    splu_time, got = time_once(lambda: moments_from(scipy.sparse.linalg.splu(neg).solve))
    row["sparse_lu_s"], row["sparse_lu_rel_error"] = splu_time, _rel(got, exact)
    if m <= DENSE_MOMENTS_MAX[quick]:
        dense = neg.toarray()

        def dense_route() -> tuple[float, float]:
            lu = scipy.linalg.lu_factor(dense)  # factor once, solve three times
            return moments_from(lambda b: scipy.linalg.lu_solve(lu, b))

        dense_time, got = time_once(dense_route)
        row["dense_lu_s"], row["dense_lu_rel_error"] = dense_time, _rel(got, exact)
    else:
        row["dense_lu_skipped"] = (f"{m} states: the dense matrix needs {m * m * 8 / 1e9:.1f} GB "
                                   f"and O(m^3) time (limit {DENSE_MOMENTS_MAX[quick]} states)")
    dense_txt = (f"dense LU {row['dense_lu_s'] * 1e3:9.2f} ms ({row['dense_lu_s'] / row['jit_s']:7.0f}x)"
                 if "dense_lu_s" in row else "dense LU skipped")
    print(f"  moments n={n:2d} ({m:6d} states): phasic jit {row['jit_s'] * 1e3:7.3f} ms, "
          f"eager {row['eager_s'] * 1e3:6.3f} ms | sparse LU {splu_time * 1e3:8.2f} ms "
          f"({splu_time / row['jit_s']:6.0f}x) | {dense_txt} | rel err phasic "
          f"{row['phasic_rel_error']:.0e}, splu {row['sparse_lu_rel_error']:.0e}")
    return row


def _expm_multiply_pdf(alpha: np.ndarray, sub, times: np.ndarray) -> np.ndarray:
    """alpha exp(S t) s at increasing times, each step from the previous one."""
    exit_rates = -np.asarray(sub.sum(axis=1)).ravel()
    sub_t = sub.T.tocsr()
    v, now, out = alpha.copy(), 0.0, []
    for t in times:
        v = scipy.sparse.linalg.expm_multiply(sub_t * (t - now), v)
        now = t
        out.append(v @ exit_rates)
    return np.array(out)


def _expm_pdf(alpha: np.ndarray, sub, times: np.ndarray) -> np.ndarray:
    dense = sub.toarray()
    exit_rates = -dense.sum(axis=1)
    return np.array([alpha @ scipy.linalg.expm(dense * t) @ exit_rates for t in times])


def bench_pdf_one(n: int, quick: bool) -> dict[str, Any]:
    """PDF of Kingman(n) at the 7 target times: phasic against expm and expm_multiply."""
    structure = models.kingman(n).to_json()
    times = np.array(PDF_TIMES)
    exact = kingman_tmrca(n, times, digits=200).pdf
    t_dev, theta = jnp.asarray(times), jnp.array([1.0])
    jitted = jax.jit(lambda th: phasic.compute_pmf_ffi(structure, th, t_dev))
    row: dict[str, Any] = {
        "n": n, "times": list(PDF_TIMES), "exact": exact.tolist(),
        "phasic_s": timeit(lambda: jitted(theta).block_until_ready(), repeat=3),
        "phasic_rel_error": max_rel_error(np.asarray(jitted(theta)), exact),
    }
    alpha, sub = sub_intensity(structure, [1.0])
    m = len(alpha)
    row["states"] = m
    for name, fn, limit in (("expm_multiply", _expm_multiply_pdf, SPARSE_EXPM_MAX[quick]),
                            ("dense_expm", _expm_pdf, DENSE_EXPM_MAX[quick])):
        if m > limit:
            row[f"{name}_skipped"] = f"{m} states > {limit} (too slow for this run)"
            continue
        took, got = time_once(lambda fn=fn: fn(alpha, sub, times))
        row[f"{name}_s"], row[f"{name}_rel_error"] = took, max_rel_error(got, exact)
    parts = [f"phasic {row['phasic_s'] * 1e3:8.2f} ms (err {row['phasic_rel_error']:.0e})"]
    for name in ("expm_multiply", "dense_expm"):
        if f"{name}_s" in row:
            parts.append(f"{name} {row[f'{name}_s'] * 1e3:9.1f} ms "
                         f"({row[f'{name}_s'] / row['phasic_s']:.0f}x, "
                         f"err {row[f'{name}_rel_error']:.0e})")
        else:
            parts.append(f"{name} skipped")
    print(f"  pdf n={n:2d} ({m:6d} states), 7 times: " + " | ".join(parts))
    return row


def bench_vmap(n: int, batch: int, ntimes: int) -> dict[str, Any]:
    """jit(vmap) over a batch of thetas against warm single calls, per element.

    The single calls run over the same thetas as the batch: the cost of a pdf grows
    with theta (more uniformization steps), so one call at the cheapest theta would
    make the batch look slower than it is.
    """
    structure = models.kingman(n).to_json()
    times = jnp.linspace(0.1, 3.0, ntimes)
    thetas = jnp.linspace(0.5, 2.0, batch)[:, None]
    batched = jax.jit(jax.vmap(lambda th: phasic.compute_pmf_ffi(structure, th, times)))
    single = jax.jit(lambda th: phasic.compute_pmf_ffi(structure, th, times))
    each = list(thetas)

    def singles() -> None:
        jax.block_until_ready([single(th) for th in each])

    t_batch = timeit(lambda: batched(thetas).block_until_ready(), repeat=5)
    t_single = timeit(singles, repeat=5) / batch
    row = {"n": n, "batch": batch, "times": ntimes, "per_element_s": t_batch / batch,
           "single_s": t_single, "per_element_over_single": t_batch / batch / t_single}
    # The same with one OpenMP thread: separates the batch loop's own cost per
    # element from what thread contention on a busy machine adds.
    before = core().get_num_threads()
    core().set_num_threads(1)
    try:
        t_batch1 = timeit(lambda: batched(thetas).block_until_ready(), repeat=5)
        t_single1 = timeit(singles, repeat=5) / batch
    finally:
        core().set_num_threads(before)
    row["per_element_over_single_1_thread"] = t_batch1 / batch / t_single1
    print(f"  jit(vmap) n={n}, {batch} thetas x {ntimes} times: "
          f"{row['per_element_s'] * 1e3:.3f} ms per element, a warm single call "
          f"{t_single * 1e3:.3f} ms -> {row['per_element_over_single']:.2f}x "
          f"(one OpenMP thread: {row['per_element_over_single_1_thread']:.2f}x)")
    return row


def bench_build(n: int) -> dict[str, Any]:
    """Build, serialize and compute the moments of Kingman(n) from scratch."""
    start = time.perf_counter()
    graph = models.kingman(n)
    built = time.perf_counter()
    text = graph.to_json()
    serialized = time.perf_counter()
    mean = graph.expectation(theta=[1.0])
    done = time.perf_counter()
    exact = kingman_mean_var(n)[0]
    row = {"n": n, "vertices": graph.vertices_length(), "build_s": built - start,
           "serialize_s": serialized - built, "json_mb": len(text) / 1e6,
           "moments_s": done - serialized, "total_s": done - start,
           "mean_rel_error": abs(mean - exact) / exact}
    print(f"  build kingman n={n}: {row['vertices']} vertices; build {row['build_s']:.2f} s, "
          f"serialize {row['serialize_s']:.2f} s ({row['json_mb']:.0f} MB JSON), moments "
          f"{row['moments_s']:.2f} s; total {row['total_s']:.2f} s")
    return row


def bench_callback_build(sizes: list[int]) -> list[dict[str, Any]]:
    """Median seconds to build Kingman(n) from the Python callback and in C++."""
    rows = []
    for n in sizes:
        graph = models.kingman_from_callback(n)
        row = {"n": n, "vertices": graph.vertices_length(), "edges": graph.edges_length(),
               "callback_s": timeit(lambda n=n: models.kingman_from_callback(n), repeat=3),
               "cpp_s": timeit(lambda n=n: models.kingman(n), repeat=3)}
        row["per_edge_us"] = row["callback_s"] / row["edges"] * 1e6
        print(f"  callback build kingman n={n}: {row['vertices']} vertices, {row['edges']} "
              f"edges; Python callback {row['callback_s'] * 1e3:.1f} ms "
              f"({row['per_edge_us']:.2f} us per edge), C++ {row['cpp_s'] * 1e3:.2f} ms")
        rows.append(row)
    return rows


def plot(results: dict[str, Any], quick: bool) -> None:
    fig, (ax_m, ax_p, ax_e) = figure(3, width=5.0)
    mom, pdf = results["moments"], results["pdf"]

    def series(ax, rows, key, style, label, scale=1e3):
        pts = [(r["states"], r[key] * scale) for r in rows if r.get(key) is not None]
        if pts:
            ax.loglog(*zip(*pts, strict=True), style, label=label)

    series(ax_m, mom, "jit_s", "o-", "phasic (jit)")
    series(ax_m, mom, "eager_s", "o:", "phasic (eager)")
    series(ax_m, mom, "sparse_lu_s", "s--", "scipy sparse LU")
    series(ax_m, mom, "dense_lu_s", "^--", "scipy dense LU")
    ax_m.set_title("3 moments, warm call")
    series(ax_p, pdf, "phasic_s", "o-", "phasic (jit)")
    series(ax_p, pdf, "expm_multiply_s", "s--", "scipy expm_multiply")
    series(ax_p, pdf, "dense_expm_s", "^--", "scipy expm (dense)")
    ax_p.set_title("pdf at 7 times")
    for ax in (ax_m, ax_p):
        ax.set_xlabel("transient states (Kingman n)")
        ax.set_ylabel("ms")
    series(ax_e, pdf, "phasic_rel_error", "o-", "pdf: phasic", 1)
    series(ax_e, pdf, "expm_multiply_rel_error", "s--", "pdf: expm_multiply", 1)
    series(ax_e, pdf, "dense_expm_rel_error", "^--", "pdf: expm", 1)
    series(ax_e, mom, "phasic_rel_error", "o:", "mean/var: phasic", 1)
    series(ax_e, mom, "sparse_lu_rel_error", "s:", "mean/var: sparse LU", 1)
    ax_e.set_title("max relative error vs exact")
    ax_e.set_xlabel("transient states (Kingman n)")
    for ax in (ax_m, ax_p, ax_e):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, "core", quick)


def run(quick: bool) -> dict[str, Any]:
    """Run every core benchmark; write core.json/png; return the results."""
    start_load = load()
    sizes = [10, 20] if quick else [10, 20, 30, 40, 50]
    results: dict[str, Any] = {"dispatch": bench_dispatch()}
    results["moments"] = [bench_moments_one(n, quick) for n in sizes]
    results["pdf"] = [bench_pdf_one(n, quick) for n in sizes]
    results["vmap"] = bench_vmap(20, 64, 6)
    results["build"] = bench_build(30 if quick else 50)
    results["callback_build"] = bench_callback_build([20, 25])
    finish("core", quick, results, start_load, plot=lambda: plot(results, quick))
    return results


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The speed targets of docs/pages/benchmarks.md: (what, measured, limit, unit) from these results."""
    by_n = {r["n"]: r for r in results["moments"]}
    pdf_n = {r["n"]: r for r in results["pdf"]}
    build = results["build"]
    rows = []
    if 30 in by_n:
        rows.append(("warm moments n=30, jitted (3 moments)", by_n[30]["jit_s"] * 1e3, 1.0, "ms"))
        rows.append(("warm moments n=30, eager (3 moments)", by_n[30]["eager_s"] * 1e3, 1.0, "ms"))
    rows.append((f"n={build['n']} build+serialize+moments", build["total_s"], 10.0, "s"))
    if 30 in pdf_n:
        rows.append(("pdf 7 times n=30", pdf_n[30]["phasic_s"] * 1e3, 100.0, "ms"))
    rows.append(("dispatch / empty jit", results["dispatch"]["ratio"], 3.0, "x"))
    rows.append(("jit(vmap) 64x6 n=20 per element / single",
                 results["vmap"]["per_element_over_single"], 1.0, "x"))
    return [{"target": t, "measured": v, "limit": lim, "unit": u, "ratio": v / lim,
             "met": v <= lim} for t, v, lim, u in rows]


if __name__ == "__main__":
    cli(run, "small sizes, seconds")
