"""The single-process assertions, checked in this process against known answers."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasic_testkit import (
    assert_allclose_across_processes,
    assert_jit_matches_eager,
    assert_serializable,
    assert_vmap_matches_loop,
    barrier,
)
from phasic_testkit.report import describe_exit, trim_stack


def scale(x, k):
    return x * k


def _with_wrong_batching():
    """A function whose vmap rule is wrong, as an FFI call with a bad vmap_method is."""

    @jax.custom_batching.custom_vmap
    def f(x):
        return jnp.sin(x)

    @f.def_vmap
    def rule(axis_size, in_batched, x):
        return jnp.sin(x[::-1]), in_batched[0]  # batch elements in the wrong order

    return f


def test_vmap_matches_loop_passes_for_a_correct_function():
    assert_vmap_matches_loop(lambda t, x: jnp.exp(-t * x), jnp.linspace(0.1, 1, 5),
                             jnp.linspace(0, 2, 5))
    # an unbatched argument (in_axes None) and a batch along axis 1
    assert_vmap_matches_loop(lambda a, b: a @ b, jnp.ones((2, 3)), jnp.arange(12.0).reshape(3, 4),
                             in_axes=(None, 1))


def test_vmap_matches_loop_catches_a_wrong_batching_rule():
    f = _with_wrong_batching()
    with pytest.raises(AssertionError, match=r"vmap vs loop: output leaf 0 differs at 2 "
                                             r"position\(s\); first at index \(0,\)"):
        assert_vmap_matches_loop(f, jnp.array([0.1, 0.2, 0.3]))


def test_vmap_matches_loop_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least one argument"):
        assert_vmap_matches_loop(jnp.sin)
    with pytest.raises(ValueError, match="one common batch size"):
        assert_vmap_matches_loop(jnp.add, jnp.ones(2), jnp.ones(3))
    with pytest.raises(ValueError, match="in_axes has 1 entries for 2 arguments"):
        assert_vmap_matches_loop(jnp.add, jnp.ones(2), jnp.ones(2), in_axes=(0,))


def test_jit_matches_eager():
    assert_jit_matches_eager(lambda x: {"a": jnp.cumsum(x), "b": x.max()}, jnp.arange(4.0))

    def differs_under_tracing(x):
        # a Python-level branch on tracers: the jitted function takes the other path
        return x + (1.0 if isinstance(x, jax.core.Tracer) else 0.0)

    with pytest.raises(AssertionError, match="jit vs eager: output leaf 0 differs at 3"):
        assert_jit_matches_eager(differs_under_tracing, jnp.zeros(3))


def test_serializable_accepts_module_level_callables():
    assert_serializable(scale)
    assert_serializable(functools.partial(scale, k=2.0))
    assert_serializable({"f": scale, "theta": np.arange(3.0)})


class Holder:
    def __init__(self, fn):
        self.fn = fn


def test_serializable_names_closures_lambdas_and_captured_arrays():
    k = 3.0

    def closure(x):
        return x * k

    with pytest.raises(AssertionError, match=r"obj \(.*closure\) is a closure over \('k',\)"):
        assert_serializable(closure)
    with pytest.raises(AssertionError, match=r"<lambda>\) is not importable by name"):
        assert_serializable(lambda x: x)
    with pytest.raises(AssertionError,
                       match=r"obj.keywords\['k'\] is a captured jax.Array \(2,\)"):
        assert_serializable(functools.partial(scale, k=jnp.ones(2)))
    with pytest.raises(AssertionError, match=r"obj.fn \(.*closure\) is a closure"):
        assert_serializable(Holder(closure))
    with pytest.raises(AssertionError, match="plain pickle fails"):
        assert_serializable(Holder(closure))


def test_cross_process_assertions_need_jax_distributed():
    with pytest.raises(RuntimeError, match="jax.distributed is not initialized"):
        assert_allclose_across_processes(np.ones(2))
    with pytest.raises(ValueError, match="non-empty string name"):
        barrier("")
    with pytest.raises(ValueError, match="rtol and atol must be >= 0"):
        assert_allclose_across_processes(np.ones(2), rtol=-1.0)


def test_exit_descriptions():
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-9) == "killed by signal SIGKILL (exit code -9)"
    assert describe_exit(-11) == "killed by signal SIGSEGV (exit code -11)"


def test_trim_stack_keeps_the_test_frames_only():
    dump = (
        'Thread 0x1 (most recent call first):\n'
        '  File "/x/site-packages/phasic_testkit/_rank.py", line 83 in loop\n\n'
        'Current thread 0x2 (most recent call first):\n'
        '  File "/repo/test_a.py", line 7 in test_a\n'
        '  File "/x/site-packages/_pytest/python.py", line 166 in pytest_pyfunc_call\n'
        '  File "/x/site-packages/pluggy/_callers.py", line 121 in _multicall\n'
    )
    assert trim_stack(dump) == (
        'Current thread 0x2 (most recent call first):\n'
        '  File "/repo/test_a.py", line 7 in test_a\n'
        '  ... (pytest frames omitted)'
    )
