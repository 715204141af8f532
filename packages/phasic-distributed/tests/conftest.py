"""Fixtures for the phasic-distributed tests (helpers live in distributed_helpers)."""

from __future__ import annotations

import pytest
from distributed_helpers import run_python as _run_python


@pytest.fixture
def run_python():
    """run_python(code, env=None, timeout=60) -> CompletedProcess (text, both streams)."""
    return _run_python
