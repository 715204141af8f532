"""What one rank reports, and how the parent merges the reports into one message."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import asdict, dataclass, field

# Statuses of a rank as the parent sees it.
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
DIED = "died"  # the process ended without writing a result
TIMEOUT = "timeout"  # still running at the timeout; its stack was dumped, then it was killed
STOPPED = "stopped"  # killed by the parent because another rank failed first
BAD_EXIT = "bad-exit"  # wrote "passed" but then exited with a non-zero code

TAIL_LINES = 25
# phasic_distributed's "connecting to coordinator" line: shown for failing ranks only
_OWN_LOG = "[phasic_distributed rank "


@dataclass
class RankResult:
    """The file one rank writes: its outcome and the failure text, if any."""

    rank: int
    outcome: str
    longrepr: str = ""
    when: str = "call"
    duration: float = 0.0


@dataclass
class RankOutcome:
    """Everything the parent knows about one rank after the run."""

    rank: int
    status: str
    exit_code: int | None = None
    longrepr: str = ""
    when: str = "call"
    output_tail: list[str] = field(default_factory=list)
    stack: str = ""
    host: str = ""  # where the rank ran
    coordinator: str = ""  # the jax.distributed coordinator (host:port) it joined

    @property
    def failed(self) -> bool:
        return self.status not in (PASSED, SKIPPED, STOPPED)


def write_result(path: str, result: RankResult) -> None:
    """Write atomically so that the parent never reads half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(asdict(result), fh)
    os.replace(tmp, path)


def read_result(path: str) -> RankResult | None:
    """The rank's result, or None while it has not written one."""
    try:
        with open(path, encoding="utf-8") as fh:
            return RankResult(**json.load(fh))
    except FileNotFoundError:
        return None


def tail(path: str, lines: int = TAIL_LINES, upto: int | None = None) -> list[str]:
    """The last lines of a rank's output file up to byte `upto` (read only its end)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell() if upto is None else min(upto, fh.tell())
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read(size - fh.tell()).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return text.splitlines()[-lines:]


# Frames of the machinery around a test: pytest, pluggy and the interpreter start-up.
_MACHINERY = ("/_pytest/", "/pluggy/", "<frozen runpy>", "/pytest/__main__.py")


def trim_stack(stack: str) -> str:
    """A faulthandler dump without pytest's own frames and testkit's watcher thread."""
    blocks, out = stack.strip().split("\n\n"), []
    for block in blocks:
        if "phasic-testkit-parent-watch" in block or "phasic_testkit/_rank.py" in block:
            continue
        lines = block.splitlines()
        kept = [ln for ln in lines if not any(m in ln for m in _MACHINERY)]
        if len(kept) < len(lines):
            kept.append("  ... (pytest frames omitted)")
        out.append("\n".join(kept))
    return "\n\n".join(out)


def _error_lines(longrepr: str) -> str:
    """The exception lines ("E ...") of a pytest failure text and the location after them."""
    lines = longrepr.rstrip().splitlines()
    picked = [ln for ln in lines if ln.startswith("E ")]
    if lines and not lines[-1].startswith("E "):
        picked.append(lines[-1])
    return "\n".join(picked) if picked else longrepr.rstrip()


def describe_exit(code: int | None) -> str:
    """'exit code 3' or 'killed by signal SIGKILL (exit code -9)'."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by signal {name} (exit code {code})"
    return f"exit code {code}"


def _headline(o: RankOutcome, timeout: float) -> str:
    if o.status == FAILED:
        where = "" if o.when == "call" else f" during {o.when}"
        return f"rank {o.rank}: FAILED{where}"
    if o.status == DIED:
        return f"rank {o.rank}: DIED without reporting a result ({describe_exit(o.exit_code)})"
    if o.status == TIMEOUT:
        return f"rank {o.rank}: HUNG - still running after the {timeout:g} s timeout; killed"
    if o.status == BAD_EXIT:
        return f"rank {o.rank}: passed, then exited with {describe_exit(o.exit_code)}"
    if o.status == STOPPED:
        return f"rank {o.rank}: stopped by testkit after another rank failed"
    return f"rank {o.rank}: {o.status}"


def _where(outcomes: list[RankOutcome]) -> str:
    """'; coordinator H:P; ranks on host X' (or each rank's host when they differ)."""
    parts = []
    coordinators = sorted({o.coordinator for o in outcomes if o.coordinator})
    if coordinators:
        parts.append("coordinator " + ", ".join(coordinators))
    hosts = {o.host for o in outcomes if o.host}
    if len(hosts) == 1:
        parts.append(f"ranks on host {hosts.pop()}")
    elif hosts:
        parts.append("ranks on hosts " + ", ".join(
            f"{o.host} (rank {o.rank})" for o in outcomes if o.host))
    return "".join(f"; {p}" for p in parts)


def merge(nodeid: str, outcomes: list[RankOutcome], timeout: float) -> str:
    """One readable failure message: a summary line, then each failing rank's details."""
    bad = [o for o in outcomes if o.failed]
    n = len(outcomes)
    lines = [
        f"multiprocess test {nodeid} failed on {len(bad)} of {n} ranks: "
        + ", ".join(f"rank {o.rank} ({o.status})" for o in bad) + _where(outcomes)
    ]
    shown_full = False
    for o in outcomes:
        lines.append("")
        lines.append("=" * 10 + " " + _headline(o, timeout) + " " + "=" * 10)
        if o.failed and o.longrepr:
            # the first traceback in full; later ranks usually fail in the same place
            # (a cross-rank assertion fails everywhere), so only their error lines
            lines.append(_error_lines(o.longrepr) if shown_full else o.longrepr.rstrip())
            shown_full = True
        if o.failed and o.stack:
            lines.append(f"--- Python stack of rank {o.rank} when it was killed ---")
            lines.append(o.stack.rstrip())
        out = o.output_tail if o.failed else [
            ln for ln in o.output_tail if not ln.startswith(_OWN_LOG)]
        if out:
            lines.append(f"--- last {len(out)} lines of rank {o.rank}'s output ---")
            lines.extend(out)
    return "\n".join(lines)
