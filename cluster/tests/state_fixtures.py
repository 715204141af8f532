"""Fixtures shared by the cluster's safety tests: a scratch state directory and a victim.

Imported by ``cluster/tests/test_root_safety.py`` and ``tests/test_slurm_cluster_logic.py``.
"""

from __future__ import annotations

import os
import pathlib

import pytest


@pytest.fixture
def state(tmp_path: pathlib.Path) -> pathlib.Path:
    """A scratch state directory owned by this user, mode 755."""
    d = tmp_path / "state"
    d.mkdir()
    os.chmod(d, 0o755)  # whatever the umask
    return d


@pytest.fixture
def victim(tmp_path: pathlib.Path) -> pathlib.Path:
    """A directory outside the state with a file that a planted link would expose."""
    d = tmp_path / "victim"
    d.mkdir()
    (d / "precious.txt").write_text("keep me")
    return d
