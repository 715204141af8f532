"""The pytest plugin (entry point `phasic_testkit`).

Three modes, chosen once per process:

- parent (the usual case): a test marked ``multiprocess`` is replaced by an item
  that spawns its ranks, watches them and merges their reports;
- rank (a process spawned by a parent): the test runs as an ordinary test with
  jax.distributed already initialized;
- under a scheduler (``srun pytest ...`` with several tasks, ``mpirun -n 4 pytest
  ...``; any scheduler phasic_distributed knows): the marked tests run directly on
  the ranks the scheduler started and only rank 0 prints the summary.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from . import _env
from ._marker import MARKER, MARKER_HELP, nprocs_of, parse_marker
from .launcher import LaunchSpec, run
from .report import SKIPPED, merge


@pytest.hookimpl(trylast=True)  # after the terminal reporter exists (scheduler mode swaps it)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    if _env.is_rank_process():
        from ._rank import RankPlugin

        config.pluginmanager.register(RankPlugin(), "phasic_testkit_rank")
    elif _env.scheduler_step() is not None:
        from ._scheduler import SchedulerPlugin

        config.pluginmanager.register(SchedulerPlugin(config), "phasic_testkit_scheduler")


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
    if _env.is_rank_process() or _env.scheduler_step() is not None:
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
    step = _env.scheduler_step()
    return step.rank if step else 0


@pytest.fixture
def nprocs(request: pytest.FixtureRequest) -> int:
    """The number of processes of this test; 1 outside a multiprocess test."""
    if hasattr(request, "param"):
        return int(request.param)
    if _env.is_rank_process():
        return int(os.environ[_env.NUM_PROCESSES])
    step = _env.scheduler_step()
    return step.size if step else 1


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
