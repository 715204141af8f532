"""The pytest plugin (entry point `phasic_testkit`).

Three modes, chosen once per process:

- parent (the usual case): a test marked ``multiprocess`` is replaced by an item
  that spawns its ranks, watches them and merges their reports;
- rank (a process spawned by a parent): the test runs as an ordinary test with
  jax.distributed already initialized;
- SLURM step (``srun pytest ...`` with more than one task): the marked tests run
  directly on the ranks SLURM started and only rank 0 prints the summary.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import pytest

from . import _env
from .launcher import LaunchSpec, run
from .report import SKIPPED, merge

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


@pytest.hookimpl(trylast=True)  # after the terminal reporter exists (SLURM mode swaps it)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "multiprocess(nprocs=2, devices_per_process=1, timeout=120): run this test on "
        "nprocs processes joined by jax.distributed (a list of counts parametrizes it)",
    )
    if _env.is_rank_process():
        from ._rank import RankPlugin

        config.pluginmanager.register(RankPlugin(), "phasic_testkit_rank")
    elif _env.slurm_step_size() is not None:
        from ._slurm import SlurmPlugin

        config.pluginmanager.register(SlurmPlugin(config), "phasic_testkit_slurm")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    mark = metafunc.definition.get_closest_marker(MARKER)
    if mark is None:
        return
    args = parse_marker(mark, metafunc.definition.nodeid)
    if isinstance(args.nprocs, list):
        if "nprocs" not in metafunc.fixturenames:
            # make the parameter reachable without the test asking for the fixture
            metafunc.fixturenames.append("nprocs")
        metafunc.parametrize("nprocs", args.nprocs, ids=[f"nprocs={n}" for n in args.nprocs])


def nprocs_of(item: pytest.Item, args: MarkerArgs) -> int:
    """The process count of one collected item (its parameter when nprocs is a list)."""
    if isinstance(args.nprocs, list):
        return int(item.callspec.params["nprocs"])  # type: ignore[attr-defined]
    return args.nprocs


class MultiprocessItem(pytest.Item):
    """Stands in for a marked test in the parent: runs it on spawned ranks."""

    def __init__(self, *, original: pytest.Function, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.original = original
        self.own_markers = list(original.own_markers)
        self.keywords.update(original.keywords)
        self.args = parse_marker(original.get_closest_marker(MARKER), original.nodeid)
        self.nprocs = nprocs_of(original, self.args)

    def runtest(self) -> None:
        spec = LaunchSpec(
            nodeid=self.nodeid, nprocs=self.nprocs,
            devices_per_process=self.args.devices_per_process, timeout=self.args.timeout,
            rootdir=self.config.rootpath, pytest_args=_passthrough_args(self.config),
        )
        outcomes = run(spec)
        if any(o.failed for o in outcomes):
            raise MultiprocessFailure(merge(self.nodeid, outcomes, self.args.timeout))
        if all(o.status == SKIPPED for o in outcomes):
            pytest.skip(outcomes[0].longrepr or "skipped on every rank")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):
        if isinstance(excinfo.value, MultiprocessFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.original.reportinfo()


class MultiprocessFailure(Exception):
    """The merged report of the ranks of a failed multiprocess test."""


def _passthrough_args(config: pytest.Config) -> list[str]:
    """Options each rank needs to collect the test the way the parent did."""
    args = ["--rootdir", str(config.rootpath)]
    if config.inipath is not None:
        args += ["-c", str(config.inipath)]
    if config.pluginmanager.hasplugin("xdist"):
        args += ["-n", "0"]  # the rank must run its test itself, not in a worker
    # when the plugin came in through -p or a conftest rather than the entry point,
    # the rank must load it too (loading it twice would be an error)
    import sys

    name = config.pluginmanager.get_name(sys.modules[__name__])
    if name not in (None, "phasic_testkit") and name.startswith("phasic_testkit"):
        args += ["-p", name]
    return args


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _env.is_rank_process() or _env.slurm_step_size() is not None:
        return
    for i, item in enumerate(items):
        if isinstance(item, pytest.Function) and item.get_closest_marker(MARKER):
            items[i] = MultiprocessItem.from_parent(
                item.parent, name=item.name, original=item
            )


# ---- fixtures -----------------------------------------------------------------------


@pytest.fixture
def rank() -> int:
    """This process's rank (jax.process_index()); 0 outside a multiprocess test."""
    if _env.is_rank_process():
        return int(os.environ[_env.PROCESS_ID])
    step = _env.slurm_step_size()
    return step[0] if step else 0


@pytest.fixture
def nprocs(request: pytest.FixtureRequest) -> int:
    """The number of processes of this test; 1 outside a multiprocess test."""
    if hasattr(request, "param"):
        return int(request.param)
    if _env.is_rank_process():
        return int(os.environ[_env.NUM_PROCESSES])
    step = _env.slurm_step_size()
    return step[1] if step else 1


@pytest.fixture
def jax_devices_info() -> dict[str, Any]:
    """What JAX sees in this process: process index and count, local and global devices."""
    import jax

    return {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "local_devices": [str(d) for d in jax.local_devices()],
        "local_device_count": jax.local_device_count(),
        "global_device_count": jax.device_count(),
        "platform": jax.default_backend(),
    }
