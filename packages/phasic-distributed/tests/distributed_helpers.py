"""Test helpers for phasic-distributed (a unique module name: several packages have tests/)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

#: Variables that would change what plan() sees; removed from every child.
_SCRUB = ("SLURM", "PHASIC_", "PTDALG_", "OMP_NUM_THREADS", "XLA_FLAGS", "JAX_")


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without SLURM/PHASIC/JAX variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env.update(extra)
    return env


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 60):
    """Run `code` in a fresh interpreter -> CompletedProcess (text, both streams)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=clean_env() if env is None else env,
        capture_output=True, text=True, timeout=timeout,
    )
