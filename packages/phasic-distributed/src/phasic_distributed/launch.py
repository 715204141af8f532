"""``phasic-launch``: run N ranks of a command on this machine, like a tiny srun.

Each rank gets ``PHASIC_COORDINATOR`` (127.0.0.1 and a free port),
``PHASIC_NUM_PROCESSES``, ``PHASIC_PROCESS_ID`` and ``PHASIC_LOCAL_DEVICES``; its
output is streamed with a ``[rank k]`` prefix. Fail-fast: when a rank exits
non-zero, the others are stopped (SIGTERM, then SIGKILL after a grace period) and
the launcher exits with that rank's code, saying ``rank k exited with code c``.
Ctrl-C is forwarded to every rank.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TextIO

from pydantic import BaseModel

from .coordinator import free_port
from .env_vars import rank_environment

#: Exit code when --timeout expires (the same as coreutils' timeout).
TIMEOUT_EXIT = 124


class LaunchResult(BaseModel):
    """How a launch ended: the exit code and, if a rank failed, which one."""

    exit_code: int
    failed_rank: int | None = None
    rank_codes: list[int | None]
    timed_out: bool = False
    interrupted: bool = False
    seconds: float


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Launch:
    def __init__(self, out: TextIO, err: TextIO, grace: float):
        self.out, self.err, self.grace = out, err, grace
        self.lock = threading.Lock()
        self.interrupted = False

    def say(self, message: str) -> None:
        with self.lock:
            print(f"phasic-launch: {message}", file=self.err, flush=True)

    def pump(self, rank: int, stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with self.lock:
                self.out.write(f"[rank {rank}] {line}\n")
                self.out.flush()
        stream.close()

    def stop(self, procs: list[subprocess.Popen], first: int = signal.SIGTERM) -> None:
        """Signal every live rank's process group, escalating to SIGKILL after grace."""
        for p in procs:
            if p.poll() is None:
                _signal_group(p, first)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.02)
        for p in procs:
            if p.poll() is None:
                _signal_group(p, signal.SIGKILL)
        for p in procs:
            p.wait()


def launch(
    command: Sequence[str],
    n: int,
    *,
    devices_per_process: int = 1,
    timeout: float | None = None,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    grace: float = 3.0,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> LaunchResult:
    """Run `command` as `n` ranks on loopback; see the module docstring."""
    if not command:
        raise ValueError("no command to launch (give it after --)")
    if n < 1:
        raise ValueError(f"-n must be at least 1, got {n}")
    if devices_per_process < 1:
        raise ValueError(f"--devices-per-process must be at least 1, got {devices_per_process}")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"--timeout must be positive, got {timeout}")
    run = _Launch(out or sys.stdout, err or sys.stderr, grace)
    coordinator = f"127.0.0.1:{port or free_port()}"
    base = os.environ if env is None else env
    start = time.monotonic()
    procs: list[subprocess.Popen] = []
    pumps: list[threading.Thread] = []
    previous = {}

    def on_signal(signum, _frame):
        run.interrupted = True  # the main loop forwards it to every rank

    # Installed before spawning: a caught signal is reset to default across exec,
    # so ranks get a normal SIGINT even when our own SIGINT was ignored (a
    # background job of a non-interactive shell starts with SIGINT ignored).
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        for rank in range(n):
            p = subprocess.Popen(
                list(command),
                env=rank_environment(base, coordinator=coordinator, nprocs=n, rank=rank,
                                     devices=devices_per_process),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own group: we can kill its children too
            )
            procs.append(p)
            t = threading.Thread(target=run.pump, args=(rank, p.stdout), daemon=True)
            t.start()
            pumps.append(t)
    except OSError as exc:
        run.stop(procs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        raise ValueError(f"cannot start {command[0]!r}: {exc}") from exc

    failed: int | None = None
    timed_out = False
    try:
        while True:
            codes = [p.poll() for p in procs]
            bad = [r for r, c in enumerate(codes) if c not in (None, 0)]
            if bad and not run.interrupted:
                failed = bad[0]
                break
            if all(c is not None for c in codes):
                break
            if run.interrupted:
                run.say("interrupted; forwarding the signal to every rank")
                run.stop(procs, signal.SIGINT)
                break
            if timeout is not None and time.monotonic() - start > timeout:
                timed_out = True
                break
            time.sleep(0.02)
        # where: every rank runs on this host and joins this coordinator
        where = f"ranks on host {socket.gethostname()}, coordinator {coordinator}"
        if failed is not None:
            code = procs[failed].returncode
            alive = [r for r, p in enumerate(procs) if p.poll() is None]
            run.say(
                f"rank {failed} {_describe(code)}; stopping the other ranks"
                + (f" ({', '.join(map(str, alive))})" if alive else "") + f"; {where}"
            )
        elif timed_out:
            alive = [r for r, p in enumerate(procs) if p.poll() is None]
            run.say(f"timeout after {timeout:g} s; ranks still running: {alive}; stopping "
                    f"them; {where}")
        run.stop(procs)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for t in pumps:
            t.join(timeout=2.0)
    codes = [p.returncode for p in procs]
    if failed is not None:
        c = codes[failed]
        exit_code = c if c > 0 else 128 + (-c)
    elif timed_out:
        exit_code = TIMEOUT_EXIT
    elif run.interrupted:
        exit_code = 130
    else:
        exit_code = 0
    return LaunchResult(
        exit_code=exit_code,
        failed_rank=failed,
        rank_codes=codes,
        timed_out=timed_out,
        interrupted=run.interrupted,
        seconds=time.monotonic() - start,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``phasic-launch``."""
    ap = argparse.ArgumentParser(
        prog="phasic-launch",
        description="Run N ranks of a command on this machine with jax.distributed variables.",
        epilog="example: phasic-launch -n 4 --devices-per-process 2 -- python script.py",
    )
    ap.add_argument("-n", "--nprocs", type=int, required=True, help="number of ranks")
    ap.add_argument("--devices-per-process", type=int, default=1, metavar="D",
                    help="CPU devices per rank (PHASIC_LOCAL_DEVICES; default 1)")
    ap.add_argument("--timeout", type=float, default=None, metavar="SEC",
                    help=f"stop every rank after SEC seconds (exit {TIMEOUT_EXIT})")
    ap.add_argument("--port", type=int, default=None, help="coordinator port (default: free)")
    ap.add_argument("--grace", type=float, default=3.0, metavar="SEC",
                    help="seconds between SIGTERM and SIGKILL when stopping ranks")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``phasic-launch``; returns the exit code."""
    ap = build_parser()
    args = ap.parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    try:
        result = launch(
            command, args.nprocs, devices_per_process=args.devices_per_process,
            timeout=args.timeout, port=args.port, grace=args.grace,
        )
    except ValueError as exc:
        ap.error(str(exc))
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
