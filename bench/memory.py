"""Memory: the structure cache stays bounded, and repeated calls do not grow RSS.

    python bench/memory.py            # 10,000 distinct structures, 100,000 calls
    python bench/memory.py --quick    # 500 structures, 10,000 calls (about a minute)

Phase "structures": distinct structures (a three-state chain whose rate
coefficient differs per structure, so every JSON text is new) each go through
`compute_moments_ffi` once, eagerly, with the C++ cache capacity at its default.
The C++ cache's `entries` must never exceed capacity x threads alive. Each new
structure also makes JAX compile a new executable (the structure is a static
attribute) and JAX keeps it in its own caches; the first block, before any
`jax.clear_caches()`, measures that cost per structure, and afterwards the caches
are cleared every CLEAR_EVERY structures so that RSS measures phasic, not JAX.

Phase "calls": the same few structures called again and again (the three FFI
functions, jitted and vmapped, rotating over structures and thetas), RSS sampled
every SAMPLE calls. After a warm-up of 10 % of the calls the RSS must not grow:
the least-squares slope over the remaining samples, times the number of calls,
must stay below GROWTH_LIMIT. Then the same for eager (un-jitted) calls.

Writes bench/results/memory[-quick].json and memory[-quick].png (RSS over calls).
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CLEAR_EVERY = 250
SAMPLE = 1000
GROWTH_LIMIT_MIB = 2.0  # allowed RSS growth over all calls after warm-up (allocator noise)


def rss_mib() -> float:
    """Resident set size of this process, MiB (from /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def threads_alive() -> int:
    return len(os.listdir("/proc/self/task"))


def _trim() -> None:
    """Give freed heap back to the OS so that RSS reflects live memory (glibc only)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def chain_json(phasic: Any, i: int) -> str:
    """A three-state chain start -> a -> b whose a -> b rate is (1 + i * 1e-6) theta[0]."""
    g = phasic.Graph(1)
    a, b = g.find_or_create_vertex((1,)), g.find_or_create_vertex((2,))
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, [1.0 + i * 1e-6])
    return g.to_json()


def phase_structures(n: int) -> dict[str, Any]:
    import gc

    import jax
    import jax.numpy as jnp

    import phasic

    theta = jnp.array([1.0])
    phasic.cache_clear()
    capacity = phasic.cache_stats()["capacity"]
    first_block = min(CLEAR_EVERY, n)
    samples: list[dict[str, float]] = []
    max_entries = 0
    violations = 0
    start = time.perf_counter()
    rss0 = rss_mib()
    jax_cost = None
    for i in range(n):
        phasic.compute_moments_ffi(chain_json(phasic, i), theta, 2).block_until_ready()
        stats = phasic.cache_stats()
        max_entries = max(max_entries, stats["entries"])
        violations += stats["entries"] > capacity * threads_alive()
        if (i + 1) % CLEAR_EVERY == 0 or i + 1 == n:
            if i + 1 == first_block:
                jax_cost = (rss_mib() - rss0) / first_block
            jax.clear_caches()
            gc.collect()
            _trim()
            samples.append({"structures": i + 1, "rss_mib": rss_mib(),
                            "entries": stats["entries"]})
    elapsed = time.perf_counter() - start
    stats = phasic.cache_stats()
    rss_after = [s["rss_mib"] for s in samples]
    return {
        "structures": n,
        "seconds": elapsed,
        "cache_capacity": capacity,
        "max_entries": max_entries,
        "entries_over_bound": violations,
        "misses": stats["misses"],
        "evictions": stats["evictions"],
        "jax_cache_mib_per_structure": jax_cost,
        "rss_mib_after_clear": rss_after,
        "rss_growth_mib": rss_after[-1] - rss_after[0] if rss_after else 0.0,
        "samples": samples,
        "ok": violations == 0 and max_entries <= capacity,
    }


def _slope_growth(calls: list[int], rss: list[float], warm: int, total: int) -> tuple[float,
                                                                                       float]:
    """(bytes per call, MiB over the post-warm-up calls) from a least-squares line."""
    x = np.array([c for c in calls if c >= warm], dtype=float)
    y = np.array([r for c, r in zip(calls, rss, strict=True) if c >= warm])
    if len(x) < 2:
        return 0.0, 0.0
    slope = float(np.polyfit(x, y, 1)[0])  # MiB per call
    return slope * 2**20, slope * (total - warm)


def phase_calls(n: int, eager: bool) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    import phasic
    from phasic import models

    structures = [models.kingman(5).to_json(), models.kingman(8).to_json(),
                  models.two_island(3).to_json()]
    times = jnp.array([0.1, 0.5, 1.0, 2.0])
    rng = np.random.default_rng(0)
    fns = []
    for js in structures:
        p = phasic.Graph.from_json(js).param_length()
        th = [jnp.asarray(rng.uniform(0.5, 2.0, size=(8, p))) for _ in range(4)]

        def pmf(t: Any, js: str = js) -> Any:
            return phasic.compute_pmf_ffi(js, t, times)

        def mom(t: Any, js: str = js) -> Any:
            return phasic.compute_moments_ffi(js, t, 3)

        def both(t: Any, js: str = js) -> Any:
            return phasic.compute_pmf_and_moments_ffi(js, t, times, 2)

        if eager:
            fns += [(f, t[0]) for f in (pmf, mom, both) for t in th]
        else:
            fns += [(jax.jit(jax.vmap(f)), t) for f in (pmf, mom, both) for t in th]
            fns += [(jax.jit(f), t[0]) for f in (pmf, mom, both) for t in th]
    calls, rss = [], []
    start = time.perf_counter()
    for i in range(n):
        f, t = fns[i % len(fns)]
        jax.block_until_ready(f(t))
        if i % SAMPLE == 0 or i + 1 == n:
            _trim()
            calls.append(i + 1)
            rss.append(rss_mib())
    elapsed = time.perf_counter() - start
    warm = n // 10
    per_call, growth = _slope_growth(calls, rss, warm, n)
    return {"calls": n, "eager": eager, "seconds": elapsed, "us_per_call": 1e6 * elapsed / n,
            "rss_calls": calls, "rss_mib": rss, "warmup_calls": warm,
            "bytes_per_call": per_call, "growth_mib": growth,
            "cache": phasic.cache_stats(), "ok": growth < GROWTH_LIMIT_MIB}


def plot(result: dict[str, Any], quick: bool) -> None:
    fig, (ax1, ax2) = common.figure(ncols=2)
    for key, label in (("jit", "jit / vmap"), ("eager", "eager")):
        ph = result["calls"][key]
        ax1.plot(ph["rss_calls"], ph["rss_mib"], label=f"{label} ({ph['bytes_per_call']:.2f} B/call)")
    ax1.axvline(result["calls"]["jit"]["warmup_calls"], color="grey", ls=":", lw=1)
    ax1.set_xlabel("calls")
    ax1.set_ylabel("RSS (MiB)")
    ax1.set_title("RSS over repeated FFI calls")
    ax1.legend()
    st = result["structures"]
    xs = [s["structures"] for s in st["samples"]]
    ax2.plot(xs, [s["rss_mib"] for s in st["samples"]], "o-", label="RSS after jax.clear_caches()")
    ax2.set_xlabel("distinct structures")
    ax2.set_ylabel("RSS (MiB)")
    twin = ax2.twinx()
    twin.plot(xs, [s["entries"] for s in st["samples"]], "s--", color="C1",
              label=f"C++ cache entries (capacity {st['cache_capacity']})")
    twin.set_ylabel("cache entries")
    twin.set_ylim(0, st["cache_capacity"] * 1.5)
    ax2.set_title("Distinct structures")
    ax2.legend(loc="upper left")
    twin.legend(loc="lower right")
    common.save_figure(fig, "memory", quick)


def run(quick: bool) -> dict[str, Any]:
    import jax

    jax.config.update("jax_enable_x64", True)
    load_start = common.load()
    n_structures = 500 if quick else 10_000
    n_calls = 10_000 if quick else 100_000
    n_eager = 2_000 if quick else 10_000
    result = {"structures": phase_structures(n_structures),
              "calls": {"jit": phase_calls(n_calls, eager=False),
                        "eager": phase_calls(n_eager, eager=True)},
              "growth_limit_mib": GROWTH_LIMIT_MIB}
    result["ok"] = bool(result["structures"]["ok"] and result["calls"]["jit"]["ok"]
                        and result["calls"]["eager"]["ok"])
    common.finish("memory", quick, result, load_start, plot=lambda: plot(result, quick))
    st, cj, ce = result["structures"], result["calls"]["jit"], result["calls"]["eager"]
    print(f"structures: {st['structures']} distinct in {st['seconds']:.0f} s; C++ cache entries "
          f"max {st['max_entries']} (capacity {st['cache_capacity']}), RSS after clearing JAX "
          f"caches {st['rss_mib_after_clear'][0]:.0f} -> {st['rss_mib_after_clear'][-1]:.0f} MiB; "
          f"JAX keeps {st['jax_cache_mib_per_structure']:.2f} MiB per structure until cleared")
    for name, c in (("jit/vmap", cj), ("eager", ce)):
        print(f"calls ({name}): {c['calls']} in {c['seconds']:.1f} s ({c['us_per_call']:.0f} us), "
              f"RSS {c['rss_mib'][0]:.0f} -> {c['rss_mib'][-1]:.0f} MiB, slope "
              f"{c['bytes_per_call']:.3f} B/call = {c['growth_mib']:.3f} MiB after warm-up")
    print("OK" if result["ok"] else "FAILED")
    return result


if __name__ == "__main__":
    common.cli(run, "small sizes (about a minute)", failed=lambda result: not result["ok"])
