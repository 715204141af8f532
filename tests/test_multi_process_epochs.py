"""An epoch model's log-likelihood and its gradients across devices and processes.

The model: the Kingman coalescent of 5 lineages with a size history of three epochs
(theta of shape (3, 1): the pair-coalescence rate in each epoch; breakpoints tau of
shape (2,)), and the two-island coalescent (cyclic) with two epochs (theta (2, 2)).
A batch of 21 (theta, tau) pairs, padded to 24, is sharded over all global devices
and each device evaluates ``jax.value_and_grad(phasic.loglik)`` in theta and tau
(both traced) for its own pairs inside ``jax.shard_map`` (its default checks of
which values vary over the mesh axis are on: reverse mode through the epoch
composition must keep them right).

Layouts: 1 process x 8 CPU devices (tests/conftest.py), 2 x 4 and 4 x 2
(phasic-testkit's ``multiprocess`` marker spawns the ranks and joins them with
jax.distributed). In every layout

- every device gets 3 of the 24 padded pairs, and the gathered values and
  gradients are bit-identical to one device run shard by shard (3 pairs a call) and
  on every process (assert_equal_across_processes), so the three layouts give the
  same bits; against the whole batch in one call they agree to 1e-13 (the same
  kernels per pair, but XLA may order batched sums differently for another batch
  size: measured 2e-14);
- the values match the dense piecewise-expm reference (tests/epoch_reference.py):
  each log-density within 1e-8 (the PDF acceptance bar, 1e-8 relative, is 1e-8
  absolute in the log), so the sum of 30 within 30e-8;
- the gradients in theta and tau match central finite differences of that
  reference to 1e-6 relative (its error is ~1e-9; see fd_gradient).
"""

from __future__ import annotations

import functools
import pathlib
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import phasic
from phasic import models
from phasic.auto_parallel import in_multi_process_step

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import epoch_reference as ref  # noqa: E402

BATCH = 21
LOG_ATOL = 1e-8  # per observation; see the module docstring
GRAD_RTOL = 1e-6
BATCH_RTOL = 1e-13
FD_PAIRS = (0, 20)  # finite differences cost ~20 reference calls: two pairs per model

RNG = np.random.default_rng(11)
TIMES = np.sort(RNG.gamma(2.0, 0.6, 30))  # positive, spread over all epochs


def kingman_case() -> tuple[str, np.ndarray, np.ndarray]:
    """Kingman(5), three epochs: per-pair rates around (1, 1/3, 2), breakpoints ~(0.3, 0.9)."""
    rng = np.random.default_rng(5)
    base = np.array([[1.0], [1.0 / 3.0], [2.0]])
    thetas = base[None] * rng.uniform(0.7, 1.4, (BATCH, 3, 1))
    taus = np.stack([0.3 * rng.uniform(0.8, 1.2, BATCH), 0.9 * rng.uniform(0.8, 1.2, BATCH)], 1)
    return models.kingman(5).to_json(), thetas, taus


def island_case() -> tuple[str, np.ndarray, np.ndarray]:
    """Two islands, 3 lineages, two epochs (migration rate changes), breakpoint ~0.5."""
    rng = np.random.default_rng(6)
    base = np.array([[1.0, 0.5], [1.0, 2.0]])
    thetas = base[None] * rng.uniform(0.7, 1.4, (BATCH, 2, 2))
    taus = 0.5 * rng.uniform(0.8, 1.2, (BATCH, 1))
    return models.two_island(3).to_json(), thetas, taus


CASES: dict[str, Callable[[], tuple[str, np.ndarray, np.ndarray]]] = {
    "kingman5-3epochs": kingman_case, "island3-2epochs": island_case,
}


@functools.lru_cache(maxsize=8)
def value_and_grads(js: str) -> Callable:
    """(theta, tau) -> (loglik, d/dtheta, d/dtau) of one pair: exact, from the kernels."""
    data = jnp.asarray(TIMES)

    def f(theta, tau):
        return phasic.loglik(js, theta, data, epochs=tau)

    def one(theta, tau):
        value, (g_theta, g_tau) = jax.value_and_grad(f, argnums=(0, 1))(theta, tau)
        return value, g_theta, g_tau

    return jax.vmap(one)


@functools.lru_cache(maxsize=8)
def jitted(js: str) -> Callable:
    """value_and_grads compiled once per structure (per batch shape)."""
    return jax.jit(value_and_grads(js))


def pad(x: np.ndarray, n: int) -> np.ndarray:
    """Pad the batch to n with copies of its last pair (a valid point)."""
    return np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)])


def sharded(js: str, thetas: np.ndarray, taus: np.ndarray) -> tuple[np.ndarray, ...]:
    """The batch sharded over every global device; all results on this host."""
    from jax.experimental import multihost_utils

    devices = jax.devices()
    n_pad = -(-BATCH // len(devices)) * len(devices)
    mesh = Mesh(np.array(devices), ("b",))
    spec = NamedSharding(mesh, P("b"))
    fn = jax.jit(jax.shard_map(value_and_grads(js), mesh=mesh, in_specs=(P("b"), P("b")),
                               out_specs=(P("b"), P("b"), P("b"))))

    def place(host: np.ndarray) -> jax.Array:
        host = pad(host, n_pad)
        return jax.make_array_from_callback(host.shape, spec, lambda idx: host[idx])

    out = fn(place(thetas), place(taus))
    # each device ran its own shard only
    assert {s.data.shape[0] for s in out[0].addressable_shards} == {n_pad // len(devices)}
    gathered = [np.asarray(multihost_utils.process_allgather(o, tiled=True)) for o in out]
    return tuple(g[:BATCH] for g in gathered)


def one_device(js: str, thetas: np.ndarray, taus: np.ndarray,
               chunk: int | None = None) -> tuple[np.ndarray, ...]:
    """The same vmap on this process's first device: the whole batch in one call, or
    in consecutive calls of `chunk` pairs (the shard each device gets)."""
    dev = jax.local_devices()[0]
    fn = jitted(js)
    chunk = chunk or len(thetas)
    n_pad = -(-len(thetas) // chunk) * chunk
    th, ta = pad(thetas, n_pad), pad(taus, n_pad)
    parts = [fn(jax.device_put(th[i:i + chunk], dev), jax.device_put(ta[i:i + chunk], dev))
             for i in range(0, n_pad, chunk)]
    return tuple(np.concatenate([np.asarray(p[k]) for p in parts])[:len(thetas)]
                 for k in range(3))


def check_case(name: str) -> None:
    js, thetas, taus = CASES[name]()
    values, g_theta, g_tau = sharded(js, thetas, taus)
    assert values.shape == (BATCH,) and g_theta.shape == thetas.shape
    assert g_tau.shape == taus.shape

    # layout independence: every layout gives each device 3 of the 24 padded pairs, and
    # the sharded results are bit for bit those of one device run shard by shard...
    shard = -(-BATCH // jax.device_count())
    for got, want in zip((values, g_theta, g_tau), one_device(js, thetas, taus, shard),
                         strict=True):
        np.testing.assert_array_equal(got, want, err_msg=f"{name}: sharded vs shard by shard")
    # ...and within 1e-13 of the whole batch in one call (same kernels per pair; XLA may
    # order the batched sums differently for another batch size: measured 2e-14)
    for got, want in zip((values, g_theta, g_tau), one_device(js, thetas, taus), strict=True):
        np.testing.assert_allclose(got, want, rtol=BATCH_RTOL, atol=0,
                                   err_msg=f"{name}: sharded vs one batch")
    if jax.process_count() > 1:
        from phasic_testkit import assert_equal_across_processes

        assert_equal_across_processes(np.concatenate([values, g_theta.ravel(), g_tau.ravel()]))

    # exactness: the dense piecewise-expm reference and its finite differences
    expect = np.array([ref.loglik(js, th, ta, TIMES) for th, ta in zip(thetas, taus, strict=True)])
    np.testing.assert_allclose(values, expect, rtol=0, atol=LOG_ATOL * TIMES.size,
                               err_msg=f"{name}: loglik vs dense reference")
    for i in FD_PAIRS:
        fd_theta, fd_tau = ref.fd_gradient(js, thetas[i], taus[i], TIMES)
        np.testing.assert_allclose(g_theta[i], fd_theta, rtol=GRAD_RTOL,
                                   err_msg=f"{name}, pair {i}: d/dtheta vs finite differences")
        np.testing.assert_allclose(g_tau[i], fd_tau, rtol=GRAD_RTOL,
                                   err_msg=f"{name}, pair {i}: d/dtau vs finite differences")


# ---- one process, 8 CPU devices ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_process_eight_devices(device_setup, name: str) -> None:
    _, error = device_setup
    assert error is None, error
    if in_multi_process_step():
        pytest.skip("a scheduler's ranks set their own devices; the SLURM suite covers them")
    assert jax.device_count() == 8 and jax.process_count() == 1
    check_case(name)


def test_reference_is_self_consistent() -> None:
    """The reference itself: equal epochs give the one-epoch density, and n = 2 its closed form."""
    js, thetas, _ = kingman_case()
    flat = np.repeat(thetas[0][:1], 3, axis=0)  # the same rate in all three epochs
    np.testing.assert_allclose(ref.pdf(js, flat, [0.3, 0.9], TIMES),
                               ref.core_reference.pdf(js, flat[0], TIMES), rtol=1e-12)
    # one pair of lineages: rate r0 before tau, r1 after
    r0, r1, tau = 1.3, 0.4, 0.5
    t = TIMES
    closed = np.where(t < tau, r0 * np.exp(-r0 * t), r1 * np.exp(-r0 * tau - r1 * (t - tau)))
    got = ref.pdf(models.kingman(2).to_json(), [[r0], [r1]], [tau], t)
    np.testing.assert_allclose(got, closed, rtol=1e-12)


# ---- several processes ---------------------------------------------------------------


def check_layout(nprocs: int, local: int) -> None:
    assert jax.process_count() == nprocs, (
        f"expected {nprocs} processes joined by jax.distributed, got {jax.process_count()}: "
        "run these tests with the phasic-testkit plugin active (pip install -e "
        "packages/phasic-testkit) or under srun"
    )
    assert jax.local_device_count() == local and jax.device_count() == nprocs * local
    for name in sorted(CASES):
        check_case(name)


@pytest.mark.multiprocess(nprocs=2, devices_per_process=4, timeout=180)
def test_two_processes_four_devices() -> None:
    check_layout(2, 4)


@pytest.mark.multiprocess(nprocs=4, devices_per_process=2, timeout=180)
def test_four_processes_two_devices() -> None:
    check_layout(4, 2)
