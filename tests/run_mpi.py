"""The suites under Open MPI's ``mpirun -n 4`` on this machine (``nox -s mpi`` runs this).

    python tests/run_mpi.py            # inside an environment with phasic installed

1. ``tests/test_scheduler_ffi.py`` (FFI results against the reference, asserted
   across ranks) and ``tests/test_slurm_testkit.py`` (the testkit's marker on a
   scheduler's ranks) as one pytest per rank: every test must pass on 4 ranks,
   reported by rank 0.
2. A test that fails on rank 2 only: the run must fail, rank 0's report naming
   rank 2 and its message.
3. A rank that dies (rank 3 calls ``os._exit(3)`` mid-test): mpirun must end the
   job within seconds, naming rank 3 and its exit code.

Every mpirun is bounded by a timeout (its process group is killed after it) and
no process of a run may be left behind. Exit status 0 only if all three hold.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RANKS = 4
#: Bound on each mpirun; a healthy run of step 1 takes about a minute on 2 cores.
RUN_TIMEOUT = 240.0
#: Bound on how long the failing runs may take to end.
FAIL_TIMEOUT = 120.0
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "PYTHONUNBUFFERED": "1"}

FAILING_TESTS = '''
import os
import numpy as np
import pytest
from phasic_testkit import gather

@pytest.mark.multiprocess(nprocs={ranks}, timeout=60)
def test_rank_2_fails(rank):
    gather(np.array([rank]))  # every rank gets here first
    assert rank != 2, "deliberate failure on rank 2"
'''

DYING_TESTS = '''
import os
import numpy as np
import pytest
from phasic_testkit import gather

@pytest.mark.multiprocess(nprocs={ranks}, timeout=60)
def test_rank_3_dies(rank):
    gather(np.array([rank]))
    if rank == 3:
        os._exit(3)
    gather(np.array([rank]))  # the others wait for rank 3, which never comes
'''


def mpirun(args: list[str], timeout: float, marker: str) -> tuple[int, str, float]:
    """Run ``mpirun -n RANKS python -m pytest args``; (exit code, output, seconds).

    `marker` is put on each rank's command line so that leftovers can be found.
    """
    command = ["mpirun", "-n", str(RANKS), "--allow-run-as-root", "--oversubscribe",
               "--bind-to", "none", sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
               "--color=no", *args, f"--basetemp={marker}"]
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **MPI_ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += f"\nrun_mpi: mpirun did not end within {timeout:g} s and was killed"
    return proc.returncode, out, time.monotonic() - start


def run_written(tmp: str, name: str, source: str) -> tuple[int, str, float]:
    """Write `source` as tmp/test_<name>.py and run it on the ranks (as `mpirun`)."""
    test_file = pathlib.Path(tmp, f"test_{name}.py")
    test_file.write_text(source.format(ranks=RANKS))
    return mpirun([str(test_file), "-q", f"--rootdir={tmp}"], FAIL_TIMEOUT,
                  os.path.join(tmp, name))


def leftovers(marker: str) -> list[str]:
    """Processes still running with `marker` on their command line."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(f"{pid}: {cmdline.decode(errors='replace')[:200]}")
    return found


def check(name: str, ok: bool, out: str, seconds: float, problems: list[str],
          evidence: str = "") -> None:
    """Print the verdict (and the lines that show it, or the output when it failed)."""
    print(f"{'PASS' if ok else 'FAIL'}  {name}  ({seconds:.1f} s)", flush=True)
    shown = [ln for ln in out.splitlines() if evidence and re.search(evidence, ln)]
    for line in shown[:3]:
        print(f"      {line.strip()[:160]}")
    if not ok:
        print(textwrap.indent(out[-6000:], "    | "), flush=True)
        problems.append(name)


def main() -> int:
    if shutil.which("mpirun") is None:
        print("run_mpi: mpirun is not installed (apt-get install openmpi-bin)")
        return 1
    version = subprocess.run(["mpirun", "--version"], capture_output=True, text=True)
    print(f"run_mpi: {version.stdout.splitlines()[0]}, {RANKS} ranks", flush=True)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="phasic-mpi-") as tmp:
        # 1. the suites
        marker = os.path.join(tmp, "suites")
        code, out, sec = mpirun(["tests/test_scheduler_ffi.py", "tests/test_slurm_testkit.py",
                                 "-q", "--timeout=150"], RUN_TIMEOUT, marker)
        # only rank 0 prints pytest's summary line ("4 passed in 31.2s")
        summaries = re.findall(r"^(?:=+ )?(\d+ \w+.*?) in [\d.]+s", out, re.M)
        ok = code == 0 and summaries == ["4 passed"]
        check("the FFI and testkit suites pass on 4 mpirun ranks", ok, out, sec, problems,
              r"\d+ passed|processes  ")

        # 2. a failing rank is named by rank 0
        code, out, sec = run_written(tmp, "failing", FAILING_TESTS)
        ok = (code != 0 and f"failed on 1 of {RANKS} ranks: rank 2 (failed)" in out
              and "deliberate failure on rank 2" in out)
        check("a test failing on rank 2 fails the run, naming rank 2", ok, out, sec, problems,
              r"failed on 1 of|^E .*deliberate")

        # 3. a dying rank ends the job, named by mpirun
        code, out, sec = run_written(tmp, "dying", DYING_TESTS)
        named = re.search(r"Process name: \[\[\d+,\d+\],3\]\s+Exit code:\s+3", out)
        ok = code != 0 and named is not None and sec < 60
        check("rank 3 dying ends the job within 60 s, naming rank 3 and exit code 3",
              ok, out, sec, problems, r"Process name|Exit code")

        left = [p for m in ("suites", "failing", "dying") for p in leftovers(os.path.join(tmp, m))]
        check("no process left behind", not left, "\n".join(left), 0.0, problems)
    if problems:
        print(f"run_mpi: {len(problems)} check(s) failed: {'; '.join(problems)}")
        return 1
    print("run_mpi: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
