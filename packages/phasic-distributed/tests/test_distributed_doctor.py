"""`phasic-distributed doctor`: table and --json for good and bad environments."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from distributed_helpers import clean_env

DOCTOR = [sys.executable, "-m", "phasic_distributed", "doctor"]

STEP = {
    "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "3", "SLURM_PROCID": "1", "SLURM_NTASKS": "4",
    "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_STEP_NODELIST": "rack[1-2]-node[01-02]",
    "SLURM_JOB_NODELIST": "rack[1-2]-node[01-02]", "SLURM_STEP_TASKS_PER_NODE": "1(x4)",
    "SLURM_CPUS_PER_TASK": "2", "SLURMD_NODENAME": "rack1-node01",
}


def doctor(*args: str, **env: str):
    return subprocess.run(DOCTOR + list(args), env=clean_env(**env), capture_output=True,
                          text=True, timeout=60)


def test_single_process_table():
    r = doctor(PHASIC_CPUS="4")
    assert r.returncode == 0, r.stderr
    for fragment in ("not a SLURM job", "source                 single",
                     "CPU devices            4", "OK"):
        assert fragment in r.stdout, r.stdout


def test_srun_step_json_matches_the_plan():
    from phasic_distributed import get_coordinator_address

    r = doctor("--json", **STEP)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["slurm"]["nodes"] == ["rack1-node01", "rack1-node02", "rack2-node01",
                                        "rack2-node02"]
    assert report["plan"]["coordinator_address"] == get_coordinator_address(STEP)
    assert (report["plan"]["num_processes"], report["plan"]["process_id"]) == (4, 1)
    assert report["jax_own_detection_missing"] == []


def test_bad_environment_lists_every_problem_with_its_srun_fix():
    env = dict(STEP, SLURM_PROCID="7", SLURM_NODEID="9", PHASIC_CPUS="2", PTDALG_CPUS="3")
    r = doctor(**env)
    assert r.returncode == 1
    out = r.stdout
    assert "[error] SLURM_PROCID=7 but the step has only 4 task(s)" in out
    assert "[error] SLURM_NODEID=9 but the node list has 4 node(s)" in out
    assert "fix: srun --nodes=4 --ntasks=4 --cpus-per-task=2 python your_script.py" in out
    assert "[warning] PHASIC_CPUS=2 and PTDALG_CPUS=3 differ" in out
    assert "NOT OK" in out


def test_batch_script_json_explains_outside_srun():
    r = doctor("--json", ENVIRONMENT="BATCH", SLURM_JOB_ID="9", SLURM_JOB_NODELIST="c[1-2]",
               SLURM_NTASKS="2")
    report = json.loads(r.stdout)
    assert r.returncode == 1 and report["ok"] is False and report["plan"] is None
    [problem] = [p for p in report["problems"] if p["code"] == "outside-srun"]
    assert problem["severity"] == "error" and problem["fix"].startswith("srun --nodes=2")
    assert "SLURM_STEP_NODELIST" in report["jax_own_detection_missing"]


def test_console_script_is_installed():
    exe = shutil.which("phasic-distributed")
    assert exe, "phasic-distributed is not on PATH: install the package"
    r = subprocess.run([exe, "doctor"], env=clean_env(), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "phasic-distributed doctor" in r.stdout


def test_doctor_does_not_import_jax():
    r = subprocess.run(
        [sys.executable, "-c",
         "import sys, phasic_distributed; from phasic_distributed.cli import collect; collect(); "
         "print('jax' in sys.modules)"],
        env=clean_env(), capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr
