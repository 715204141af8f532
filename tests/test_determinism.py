"""Bit-identical results whatever the threads, devices or process layout.

One "panel" of results — PDF, moments (k = 3), their exact Jacobians in theta
(jacfwd through the custom_jvp) and the gradient of a log-likelihood — is computed
for an acyclic model (Kingman, n = 12) and a cyclic one (two islands, n = 6), for
48 fixed thetas, in several set-ups:

- one process, one CPU device, with ``OMP_NUM_THREADS`` 2 (the baseline) and 1,
  and the C++ batch loop set to 1 and to 2 OpenMP threads
  (``phasic._core.set_num_threads``); the batch of 48 is far above the kernels'
  parallel threshold of 2e4 work units, so two threads really split it;
- one process with 8 CPU devices (the batch sharded with shard_map);
- 2 processes x 4 devices and 4 processes x 2 devices under ``phasic-launch``
  (a global mesh across the processes, results all-gathered).

The device count is fixed when JAX's backend starts, so each set-up is its own
process: this file runs itself as a script (``python tests/test_determinism.py
OUT.npz``) and the tests compare the saved arrays byte for byte. The batch kernel
computes each theta independently, so the work split must not change a single
bit; a non-zero tolerance here would hide a reduction whose order depends on the
split. The panel is also checked once against the independent dense reference,
so that "identical" cannot mean "identically wrong".
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve()
ROOT = HERE.parents[1]
TIMES = np.array([0.05, 0.2, 0.5, 1.0, 2.0, 4.0])
BATCH = 48  # a multiple of 8 devices (and of 2x4, 4x2)
NR_MOMENTS = 3
RUN_TIMEOUT = 150  # seconds for one set-up (4 JAX processes on 2 cores take ~15 s)


# ---- the worker (runs in a fresh process) ---------------------------------------------


def _models() -> dict[str, tuple[str, np.ndarray]]:
    from phasic import models

    rng = np.random.default_rng(2024)
    return {
        "kingman12": (models.kingman(12).to_json(), rng.uniform(0.5, 2.0, (BATCH, 1))),
        "island6": (models.two_island(6).to_json(), rng.uniform(0.5, 2.0, (BATCH, 2))),
    }


def _per_theta(js: str):
    """The function of one theta whose outputs make up the panel."""
    import jax
    import jax.numpy as jnp

    from phasic import compute_log_pmf_ffi, compute_moments_ffi, compute_pmf_ffi

    t = jnp.asarray(TIMES)

    def one(th):
        return {
            "pdf": compute_pmf_ffi(js, th, t),
            "moments": compute_moments_ffi(js, th, NR_MOMENTS),
            "pdf_jac": jax.jacfwd(lambda x: compute_pmf_ffi(js, x, t))(th),
            "moments_jac": jax.jacfwd(lambda x: compute_moments_ffi(js, x, NR_MOMENTS))(th),
            "loglik_grad": jax.grad(lambda x: jnp.sum(compute_log_pmf_ffi(js, x, t)))(th),
        }

    return one


def compute_panel(sharded: bool) -> dict[str, np.ndarray]:
    """Every panel entry for every model, as full (BATCH, ...) host arrays.

    `sharded`: split the batch over all global devices with shard_map (gathered back
    to every process); otherwise one jitted vmap on the default device.
    """
    import jax
    from jax.experimental import multihost_utils
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    out: dict[str, np.ndarray] = {}
    for name, (js, thetas) in _models().items():
        f = jax.vmap(_per_theta(js))
        if sharded:
            mesh = Mesh(np.array(jax.devices()), ("b",))
            sharding = NamedSharding(mesh, P("b"))
            x = jax.make_array_from_callback(thetas.shape, sharding, lambda idx, th=thetas: th[idx])
            g = jax.jit(jax.shard_map(f, mesh=mesh, in_specs=P("b"), out_specs=P("b")))
            res = g(x)
            if jax.process_count() > 1:
                res = multihost_utils.process_allgather(res, tiled=True)
        else:
            res = jax.jit(f)(jax.numpy.asarray(thetas))
        for key, value in res.items():
            out[f"{name}/{key}"] = np.asarray(value)
    return out


def worker(out_path: str, mode: str) -> None:
    """Compute the panel in this process's set-up and save it (rank 0 only).

    mode ``single``: one jitted vmap on one device, then again with the C++ batch
    loop on 1 and on 2 threads (``OUT.t1.npz``, ``OUT.t2.npz``); ``sharded``:
    shard_map over every global device.
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    import phasic

    if "PHASIC_COORDINATOR" in os.environ:  # a phasic-launch rank: join the others
        phasic.init_parallel(timeout=60)
    else:
        phasic.set_cpu_devices(int(os.environ.get("PHASIC_CPUS", "1")))
    runs = {out_path: None}
    if mode == "single":
        runs.update({out_path.replace(".npz", f".t{n}.npz"): n for n in (1, 2)})
    for path, threads in runs.items():
        if threads is not None:
            from phasic._ext import core

            core().set_num_threads(threads)
        panel = compute_panel(sharded=mode == "sharded")
        panel["meta/devices"] = np.array([jax.device_count(), jax.process_count()])
        if jax.process_index() == 0:
            np.savez(path, **panel)


# ---- the tests -------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    drop = ("SLURM_", "PHASIC_", "PTDALG_", "XLA_FLAGS", "OMP_NUM_THREADS", "JAX_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", **extra)
    return env


def _load(path: pathlib.Path, devices: int, nprocs: int) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        panel = dict(data)
    assert tuple(panel.pop("meta/devices")) == (nprocs * devices, nprocs), path
    return panel


def _run(tmp: pathlib.Path, name: str, mode: str, *, nprocs: int = 1, devices: int = 1,
         omp: str | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Run the worker in a fresh process (or `nprocs` ranks via phasic-launch).

    Returns {"": panel} plus, for mode ``single``, {"t1": ..., "t2": ...}.
    """
    out = tmp / f"{name}.npz"
    cmd = [sys.executable, str(HERE), str(out), mode]
    extra = {"OMP_NUM_THREADS": omp} if omp else {}
    if nprocs > 1:
        cmd = [sys.executable, "-m", "phasic_distributed.launch", "-n", str(nprocs),
               "--devices-per-process", str(devices), "--timeout", str(RUN_TIMEOUT - 10),
               "--", *cmd]
    else:
        extra["PHASIC_CPUS"] = str(devices)
    start = time.monotonic()
    r = subprocess.run(cmd, env=_env(**extra), cwd=ROOT, capture_output=True, text=True,
                       timeout=RUN_TIMEOUT)
    assert r.returncode == 0, f"{name} failed after {time.monotonic() - start:.1f} s:\n" \
        f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    found = {"": _load(out, devices, nprocs)}
    if mode == "single":
        for t in ("t1", "t2"):
            found[t] = _load(tmp / f"{name}.{t}.npz", devices, nprocs)
    return found


@pytest.fixture(scope="module")
def panels(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """Every set-up's panel, computed once for the module (each set-up is a process)."""
    tmp = tmp_path_factory.mktemp("determinism")
    # the baseline process has OMP_NUM_THREADS=2 and also runs on set_num_threads(1), (2)
    base = _run(tmp, "single", "single", omp="2")
    return {
        "1 device": base[""],
        "set_num_threads(1)": base["t1"],
        "set_num_threads(2)": base["t2"],
        "OMP_NUM_THREADS=1": _run(tmp, "omp1", "single", omp="1")[""],
        "1x8": _run(tmp, "p1x8", "sharded", devices=8)[""],
        "2x4": _run(tmp, "p2x4", "sharded", nprocs=2, devices=4)[""],
        "4x2": _run(tmp, "p4x2", "sharded", nprocs=4, devices=2)[""],
    }


def _assert_bit_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray], what: str) -> None:
    assert sorted(a) == sorted(b), what
    different = []
    for key in sorted(a):
        x, y = a[key], b[key]
        assert x.shape == y.shape and x.dtype == y.dtype == np.float64, (what, key)
        if x.tobytes() != y.tobytes():
            bad = int(np.sum(x.view(np.int64) != y.view(np.int64)))
            worst = float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-300)))
            different.append(f"{key}: {bad} of {x.size} values differ (max rel {worst:.1e})")
    assert not different, f"{what} not bit-identical:\n" + "\n".join(different)


def test_panel_is_correct_and_non_trivial(panels) -> None:
    """The shared baseline agrees with the dense reference (and has no NaN or zeros)."""
    sys.path.insert(0, str(ROOT / "packages" / "phasic-core" / "tests"))
    import core_reference as reference

    base = panels["1 device"]
    for name, (js, thetas) in _models().items():
        assert np.all(np.isfinite(base[f"{name}/pdf"])) and np.all(base[f"{name}/pdf"] > 0)
        assert np.all(base[f"{name}/moments_jac"] != 0)
        for i in (0, BATCH // 2, BATCH - 1):  # three thetas are enough: all share one kernel
            np.testing.assert_allclose(base[f"{name}/pdf"][i],
                                       reference.pdf(js, thetas[i], TIMES), rtol=1e-8)
            np.testing.assert_allclose(base[f"{name}/moments"][i],
                                       reference.moments(js, thetas[i], NR_MOMENTS), rtol=1e-10)


@pytest.mark.parametrize("setup", ["set_num_threads(1)", "set_num_threads(2)",
                                   "OMP_NUM_THREADS=1"])
def test_threads_do_not_change_a_bit(panels, setup) -> None:
    _assert_bit_identical(panels[setup], panels["1 device"], f"{setup} vs the default")


@pytest.mark.parametrize("layout", ["1x8", "2x4", "4x2"])
def test_devices_and_process_layouts_do_not_change_a_bit(panels, layout) -> None:
    _assert_bit_identical(panels[layout], panels["1 device"], f"{layout} vs 1 process x 1 device")


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2])
