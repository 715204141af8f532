"""A partial SLURM environment, as upstream phasic accepts it (SLURM_PROCID and a node
list exported by hand, no step or job markers): detection reads what is there and
explains what is missing; it is never a multi-process step (so `import phasic` does
not wait for ranks), and `plan()` refuses it with the srun command that would work.
`phasic.init_parallel()` runs it as one process with a warning (phasic-core's tests)."""

from __future__ import annotations

import pytest

from phasic_distributed import (
    SlurmEnvironmentError,
    detect_slurm_environment,
    plan,
    scheduler_step,
)

PARTIAL = [
    ({"SLURM_PROCID": "0", "SLURM_NODELIST": "node1"}, ("node1",), 0,
     "srun --ntasks=1 python your_script.py"),
    ({"SLURM_PROCID": "1", "SLURM_NODELIST": "node[1-2]"}, ("node1", "node2"), 1,
     "srun --nodes=2 --ntasks=2 python your_script.py"),
]


@pytest.mark.parametrize("env, nodes, procid, fix", PARTIAL)
def test_partial_environment_is_detected_and_explained(env, nodes, procid, fix):
    s = detect_slurm_environment(env)
    assert s is not None and s.context == "partial"
    assert (s.nodes, s.procid, s.ntasks, s.job_id) == (nodes, procid, None, None)
    [problem] = s.errors
    assert problem.code == "partial"
    assert ", ".join(sorted(env)) in problem.message
    assert problem.fix == fix
    assert scheduler_step(env) is None  # not a rank of a step: nothing to wait for


@pytest.mark.parametrize("env, nodes, procid, fix", PARTIAL)
def test_plan_refuses_a_partial_environment_naming_the_fix(env, nodes, procid, fix):
    with pytest.raises(SlurmEnvironmentError, match="incomplete SLURM environment") as info:
        plan(env)
    assert fix in str(info.value)
