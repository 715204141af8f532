"""`import phasic_distributed` is cheap: which modules an import, and the step check, load."""

from __future__ import annotations

import json


def loaded_after(run_python, code: str) -> set[str]:
    """The modules of interest that are in sys.modules after running `code`."""
    r = run_python(code + """
import sys, json
print(json.dumps(sorted(m for m in sys.modules
                        if m.split(".")[0] in ("jax", "pydantic", "numpy", "phasic_distributed"))))
""")
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.splitlines()[-1]))


def test_import_loads_only_the_package(run_python):
    assert loaded_after(run_python, "import phasic_distributed") == {"phasic_distributed"}


def test_the_step_check_loads_no_pydantic_and_no_jax(run_python):
    mods = loaded_after(run_python, """
import phasic_distributed
assert phasic_distributed.scheduler_step({"OMPI_COMM_WORLD_SIZE": "4",
                                          "OMPI_COMM_WORLD_RANK": "2"}).rank == 2
assert phasic_distributed.scheduler_step({"SLURM_PROCID": "1", "SLURM_NPROCS": "2",
                                          "SLURM_STEP_NODELIST": "n[1-2]"}).size == 2
assert phasic_distributed.requested_devices({"PHASIC_CPUS": "3"}) == 3
assert phasic_distributed.backend_started() is False
""")
    assert not {m for m in mods if m.split(".")[0] in ("pydantic", "jax", "numpy")}, mods
    assert "phasic_distributed.slurm" not in mods  # the pydantic model of SLURM facts


def test_plan_loads_pydantic_but_not_jax(run_python):
    mods = loaded_after(run_python, "import phasic_distributed as pd; pd.plan({})")
    assert "pydantic" in mods and "jax" not in mods


def test_every_exported_name_resolves():
    import phasic_distributed

    for name in phasic_distributed.__all__:
        assert getattr(phasic_distributed, name) is not None, name
    assert callable(phasic_distributed.plan) and callable(phasic_distributed.initialize)
