"""The local cluster as root: what it refuses to trust, and a checkout no other user can enter.

Needs root and Debian's Slurm and munge (``nox -s slurm -- --local-cluster`` runs this
file first, as root, before its own cluster comes up). Every test but the last
points the cluster at a scratch state directory (``PHASIC_SLURM_STATE``) and runs
``cluster/local/slurm_cluster.py`` as a separate process, as a user would; none of
them gets as far as starting a daemon. The last one brings a real one-node cluster
up and down from a copy of ``cluster/local`` inside a mode-0700 directory.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

LOCAL = pathlib.Path(__file__).resolve().parent.parent / "local"
sys.path.insert(0, str(LOCAL))
sys.path.insert(0, str(LOCAL.parent / "tests"))

import daemons  # noqa: E402
import state_fixtures  # noqa: E402

state = state_fixtures.state  # pytest fixtures shared with the other cluster tests
victim = state_fixtures.victim

if os.geteuid() != 0:
    raise RuntimeError("cluster/tests/test_root_safety.py needs root: run it through "
                       "`nox -s slurm -- --local-cluster` as root (as CI does)")


def cluster_cli(*args: str, state: pathlib.Path | None, script: pathlib.Path = LOCAL,
                timeout: float = 120) -> subprocess.CompletedProcess:
    """Run slurm_cluster.py with `args`, its state in `state` (None: the default)."""
    env = dict(os.environ)
    env.pop("PHASIC_SLURM_STATE", None)
    if state is not None:
        env["PHASIC_SLURM_STATE"] = str(state)
    return subprocess.run([sys.executable, str(script / "slurm_cluster.py"), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def sleeper():
    """A process the cluster never started."""
    proc = subprocess.Popen(["sleep", "120"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_a_state_directory_owned_by_another_user_is_refused(state):
    os.chown(state, 65534, 65534)
    res = cluster_cli("status", state=state)
    assert res.returncode == 1
    assert f"refusing {state}: owned by uid 65534, expected uid 0" in res.stderr


def test_a_state_directory_writable_by_others_is_refused(state):
    os.chmod(state, 0o777)
    res = cluster_cli("down", state=state)
    assert res.returncode == 1
    assert "writable by group or others (mode 777); fix: chmod go-w" in res.stderr


def test_up_refuses_a_linked_log_directory_and_leaves_its_files(state, victim):
    (state / "logs").symlink_to(victim)
    res = cluster_cli("up", "--nodes", "1", "--network", "loopback", state=state)
    assert res.returncode == 1
    assert f"refusing {state / 'logs'}: it is a symbolic link (to {victim})" in res.stderr
    assert [p.name for p in victim.iterdir()] == ["precious.txt"]
    assert (victim / "precious.txt").read_text() == "keep me"
    assert not (state / "started.json").exists()  # nothing was started


def test_up_refuses_a_linked_slurm_conf_and_leaves_its_target(state, victim):
    (state / "slurm.conf").symlink_to(victim / "precious.txt")
    res = cluster_cli("up", "--nodes", "1", "--network", "loopback", state=state)
    assert res.returncode == 1
    assert "slurm.conf: it is a symbolic link" in res.stderr
    assert (victim / "precious.txt").read_text() == "keep me"


def _forge(state: pathlib.Path, daemons_: list[dict], network: list[dict] | None = None) -> None:
    record = {"mode": "loopback", "daemons": daemons_, "network": network or [],
              "hosts_block": False}
    (state / "started.json").write_text(json.dumps(record))


def test_down_does_not_signal_a_process_it_never_started(state, sleeper):
    start = daemons.start_time(sleeper.pid)
    _forge(state, [
        # right pid and start time, but not the program a daemon record names
        {"name": "slurmd-node1", "pid": sleeper.pid, "start_time": start,
         "exe": "/usr/sbin/slurmd-wlm", "cmd": ["slurmd"]},
        # right program, wrong start time: a recycled pid
        {"name": "munged", "pid": sleeper.pid, "start_time": str(int(start) - 1),
         "exe": os.path.realpath("/bin/sleep"), "cmd": ["munged"]},
    ])
    res = cluster_cli("down", state=state)
    assert res.returncode == 0, res.stderr
    assert sleeper.poll() is None, "down signalled a process it never started"
    assert res.stderr.count(f"not signalling pid {sleeper.pid}") == 2
    assert not (state / "started.json").exists()


def test_down_refuses_to_delete_an_interface_it_does_not_name(state):
    _forge(state, [], network=[{"kind": "link", "name": "eth0"}])
    res = cluster_cli("down", state=state)
    assert res.returncode == 1
    assert "refusing to delete 'eth0': not a name this cluster creates" in res.stderr
    assert subprocess.run(["ip", "link", "show", "eth0"], capture_output=True).returncode == 0


def test_a_second_process_cannot_take_the_cluster_while_one_holds_it(state):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(LOCAL)!r})
        import slurm_cluster
        with slurm_cluster.locked():
            print("held", flush=True)
            time.sleep(60)
    """)], env=dict(os.environ, PHASIC_SLURM_STATE=str(state)), stdout=subprocess.PIPE,
        text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = cluster_cli("up", "--nodes", "1", "--network", "loopback", state=state)
        assert res.returncode == 1
        assert f"another process (pid {holder.pid}) is bringing the local cluster up" in res.stderr
    finally:
        holder.kill()
        holder.wait()


def test_a_checkout_inside_a_private_directory_runs_the_cluster(tmp_path):
    """munged runs as `munge`, which cannot enter a 0700 directory: the state must live
    elsewhere. A one-node cluster from such a checkout must run a job (munge works)."""
    private = tmp_path / "private home"
    private.mkdir(mode=0o700)
    copy = private / "checkout" / "cluster" / "local"
    shutil.copytree(LOCAL, copy, ignore=shutil.ignore_patterns("run", "__pycache__"))
    up = cluster_cli("up", "--nodes", "1", "--network", "loopback", state=None, script=copy)
    try:
        assert up.returncode == 0, up.stderr
        conf = next(ln for ln in up.stdout.splitlines() if ln.startswith("export SLURM_CONF="))
        conf = conf.split("=", 1)[1]
        assert not conf.startswith(str(private)), conf
        job = subprocess.run(["srun", "-N1", "-n1", "hostname"], capture_output=True, text=True,
                             env=dict(os.environ, SLURM_CONF=conf), timeout=60)
        assert job.returncode == 0, job.stderr
    finally:
        down = cluster_cli("down", state=None, script=copy)
    assert down.returncode == 0, down.stderr
    assert "LOOPBACK MODE (--network loopback was asked for)" in up.stderr
