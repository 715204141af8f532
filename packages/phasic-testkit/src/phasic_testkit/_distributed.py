"""What testkit needs from phasic-distributed: a free port, initialize() and the
key-value client.

Kept in one place so that the rest of the plugin never imports jax at import time.
"""

from __future__ import annotations

from typing import Any


def free_port() -> int:
    """A TCP port on loopback that a bind probe found free."""
    import phasic_distributed

    return int(phasic_distributed.free_port())


def initialize(timeout: float) -> str:
    """Join jax.distributed with the plan found in the environment (launcher or scheduler).

    Returns the coordinator's ``host:port`` ("" for a single process), for reports.
    """
    import phasic_distributed

    return phasic_distributed.initialize(timeout=timeout).coordinator_address or ""


def kv_client() -> Any:
    """The jax.distributed key-value client, or a clear error when it is not running."""
    import phasic_distributed

    client = phasic_distributed.distributed_client()
    if client is None:
        raise RuntimeError(
            "jax.distributed is not initialized in this process. Cross-process assertions "
            "only work inside a test marked @pytest.mark.multiprocess (or after "
            "phasic_distributed.initialize())."
        )
    return client


def process_info() -> tuple[int, int]:
    """(rank, number of processes) of jax.distributed, without starting the backend."""
    import phasic_distributed

    kv_client()  # raises the clear "not initialized" error
    info = phasic_distributed.distributed_process()
    assert info is not None  # the client exists
    return info
