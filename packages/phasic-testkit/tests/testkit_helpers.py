"""Shared helpers for the plugin's own tests."""

from __future__ import annotations

import re


def sections(output: str) -> dict[str, str]:
    """Split pytest's FAILURES output into {test name: its failure text}."""
    parts = re.split(r"^_{3,} (\S+) _{3,}$", output, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def durations(output: str) -> dict[str, float]:
    """{test name: call duration in seconds} from `--durations=0` output."""
    found = re.findall(r"^([\d.]+)s call\s+\S+::(\S+)$", output, flags=re.M)
    return {name: float(sec) for sec, name in found}
