"""A real Slurm cluster on this machine: munge, slurmctld and N slurmd nodes, each in its own
network namespace with its own address (or all on loopback where namespaces are unavailable).

    python cluster/local/slurm_cluster.py up [--nodes 4 --cpus 2 --network auto]
    python cluster/local/slurm_cluster.py status
    python cluster/local/slurm_cluster.py down

Every daemon is started by this module in the foreground (``-D``/``-F``) as a child
in its own session and recorded, with its start time and executable, in
``/run/phasic-slurm/started.json``; ``down`` stops exactly those processes (after
checking each is still the daemon we started), removes the namespaces, bridge and
/etc/hosts block it added and the record. All state (the generated ``slurm.conf``,
munge key and socket, spool, logs) lives in the root-owned ``/run/phasic-slurm``,
never in the checkout, so the checkout may sit in a directory no other user can
enter; the state is checked (no symlinks, owner root, not writable by others)
before it is trusted, and a lock keeps two ``up``/``down`` from running at once.

Clients find the cluster through ``SLURM_CONF``: ``up`` prints the export line, and
:func:`client_env` returns it for Python callers. Needs root (as CI has). The daemons'
bookkeeping lives in daemons.py, the namespaces in netns.py, the /etc/hosts block in
hosts_file.py and the checked file operations in safe_files.py.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import daemons
import hosts_file
import netns
from safe_files import (
    ClusterError,
    check_dir,
    ensure_dir,
    exclusive_lock,
    fresh_dir,
    read_file,
    remove_file,
    write_file,
)

__all__ = ["ClusterError", "ClusterShape", "client_env", "down", "is_up", "up"]

# PHASIC_SLURM_STATE moves the state elsewhere (the tests of this module use it);
# whatever it names must be a root-owned directory (or creatable as one).
STATE = pathlib.Path(os.environ.get("PHASIC_SLURM_STATE", "/run/phasic-slurm"))
CONF = STATE / "slurm.conf"
STARTED = STATE / "started.json"
LOCK = STATE / "lock"
LOGS = STATE / "logs"
MUNGE_DIR = STATE / "munge"  # key, pid, seed: munge-owned, mode 700
MUNGE_SOCKET_DIR = STATE / "munge-socket"
MUNGE_SOCKET = MUNGE_SOCKET_DIR / "munge.socket"

HOSTS_FILE = hosts_file.HOSTS_FILE
hosts_without_block = hosts_file.without_block

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("slurmctld", "slurmd", "sbatch", "srun", "scontrol", "sinfo", "squeue", "munged")
NETWORK_MODES = ("auto", "netns", "loopback")


@dataclasses.dataclass(frozen=True)
class ClusterShape:
    """How many nodes, how many CPUs each claims, the ports, and the network mode.

    Ports default away from Slurm's 6817/6818 so a system Slurm on the same
    machine is not disturbed. Nodes may claim more CPUs than the machine has
    (``SlurmdParameters=config_overrides``). ``network``: ``netns`` (each node in
    its own namespace), ``loopback`` (all on 127.0.0.1) or ``auto`` (netns when
    ``ip netns add`` works, else loopback, saying so).
    """

    nodes: int = 4
    cpus: int = 2
    ctld_port: int = 16817
    first_node_port: int = 16818
    partition: str = "debug"
    network: str = "auto"

    def node_names(self) -> list[str]:
        """``node1`` … ``nodeN``."""
        return [f"node{k}" for k in range(1, self.nodes + 1)]


# --------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    """Progress lines go to stderr so stdout stays machine-readable."""
    print(f"[local-slurm] {msg}", file=sys.stderr, flush=True)


def client_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for Slurm client commands (sbatch, srun, sinfo) aimed at this cluster."""
    env = dict(os.environ if base is None else base)
    env["SLURM_CONF"] = str(CONF)
    return env


def _run(cmd: list[str], timeout: float = 30.0, check: bool = True) -> str:
    proc = subprocess.run(
        cmd, env=client_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise ClusterError(
            f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout}"
        )
    return proc.stdout


def _require_root() -> None:
    if os.geteuid() != 0:
        raise ClusterError("the local cluster needs root (it starts daemons and creates "
                           "network namespaces): run it with sudo or as root")


def _trusted_root() -> None:
    """Check (creating if needed) the state directory and its parent before using them."""
    check_dir(STATE.parent)
    ensure_dir(STATE, 0o755)


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Hold the cluster lock: no other ``up``/``down``/run may change the cluster meanwhile."""
    _require_root()
    _trusted_root()
    with exclusive_lock(LOCK):
        yield


def load_record() -> dict[str, Any]:
    """What the last ``up`` made: mode, network items, daemons, whether /etc/hosts has our block."""
    text = None
    if os.path.lexists(STATE):
        check_dir(STATE.parent)
        check_dir(STATE)
        text = read_file(STARTED)
    if text is None:
        return {"mode": None, "network": [], "daemons": [], "hosts_block": False}
    try:
        record = json.loads(text)
        if not (isinstance(record, dict) and isinstance(record.get("daemons"), list)
                and isinstance(record.get("network"), list)):
            raise ValueError("not a record of this module")
    except ValueError as exc:
        raise ClusterError(f"{STARTED} is not a valid record ({exc}); inspect it, stop the "
                           "daemons by hand if any run, then remove it") from None
    return record


def _save_record(record: dict[str, Any]) -> None:
    write_file(STARTED, json.dumps(record, indent=1))


# --------------------------------------------------------------------------- install


def ensure_packages() -> None:
    """Install Debian's Slurm and munge with apt when any of their programs is missing.

    A ``policy-rc.d`` that forbids service starts is in place during the install so
    the packages' maintainer scripts do not launch system daemons we never stop.
    """
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterError(
            f"Slurm programs missing ({', '.join(missing)}) and not root: install "
            f"{' '.join(PACKAGES)} with apt-get, or run as root."
        )
    if shutil.which("apt-get") is None:
        raise ClusterError(
            f"Slurm programs missing ({', '.join(missing)}) and apt-get is not available: "
            f"install {' '.join(PACKAGES)} with this system's package manager."
        )
    log(f"installing {' '.join(PACKAGES)} (missing: {', '.join(missing)})")
    policy = pathlib.Path("/usr/sbin/policy-rc.d")
    added_policy = not os.path.lexists(policy)
    if added_policy:
        policy.write_text("#!/bin/sh\n# no service starts while phasic installs Slurm\nexit 101\n")
        policy.chmod(0o755)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "update"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
            check=True, env=env,
        )
    finally:
        if added_policy:
            policy.unlink()
    still = [b for b in BINARIES if shutil.which(b) is None]
    if still:
        raise ClusterError(f"after apt-get install, still missing: {', '.join(still)}")


# --------------------------------------------------------------------------- config


def slurm_conf(shape: ClusterShape, mode: str) -> str:
    """The slurm.conf text for `mode` (``netns`` or ``loopback``): settings known to work on
    Debian 12's Slurm 22.05 without cgroups or systemd (see docs/pages/distributed/multi_node.md)."""
    ctld_addr = netns.BRIDGE_ADDRESS if mode == "netns" else "127.0.0.1"
    lines = [
        "# generated by cluster/local/slurm_cluster.py; rewritten on every `up`",
        "ClusterName=phasiclocal",
        f"SlurmctldHost=localhost({ctld_addr})",
        f"SlurmctldPort={shape.ctld_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={MUNGE_SOCKET}",
        f"StateSaveLocation={STATE / 'state'}",
        f"SlurmdSpoolDir={STATE / 'spool'}/%n",
        f"SlurmctldPidFile={STATE / 'pids'}/slurmctld.pid",
        f"SlurmdPidFile={STATE / 'pids'}/slurmd-%n.pid",
        f"SlurmctldLogFile={LOGS}/slurmctld.log",
        f"SlurmdLogFile={LOGS}/slurmd-%n.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        # no cgroups, no systemd: track processes through /proc, bind nothing
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "SlurmdParameters=config_overrides",
        "SwitchType=switch/none",
        "MpiDefault=none",
        "SchedulerType=sched/backfill",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        # one rank dying ends the step at once instead of after JAX's heartbeat timeout
        "KillOnBadExit=1",
        # finished jobs leave the queue quickly, so `sbatch --wait` returns quickly
        "MinJobAge=5",
        "ReturnToService=2",
        "InactiveLimit=0",
        "KillWait=2",  # JAX traps SIGTERM; SIGKILL follows sooner
        "Waittime=0",
        # a node whose link is cut is declared failed (and its job ended) within about
        # this long; short enough for the link-cut check, long enough for a loaded host
        "SlurmdTimeout=20",
        "JobRequeue=0",  # a job hit by a node failure fails; it is not silently rerun
        "SlurmctldTimeout=60",
        "MessageTimeout=10",
    ]
    for k, name in enumerate(shape.node_names(), start=1):
        addr = netns.address(k) if mode == "netns" else "127.0.0.1"
        lines.append(
            f"NodeName={name} NodeAddr={addr} NodeHostname={name} "
            f"Port={shape.first_node_port + k - 1} CPUs={shape.cpus} State=UNKNOWN"
        )
    lines.append(
        f"PartitionName={shape.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
    )
    return "\n".join(lines) + "\n"


def hosts_block(shape: ClusterShape, mode: str) -> str:
    """The /etc/hosts lines naming the nodes (hosts_file.block)."""
    return hosts_file.block(shape.node_names(), mode)


# --------------------------------------------------------------------------- daemons


def _spawn(record: dict[str, Any], name: str, cmd: list[str], exe: str,
           user: str | None = None) -> dict[str, Any]:
    entry = daemons.spawn(name, cmd, exe, LOGS / f"{name}.out", client_env(), user)
    record["daemons"].append(entry)
    _save_record(record)
    return entry


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ClusterError(f"{name} not found on PATH")
    return os.path.realpath(path)


def _prepare_dirs(shape: ClusterShape) -> None:
    """Empty state, spool, pid and log directories, and fresh munge directories and key."""
    for sub in ("state", "spool", "pids", "logs"):
        fresh_dir(STATE / sub)
    for name in shape.node_names():
        ensure_dir(STATE / "spool" / name)
    munge = pwd.getpwnam("munge")
    for d, mode in ((MUNGE_DIR, 0o700), (MUNGE_SOCKET_DIR, 0o755)):
        fresh_dir(d, mode)
        # a new key is written while the directory is still root's; then it is handed over
        if d == MUNGE_DIR:
            # munge wants a secret of at least 32 bytes, readable only by its own user
            write_file(d / "munge.key", os.urandom(128), mode=0o600)
            os.chown(d / "munge.key", munge.pw_uid, munge.pw_gid, follow_symlinks=False)
        os.chown(d, munge.pw_uid, munge.pw_gid, follow_symlinks=False)
    # munged runs as munge and cannot create files in the root-owned log directory
    write_file(LOGS / "munged.log", "", mode=0o640)
    os.chown(LOGS / "munged.log", munge.pw_uid, munge.pw_gid, follow_symlinks=False)


def _nodes_idle_named(names: list[str]) -> bool:
    out = _run(["sinfo", "-h", "-N", "-o", "%N %t"], check=False)
    states = dict(line.split() for line in out.splitlines() if line.strip())
    return all(states.get(n, "") == "idle" for n in names)


def _nodes_idle(shape: ClusterShape) -> bool:
    return _nodes_idle_named(shape.node_names())


def is_up() -> bool:
    """True when every daemon recorded in started.json is still the one we started."""
    try:
        entries = load_record()["daemons"]
    except (ClusterError, OSError):
        return False
    return bool(entries) and all(daemons.is_ours(e) for e in entries)


def current_mode() -> str | None:
    """``netns`` or ``loopback`` for the cluster that is up, None when it is down."""
    try:
        return load_record()["mode"] if is_up() else None
    except (ClusterError, OSError):
        return None


def choose_mode(network: str) -> tuple[str, str | None]:
    """(``netns`` | ``loopback``, why namespaces are not used or None)."""
    if network not in NETWORK_MODES:
        raise ClusterError(f"network={network!r}: choose one of {', '.join(NETWORK_MODES)}")
    if network == "loopback":
        return "loopback", "--network loopback was asked for"
    reason = netns.unavailable_reason()
    if reason is None:
        return "netns", None
    if network == "netns":
        raise ClusterError(f"--network netns: network namespaces are unavailable here: {reason}")
    return "loopback", reason


def up(shape: ClusterShape = ClusterShape(), timeout: float = 30.0) -> float:
    """Bring the cluster up (idempotent); return the seconds it took.

    If the same shape is already running it is reused; a different shape or a
    partly dead cluster is torn down and started afresh. On failure every daemon
    started so far is stopped, everything created is removed and the daemon logs
    are printed.
    """
    t0 = time.monotonic()
    with locked():
        ensure_packages()
        mode, reason = choose_mode(shape.network)
        record = load_record()
        conf = read_file(CONF) if os.path.lexists(CONF) else None
        if is_up() and record.get("mode") == mode and conf == slurm_conf(shape, mode):
            log(f"already up ({shape.nodes} nodes x {shape.cpus} CPUs, {mode})")
            return 0.0
        if record["daemons"] or record["network"] or record.get("hosts_block"):
            down()
        if reason:
            log(f"LOOPBACK MODE ({reason}): every node is 127.0.0.1, so a coordinator "
                "reachable only on loopback or a hostname resolving to the wrong address "
                "is NOT caught in this mode")
        record = {"mode": mode, "network": [], "daemons": [], "hosts_block": False}
        try:
            _prepare_dirs(shape)
            _save_record(record)
            write_file(CONF, slurm_conf(shape, mode))
            if mode == "netns":
                netns.check_free(shape.nodes)
                netns.create(shape.nodes, lambda item: (record["network"].append(item),
                                                        _save_record(record)))
            record["hosts_block"] = True
            _save_record(record)
            hosts_file.add_block(shape.node_names(), mode)
            _start_daemons(shape, mode, record, timeout)
        except BaseException as exc:
            log(f"bring-up failed: {exc}")
            print_logs()
            down()
            raise
    took = time.monotonic() - t0
    log(f"up: {shape.nodes} nodes x {shape.cpus} CPUs ({mode}) in {took:.2f} s; "
        f"SLURM_CONF={CONF}")
    return took


def _start_daemons(shape: ClusterShape, mode: str, record: dict[str, Any],
                   timeout: float) -> None:
    munged = _spawn(record, "munged", [
        _program("munged"), "-F",
        f"--key-file={MUNGE_DIR / 'munge.key'}", f"--socket={MUNGE_SOCKET}",
        f"--pid-file={MUNGE_DIR / 'munged.pid'}", f"--seed-file={MUNGE_DIR / 'munged.seed'}",
        f"--log-file={LOGS / 'munged.log'}",
    ], _program("munged"), user="munge")
    daemons.wait_until("munged's socket", MUNGE_SOCKET.exists, timeout, [munged])
    ctld_exe = _program("slurmctld")
    ctld = _spawn(record, "slurmctld", [ctld_exe, "-D", "-i", "-f", str(CONF)], ctld_exe)
    daemons.wait_until(
        "slurmctld to answer", lambda: "UP" in _run(["scontrol", "ping"], check=False),
        timeout, [munged, ctld],
    )
    slurmd = _program("slurmd")
    nodes = []
    for k, name in enumerate(shape.node_names(), start=1):
        # the node's slurmd, and so its slurmstepds and tasks, live in its namespace
        prefix = netns.exec_prefix(k, name) if mode == "netns" else []
        cmd = [*prefix, slurmd, "-D", "-N", name, "-f", str(CONF)]
        nodes.append(_spawn(record, f"slurmd-{name}", cmd, slurmd))
    daemons.wait_until(
        f"{shape.nodes} nodes to be idle", lambda: _nodes_idle(shape), timeout,
        [munged, ctld, *nodes],
    )


def resume_node(name: str, timeout: float = 30.0) -> None:
    """Return a node Slurm declared DOWN (e.g. after its link was cut) to service; wait for idle."""
    # fails harmlessly ("invalid state transition") when the node never went down
    _run(["scontrol", "update", f"nodename={name}", "state=resume"], check=False)
    daemons.wait_until(f"{name} to be idle again",
                       lambda: _nodes_idle_named([name]), timeout, [])


def _cancel_jobs() -> None:
    """Cancel every job so no slurmstepd outlives its slurmd; wait for the queue to drain."""
    ids = _run(["squeue", "-h", "-o", "%i"], check=False).split()
    if not ids:
        return
    log(f"cancelling jobs {' '.join(ids)}")
    _run(["scancel", *ids], check=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        left = _run(["squeue", "-h", "-t", "all", "-o", "%i %T"], check=False)
        if not any(s in left for s in ("RUNNING", "COMPLETING", "PENDING")):
            return
        time.sleep(0.2)
    log("jobs still completing after 20 s; stopping daemons anyway")


def stepd_pids() -> list[int]:
    """slurmstepd processes serving this cluster (their working directory is under spool/)."""
    found = []
    spool = str(STATE / "spool") + "/"
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")[0]
            # A step daemon renames itself "slurmstepd: [<job>.<step>]".
            if not (cmd.endswith(b"slurmstepd") or cmd.startswith(b"slurmstepd:")):
                continue
            if (os.readlink(proc / "cwd") + "/").startswith(spool):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


_STOP_ORDER = {"munged": 2, "slurmctld": 1}  # nodes first, munge last (the others use it)


def down(timeout: float = 10.0) -> list[str]:
    """Stop every daemon this module started and remove what ``up`` added; return their names.

    Jobs are cancelled first; daemons get SIGTERM, then SIGKILL after ``timeout``.
    A recorded pid that is not (any more) the daemon we started is never signalled.
    The /etc/hosts block, the namespaces, links and bridge are removed; logs stay.
    """
    with locked():
        record = load_record()
        entries = record["daemons"]
        alive = [e for e in entries if daemons.is_ours(e)]
        for e in entries:
            if e not in alive:
                log(f"not signalling pid {e.get('pid')} recorded for {e.get('name')}: it is not "
                    f"the {e.get('exe')} started at tick {e.get('start_time')} (gone or reused)")
        if any(e["name"] == "slurmctld" for e in alive) and os.path.lexists(CONF):
            _cancel_jobs()
        for group in (0, 1, 2):
            daemons.stop([e for e in alive if _STOP_ORDER.get(e["name"], 0) == group],
                         timeout, log)
        for pid in stepd_pids():
            log(f"killing leftover slurmstepd {pid}")
            os.kill(pid, 9)
        if record.get("hosts_block"):
            hosts_file.remove_block()
        removed = netns.remove(record["network"])
        if removed:
            log(f"removed {', '.join(removed)}")
        remove_file(STARTED)
    if alive:
        log(f"down: stopped {', '.join(e['name'] for e in alive)}")
    return [e["name"] for e in alive]


def print_logs(lines: int = 40) -> None:
    """Print the tail of every daemon log (used when something fails)."""
    try:
        check_dir(LOGS)
    except (ClusterError, OSError):
        return
    for path in sorted(LOGS.iterdir()):
        try:  # munged's log belongs to munge: read it without the owner check, never via a link
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            print(f"----- {path}: not read ({exc}) -----", file=sys.stderr)
            continue
        with os.fdopen(fd, "rb") as fh:
            text = fh.read().decode(errors="replace").splitlines()
        print(f"----- {path} (last {lines} lines) -----", file=sys.stderr)
        print("\n".join(text[-lines:]), file=sys.stderr)


def status() -> bool:
    """Print each recorded daemon and whether it runs, then sinfo; True if all run."""
    record = load_record()
    if not record["daemons"]:
        print(f"local cluster: down (nothing recorded in {STARTED})")
        return False
    print(f"network: {record['mode']}")
    for e in record["daemons"]:
        state = "running" if daemons.is_ours(e) else "NOT RUNNING"
        print(f"{e['name']:<14} pid {e['pid']:<8} {state}")
    ok = is_up()
    if ok:
        print(_run(["sinfo", "-N", "-l"], check=False), end="")
        print(f"export SLURM_CONF={CONF}")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Command line: ``up``, ``down``, ``status``, ``logs``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "logs"])
    parser.add_argument("--nodes", type=int, default=ClusterShape.nodes)
    parser.add_argument("--cpus", type=int, default=ClusterShape.cpus, help="CPUs per node")
    parser.add_argument("--network", choices=NETWORK_MODES, default="auto",
                        help="netns: a namespace and address per node; loopback: all on "
                             "127.0.0.1; auto (default): netns where available")
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            if args.nodes < 1 or args.cpus < 1:
                parser.error("--nodes and --cpus must be at least 1")
            up(ClusterShape(nodes=args.nodes, cpus=args.cpus, network=args.network))
            print(f"export SLURM_CONF={CONF}")
        elif args.action == "down":
            down()
        elif args.action == "status":
            return 0 if status() else 1
        else:
            print_logs()
    except (ClusterError, OSError) as exc:
        print(f"local cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
