"""CPU devices and cores per process: the PHASIC_* settings and the CPU affinity mask."""

from __future__ import annotations

import os
from collections.abc import Mapping

from .env_vars import DEVICE_VARS, read_int
from .errors import DistributedError


def positive_int(
    env: Mapping[str, str], name: str, error: type[DistributedError] = DistributedError
) -> int | None:
    """The integer value of `name` (None if unset or empty); `error` if it is not >= 1."""
    value = read_int(env, name, error)
    if value is None:
        return None
    if value < 1:
        raise error(f"{name}={value} must be at least 1")
    return value


def requested_devices(env: Mapping[str, str] | None = None) -> int | None:
    """CPU devices asked for by PHASIC_LOCAL_DEVICES, PHASIC_CPUS or PTDALG_CPUS (first set).

    None when none is set; `DistributedError` naming the variable when it is not a
    positive integer.
    """
    env = os.environ if env is None else env
    for name in DEVICE_VARS:
        devices = positive_int(env, name)
        if devices is not None:
            return devices
    return None


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
