"""The local Slurm cluster's safety logic and job commands, without root or a cluster.

- ``cluster/local/safe_files.py``: symbolic links planted in the state directory are
  refused (their targets untouched), foreign-writable or foreign-owned entries are
  refused, and the lock cannot be taken twice.
- ``cluster/local/daemons.py``: a recorded pid is signalled only while it is still
  the program started at the recorded time.
- ``cluster/local/slurm_cluster.py``: slurm.conf and /etc/hosts give each node its own
  address in namespace mode, and removing our /etc/hosts block restores the file.
- ``cluster/run_slurm.py``: the ``sbatch --wrap`` scripts keep a path with a space as
  one argument (run through bash with a recording ``srun`` and ``python``).

The root-only parts (ownership by root, the real state directory, namespaces) are
checked by ``tests/test_slurm_cluster_root.py`` and ``cluster/run_slurm.py``
under ``nox -s slurm -- --local-cluster``.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap
import time

import pytest

CLUSTER = pathlib.Path(__file__).resolve().parent.parent / "cluster"
sys.path.insert(0, str(CLUSTER / "local"))
sys.path.insert(0, str(CLUSTER))
sys.path.insert(0, str(CLUSTER / "tests"))

import daemons  # noqa: E402
import netns  # noqa: E402
import run_slurm  # noqa: E402
import safe_files  # noqa: E402
import slurm_cluster  # noqa: E402
import state_fixtures  # noqa: E402
from safe_files import ClusterError  # noqa: E402

state = state_fixtures.state  # pytest fixtures shared with the other cluster tests
victim = state_fixtures.victim
ME = os.getuid()


# ------------------------------------------------------------------ safe_files


def test_fresh_dir_refuses_a_linked_directory_and_keeps_its_files(state, victim):
    (state / "logs").symlink_to(victim)
    with pytest.raises(ClusterError, match=r"logs: it is a symbolic link .*Remove it: rm "):
        safe_files.fresh_dir(state / "logs", uid=ME)
    assert (victim / "precious.txt").read_text() == "keep me"


def test_fresh_dir_empties_a_real_directory_without_following_links_inside(state, victim):
    logs = state / "logs"
    safe_files.ensure_dir(logs, uid=ME)
    (logs / "old.log").write_text("x")
    (logs / "inner").symlink_to(victim)
    safe_files.fresh_dir(logs, uid=ME)
    assert list(logs.iterdir()) == []
    assert (victim / "precious.txt").read_text() == "keep me"


def test_write_file_refuses_a_linked_file_and_leaves_the_target(state, victim):
    (state / "slurm.conf").symlink_to(victim / "precious.txt")
    with pytest.raises(ClusterError, match=r"slurm.conf: it is a symbolic link"):
        safe_files.write_file(state / "slurm.conf", "NodeName=evil\n", uid=ME)
    assert (victim / "precious.txt").read_text() == "keep me"


def test_read_file_refuses_links_and_foreign_writable_files(state, victim):
    (state / "started.json").symlink_to(victim / "precious.txt")
    with pytest.raises(ClusterError, match="symbolic link"):
        safe_files.read_file(state / "started.json", uid=ME)
    (state / "started.json").unlink()
    safe_files.write_file(state / "started.json", "{}", uid=ME)
    os.chmod(state / "started.json", 0o666)
    with pytest.raises(ClusterError, match=r"writable by group or others \(mode 666\).*chmod go-w"):
        safe_files.read_file(state / "started.json", uid=ME)
    assert safe_files.read_file(state / "absent.json", uid=ME) is None


def test_check_dir_refuses_a_wrong_owner_a_writable_dir_and_a_file(state):
    with pytest.raises(ClusterError, match=rf"owned by uid {ME}, expected uid {ME + 1}"):
        safe_files.check_dir(state, uid=ME + 1)
    os.chmod(state, 0o777)
    with pytest.raises(ClusterError, match="writable by group or others"):
        safe_files.check_dir(state, uid=ME)
    os.chmod(state, 0o755)
    (state / "f").write_text("")
    with pytest.raises(ClusterError, match="expected a directory"):
        safe_files.check_dir(state / "f", uid=ME)


def test_lock_refuses_a_second_holder_and_names_it(state):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import pathlib, sys, time
            sys.path.insert(0, {str(CLUSTER / 'local')!r})
            import safe_files
            with safe_files.exclusive_lock(pathlib.Path({str(state / 'lock')!r}), uid={ME}):
                print("held", flush=True)
                time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ClusterError, match=rf"another process \(pid {holder.pid}\)"):
            with safe_files.exclusive_lock(state / "lock", uid=ME):
                pass
    finally:
        holder.kill()
        holder.wait()
    # released with its holder; re-entrant within one process
    with safe_files.exclusive_lock(state / "lock", uid=ME):
        with safe_files.exclusive_lock(state / "lock", uid=ME):
            assert (state / "lock").read_text().strip() == str(os.getpid())


# ------------------------------------------------------------------ daemons


def _sleeper(tmp_path: pathlib.Path) -> subprocess.Popen:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def test_a_record_is_ours_only_with_matching_start_time_and_executable(tmp_path):
    proc = _sleeper(tmp_path)
    try:
        real = {"name": "x", "pid": proc.pid, "start_time": daemons.start_time(proc.pid),
                "exe": os.path.realpath(os.readlink(f"/proc/{proc.pid}/exe"))}
        assert daemons.is_ours(real)
        assert not daemons.is_ours({**real, "exe": "/usr/sbin/slurmd"})
        assert not daemons.is_ours({**real, "start_time": "1"})
        assert not daemons.is_ours({**real, "pid": "1"})  # a forged, non-integer pid
        assert not daemons.is_ours({**real, "pid": 1})  # init is never ours
    finally:
        proc.kill()
        proc.wait()
    assert not daemons.is_ours(real)  # gone


def test_stop_leaves_a_process_that_is_not_the_recorded_daemon(tmp_path):
    proc = _sleeper(tmp_path)
    try:
        forged = {"name": "slurmd-node1", "pid": proc.pid,
                  "start_time": daemons.start_time(proc.pid), "exe": "/usr/sbin/slurmd"}
        daemons.stop([forged], timeout=0.5, log=lambda msg: None)
        time.sleep(0.2)
        assert proc.poll() is None, "a process we never started was signalled"
        ours = {**forged, "exe": os.path.realpath(os.readlink(f"/proc/{proc.pid}/exe"))}
        daemons.stop([ours], timeout=5, log=lambda msg: None)  # signals and reaps it
        assert daemons.start_time(proc.pid) is None
    finally:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------ slurm.conf and hosts


def test_namespace_mode_gives_every_node_its_own_address():
    shape = slurm_cluster.ClusterShape(nodes=3, cpus=2)
    conf = slurm_cluster.slurm_conf(shape, "netns")
    assert "SlurmctldHost=localhost(10.213.0.254)" in conf
    for k in (1, 2, 3):
        assert f"NodeName=node{k} NodeAddr=10.213.0.{k} NodeHostname=node{k} " in conf
    assert f"AuthInfo=socket={slurm_cluster.STATE}/munge-socket/munge.socket" in conf
    assert "NodeAddr=127.0.0.1" in slurm_cluster.slurm_conf(shape, "loopback")
    block = slurm_cluster.hosts_block(shape, "netns")
    assert "10.213.0.1 node1\n10.213.0.2 node2\n10.213.0.3 node3\n" in block
    assert netns.address(250) == "10.213.0.250" and netns.veth(4) == "phasic-veth4"


def test_removing_our_hosts_block_restores_the_file_exactly():
    shape = slurm_cluster.ClusterShape(nodes=2)
    original = "127.0.0.1 localhost\n# a comment\n::1 ip6-localhost\n"
    with_block = original + slurm_cluster.hosts_block(shape, "netns")
    assert slurm_cluster.hosts_without_block(with_block) == original
    assert slurm_cluster.hosts_without_block(original) == original


def test_without_namespaces_auto_falls_back_to_loopback_and_netns_refuses(tmp_path, monkeypatch):
    # an `ip` that fails as it does in a container without CAP_SYS_ADMIN
    fake = tmp_path / "ip"
    fake.write_text("#!/bin/sh\necho 'mount --make-shared /run/netns failed: "
                    "Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    reason = "`ip netns add` failed: mount --make-shared /run/netns failed: Operation not permitted"
    assert netns.unavailable_reason() == reason
    assert slurm_cluster.choose_mode("auto") == ("loopback", reason)
    with pytest.raises(ClusterError, match="--network netns: network namespaces are unavailable"):
        slurm_cluster.choose_mode("netns")


def test_an_unknown_network_mode_is_refused():
    with pytest.raises(ClusterError, match=r"network='bridge': choose one of auto, netns"):
        slurm_cluster.choose_mode("bridge")


# ------------------------------------------------------------------ job commands


RECORDER = """#!/bin/sh
# writes its name and each argument on its own line, then runs what srun would run
printf '%s\\n' "$(basename "$0")" "$@" >> "$RECORD"
"""

FAKE_SRUN = """#!/bin/sh
# an srun for one task: drop srun's own options, run the command as task 0
printf '%s\\n' srun "$@" >> "$RECORD"
while [ "${1#--}" != "$1" ]; do shift; done
SLURM_PROCID=0 exec "$@"
"""


def _run_wrap(wrap: str, tmp_path: pathlib.Path) -> list[str]:
    """Run a batch script through bash with srun/python replaced by argument recorders."""
    bindir = tmp_path / "bin"
    bindir.mkdir(parents=True)
    for name, text in (("srun", FAKE_SRUN), ("python", RECORDER)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    record = tmp_path / "record"
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", RECORD=str(record),
               SLURM_JOB_ID="42")
    subprocess.run(["bash", "-c", wrap], env=env, check=True, timeout=30)
    return record.read_text().splitlines()


def test_wraps_keep_a_path_with_a_space_as_one_argument(tmp_path):
    out = tmp_path / "results dir" / "run 1"
    out.mkdir(parents=True)
    args = _run_wrap(run_slurm.concurrent_wrap("phasic", out), tmp_path)
    # steps A and B: srun and then python each got the probe's path as one argument
    assert args.count(str(run_slurm.PROBE)) == 4 and args.count("python") == 4
    assert sorted(p.name for p in out.iterdir()) == [
        "concurrent-42-stepA.out", "concurrent-42-stepB.out"]

    test = out / "test it.py"
    args = _run_wrap(run_slurm.testkit_failure_wrap(test, out), tmp_path / "t")
    assert [str(test), "-p"] == args[args.index("pytest") + 1:args.index("pytest") + 3]
    assert args[args.index("--rootdir") + 1] == str(run_slurm.ROOT)
    assert (out / "xfail-exit-rank0").read_text().strip() == "0"


def test_a_rank_line_without_coordinator_report_is_not_reachable():
    ok, why = run_slurm.coordinator_reachable("", "netns")
    assert not ok and "no COORDINATOR line" in why
    loop = "COORDINATOR node1:2000 resolves=127.0.0.1 listens=127.0.0.1"
    assert not run_slurm.coordinator_reachable(loop, "netns")[0]
    good = "COORDINATOR node1:2000 resolves=10.213.0.1 listens=::"
    assert run_slurm.coordinator_reachable(good, "netns") == (
        True, "resolves to 10.213.0.1 (node1 is 10.213.0.1), listens on ::")
    only_lo = "COORDINATOR node1:2000 resolves=10.213.0.1 listens=127.0.0.1"
    assert not run_slurm.coordinator_reachable(only_lo, "netns")[0]
