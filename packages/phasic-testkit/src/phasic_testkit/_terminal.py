"""Quieting pytest's terminal report in a process whose report nobody reads."""

from __future__ import annotations

import os

import pytest


def silence_terminal(config: pytest.Config) -> None:
    """Send pytest's own report to /dev/null; the test's prints still reach stdout.

    The terminal plugin is swapped rather than disabled (``-p no:terminal``): it owns
    options such as ``-v``, ``-r`` and ``--tb`` that a project's ``addopts`` may use.
    Must run after the terminal plugin's pytest_configure and before sessionstart.
    """
    from _pytest.terminal import TerminalReporter

    pm = config.pluginmanager
    old = pm.get_plugin("terminalreporter")
    if old is None:
        return
    pm.unregister(old)
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the session
    pm.register(TerminalReporter(config, devnull), "terminalreporter")
