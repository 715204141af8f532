"""One process with D CPU devices: a batch of thetas through shard_map, timed.

    python _sharding_worker.py DEVICES BATCH N

The device count is fixed when JAX's backend starts, so each count needs its own
process (bench/batching.py starts one per count). OpenMP threads per device are
cores // DEVICES (at least 1), as phasic-distributed would set them. Prints
`RESULT <json>` with the warm time and the largest difference from the same batch
computed on one device with a plain jit(vmap).
"""

from __future__ import annotations

import os
import sys

import jax

import phasic

DEVICES, BATCH, N = (int(x) for x in sys.argv[1:4])
phasic.set_cpu_devices(DEVICES)  # before the first JAX computation
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import emit, timeit  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from phasic import models  # noqa: E402
from phasic._ext import core  # noqa: E402


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    threads = max(1, cores // DEVICES)
    core().set_num_threads(threads)
    structure = models.kingman(N).to_json()
    times = jnp.linspace(0.1, 3.0, 6)
    padded = -(-BATCH // DEVICES) * DEVICES  # pad the batch to a multiple of the devices
    thetas = jnp.linspace(0.5, 2.0, padded)[:, None]
    per_device = jax.vmap(lambda th: phasic.compute_pmf_ffi(structure, th, times))
    mesh = Mesh(np.array(jax.devices()), ("b",))
    sharded = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=P("b"), out_specs=P("b")))
    placed = jax.device_put(thetas, NamedSharding(mesh, P("b")))
    seconds = timeit(lambda: sharded(placed).block_until_ready(), repeat=5)
    got = np.asarray(sharded(placed))
    one = np.asarray(jax.jit(per_device)(jax.device_put(thetas, jax.devices()[0])))
    emit({"devices": len(jax.devices()), "threads_per_device": threads, "cores": cores,
          "batch": padded, "n": N, "seconds": seconds,
          "shards": len(sharded(placed).addressable_shards),
          "max_abs_diff_vs_one_device": float(np.max(np.abs(got - one)))})


if __name__ == "__main__":
    main()
