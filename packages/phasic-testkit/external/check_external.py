"""Acceptance check: phasic-testkit used by a repository that knows nothing of phasic.

Run by `nox -s testkit-external` inside a fresh virtual environment in which only
phasic-distributed and phasic-testkit (and their dependencies) are installed. It
writes a small "other repository" with its own tests into a temporary directory,
runs pytest there (the plugin comes in through its entry point: no conftest), and
checks what the user would see:

- a passing multi-process test passes;
- rank 2 computing a different value fails, naming rank 2 and both values;
- rank 1 sleeping forever fails within its timeout, showing rank 1's stack;
- rank 3 calling os._exit(3) fails, naming rank 3 and its exit code.

Exits non-zero (printing pytest's output) if any check fails.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HANG_TIMEOUT = 10

OTHER_REPO_TEST = textwrap.dedent(f'''
    """Tests of a project that ships its own JAX code and uses phasic-testkit."""
    import os
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np
    import pytest
    from phasic_testkit import assert_allclose_across_processes, barrier


    def moments(theta):
        # the project's own code: moments of an exponential distribution, rate theta
        return jnp.stack([1.0 / theta, 2.0 / theta**2])


    @pytest.mark.multiprocess(nprocs=4, devices_per_process=1, timeout=120)
    def test_same_answer_everywhere(rank, nprocs):
        assert jax.process_count() == nprocs == 4
        theta = jnp.linspace(0.5, 2.0, 8)
        local = jax.vmap(moments)(theta)
        assert_allclose_across_processes(local, rtol=1e-6)
        barrier("after-moments", timeout=60)


    @pytest.mark.multiprocess(nprocs=4, timeout=120)
    def test_rank2_differs(rank):
        value = np.array([0.5, 0.25]) * (3.0 if rank == 2 else 1.0)
        assert_allclose_across_processes(value, rtol=1e-9)


    @pytest.mark.multiprocess(nprocs=2, timeout={HANG_TIMEOUT})
    def test_rank1_hangs(rank):
        if rank == 1:
            while True:
                time.sleep(0.2)  # SLEEPING-LINE


    @pytest.mark.multiprocess(nprocs=4, timeout=120)
    def test_rank3_exits(rank):
        if rank == 3:
            os._exit(3)
        barrier("never-complete", timeout=100)
''')


def section(output: str, name: str) -> str:
    """The failure text pytest printed for one test (its block under FAILURES)."""
    parts = re.split(r"^_{3,} (\S+) _{3,}$", output, flags=re.M)
    found = dict(zip(parts[1::2], parts[2::2], strict=True))
    return found.get(name, "")


def main() -> int:
    checks: list[tuple[str, bool]] = []

    def check(label: str, ok: bool) -> None:
        checks.append((label, ok))
        print(("ok    " if ok else "FAIL  ") + label, flush=True)

    check("`import phasic` is not importable here (testkit needs no phasic-core)",
          importlib.util.find_spec("phasic") is None)
    check("phasic_testkit is installed", importlib.util.find_spec("phasic_testkit") is not None)

    with tempfile.TemporaryDirectory(prefix="other-repo-") as tmp:
        repo = Path(tmp)
        (repo / "pyproject.toml").write_text(
            '[project]\nname = "other-repo"\nversion = "0"\n\n'
            '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
        )
        (repo / "tests").mkdir()
        (repo / "tests" / "test_other.py").write_text(OTHER_REPO_TEST)
        sleep_line = OTHER_REPO_TEST.splitlines().index(
            "            time.sleep(0.2)  # SLEEPING-LINE") + 1

        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--durations=0",
             "-v", "-rN"],
            cwd=repo, capture_output=True, text=True, timeout=600,
        )
        elapsed = time.monotonic() - start
        out = proc.stdout + proc.stderr
        durations = {name: float(sec) for sec, name in
                     re.findall(r"^([\d.]+)s call\s+\S+::(\S+)$", out, re.M)}

        check("the plugin loaded through its entry point (no conftest in the repo)",
              "phasic-testkit" in out and not (repo / "conftest.py").exists())
        check("the passing multi-process test passed",
              re.search(r"test_same_answer_everywhere PASSED", out) is not None)

        text = section(out, "test_rank2_differs")
        check("rank 2's different value fails naming rank 2 and both values",
              "FAILED" in out and "rank(s) [2] diverge from rank 0" in text
              and "rank 0: [0.5  0.25]" in text and "rank 2: [1.5  0.75]" in text)

        text = section(out, "test_rank1_hangs")
        took = durations.get("test_rank1_hangs", float("inf"))
        check(f"rank 1 hanging fails within its {HANG_TIMEOUT} s timeout (took {took:.1f} s)",
              "rank 1: HUNG" in text and took < HANG_TIMEOUT + 10)
        check("... and shows rank 1's Python stack at the sleeping line",
              "Python stack of rank 1" in text
              and f'test_other.py", line {sleep_line} in test_rank1_hangs' in text)

        text = section(out, "test_rank3_exits")
        check("rank 3's os._exit(3) fails naming rank 3 and exit code 3",
              "rank 3: DIED without reporting a result (exit code 3)" in text
              and durations.get("test_rank3_exits", float("inf")) < 60)
        check("pytest's exit status is 1 (tests failed), and the run was not slow",
              proc.returncode == 1 and elapsed < 300)

    failed = [label for label, ok in checks if not ok]
    if failed:
        print("\n--- pytest output in the other repository ---\n" + out, flush=True)
        print(f"\n{len(failed)} of {len(checks)} checks failed", flush=True)
        return 1
    print(f"\nall {len(checks)} checks passed ({elapsed:.1f} s of pytest)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
