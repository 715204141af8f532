"""Shared set-up for phasic-core's tests: float64 on, the tests folder importable, and
the graphs that test_ffi.py and test_ffi_wrappers.py both run the FFI functions on."""

from __future__ import annotations

import pathlib
import sys

import jax
import pytest

# The FFI functions compute in float64 and refuse float32; every test here uses x64.
# (The x64-off error is tested in a subprocess, test_bad_inputs.py.)
jax.config.update("jax_enable_x64", True)

sys.path.insert(0, str(pathlib.Path(__file__).parent))


@pytest.fixture(scope="module")
def island():
    """A continuous two-island graph (2 parameters): its JSON and the Graph."""
    from phasic import models

    g = models.two_island(3)
    return g.to_json(), g


@pytest.fixture(scope="module")
def discrete_case():
    """A cyclic discrete random graph (2 parameters): its JSON, the Graph and a theta."""
    from core_graphs import random_graph

    case = random_graph(5, cyclic=True, discrete=True, n_states=9, n_params=2)
    return case.graph.to_json(), case.graph, case.theta
