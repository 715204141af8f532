"""Warm jitted FFI calls: the cost of a C++ structure-cache hit as the graph grows.

    python bench/warm_calls.py

The call carries only the structure's SHA-256 digest; the C++ cache finds the
compiled structure by it. This times a jitted `compute_moments_ffi` (2 moments) on
Kingman graphs whose JSON is 4 kB, 1.6 MB and 15 MB: 7 rounds of 300 calls, the
minimum and median time per call, and how many of those calls missed the cache.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

import phasic  # noqa: E402
from phasic import models  # noqa: E402

ROUNDS, CALLS = 7, 300


def main() -> None:
    theta = jnp.array([1.0])
    for n in (10, 30, 40):
        text = models.kingman(n).to_json()
        f = jax.jit(lambda th, text=text: phasic.compute_moments_ffi(text, th, 2))
        f(theta).block_until_ready()
        misses = phasic.cache_stats()["misses"]
        per_call = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            for _ in range(CALLS):
                f(theta).block_until_ready()
            per_call.append((time.perf_counter() - start) / CALLS)
        per_call.sort()
        misses = phasic.cache_stats()["misses"] - misses
        print(f"kingman({n}), JSON {len(text) / 1e6:.2f} MB: min {per_call[0] * 1e6:.1f} us, "
              f"median {per_call[ROUNDS // 2] * 1e6:.1f} us per warm call, "
              f"{misses} cache misses in {ROUNDS * CALLS} calls")


if __name__ == "__main__":
    main()
