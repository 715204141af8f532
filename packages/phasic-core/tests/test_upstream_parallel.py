"""Upstream phasic's start-up conventions: 64-bit JAX on import, init_parallel's result
fields, and a partial SLURM environment that runs as one process with an explanation.

Each check runs in a fresh interpreter: JAX's mode and its backend are process-wide.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from phasic import auto_parallel


def child(code: str, env: dict[str, str] | None = None) -> tuple[dict, str]:
    """Run `code` in a fresh Python without SLURM/PHASIC/JAX variables; return the JSON it
    printed on its last line and its stderr."""
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "SLURMD_", "PHASIC_", "PTDALG_", "JAX_", "XLA_"))}
    full.update(env or {})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


X64_STATE = """
    import json, sys
    {before}
    import phasic
    import jax
    import jax.numpy as jnp
    print(json.dumps({{"x64": jax.config.read("jax_enable_x64"),
                      "dtype": str(jnp.ones(1).dtype)}}))
"""


@pytest.mark.parametrize("before, env, x64", [
    ("", {}, True),  # jax imported after phasic: through JAX_ENABLE_X64
    ("import jax", {}, True),  # jax imported first: through its config
    ("", {"PHASIC_ENABLE_X64": "0"}, False),
    ("import jax", {"PHASIC_ENABLE_X64": "off"}, False),
    ("", {"JAX_ENABLE_X64": "0"}, False),  # the user's own JAX setting wins
])
def test_import_phasic_turns_on_64_bit_jax(before, env, x64):
    out, _ = child(X64_STATE.format(before=before), env)
    assert out == {"x64": x64, "dtype": "float64" if x64 else "float32"}


def test_import_phasic_still_loads_no_jax():
    out, _ = child("""
        import json, os, sys, phasic
        print(json.dumps({"jax": "jax" in sys.modules, "env": os.environ.get("JAX_ENABLE_X64")}))
    """)
    assert out == {"jax": False, "env": "1"}


def test_unrecognized_opt_out_value_warns_and_keeps_x64_on():
    out, stderr = child(X64_STATE.format(before=""), {auto_parallel.ENABLE_X64: "maybe"})
    assert out["x64"] is True
    assert "PHASIC_ENABLE_X64='maybe' is not 0 or 1" in stderr


INIT = """
    import json, warnings
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        import phasic
        c = phasic.init_parallel({args})
    print(json.dumps({{"device_count": c.device_count, "local": c.local_device_count,
                      "strategy": c.strategy, "env_type": c.env_info.env_type,
                      "devices": len(c.devices), "processes": c.plan.num_processes,
                      "again": phasic.init_parallel({args}).plan == c.plan,
                      "warnings": [str(w.message) for w in caught]}}))
"""


def test_init_parallel_result_has_upstreams_fields():
    out, _ = child(INIT.format(args="cpus=3"))
    assert out == {"device_count": 3, "local": 3, "strategy": "pmap", "env_type": "script",
                   "devices": 3, "processes": 1, "again": True, "warnings": []}
    one, _ = child(INIT.format(args="cpus=1"))
    assert (one["device_count"], one["strategy"]) == (1, "vmap")


@pytest.mark.parametrize("env", [
    {"SLURM_PROCID": "0", "SLURM_NODELIST": "node1"},
    {"SLURM_PROCID": "1", "SLURM_NODELIST": "node[1-2]"},
    {"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "c[1-2]"},
])
def test_partial_slurm_environment_runs_as_one_process_and_says_why(env):
    out, _ = child(INIT.format(args="cpus=2"), env)
    assert (out["processes"], out["device_count"], out["env_type"]) == (1, 2, "script")
    [warning] = out["warnings"]
    assert "incomplete SLURM environment" in warning
    assert "ONE process" in warning and "srun --" in warning
    for name in env:
        assert name in warning  # it lists what was found


def test_slurm_single_task_job_is_slurm_single():
    env = {"SLURM_JOB_ID": "5", "SLURM_PROCID": "0", "SLURM_NTASKS": "1",
           "SLURM_STEP_NODELIST": "n1", "SLURM_STEP_TASKS_PER_NODE": "1",
           "SLURMD_NODENAME": "n1", "SLURM_CPUS_PER_TASK": "2"}
    out, _ = child(INIT.format(args=""), env)
    assert (out["env_type"], out["processes"], out["device_count"]) == ("slurm_single", 1, 2)


def test_init_parallel_bad_arguments():
    with pytest.raises(ValueError, match="either cpus or plan"):
        auto_parallel.init_parallel(2, plan=object())
