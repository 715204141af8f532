"""`phasic.ffi_wrappers`: upstream's names and argument order, bit-for-bit our FFI functions.

Each wrapper is compared with the `phasic.ffi` call it delegates to, eagerly and
under jit, vmap and grad, with `assert_array_equal` (no tolerance): both run the same
kernel on the same inputs. Arguments are passed positionally in upstream's order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasic import ffi, ffi_wrappers

TIMES = jnp.array([0.05, 0.4, 1.0, 2.5])
JUMPS = jnp.array([1.0, 2.0, 3.0, 5.0])
THETAS = jnp.asarray(np.random.default_rng(3).uniform(0.5, 2.0, (3, 2)))


def same(a, b) -> None:
    """Bit-for-bit equality of two results (arrays or tuples of arrays)."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_module_lists_upstreams_public_names() -> None:
    assert set(ffi_wrappers.__all__) == {
        "compute_pmf_ffi", "compute_moments_ffi", "compute_pmf_and_moments_ffi",
        "compute_pmf_multivariate_ffi", "compute_sojourn_times_ffi",
        "sample_path_conditioned_ffi", "backward_probabilities_ffi",
        "compute_reward_visit_probability_ffi", "compute_daisy_chain_joint_probs_ffi",
        "compute_daisy_chain_sojourn_ffi",
    }
    for name in ffi_wrappers.__all__:
        assert callable(getattr(ffi_wrappers, name))


def test_pmf_positional_eager_jit_vmap_grad(island) -> None:
    js, _ = island
    theta = THETAS[0]
    # upstream order: structure_json, theta, times, discrete, granularity
    same(ffi_wrappers.compute_pmf_ffi(js, theta, TIMES, False, 100),
         ffi.compute_pmf_ffi(js, theta, TIMES, False))
    same(jax.jit(lambda th: ffi_wrappers.compute_pmf_ffi(js, th, TIMES, False, 0))(theta),
         jax.jit(lambda th: ffi.compute_pmf_ffi(js, th, TIMES, False))(theta))
    same(jax.vmap(lambda th: ffi_wrappers.compute_pmf_ffi(js, th, TIMES))(THETAS),
         jax.vmap(lambda th: ffi.compute_pmf_ffi(js, th, TIMES))(THETAS))
    same(jax.grad(lambda th: ffi_wrappers.compute_pmf_ffi(js, th, TIMES).sum())(theta),
         jax.grad(lambda th: ffi.compute_pmf_ffi(js, th, TIMES).sum())(theta))


def test_pmf_jit_with_upstreams_static_argnums(island) -> None:
    js, _ = island
    wrapped = jax.jit(ffi_wrappers.compute_pmf_ffi, static_argnums=(0, 3, 4))
    same(wrapped(js, THETAS[1], TIMES, False, 100), ffi.compute_pmf_ffi(js, THETAS[1], TIMES))


def test_discrete_pmf_positional(discrete_case) -> None:
    js, _, theta = discrete_case
    same(ffi_wrappers.compute_pmf_ffi(js, theta, JUMPS, True, 7),
         ffi.compute_pmf_ffi(js, theta, JUMPS, True))
    same(jax.grad(lambda th: ffi_wrappers.compute_pmf_ffi(js, th, JUMPS, True).sum())(theta),
         jax.grad(lambda th: ffi.compute_pmf_ffi(js, th, JUMPS, True).sum())(theta))


def test_moments_positional_eager_jit_vmap_grad(island) -> None:
    js, _ = island
    theta = THETAS[0]
    same(ffi_wrappers.compute_moments_ffi(js, theta, 3), ffi.compute_moments_ffi(js, theta, 3))
    same(jax.jit(ffi_wrappers.compute_moments_ffi, static_argnums=(0, 2))(js, theta, 2),
         ffi.compute_moments_ffi(js, theta, 2))
    same(jax.vmap(lambda th: ffi_wrappers.compute_moments_ffi(js, th, 3))(THETAS),
         jax.vmap(lambda th: ffi.compute_moments_ffi(js, th, 3))(THETAS))
    same(jax.grad(lambda th: ffi_wrappers.compute_moments_ffi(js, th, 2)[1])(theta),
         jax.grad(lambda th: ffi.compute_moments_ffi(js, th, 2)[1])(theta))


def test_pmf_and_moments_positional_eager_jit_vmap_grad(island) -> None:
    js, g = island
    theta = THETAS[2]
    r = jnp.asarray(np.random.default_rng(5).uniform(0.0, 2.0, g.vertices_length()))
    # upstream order: structure_json, theta, times, nr_moments, discrete, granularity, rewards
    same(ffi_wrappers.compute_pmf_and_moments_ffi(js, theta, TIMES, 3, False, 100, r),
         ffi.compute_pmf_and_moments_ffi(js, theta, TIMES, 3, False, r))
    same(ffi_wrappers.compute_pmf_and_moments_ffi(js, theta, TIMES, 2),
         ffi.compute_pmf_and_moments_ffi(js, theta, TIMES, 2))
    same(jax.jit(ffi_wrappers.compute_pmf_and_moments_ffi, static_argnums=(0, 3, 4, 5))(
            js, theta, TIMES, 2, False, 0, r),
         ffi.compute_pmf_and_moments_ffi(js, theta, TIMES, 2, False, r))
    same(jax.vmap(lambda th: ffi_wrappers.compute_pmf_and_moments_ffi(
            js, th, TIMES, 2, False, 0, r))(THETAS),
         jax.vmap(lambda th: ffi.compute_pmf_and_moments_ffi(js, th, TIMES, 2, False, r))(THETAS))

    def loss(fn, *extra):
        def f(th):
            pmf, mom = fn(js, th, TIMES, 2, False, *extra)
            return pmf.sum() + mom[1]
        return jax.grad(f)(theta)

    same(loss(ffi_wrappers.compute_pmf_and_moments_ffi, 0, r),
         loss(ffi.compute_pmf_and_moments_ffi, r))


@pytest.mark.parametrize("bad", [1.5, "100", None, True, jnp.int32(4)])
def test_bad_granularity_type_is_a_clear_type_error(island, bad) -> None:
    js, _ = island
    with pytest.raises(TypeError, match="granularity must be a Python int .* no effect"):
        ffi_wrappers.compute_pmf_ffi(js, THETAS[0], TIMES, False, bad)
    with pytest.raises(TypeError, match="granularity must be a Python int"):
        ffi_wrappers.compute_pmf_and_moments_ffi(js, THETAS[0], TIMES, 2, False, bad)


def test_negative_granularity_is_a_clear_value_error(island) -> None:
    js, _ = island
    with pytest.raises(ValueError, match=r"granularity must be >= 0, got -1"):
        ffi_wrappers.compute_pmf_ffi(js, THETAS[0], TIMES, False, -1)


def test_numpy_integer_granularity_is_accepted(island) -> None:
    js, _ = island
    same(ffi_wrappers.compute_pmf_ffi(js, THETAS[0], TIMES, False, np.int64(50)),
         ffi.compute_pmf_ffi(js, THETAS[0], TIMES))


def test_two_dimensional_rewards_are_not_implemented(island) -> None:
    js, g = island
    r2 = jnp.ones((g.vertices_length(), 2))
    with pytest.raises(NotImplementedError, match="2-D rewards .* one reward vector at a time"):
        ffi_wrappers.compute_pmf_and_moments_ffi(js, THETAS[0], TIMES, 2, False, 0, r2)


def test_errors_of_our_ffi_pass_through(island) -> None:
    js, _ = island
    with pytest.raises(ValueError, match="discrete=True but the structure is a continuous"):
        ffi_wrappers.compute_pmf_ffi(js, THETAS[0], TIMES, True)


MISSING = [
    ("compute_sojourn_times_ffi", ("s", None, None), "sojourn"),
    ("sample_path_conditioned_ffi", ("s", None, None, None, 4), "path sampler"),
    ("backward_probabilities_ffi", ("s", None, None, 3), "backward-probability"),
    ("compute_reward_visit_probability_ffi", ("s", None, None, None), "visit-probability"),
    ("compute_daisy_chain_joint_probs_ffi", ("s", None, None), "daisy-chain"),
    ("compute_daisy_chain_sojourn_ffi", ("s", "s", None, None), "daisy-chain"),
]


@pytest.mark.parametrize(("name", "args", "what"), MISSING)
def test_unmatched_upstream_functions_say_what_is_missing(name, args, what) -> None:
    with pytest.raises(NotImplementedError, match=rf"ffi_wrappers\.{name} is not implemented.*{what}"):
        getattr(ffi_wrappers, name)(*args)
