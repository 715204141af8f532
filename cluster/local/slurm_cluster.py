"""A real Slurm cluster on this machine: munge, slurmctld and N slurmd nodes on loopback.

    python cluster/local/slurm_cluster.py up [--nodes 4 --cpus 2]
    python cluster/local/slurm_cluster.py status
    python cluster/local/slurm_cluster.py down

Every daemon is started by this module in the foreground (``-D``/``-F``) as a child
in its own session, and its PID is recorded in ``run/started.json``; ``down`` stops
exactly those PIDs (checking each is still the process we started) and removes the
/etc/hosts block it added. Logs, the generated ``slurm.conf`` and all state live in
``cluster/local/run/`` (gitignored), so nothing outside it is touched except
/etc/hosts and, on a bare machine, the Debian packages it installs.

Clients find the cluster through ``SLURM_CONF``: ``up`` prints the export line, and
:func:`client_env` returns it for Python callers. Needs root (as CI has).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import pwd
import shutil
import signal
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
RUN = HERE / "run"
CONF = RUN / "slurm.conf"
STARTED = RUN / "started.json"
LOGS = RUN / "logs"
MUNGE_DIR = RUN / "munge"  # key, pid, seed: munge-owned, mode 700
MUNGE_SOCKET_DIR = RUN / "munge-socket"
MUNGE_SOCKET = MUNGE_SOCKET_DIR / "munge.socket"

HOSTS_FILE = pathlib.Path("/etc/hosts")
HOSTS_BEGIN = "# >>> phasic local slurm cluster (cluster/local/slurm_cluster.py)"
HOSTS_END = "# <<< phasic local slurm cluster"

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("slurmctld", "slurmd", "sbatch", "srun", "scontrol", "sinfo", "squeue", "munged")


class ClusterError(RuntimeError):
    """The local cluster could not be brought up, inspected or torn down."""


@dataclasses.dataclass(frozen=True)
class ClusterShape:
    """How many nodes, how many CPUs each claims, and the ports the daemons use.

    Ports default away from Slurm's 6817/6818 so a system Slurm on the same
    machine is not disturbed. Nodes may claim more CPUs than the machine has
    (``SlurmdParameters=config_overrides``).
    """

    nodes: int = 4
    cpus: int = 2
    ctld_port: int = 16817
    first_node_port: int = 16818
    partition: str = "debug"

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


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if PID is gone.

    Recorded with each PID so that ``down`` never signals a different process
    that happens to reuse a PID after ours died.
    """
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after ')' are plain.
    return stat.rsplit(")", 1)[1].split()[19]


def _is_ours(entry: dict) -> bool:
    if _start_time(entry["pid"]) != entry["start_time"]:
        return False
    # A zombie (exited child of a dead parent) no longer counts as running.
    state = pathlib.Path(f"/proc/{entry['pid']}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def _load_started() -> list[dict]:
    if not STARTED.exists():
        return []
    return json.loads(STARTED.read_text())


def _save_started(entries: list[dict]) -> None:
    STARTED.write_text(json.dumps(entries, indent=1))


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
    added_policy = not policy.exists()
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


def slurm_conf(shape: ClusterShape) -> str:
    """The slurm.conf text: settings known to work on Debian 12's Slurm 22.05 without
    cgroups or systemd (see docs/pages/distributed/multi_node.md)."""
    lines = [
        "# generated by cluster/local/slurm_cluster.py; rewritten on every `up`",
        "ClusterName=phasiclocal",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={shape.ctld_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={MUNGE_SOCKET}",
        f"StateSaveLocation={RUN / 'state'}",
        f"SlurmdSpoolDir={RUN / 'spool'}/%n",
        f"SlurmctldPidFile={RUN / 'pids'}/slurmctld.pid",
        f"SlurmdPidFile={RUN / 'pids'}/slurmd-%n.pid",
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
        "SlurmdTimeout=60",
        "SlurmctldTimeout=60",
        "MessageTimeout=10",
    ]
    for k, name in enumerate(shape.node_names()):
        lines.append(
            f"NodeName={name} NodeAddr=127.0.0.1 NodeHostname={name} "
            f"Port={shape.first_node_port + k} CPUs={shape.cpus} State=UNKNOWN"
        )
    lines.append(
        f"PartitionName={shape.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
    )
    return "\n".join(lines) + "\n"


def _hosts_without_block(text: str) -> str:
    out, inside = [], False
    for line in text.splitlines():
        if line.strip() == HOSTS_BEGIN:
            inside = True
        elif line.strip() == HOSTS_END:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out) + "\n"


def _write_hosts(text: str) -> None:
    # Write in place: in containers /etc/hosts is often a bind mount that cannot be renamed.
    with HOSTS_FILE.open("r+") as fh:
        fh.seek(0)
        fh.write(text)
        fh.truncate()


def add_hosts_block(shape: ClusterShape) -> None:
    """Make ``node1`` … ``nodeN`` resolve to 127.0.0.1 (slurmd looks its own name up)."""
    base = _hosts_without_block(HOSTS_FILE.read_text())
    block = f"{HOSTS_BEGIN}\n127.0.0.1 {' '.join(shape.node_names())}\n{HOSTS_END}\n"
    _write_hosts(base + block)


def remove_hosts_block() -> None:
    """Undo :func:`add_hosts_block`; other lines of /etc/hosts are left as they were."""
    text = HOSTS_FILE.read_text()
    if HOSTS_BEGIN in text:
        _write_hosts(_hosts_without_block(text))


# --------------------------------------------------------------------------- daemons


def _spawn(name: str, cmd: list[str], *, user: str | None = None) -> dict:
    out = (LOGS / f"{name}.out").open("ab")
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        env=client_env(), start_new_session=True, user=user, group=user,
        extra_groups=[] if user else None,
    )
    out.close()
    entry = {"name": name, "pid": proc.pid, "cmd": cmd, "start_time": _start_time(proc.pid)}
    _save_started([*_load_started(), entry])
    return entry


def _wait_until(what: str, ready, timeout: float, entries: list[dict]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [e["name"] for e in entries if not _is_ours(e)]
        if dead:
            raise ClusterError(f"{', '.join(dead)} exited while waiting for {what}")
        if ready():
            return
        time.sleep(0.05)
    raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}")


def _prepare_munge() -> None:
    munge = pwd.getpwnam("munge")
    for d, mode in ((MUNGE_DIR, 0o700), (MUNGE_SOCKET_DIR, 0o755)):
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, munge.pw_uid, munge.pw_gid)
        d.chmod(mode)
    key = MUNGE_DIR / "munge.key"
    if not key.exists():
        # munge wants a secret of at least 32 bytes, readable only by its own user
        key.write_bytes(os.urandom(128))
    os.chown(key, munge.pw_uid, munge.pw_gid)
    key.chmod(0o600)


def _nodes_idle(shape: ClusterShape) -> bool:
    out = _run(["sinfo", "-h", "-N", "-o", "%N %t"], check=False)
    states = dict(line.split() for line in out.splitlines() if line.strip())
    return all(states.get(n, "").startswith("idle") for n in shape.node_names())


def is_up() -> bool:
    """True when every daemon recorded in run/started.json is still alive."""
    entries = _load_started()
    return bool(entries) and all(_is_ours(e) for e in entries)


def up(shape: ClusterShape = ClusterShape(), timeout: float = 30.0) -> float:
    """Bring the cluster up (idempotent); return the seconds it took.

    If the same shape is already running it is reused; a different shape or a
    partly dead cluster is torn down and started afresh. On failure every daemon
    started so far is stopped and the daemon logs are printed.
    """
    t0 = time.monotonic()
    ensure_packages()
    if is_up() and CONF.exists() and CONF.read_text() == slurm_conf(shape):
        log(f"already up ({shape.nodes} nodes x {shape.cpus} CPUs)")
        return 0.0
    if _load_started():
        down()
    for sub in ("state", "spool", "pids"):
        shutil.rmtree(RUN / sub, ignore_errors=True)
    for sub in ("state", "pids", "logs", *(f"spool/{n}" for n in shape.node_names())):
        (RUN / sub).mkdir(parents=True, exist_ok=True)
    for old in LOGS.glob("*"):
        old.unlink()
    CONF.write_text(slurm_conf(shape))
    add_hosts_block(shape)
    try:
        _prepare_munge()
        munged = _spawn("munged", [
            shutil.which("munged") or "munged", "-F",
            f"--key-file={MUNGE_DIR / 'munge.key'}", f"--socket={MUNGE_SOCKET}",
            f"--pid-file={MUNGE_DIR / 'munged.pid'}", f"--seed-file={MUNGE_DIR / 'munged.seed'}",
            f"--log-file={LOGS / 'munged.log'}",
        ], user="munge")
        _wait_until("munged's socket", MUNGE_SOCKET.exists, timeout, [munged])
        ctld = _spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(CONF)])
        _wait_until(
            "slurmctld to answer",
            lambda: "UP" in _run(["scontrol", "ping"], check=False),
            timeout, [munged, ctld],
        )
        nodes = [
            _spawn(f"slurmd-{n}", ["slurmd", "-D", "-N", n, "-f", str(CONF)])
            for n in shape.node_names()
        ]
        _wait_until(
            f"{shape.nodes} nodes to be idle", lambda: _nodes_idle(shape), timeout,
            [munged, ctld, *nodes],
        )
    except BaseException as exc:
        log(f"bring-up failed: {exc}")
        print_logs()
        down()
        raise
    took = time.monotonic() - t0
    log(f"up: {shape.nodes} nodes x {shape.cpus} CPUs in {took:.2f} s; SLURM_CONF={CONF}")
    return took


def _cancel_jobs() -> None:
    """Cancel every job so no slurmstepd outlives its slurmd; wait for the queue to drain."""
    if not CONF.exists():
        return
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


def _stepd_pids() -> list[int]:
    """slurmstepd processes serving this cluster (their spool dir is under run/spool)."""
    found = []
    spool = str(RUN / "spool")
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")[0]
            if not cmd.endswith(b"slurmstepd"):
                continue
            if os.readlink(proc / "cwd").startswith(spool):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def down(timeout: float = 10.0) -> list[str]:
    """Stop every daemon this module started (by recorded PID); return their names.

    Jobs are cancelled first; daemons get SIGTERM, then SIGKILL after ``timeout``.
    The /etc/hosts block is removed; logs stay in run/logs/.
    """
    entries = _load_started()
    alive = [e for e in entries if _is_ours(e)]
    if any(e["name"] == "slurmctld" for e in alive):
        _cancel_jobs()
    # nodes first, then the controller, munge last (the others authenticate through it)
    order = sorted(alive, key=lambda e: {"munged": 2, "slurmctld": 1}.get(e["name"], 0))
    for group in (0, 1, 2):
        batch = [e for e in order if {"munged": 2, "slurmctld": 1}.get(e["name"], 0) == group]
        for e in batch:
            os.kill(e["pid"], signal.SIGTERM)
        _reap(batch, timeout)
    leftover = _stepd_pids()
    for pid in leftover:
        log(f"killing leftover slurmstepd {pid}")
        os.kill(pid, signal.SIGKILL)
    remove_hosts_block()
    STARTED.unlink(missing_ok=True)
    if alive:
        log(f"down: stopped {', '.join(e['name'] for e in alive)}")
    return [e["name"] for e in alive]


def _reap(batch: list[dict], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for e in batch:
        while _is_ours(e) and time.monotonic() < deadline:
            try:  # our own child when up() and down() run in one process
                os.waitpid(e["pid"], os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
        if _is_ours(e):
            log(f"{e['name']} (pid {e['pid']}) ignored SIGTERM; killing")
            os.kill(e["pid"], signal.SIGKILL)
        try:
            os.waitpid(e["pid"], 0)
        except ChildProcessError:
            pass


def print_logs(lines: int = 40) -> None:
    """Print the tail of every daemon log (used when something fails)."""
    for path in sorted(LOGS.glob("*")):
        text = path.read_text(errors="replace").splitlines()
        print(f"----- {path.relative_to(HERE)} (last {lines} lines) -----", file=sys.stderr)
        print("\n".join(text[-lines:]), file=sys.stderr)


def status() -> bool:
    """Print each recorded daemon and whether it runs, then sinfo; True if all run."""
    entries = _load_started()
    if not entries:
        print("local cluster: down (nothing recorded in run/started.json)")
        return False
    for e in entries:
        print(f"{e['name']:<14} pid {e['pid']:<8} {'running' if _is_ours(e) else 'NOT RUNNING'}")
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
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            if args.nodes < 1 or args.cpus < 1:
                parser.error("--nodes and --cpus must be at least 1")
            up(ClusterShape(nodes=args.nodes, cpus=args.cpus))
            print(f"export SLURM_CONF={CONF}")
        elif args.action == "down":
            down()
        elif args.action == "status":
            return 0 if status() else 1
        else:
            print_logs()
    except ClusterError as exc:
        print(f"local cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
