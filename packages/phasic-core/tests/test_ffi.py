"""The three FFI functions under eager, jit, vmap (every batching mix) and jit(vmap).

Every batched result is compared with a Python loop of unbatched calls (bitwise
the same kernel per element, so 1e-13 relative allows only reordering noise), and
the unbatched calls with the dense reference (tolerances as in test_random_graphs).
"""

from __future__ import annotations

import re

import core_reference as reference
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phasic
from phasic import compute_moments_ffi, compute_pmf_and_moments_ffi, compute_pmf_ffi, models

LOOP_RTOL = 1e-13


@pytest.fixture(scope="module")
def kingman():
    g = models.kingman(6)
    return g.to_json(), g


def thetas_for(n: int, p: int, seed: int = 0) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).uniform(0.5, 2.0, (n, p)))


def count_calls(fn, *args) -> int:
    """Number of phasic custom calls in the lowered StableHLO of jit(fn)(*args)."""
    text = jax.jit(fn).lower(*args).as_text()
    return len(re.findall(r"custom_call @phasic_", text))


# -- eager and jit vs the reference -------------------------------------------------


def test_eager_pmf_matches_reference(island) -> None:
    js, g = island
    theta = jnp.array([1.0, 0.7])
    t = jnp.array([1e-3, 0.1, 1.0, 4.0])
    got = compute_pmf_ffi(js, theta, t)
    np.testing.assert_allclose(got, reference.pdf(js, theta, t), rtol=1e-8)
    np.testing.assert_allclose(got, g.pdf(np.asarray(t), theta=np.asarray(theta)), rtol=LOOP_RTOL)


def test_moments_and_rewards_match_reference(kingman) -> None:
    js, g = kingman
    theta = jnp.array([1.3])
    r = jnp.asarray(models.kingman_total_length_rewards(g))
    np.testing.assert_allclose(compute_moments_ffi(js, theta, 3),
                               reference.moments(js, theta, 3), rtol=1e-12)
    np.testing.assert_allclose(compute_moments_ffi(js, theta, 2, rewards=r),
                               reference.moments(js, theta, 2, r), rtol=1e-12)


def test_structure_as_graph_or_dict(kingman) -> None:
    import json

    js, g = kingman
    theta = jnp.array([1.0])
    a = compute_moments_ffi(js, theta, 2)
    np.testing.assert_array_equal(compute_moments_ffi(g, theta, 2), a)
    np.testing.assert_array_equal(compute_moments_ffi(json.loads(js), theta, 2), a)


def test_discrete_pmf(discrete_case) -> None:
    js, g, theta = discrete_case
    k = jnp.arange(0.0, 25.0)
    got = compute_pmf_ffi(js, jnp.asarray(theta), k, discrete=True)
    ref = reference.pmf(js, theta, np.arange(25))
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-15)


def test_times_shape_is_kept(island) -> None:
    js, _ = island
    theta = jnp.array([1.0, 0.7])
    t = jnp.linspace(0.1, 3.0, 12).reshape(3, 4)
    out = compute_pmf_ffi(js, theta, t)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out.reshape(-1), compute_pmf_ffi(js, theta, t.reshape(-1)),
                               rtol=0)
    scalar = compute_pmf_ffi(js, theta, jnp.float64(0.5))
    assert scalar.shape == ()


def test_pmf_and_moments_equals_separate_calls(island) -> None:
    js, _ = island
    theta = jnp.array([0.9, 1.4])
    t = jnp.array([0.2, 1.0])
    r = jnp.ones(island[1].vertices_length())
    pmf, mom = compute_pmf_and_moments_ffi(js, theta, t, 3, rewards=r)
    np.testing.assert_allclose(pmf, compute_pmf_ffi(js, theta, t), rtol=LOOP_RTOL)
    np.testing.assert_allclose(mom, compute_moments_ffi(js, theta, 3, rewards=r),
                               rtol=LOOP_RTOL)


def test_jit_equals_eager(island) -> None:
    js, _ = island
    theta = jnp.array([1.0, 0.7])
    t = jnp.array([0.3, 2.0])
    f = jax.jit(lambda th, tt: compute_pmf_and_moments_ffi(js, th, tt, 2))
    a, b = f(theta, t)
    np.testing.assert_allclose(a, compute_pmf_ffi(js, theta, t), rtol=LOOP_RTOL)
    np.testing.assert_allclose(b, compute_moments_ffi(js, theta, 2), rtol=LOOP_RTOL)


# -- vmap: every batching mix, one FFI call each -----------------------------------


def loop_pmf(js, thetas, times):
    return np.stack([np.asarray(compute_pmf_ffi(js, th, tt)) for th, tt in zip(thetas, times,
                                                                               strict=True)])


def test_vmap_over_theta(island) -> None:
    js, _ = island
    thetas = thetas_for(7, 2)
    t = jnp.array([0.1, 0.5, 2.0])
    f = jax.vmap(lambda th: compute_pmf_ffi(js, th, t))
    np.testing.assert_allclose(f(thetas), loop_pmf(js, thetas, [t] * 7), rtol=LOOP_RTOL)
    assert count_calls(f, thetas) == 1


def test_vmap_over_times_only(island) -> None:
    # the previous phasic returned zeros here
    js, _ = island
    theta = jnp.array([1.0, 0.7])
    times = jnp.linspace(0.05, 3.0, 15).reshape(5, 3)
    f = jax.vmap(lambda tt: compute_pmf_ffi(js, theta, tt))
    out = f(times)
    np.testing.assert_allclose(out, loop_pmf(js, [theta] * 5, times), rtol=LOOP_RTOL)
    assert np.all(np.asarray(out) > 0)
    assert count_calls(f, times) == 1


def test_vmap_over_both(island) -> None:
    js, _ = island
    thetas = thetas_for(4, 2, seed=1)
    times = jnp.linspace(0.05, 3.0, 8).reshape(4, 2)
    f = jax.vmap(lambda th, tt: compute_pmf_ffi(js, th, tt))
    np.testing.assert_allclose(f(thetas, times), loop_pmf(js, thetas, times), rtol=LOOP_RTOL)
    assert count_calls(f, thetas, times) == 1


def test_nested_vmap(island) -> None:
    js, _ = island
    thetas = thetas_for(3, 2, seed=2)
    times = jnp.linspace(0.05, 3.0, 10).reshape(5, 2)
    f = jax.vmap(jax.vmap(lambda th, tt: compute_pmf_ffi(js, th, tt), in_axes=(None, 0)),
                 in_axes=(0, None))
    out = f(thetas, times)
    assert out.shape == (3, 5, 2)
    for i in range(3):
        np.testing.assert_allclose(out[i], loop_pmf(js, [thetas[i]] * 5, times), rtol=LOOP_RTOL)
    assert count_calls(f, thetas, times) == 1


def test_in_axes_one_and_none(island) -> None:
    js, _ = island
    thetas_t = thetas_for(6, 2, seed=3).T  # (P, B): batch along axis 1
    t = jnp.array([0.4, 1.1, 2.5])
    f = jax.vmap(lambda th, tt: compute_pmf_ffi(js, th, tt), in_axes=(1, None))
    np.testing.assert_allclose(f(thetas_t, t), loop_pmf(js, thetas_t.T, [t] * 6),
                               rtol=LOOP_RTOL)
    times_t = jnp.linspace(0.1, 2.0, 8).reshape(2, 4)  # (T, B)
    theta = jnp.array([1.0, 0.7])
    g = jax.vmap(lambda th, tt: compute_pmf_ffi(js, th, tt), in_axes=(None, 1), out_axes=1)
    out = g(theta, times_t)
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out.T, loop_pmf(js, [theta] * 4, times_t.T), rtol=LOOP_RTOL)


def test_jit_of_vmap_moments_with_batched_rewards(island) -> None:
    js, g = island
    thetas = thetas_for(5, 2, seed=4)
    rewards = jnp.asarray(np.random.default_rng(9).uniform(0, 2, (5, g.vertices_length())))
    f = jax.jit(jax.vmap(lambda th, r: compute_moments_ffi(js, th, 3, rewards=r)))
    out = f(thetas, rewards)
    expect = np.stack([compute_moments_ffi(js, th, 3, rewards=r)
                       for th, r in zip(thetas, rewards, strict=True)])
    np.testing.assert_allclose(out, expect, rtol=LOOP_RTOL)
    for i in range(5):
        np.testing.assert_allclose(out[i], reference.moments(js, thetas[i], 3, rewards[i]),
                                   rtol=1e-9)
    assert count_calls(jax.vmap(lambda th, r: compute_moments_ffi(js, th, 3, rewards=r)),
                       thetas, rewards) == 1


def test_jit_vmap_pmf_and_moments(kingman) -> None:
    js, _ = kingman
    thetas = thetas_for(6, 1, seed=5)
    t = jnp.array([0.1, 1.0, 3.0])
    f = jax.jit(jax.vmap(lambda th: compute_pmf_and_moments_ffi(js, th, t, 2)))
    pmf, mom = f(thetas)
    assert pmf.shape == (6, 3) and mom.shape == (6, 2)
    for i in range(6):
        a, b = compute_pmf_and_moments_ffi(js, thetas[i], t, 2)
        np.testing.assert_allclose(pmf[i], a, rtol=LOOP_RTOL)
        np.testing.assert_allclose(mom[i], b, rtol=LOOP_RTOL)


# -- cache --------------------------------------------------------------------------


def test_cache_counters_prove_hits(island) -> None:
    js, _ = island
    phasic.cache_clear()
    before = phasic.cache_stats()
    f = jax.jit(lambda th: compute_moments_ffi(js, th, 2))
    for th in thetas_for(5, 2, seed=6):
        f(th).block_until_ready()
    after = phasic.cache_stats()
    # five calls on one thread: at most one parse per XLA thread, the rest hits
    assert after["hits"] - before["hits"] >= 3
    assert after["misses"] - before["misses"] <= 2
    assert after["entries"] >= 1


def test_cache_capacity_bounds_entries() -> None:
    stats = phasic.cache_stats()
    try:
        phasic.set_cache_capacity(2)
        phasic.cache_clear()
        for n in (3, 4, 5, 6, 7):
            compute_moments_ffi(models.kingman(n).to_json(), jnp.array([1.0]), 1)
        s = phasic.cache_stats()
        assert s["capacity"] == 2
        assert s["evictions"] - stats["evictions"] >= 3
    finally:
        phasic.set_cache_capacity(stats["capacity"])


# -- errors inside a batch ---------------------------------------------------------


def test_one_bad_theta_in_a_batch_names_the_index(island) -> None:
    js, _ = island
    thetas = np.array(thetas_for(8, 2, seed=7))
    thetas[5, 0] = -1.0  # a negative coalescence rate
    f = jax.vmap(lambda th: compute_moments_ffi(js, th, 2))
    with pytest.raises(Exception, match=r"(?i)batch.*\b5\b|\b5\b.*batch") as info:
        np.asarray(f(jnp.asarray(thetas)))
    assert "weight -" in str(info.value)  # names the offending edge weight
    # the process lives on and the good thetas still work
    good = np.delete(thetas, 5, axis=0)
    assert np.all(np.isfinite(np.asarray(f(jnp.asarray(good)))))


def test_nan_theta_in_a_jitted_batch(island) -> None:
    js, _ = island
    thetas = np.array(thetas_for(4, 2, seed=8))
    thetas[2, 1] = np.nan
    t = jnp.array([0.5])
    f = jax.jit(jax.vmap(lambda th: compute_pmf_ffi(js, th, t)))
    with pytest.raises(Exception, match=r"(?i)nan"):
        np.asarray(f(jnp.asarray(thetas)))


def test_vmap_over_rewards_only(island) -> None:
    js, g = island
    theta = jnp.array([1.1, 0.6])
    rewards = jnp.asarray(np.random.default_rng(11).uniform(0, 2, (4, g.vertices_length())))
    f = jax.vmap(lambda r: compute_moments_ffi(js, theta, 2, rewards=r))
    expect = np.stack([compute_moments_ffi(js, theta, 2, rewards=r) for r in rewards])
    np.testing.assert_allclose(f(rewards), expect, rtol=LOOP_RTOL)
    assert count_calls(f, rewards) == 1


def test_discrete_vmap_over_theta_and_steps(discrete_case) -> None:
    js, _, theta = discrete_case
    thetas = jnp.asarray(theta * np.linspace(0.9, 1.0, 5)[:, None])  # keeps sums <= 1
    steps = jnp.asarray(np.arange(15.0).reshape(5, 3))
    f = jax.jit(jax.vmap(lambda th, k: compute_pmf_ffi(js, th, k, discrete=True)))
    out = f(thetas, steps)
    for i in range(5):
        np.testing.assert_allclose(out[i], reference.pmf(js, thetas[i], np.asarray(steps[i])),
                                   rtol=1e-10, atol=1e-15)
