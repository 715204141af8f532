"""Scheduler mode: ``srun pytest ...`` or ``mpirun -n 4 pytest ...`` (several ranks).

The ranks already exist, so marked tests run in place. After each marked test the
ranks publish their outcome in the jax.distributed key-value store; rank 0 merges
them, so a failure on any rank shows in rank 0's report, which is the only
terminal output (the other ranks write theirs to /dev/null). Which scheduler
started the ranks does not matter here: phasic_distributed answers rank, size and
host for each one it knows.
"""

from __future__ import annotations

import faulthandler
import json
import socket
import sys

import pytest

from . import _distributed, _env
from ._marker import MARKER, marker_args, nprocs_of
from ._terminal import silence_terminal
from .report import FAILED, PASSED, SKIPPED, RankOutcome, merge

_KEY = "phasic_testkit/scheduler"


class SchedulerPlugin:
    """Registered by the main plugin when a scheduler started this process as one rank."""

    def __init__(self, config: pytest.Config) -> None:
        step = _env.scheduler_step()
        assert step is not None
        self.rank, self.ntasks, self.scheduler = step.rank, step.size, step.scheduler
        self.config = config
        self.coordinator = ""
        self.host = _env.node_name() or socket.gethostname()

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        self.coordinator = _distributed.initialize(timeout=60.0)
        if self.rank != 0:
            silence_terminal(config)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # jax.distributed shuts down at exit; if that aborts the process (another rank
        # died), whatever pytest wrote must already be out of the stdio buffers
        sys.stdout.flush()
        sys.stderr.flush()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        args = marker_args(item)
        if args is None:
            return
        wanted = nprocs_of(item, args)
        if wanted != self.ntasks:
            pytest.skip(f"needs {wanted} processes; this {self.scheduler} job has "
                        f"{self.ntasks} ranks")
        # a hung rank dumps its stack to stderr and exits: the scheduler then ends the job
        faulthandler.dump_traceback_later(args.timeout, exit=True, file=sys.stderr)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if item.get_closest_marker(MARKER) is None:
            return report
        if report.when == "teardown":
            faulthandler.cancel_dump_traceback_later()
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self._merge_call(item, report)
        return report

    def _merge_call(self, item: pytest.Item, report: pytest.TestReport) -> None:
        outcome = FAILED if report.failed else SKIPPED if report.skipped else PASSED
        client = _distributed.kv_client()
        key = f"{_KEY}/{item.nodeid}"
        client.key_value_set(f"{key}/{self.rank}", json.dumps(
            {"outcome": outcome, "longrepr": report.longreprtext if report.failed else "",
             "host": self.host}))
        if self.rank != 0 or outcome == SKIPPED:
            return
        args = marker_args(item)
        assert args is not None
        timeout = args.timeout
        outcomes = []
        for r in range(self.ntasks):
            try:
                raw = client.blocking_key_value_get(f"{key}/{r}", int(timeout * 1000))
                got = json.loads(raw)
                outcomes.append(RankOutcome(r, got["outcome"], longrepr=got["longrepr"],
                                            host=got.get("host", "")))
            except Exception as exc:  # the key never came: that rank hung or died
                outcomes.append(RankOutcome(
                    r, "died", longrepr=f"rank {r} did not report within {timeout:g} s: {exc}"))
        for o in outcomes:
            o.coordinator = self.coordinator
        if any(o.failed for o in outcomes):
            report.outcome = "failed"
            report.longrepr = merge(item.nodeid, outcomes, timeout)
