"""Start daemons, recognise them later, and stop only them.

Every daemon is recorded with its pid, the start time the kernel gives that pid
(field 22 of ``/proc/PID/stat``) and the executable it must be running
(``/proc/PID/exe``). A pid counts as ours only while all three still match, so
a recycled pid, or a record naming some other process, is never signalled.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time
from typing import Any

from safe_files import ClusterError


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if PID is gone."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and ')'; fields after the last ')' are plain.
    return stat.rsplit(")", 1)[1].split()[19]


def _state(pid: int) -> str | None:
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def spawn(name: str, cmd: list[str], exe: str, log: pathlib.Path, env: dict[str, str],
          user: str | None = None) -> dict[str, Any]:
    """Start `cmd` in its own session, output appended to `log`; return its record.

    `exe` is the resolved program the process ends up running (``cmd`` may be a
    wrapper such as ``ip netns exec`` that execs it, keeping the pid).
    """
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, user=user, group=user, extra_groups=[] if user else None,
        )
    finally:
        os.close(fd)
    return {"name": name, "pid": proc.pid, "start_time": start_time(proc.pid),
            "exe": os.path.realpath(exe), "cmd": cmd}


def is_ours(entry: dict[str, Any], settle: float = 0.0) -> bool:
    """True while entry's pid still has its recorded start time and runs its recorded exe.

    Right after `spawn` a wrapper may not have exec'd the daemon yet: `settle`
    seconds are allowed for /proc/PID/exe to become the expected program.
    """
    pid = entry.get("pid")
    if not isinstance(pid, int) or pid <= 1 or start_time(pid) != entry.get("start_time"):
        return False
    if _state(pid) in (None, "Z"):  # a zombie is an exited process awaiting its parent
        return False
    deadline = time.monotonic() + settle
    while _exe(pid) != entry.get("exe"):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def stop(batch: list[dict[str, Any]], timeout: float, log) -> None:
    """SIGTERM every verified process of `batch`, SIGKILL those alive after `timeout`, reap."""
    ours = [e for e in batch if is_ours(e)]
    for e in ours:
        os.kill(e["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for e in ours:
        while is_ours(e) and time.monotonic() < deadline:
            _reap_if_child(e["pid"], block=False)
            time.sleep(0.05)
        if is_ours(e):
            log(f"{e['name']} (pid {e['pid']}) ignored SIGTERM; killing")
            os.kill(e["pid"], signal.SIGKILL)
        _reap_if_child(e["pid"], block=True)


def _reap_if_child(pid: int, block: bool) -> None:
    # our own child when up() and down() run in one process; otherwise init reaps it
    try:
        os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        pass


def wait_until(what: str, ready, timeout: float, entries: list[dict[str, Any]]) -> None:
    """Poll `ready()` until true; raise if `timeout` passes or a daemon of `entries` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [e["name"] for e in entries if not is_ours(e, settle=1.0)]
        if dead:
            raise ClusterError(f"{', '.join(dead)} exited while waiting for {what}")
        if ready():
            return
        time.sleep(0.05)
    raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}")
