"""The rank side: runs inside each process the parent spawned.

It joins jax.distributed before any test module is imported (so that the device
count can still be set), arranges for its Python stack to be dumped on SIGUSR1,
exits if the parent disappears, and writes its result file the moment the
outcome is known.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
import time
import traceback

import pytest

from . import _distributed, _env
from ._terminal import silence_terminal
from .report import FAILED, PASSED, SKIPPED, RankResult, write_result

#: Seconds before the parent's deadline at which initialization gives up and reports.
INIT_MARGIN = 2.0


class RankPlugin:
    """Registered by the main plugin when this process is a spawned rank."""

    def __init__(self) -> None:
        self.rank = int(os.environ[_env.PROCESS_ID])
        self.result_file = os.environ[_env.RESULT_FILE]
        self.timeout = float(os.environ[_env.TIMEOUT])
        self.written = False
        self.failure: RankResult | None = None
        self.start = time.monotonic()
        # faulthandler keeps writing to this file object: it must stay open.
        self._stack = open(os.environ[_env.STACK_FILE], "w")  # noqa: SIM115
        faulthandler.register(signal.SIGUSR1, file=self._stack, all_threads=True)
        _watch_parent(int(os.environ[_env.PARENT_PID]))

    def _init_timeout(self) -> float:
        """Seconds to wait for the coordinator: at most 60, and over before the parent's
        deadline (INIT_MARGIN early), so a coordinator that never comes is reported by
        this rank with its host and port instead of as a hang."""
        deadline = float(os.environ.get(_env.DEADLINE, time.time() + self.timeout))
        return max(1.0, min(60.0, deadline - time.time() - INIT_MARGIN))

    def _write(self, result: RankResult) -> None:
        if not self.written:
            self.written = True
            result.duration = time.monotonic() - self.start
            write_result(self.result_file, result)

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        # the rank's log then holds only what the test printed; the failure text
        # travels in the result file
        silence_terminal(config)
        try:
            _distributed.initialize(timeout=self._init_timeout())
        except BaseException:
            self._write(RankResult(self.rank, FAILED, "jax.distributed could not be "
                                   "initialized on this rank:\n" + traceback.format_exc(),
                                   when="initialize"))
            raise

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._write(RankResult(self.rank, FAILED, report.longreprtext, when="collect"))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            # write at once: the parent stops the other ranks without waiting for teardown
            self._write(RankResult(self.rank, FAILED, report.longreprtext, when=report.when))
        elif report.skipped and report.when in ("setup", "call"):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            self._write(RankResult(self.rank, SKIPPED, str(reason), when=report.when))
        elif report.when == "teardown":
            self._write(RankResult(self.rank, PASSED))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.written:
            self._write(RankResult(
                self.rank, FAILED,
                f"the rank's pytest ran no test (exit status {exitstatus}); the node id may "
                "not exist when collected again in a fresh process (are its parameters "
                "generated non-deterministically?)", when="collect"))


def _watch_parent(parent: int) -> None:
    """Exit if the parent pytest dies, so that no rank is ever left behind."""

    def loop() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(70)

    threading.Thread(target=loop, name="phasic-testkit-parent-watch", daemon=True).start()
