"""The one module that touches JAX's private parts: its answers, and a clear error when
jax changes them."""

from __future__ import annotations

import pytest

from phasic_distributed import JaxCompatibilityError
from phasic_distributed import _jax_compat as compat


def test_answers_in_a_fresh_process(run_python):
    r = run_python("""
        import phasic_distributed as pd
        print(pd.backend_started(), pd.distributed_client(), pd.distributed_process())
        import jax
        print(pd.backend_started())
        jax.numpy.ones(1).block_until_ready()
        print(pd.backend_started(), pd.distributed_client(), pd.distributed_process())
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["False None None", "False", "True None None"]


def test_a_jax_without_the_backend_probe_names_its_version(monkeypatch):
    import jax
    from jax._src import xla_bridge

    monkeypatch.delattr(xla_bridge, "backends_are_initialized")
    monkeypatch.delattr(xla_bridge, "_backends", raising=False)
    with pytest.raises(JaxCompatibilityError) as info:
        compat.backend_started()
    assert f"jax {jax.__version__} has no xla_bridge.backends_are_initialized()" in str(info.value)
    assert "tested with jax 0.9.1 to 0.10.2" in str(info.value)


def test_a_jax_without_the_distributed_state_names_its_version(monkeypatch):
    import jax
    from jax._src import distributed

    monkeypatch.delattr(distributed, "global_state")
    with pytest.raises(JaxCompatibilityError, match=f"jax {jax.__version__} has no "
                       "jax._src.distributed.global_state"):
        compat.distributed_client()
