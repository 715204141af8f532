"""Spawn the ranks of one multiprocess test, watch them, and stop them all on failure.

Every rank is a fresh interpreter (subprocess, never fork: a forked JAX process
inherits live threads and is not safe) running pytest on one node id. Each rank
writes a JSON result file; its stdout and stderr go to a log file, not to a pipe,
so that a rank printing a lot can never block on a full pipe.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import _distributed, _env
from .report import (
    BAD_EXIT,
    DIED,
    FAILED,
    PASSED,
    STOPPED,
    TIMEOUT,
    RankOutcome,
    RankResult,
    read_result,
    tail,
    trim_stack,
)

POLL = 0.05
# After the first failure, how long the other ranks may take to report their own
# failure (a cross-rank assertion fails on every rank at about the same moment).
FAILURE_GRACE = 1.0
# How long ranks that passed may take to shut jax.distributed down and exit.
EXIT_GRACE = 5.0
# How long a hung rank gets to write its stack after SIGUSR1.
STACK_GRACE = 3.0


@dataclass
class LaunchSpec:
    """What to run and how: one pytest node id on `nprocs` ranks."""

    nodeid: str
    nprocs: int
    devices_per_process: int
    timeout: float
    rootdir: Path
    pytest_args: list[str] = field(default_factory=list)


@dataclass
class _Rank:
    rank: int
    proc: subprocess.Popen
    result_file: str
    stack_file: str
    log_file: str
    coordinator: str
    result: RankResult | None = None


def _rank_command(spec: LaunchSpec, basetemp: str) -> list[str]:
    # No cache writes from N ranks at once, each rank its own temporary directory,
    # and no capture: the rank's output goes to its log file as it happens.
    return [
        sys.executable, "-m", "pytest", spec.nodeid,
        "-p", "no:cacheprovider", "-s", f"--basetemp={basetemp}",
        *spec.pytest_args,
    ]


def _spawn(spec: LaunchSpec, workdir: str) -> list[_Rank]:
    coordinator = f"127.0.0.1:{_distributed.free_port()}"
    # the rank's own initialization gives up a little before this, so that a missing
    # coordinator is reported by the waiting rank (naming host and port) rather than
    # as a hang
    deadline = time.time() + spec.timeout
    ranks = []
    for r in range(spec.nprocs):
        files = {k: os.path.join(workdir, f"rank{r}.{k}") for k in ("json", "stack", "log")}
        env = _env.rank_environment(
            dict(os.environ), coordinator=coordinator, nprocs=spec.nprocs, rank=r,
            devices=spec.devices_per_process, result_file=files["json"],
            stack_file=files["stack"], timeout=spec.timeout,
        )
        env[_env.DEADLINE] = repr(deadline)
        with open(files["log"], "wb") as log:
            proc = subprocess.Popen(
                _rank_command(spec, os.path.join(workdir, f"tmp{r}")), cwd=spec.rootdir, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        ranks.append(_Rank(r, proc, files["json"], files["stack"], files["log"], coordinator))
    return ranks


def _kill_all(ranks: list[_Rank]) -> None:
    """SIGKILL every rank's process group (a rank may have started children), then reap."""
    for rank in ranks:
        if rank.proc.poll() is None:
            try:
                os.killpg(rank.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for rank in ranks:
        rank.proc.wait()


def _dump_stacks(ranks: list[_Rank]) -> dict[int, str]:
    """Ask each rank for its Python stack (faulthandler on SIGUSR1) and wait for it."""
    for rank in ranks:
        try:
            os.kill(rank.proc.pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STACK_GRACE
    sizes: dict[int, int] = {}
    while time.monotonic() < deadline:
        now = {r.rank: _size(r.stack_file) for r in ranks}
        # done when every rank has written something and nothing grew since last poll
        if all(now.values()) and now == sizes:
            break
        sizes = now
        time.sleep(0.1)
    return {r.rank: Path(r.stack_file).read_text(errors="replace") for r in ranks
            if _size(r.stack_file)}


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _poll(ranks: list[_Rank]) -> None:
    for rank in ranks:
        if rank.result is None:
            rank.result = read_result(rank.result_file)


def run(spec: LaunchSpec) -> list[RankOutcome]:
    """Run the test on all ranks and return one outcome per rank, in rank order.

    The coordinator port is probed free just before the ranks start, but something
    else (another xdist worker, any outgoing connection) may take it before rank 0
    binds it; rank 0 then fails at initialization saying so, and the run is repeated
    once on a new port.
    """
    outcomes = _run_once(spec)
    if _port_was_taken(outcomes):
        outcomes = _run_once(spec)
    return outcomes


def _port_was_taken(outcomes: list[RankOutcome]) -> bool:
    first = outcomes[0]
    return first.when == "initialize" and "coordinator port" in first.longrepr and (
        "is in use" in first.longrepr)


def _run_once(spec: LaunchSpec) -> list[RankOutcome]:
    with tempfile.TemporaryDirectory(prefix="phasic-testkit-") as workdir:
        ranks = _spawn(spec, workdir)
        try:
            statuses, stacks = _watch(ranks, spec.timeout)
            # what each rank printed up to now: once the coordinator (rank 0) is killed
            # the others print JAX's "coordination service" errors, which are only noise
            sizes = {r.rank: _size(r.log_file) for r in ranks}
        finally:
            _kill_all(ranks)
        _poll(ranks)
        return [
            _outcome(r, statuses.get(r.rank), stacks.get(r.rank, ""), sizes.get(r.rank))
            for r in ranks
        ]


def _watch(ranks: list[_Rank], timeout: float) -> tuple[dict[int, str], dict[int, str]]:
    """Wait until every rank is done, one fails, or the timeout; returns forced statuses."""
    deadline = time.monotonic() + timeout
    failed_at: float | None = None
    passed_at: float | None = None
    while True:
        time.sleep(POLL)
        _poll(ranks)
        now = time.monotonic()
        running = [r for r in ranks if r.proc.poll() is None]
        if not running:
            return {}, {}
        bad = [r for r in ranks if (r.result and r.result.outcome == FAILED)
               or (r.result is None and r.proc.returncode is not None)]
        if bad:
            failed_at = failed_at or now
            unreported = [r for r in running if r.result is None]
            if not unreported or now - failed_at > FAILURE_GRACE:
                return {r.rank: STOPPED for r in unreported}, {}
            continue
        if all(r.result is not None for r in ranks):
            # every rank passed (or skipped): give them time to shut down cleanly
            passed_at = passed_at or now
            if now - passed_at > EXIT_GRACE:
                return {}, {}
            continue
        if now > deadline:
            hung = [r for r in running if r.result is None]
            stacks = _dump_stacks(hung)
            return {r.rank: TIMEOUT for r in hung}, stacks


def _outcome(rank: _Rank, forced: str | None, stack: str, upto: int | None) -> RankOutcome:
    code = rank.proc.returncode
    res = rank.result
    out = RankOutcome(rank=rank.rank, status=DIED, exit_code=code,
                      output_tail=tail(rank.log_file, upto=upto), stack=trim_stack(stack),
                      host=socket.gethostname(), coordinator=rank.coordinator)
    if res is not None:
        out.status, out.longrepr, out.when = res.outcome, res.longrepr, res.when
        if res.outcome == PASSED and code not in (0, None, -signal.SIGKILL):
            out.status = BAD_EXIT
    elif forced is not None:
        out.status = forced
    return out
