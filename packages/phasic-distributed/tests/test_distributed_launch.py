"""phasic-launch with real processes: jax.distributed across 4 ranks, fail-fast, timeout, Ctrl-C."""

from __future__ import annotations

import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from distributed_helpers import clean_env

LAUNCH = [sys.executable, "-m", "phasic_distributed.launch"]


def launch(args: list[str], script: str | None = None, timeout: float = 90, tmp_path=None):
    cmd = list(LAUNCH) + args
    if script is not None:
        path = tmp_path / "rank.py"
        path.write_text(textwrap.dedent(script))
        cmd += ["--", sys.executable, str(path)]
    start = time.monotonic()
    r = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - start


GATHER = """
    import jax                      # imported before initialize on purpose
    import numpy as np
    import phasic_distributed as pd
    p = pd.initialize(timeout=30)
    import jax.numpy as jnp
    from jax.experimental import multihost_utils
    assert jax.process_count() == p.num_processes == 4
    assert jax.process_index() == p.process_id
    assert len(jax.local_devices()) == p.local_device_count == 2
    assert jax.device_count() == 8
    mine = jnp.array([p.process_id * 10 + 1, p.process_id ** 2])
    everyone = np.asarray(multihost_utils.process_allgather(mine))
    # One write for the whole line: this rank's stderr shares its stream, and Gloo's
    # own messages from another thread could land between print's pieces.
    import sys
    sys.stdout.write(f"gathered {p.process_id} {everyone.tolist()}\\n")
    sys.stdout.flush()
"""


def test_four_ranks_initialize_and_gather(tmp_path):
    r, _ = launch(["-n", "4", "--devices-per-process", "2", "--timeout", "80"], GATHER,
                  tmp_path=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    expected = [[k * 10 + 1, k * k] for k in range(4)]
    for k in range(4):
        assert f"[rank {k}] gathered {k} {expected}" in r.stdout, r.stdout


FAIL_AFTER_INIT = """
    import os, sys, time
    import phasic_distributed as pd
    p = pd.initialize(timeout=30)
    from jax.experimental import multihost_utils
    import jax.numpy as jnp
    print("initialized", flush=True)
    # Every rank has printed before rank 2 fails (otherwise a slow rank can be stopped
    # by the launcher before its print, and the count below races).
    multihost_utils.sync_global_devices("all ranks initialized")
    if p.process_id == 2:
        FAILURE
    # The others block in a collective that rank 2 never joins: only the launcher
    # can end them quickly (JAX's own heartbeat would take ~100 s).
    time.sleep(0.5)
    multihost_utils.process_allgather(jnp.ones(1))
    time.sleep(120)
"""


@pytest.mark.parametrize("failure,code", [("sys.exit(3)", 3), ("raise ValueError('boom')", 1)])
def test_rank_2_failing_fails_fast_naming_it(tmp_path, failure, code):
    # Without phasic_distributed's fail-fast exit, rank 2 would wait in JAX's
    # shutdown barrier for ranks that wait in the collective for it.
    script = FAIL_AFTER_INIT.replace("FAILURE", failure)
    r, seconds = launch(["-n", "4", "--grace", "2"], script, tmp_path=tmp_path)
    assert r.returncode == code, r.stdout + r.stderr
    assert f"rank 2 exited with code {code}" in r.stderr
    assert r.stdout.count("initialized") == 4
    assert seconds < 25  # measured 5.6 s; starting 4 jax processes on 2 cores is most of it


def test_fail_fast_without_jax_is_quick_and_kills_grandchildren(tmp_path):
    script = """
        import os, subprocess, sys, time
        rank = int(os.environ["PHASIC_PROCESS_ID"])
        if rank == 0:
            child = subprocess.Popen(["sleep", "60"])
            print("grandchild", child.pid, flush=True)
            time.sleep(60)
        time.sleep(0.5)
        sys.exit(7)
    """
    r, seconds = launch(["-n", "2", "--grace", "1"], script, tmp_path=tmp_path)
    assert r.returncode == 7 and "rank 1 exited with code 7" in r.stderr, r.stderr
    assert seconds < 10
    pid = int(r.stdout.split("grandchild ")[1].split()[0])
    time.sleep(0.2)
    assert _gone_or_zombie(pid)


def _gone_or_zombie(pid: int) -> bool:
    # An orphan killed in a container may stay a zombie until PID 1 reaps it.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_rank_killed_by_signal(tmp_path):
    script = """
        import os, signal, time
        if os.environ["PHASIC_PROCESS_ID"] == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)
    """
    r, seconds = launch(["-n", "2", "--grace", "1"], script, tmp_path=tmp_path)
    assert r.returncode == 128 + 9
    assert "rank 1 was killed by signal SIGKILL" in r.stderr
    assert seconds < 10


def test_timeout_stops_every_rank(tmp_path):
    r, seconds = launch(["-n", "3", "--timeout", "1", "--grace", "1"],
                        "import time; print('up', flush=True); time.sleep(60)", tmp_path=tmp_path)
    assert r.returncode == 124
    assert "timeout after 1 s; ranks still running: [0, 1, 2]" in r.stderr
    assert seconds < 8


def test_environment_and_prefixes(tmp_path):
    script = """
        import os
        print(os.environ["PHASIC_COORDINATOR"], os.environ["PHASIC_NUM_PROCESSES"],
              os.environ["PHASIC_PROCESS_ID"], os.environ["PHASIC_LOCAL_DEVICES"])
    """
    r, _ = launch(["-n", "3", "--devices-per-process", "4"], script, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = sorted(r.stdout.splitlines())
    coordinators = {line.split()[2] for line in lines}
    assert len(coordinators) == 1 and next(iter(coordinators)).startswith("127.0.0.1:")
    assert [line.split()[:2] + line.split()[3:] for line in lines] == [
        ["[rank", f"{k}]", "3", str(k), "4"] for k in range(3)
    ]


def test_ctrl_c_is_forwarded(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(textwrap.dedent("""
        import time
        try:
            print("up", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            print("got KeyboardInterrupt", flush=True)
    """))
    proc = subprocess.Popen(LAUNCH + ["-n", "2", "--", sys.executable, str(script)],
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    seen = 0
    while seen < 2:  # wait until both ranks are running
        line = proc.stdout.readline()
        assert line, "launcher ended early"
        seen += line.strip().endswith("up")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert out.count("got KeyboardInterrupt") == 2, out
    assert "interrupted" in err


@pytest.mark.parametrize(
    "args,fragment",
    [(["-n", "0", "--", "true"], "-n must be at least 1"),
     (["-n", "2"], "no command to launch"),
     (["-n", "2", "--devices-per-process", "0", "--", "true"], "at least 1"),
     (["-n", "2", "--timeout", "-1", "--", "true"], "--timeout must be positive"),
     (["-n", "1", "--", "/no/such/program"], "cannot start '/no/such/program'")],
)
def test_bad_arguments(args, fragment):
    r = subprocess.run(LAUNCH + args, env=clean_env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and fragment in r.stderr, r.stderr


def test_console_script_is_installed():
    exe = shutil.which("phasic-launch")
    assert exe, "phasic-launch is not on PATH: install the package (pip install -e ...)"
    r = subprocess.run([exe, "-n", "2", "--", sys.executable, "-c", "print('hi')"],
                       env=clean_env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and sorted(r.stdout.splitlines()) == ["[rank 0] hi", "[rank 1] hi"]


BIND = """
    import sys
    sys.path.insert(0, TESTS)
    import phasic_distributed as pd
    from phasic_distributed import listening_addresses
    p = pd.initialize(timeout=30)
    if p.process_id == 0:
        port = int(p.coordinator_address.rsplit(":", 1)[1])
        print("listening", p.coordinator_address, listening_addresses(port), flush=True)
    from jax.experimental import multihost_utils
    import jax.numpy as jnp
    multihost_utils.process_allgather(jnp.ones(1))  # both stay up until rank 0 has looked
"""


def test_coordinator_listens_on_loopback_only(tmp_path):
    """JAX's default is every interface: another machine could join as a rank."""
    script = BIND.replace("TESTS", repr(str(pathlib.Path(__file__).parent)))
    r, _ = launch(["-n", "2", "--timeout", "60"], script, tmp_path=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("[rank 0] listening"))
    assert line.startswith("[rank 0] listening 127.0.0.1:") and line.endswith("['127.0.0.1']")
