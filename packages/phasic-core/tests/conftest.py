"""Shared set-up for phasic-core's tests: float64 on, and the tests folder importable."""

from __future__ import annotations

import pathlib
import sys

import jax

# The FFI functions compute in float64 and refuse float32; every test here uses x64.
# (The x64-off error is tested in a subprocess, test_bad_inputs.py.)
jax.config.update("jax_enable_x64", True)

sys.path.insert(0, str(pathlib.Path(__file__).parent))
