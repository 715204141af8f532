"""phasic-testkit: multi-process JAX tests for pytest, usable in any repository.

Mark a test with ``@pytest.mark.multiprocess(nprocs=4, devices_per_process=2)``; inside
it use the cross-rank assertions below. See docs/pages/testkit.md.
"""

from .assertions import (
    assert_allclose_across_processes,
    assert_equal_across_processes,
    assert_jit_matches_eager,
    assert_same_on_all_devices,
    assert_serializable,
    assert_vmap_matches_loop,
    barrier,
    gather,
)

__version__ = "0.1.0"

__all__ = [
    "assert_allclose_across_processes",
    "assert_equal_across_processes",
    "assert_jit_matches_eager",
    "assert_same_on_all_devices",
    "assert_serializable",
    "assert_vmap_matches_loop",
    "barrier",
    "gather",
]
