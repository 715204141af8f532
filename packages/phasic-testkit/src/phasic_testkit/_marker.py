"""The ``multiprocess`` marker: its name, defaults, limits and validation.

A leaf module: every mode of the plugin (parent, spawned rank, under a scheduler)
reads a marker through `parse_marker`, so they share one set of defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

MARKER = "multiprocess"
DEFAULTS = {"nprocs": 2, "devices_per_process": 1, "timeout": 120.0}
# Upper bounds that catch typos (10**6 ranks) before they fork-bomb the machine.
MAX_PROCS = 128
MAX_DEVICES_PER_PROCESS = 256


@dataclass(frozen=True)
class MarkerArgs:
    """The validated arguments of one ``@pytest.mark.multiprocess``."""

    nprocs: int | list[int]
    devices_per_process: int
    timeout: float


def parse_marker(mark: pytest.Mark, where: str) -> MarkerArgs:
    """Validate the marker's arguments; bad values raise a UsageError naming the fix."""
    if mark.args:
        raise pytest.UsageError(
            f"{where}: give multiprocess arguments by name, e.g. "
            "@pytest.mark.multiprocess(nprocs=4, devices_per_process=2, timeout=120)"
        )
    unknown = set(mark.kwargs) - set(DEFAULTS)
    if unknown:
        raise pytest.UsageError(
            f"{where}: unknown multiprocess argument(s) {sorted(unknown)}; "
            f"allowed are {sorted(DEFAULTS)}"
        )
    kw = {**DEFAULTS, **mark.kwargs}
    nprocs = kw["nprocs"]
    counts = nprocs if isinstance(nprocs, list | tuple) else [nprocs]
    for n in counts:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise pytest.UsageError(
                f"{where}: multiprocess nprocs must be a positive int or a list of them, "
                f"got {nprocs!r}"
            )
    if not counts:
        raise pytest.UsageError(f"{where}: multiprocess nprocs=[] lists no process count")
    if max(counts) > MAX_PROCS:
        raise pytest.UsageError(
            f"{where}: multiprocess nprocs={max(counts)} is more than {MAX_PROCS} local "
            "processes; use a smaller count (or run under srun, where SLURM starts the ranks)"
        )
    dev = kw["devices_per_process"]
    if isinstance(dev, bool) or not isinstance(dev, int) or dev < 1:
        raise pytest.UsageError(
            f"{where}: multiprocess devices_per_process must be a positive int, got {dev!r}"
        )
    if dev > MAX_DEVICES_PER_PROCESS:
        raise pytest.UsageError(
            f"{where}: multiprocess devices_per_process={dev} is more than "
            f"{MAX_DEVICES_PER_PROCESS} CPU devices per process; use a smaller count"
        )
    timeout = kw["timeout"]
    if (isinstance(timeout, bool) or not isinstance(timeout, int | float)
            or not 0 < timeout < math.inf):
        raise pytest.UsageError(
            f"{where}: multiprocess timeout must be a positive, finite number of seconds "
            f"(a hung rank must be killed), got {timeout!r}"
        )
    return MarkerArgs(list(counts) if isinstance(nprocs, list | tuple) else nprocs,
                      dev, float(timeout))


def nprocs_of(item: pytest.Item, args: MarkerArgs) -> int:
    """The process count of one collected item (its parameter when nprocs is a list)."""
    if isinstance(args.nprocs, list):
        return int(item.callspec.params["nprocs"])  # type: ignore[attr-defined]
    return args.nprocs


MARKER_HELP = (
    f"{MARKER}(nprocs={DEFAULTS['nprocs']}, devices_per_process="
    f"{DEFAULTS['devices_per_process']}, timeout={DEFAULTS['timeout']:g}): run this test on "
    "nprocs processes joined by jax.distributed (a list of counts parametrizes it)"
)


def marker_args(item: pytest.Item) -> MarkerArgs | None:
    """The validated marker of `item`, or None when it is not marked."""
    mark = item.get_closest_marker(MARKER)
    return None if mark is None else parse_marker(mark, item.nodeid)
