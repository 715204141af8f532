"""Faults in multi-process runs end in time, name rank, host and port, and leave nothing behind.

Four faults, each through ``phasic-launch`` and through phasic-testkit's
``multiprocess`` marker:

- a rank dies (SIGKILL) while the other waits for it;
- a rank hangs (sleeps) while the other waits for it;
- the coordinator port is already in use (a listening socket held by this test);
- the coordinator never comes up (rank 0 sleeps before it would start it).

Each run must end within its timeout plus a start-up allowance, its report must
name the failing rank, the host and the coordinator's port, and afterwards no
process of the run may be left (looked up in /proc by a marker unique to the run:
its script path or test file name; zombies count as gone, as PID 1 of a container
may reap them late). Ranks import jax only (not the C++ extension) to stay fast.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
HOST = socket.gethostname()
#: Seconds allowed on top of a fault's own timeout: starting two JAX processes on a
#: loaded 2-core machine (measured 3-5 s) plus stopping them.
STARTUP = 20.0
HANG_TIMEOUT = 8.0  # the launcher's/marker's timeout for the hang cases
INIT_TIMEOUT = 4.0  # rank 1's wait for a coordinator that never comes


def _env(**extra: str) -> dict[str, str]:
    drop = ("SLURM_", "PHASIC_", "PTDALG_", "XLA_FLAGS", "OMP_NUM_THREADS", "JAX_",
            "PYTEST_XDIST")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", **extra)
    return env


def leftovers(marker: str) -> list[str]:
    """Live (non-zombie) processes whose command line contains `marker`."""
    found = []
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            found.append(f"{proc.name}: {cmd.strip()}")
    return found


def assert_nothing_left(marker: str) -> None:
    deadline = time.monotonic() + 3.0  # a killed process may take a moment to vanish
    while (left := leftovers(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left running: {left}"


def held_port() -> socket.socket:
    """A listening socket on a kernel-chosen port: that port is 'already in use'."""
    sock = socket.socket()
    sock.bind(("", 0))
    sock.listen()
    return sock


# ---- phasic-launch ---------------------------------------------------------------------

RANK_SCRIPT = """
    import os, signal, sys, time
    FAULT = {fault!r}
    rank = int(os.environ["PHASIC_PROCESS_ID"])
    if FAULT == "no-coordinator" and rank == 0:
        time.sleep(600)  # rank 0 never starts the coordinator
    import phasic_distributed as pd
    pd.initialize(timeout={init_timeout})
    import jax.numpy as jnp
    from jax.experimental import multihost_utils
    print("initialized", flush=True)
    if rank == 1 and FAULT == "dies":
        os.kill(os.getpid(), signal.SIGKILL)
    if rank == 1 and FAULT == "hangs":
        time.sleep(600)
    multihost_utils.process_allgather(jnp.ones(1))  # rank 0 waits here for rank 1
    time.sleep(600)
"""


def run_launch(tmp_path: pathlib.Path, fault: str, *args: str) -> tuple[subprocess.CompletedProcess,
                                                                    float, str]:
    """phasic-launch -n 2 on a script with `fault`; (result, seconds, the script path)."""
    script = tmp_path / f"rank_{fault}_{uuid.uuid4().hex[:8]}.py"
    init = INIT_TIMEOUT if fault == "no-coordinator" else 30
    script.write_text(textwrap.dedent(RANK_SCRIPT.format(fault=fault, init_timeout=init)))
    cmd = [sys.executable, "-m", "phasic_distributed.launch", "-n", "2", "--grace", "1",
           *args, "--", sys.executable, str(script)]
    start = time.monotonic()
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    return r, time.monotonic() - start, str(script)


def coordinator_port(text: str) -> int:
    m = re.search(r"coordinator 127\.0\.0\.1:(\d+)", text)
    assert m, f"no coordinator address in:\n{text}"
    return int(m[1])


def test_launch_rank_dies(tmp_path) -> None:
    r, took, script = run_launch(tmp_path, "dies")
    assert r.returncode == 128 + signal.SIGKILL, r.stdout + r.stderr
    assert "rank 1 was killed by signal SIGKILL" in r.stderr
    assert f"host {HOST}" in r.stderr and coordinator_port(r.stderr)
    assert took < STARTUP
    assert_nothing_left(script)


def test_launch_rank_hangs(tmp_path) -> None:
    r, took, script = run_launch(tmp_path, "hangs", "--timeout", str(HANG_TIMEOUT))
    assert r.returncode == 124, r.stdout + r.stderr
    assert f"timeout after {HANG_TIMEOUT:g} s; ranks still running: [0, 1]" in r.stderr
    assert f"host {HOST}" in r.stderr and coordinator_port(r.stderr)
    assert r.stdout.count("initialized") == 2  # both got past initialization: a real hang
    assert took < HANG_TIMEOUT + STARTUP
    assert_nothing_left(script)


def test_launch_coordinator_port_in_use(tmp_path) -> None:
    with held_port() as sock:
        port = sock.getsockname()[1]
        r, took, script = run_launch(tmp_path, "none", "--port", str(port))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "rank 0 exited with code 1" in r.stderr
    assert f"rank 0: coordinator port {port} is in use on {HOST}" in r.stdout
    assert took < STARTUP
    assert_nothing_left(script)


def test_launch_coordinator_never_comes_up(tmp_path) -> None:
    r, took, script = run_launch(tmp_path, "no-coordinator")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "rank 1 exited with code 1" in r.stderr
    port = coordinator_port(r.stderr)
    assert (f"rank 1: coordinator 127.0.0.1:{port} not reachable within {INIT_TIMEOUT:.1f} s"
            in r.stdout), r.stdout
    assert f"host {HOST}" in r.stderr
    assert took < INIT_TIMEOUT + STARTUP
    assert_nothing_left(script)


# ---- phasic-testkit's multiprocess marker ------------------------------------------------

INNER_CONFTEST = """
    import os, socket, sys, time

    IN_RANK = "PHASIC_TESTKIT_RESULT" in os.environ
    if IN_RANK and os.environ["PHASIC_PROCESS_ID"] == "0" and any(
            "no_coordinator" in a for a in sys.argv):
        time.sleep(600)  # rank 0 never gets to start the coordinator

    if not IN_RANK:
        # the parent hands out a port that a listening socket holds, for one test only
        import phasic_testkit._distributed as dist

        HELD = socket.socket()
        HELD.bind(("", 0))
        HELD.listen()
        HELD_PORT = HELD.getsockname()[1]
        _free_port = dist.free_port

        def pytest_runtest_setup(item):
            if "port_in_use" in item.name:
                dist.free_port = lambda: HELD_PORT
                print(f"HELD_PORT={HELD_PORT}")

        def pytest_runtest_teardown(item):
            dist.free_port = _free_port
"""

INNER_TESTS = f"""
    import os, signal, time
    import pytest
    from phasic_testkit import barrier

    @pytest.mark.multiprocess(nprocs=2, timeout=40)
    def test_dies(rank):
        if rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        barrier("dies")

    @pytest.mark.multiprocess(nprocs=2, timeout={HANG_TIMEOUT})
    def test_hangs(rank):
        if rank == 1:
            time.sleep(600)
        barrier("hangs", timeout=600)

    @pytest.mark.multiprocess(nprocs=2, timeout=30)
    def test_port_in_use(rank):
        pass

    @pytest.mark.multiprocess(nprocs=2, timeout={HANG_TIMEOUT})
    def test_no_coordinator(rank):
        pass
"""


def _plugin_options() -> tuple[list[str], dict[str, str]]:
    """Load phasic-testkit by entry point when installed, else from the source tree."""
    names = {ep.name for ep in importlib.metadata.entry_points(group="pytest11")}
    if "phasic_testkit" in names:
        return [], {}
    src = str(ROOT / "packages" / "phasic-testkit" / "src")
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    if importlib.util.find_spec("phasic_testkit") is None:
        return ["-p", "phasic_testkit.plugin"], {"PYTHONPATH": path}
    return ["-p", "phasic_testkit.plugin"], {}


@pytest.fixture(scope="module")
def inner(tmp_path_factory) -> dict[str, object]:
    """One inner pytest run holding the four faults (spawning ranks is the cost)."""
    path = tmp_path_factory.mktemp("faults")
    name = f"test_fault_{uuid.uuid4().hex[:8]}.py"
    (path / "conftest.py").write_text(textwrap.dedent(INNER_CONFTEST))
    (path / name).write_text(textwrap.dedent(INNER_TESTS))
    options, extra = _plugin_options()
    r = subprocess.run(
        [sys.executable, "-m", "pytest", *options, "-p", "no:cacheprovider", "-p", "no:xdist",
         "-s", "--durations=0", "-rN", name],
        cwd=path, env=_env(**extra), capture_output=True, text=True, timeout=240,
    )
    out = r.stdout + r.stderr
    parts = re.split(r"^_{3,} (\S+) _{3,}$", out, flags=re.M)
    took = {n: float(s) for s, n in re.findall(r"^([\d.]+)s call\s+\S+::(\S+)$", out, flags=re.M)}
    return {"code": r.returncode, "out": out, "name": name, "took": took,
            "sections": {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}}


def _section(inner: dict, test: str) -> str:
    sections = inner["sections"]
    assert test in sections, f"{test} did not fail as it should:\n{inner['out'][-6000:]}"
    return sections[test]


def test_inner_run_failed_all_four_and_left_nothing(inner) -> None:
    assert inner["code"] == 1, inner["out"][-4000:]
    assert "4 failed" in inner["out"], inner["out"][-4000:]
    assert_nothing_left(inner["name"])


def test_testkit_rank_dies(inner) -> None:
    text = _section(inner, "test_dies")
    assert "rank 1: DIED without reporting a result (killed by signal SIGKILL" in text
    port = coordinator_port(text)
    assert f"coordinator 127.0.0.1:{port}; ranks on host {HOST}" in text
    assert inner["took"]["test_dies"] < STARTUP


def test_testkit_rank_hangs(inner) -> None:
    text = _section(inner, "test_hangs")
    assert f"rank 1: HUNG - still running after the {HANG_TIMEOUT:g} s timeout; killed" in text
    # the hung rank's stack shows the line where it hangs
    line = textwrap.dedent(INNER_TESTS).splitlines().index("        time.sleep(600)") + 1
    assert f'{inner["name"]}", line {line} in test_hangs' in text.split("rank 1: HUNG")[1]
    assert f"ranks on host {HOST}" in text and coordinator_port(text)
    assert inner["took"]["test_hangs"] < HANG_TIMEOUT + STARTUP


def test_testkit_coordinator_port_in_use(inner) -> None:
    text = _section(inner, "test_port_in_use")
    port = int(re.search(r"HELD_PORT=(\d+)", inner["out"])[1])
    assert "rank 0: FAILED during initialize" in text
    assert f"rank 0: coordinator port {port} is in use on {HOST}" in text
    # the retry on a new port met the same held port: reported, not looped
    assert inner["took"]["test_port_in_use"] < 2 * STARTUP


def test_testkit_coordinator_never_comes_up(inner) -> None:
    text = _section(inner, "test_no_coordinator")
    port = coordinator_port(text)
    assert "rank 1: FAILED during initialize" in text
    assert f"rank 1: coordinator 127.0.0.1:{port} not reachable within" in text
    assert f"ranks on host {HOST}" in text
    assert inner["took"]["test_no_coordinator"] < HANG_TIMEOUT + STARTUP
