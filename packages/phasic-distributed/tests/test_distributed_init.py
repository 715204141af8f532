"""Environments as dicts -> the expected model, plan or error text.

Covers hostlist forms, complete srun steps, and partial or contradictory
environments (ssh into an allocation, the batch script outside srun, salloc
without srun, procid >= ntasks, non-numeric counts, empty node lists, ...).
"""

from __future__ import annotations

import pytest
from distributed_hostlists import INVALID_BOTH, INVALID_STRICTER, VALID

from phasic_distributed import (
    CoordinatorError,
    DistributedError,
    LauncherEnvironmentError,
    SlurmEnvironment,
    SlurmEnvironmentError,
    detect_slurm_environment,
    expand_hostlist,
    get_coordinator_address,
    parse_tasks_per_node,
    plan,
)
from phasic_distributed.coordinator import parse_address


def step_env(**over: str) -> dict[str, str]:
    """What task 1 of `srun -N2 -n4 -c2` sees (the srun variables of docs/pages/distributed/phasic_distributed.md)."""
    env = {
        "SLURM_JOB_ID": "4242",
        "SLURM_STEP_ID": "0",
        "SLURM_PROCID": "1",
        "SLURM_NTASKS": "4",
        "SLURM_STEP_NUM_TASKS": "4",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "0",
        "SLURM_STEP_NODELIST": "rack[1-2]-node[01]",
        "SLURM_JOB_NODELIST": "rack[1-2]-node[01]",
        "SLURM_STEP_TASKS_PER_NODE": "2(x2)",
        "SLURM_TASKS_PER_NODE": "2(x2)",
        "SLURM_CPUS_PER_TASK": "2",
        "SLURMD_NODENAME": "rack1-node01",
    }
    env.update(over)
    return {k: v for k, v in env.items() if v is not None and v != "<unset>"}


UNSET = "<unset>"

# -- hostlists (the full corpus; test_hostlist.py checks it against scontrol) --------------


@pytest.mark.parametrize("text", sorted(VALID))
def test_hostlist_forms(text):
    assert expand_hostlist(text) == VALID[text]


def test_corpus_is_large_enough():
    assert len(VALID) >= 20 and len(INVALID_BOTH) + len(INVALID_STRICTER) >= 10


@pytest.mark.parametrize("text,fragment", INVALID_BOTH + INVALID_STRICTER)
def test_invalid_hostlists_name_the_position(text, fragment):
    with pytest.raises(ValueError, match="position") as info:
        expand_hostlist(text)
    assert fragment in str(info.value)


# -- tasks per node ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [("1(x4)", [1, 1, 1, 1]), ("3(x2),2", [3, 3, 2]), ("2(x3),1", [2, 2, 2, 1]), ("5", [5]),
     ("1,2,3", [1, 2, 3])],
)
def test_tasks_per_node(text, expected):
    assert parse_tasks_per_node(text) == expected


@pytest.mark.parametrize("text", ["2(3)", "x", "", "2(x0)", "-1"])
def test_tasks_per_node_rejects(text):
    with pytest.raises(ValueError, match="tasks-per-node"):
        parse_tasks_per_node(text)


# -- a complete srun step ------------------------------------------------------------------


def test_complete_step_model():
    s = detect_slurm_environment(step_env())
    assert s is not None
    assert s.model_dump(exclude={"problems"}) == {
        "context": "step", "job_id": 4242, "step_id": 0, "procid": 1, "ntasks": 4,
        "ntasks_source": "SLURM_NTASKS", "localid": 1, "nodeid": 0,
        "node_name": "rack1-node01", "step_nodelist": "rack[1-2]-node[01]",
        "job_nodelist": "rack[1-2]-node[01]", "nodes": ("rack1-node01", "rack2-node01"),
        "nodelist_source": "step", "cpus_per_task": 2, "tasks_per_node": (2, 2),
        "het_size": None, "het_offset": None, "array_job_id": None, "array_task_id": None,
    }
    assert s.problems == ()
    assert s.local_tasks == 2


def test_step_plan_uses_first_node_of_the_step():
    p = plan(step_env(SLURM_STEP_NODELIST="rack[1-2]-node[01-04]", SLURM_STEP_TASKS_PER_NODE="1(x8)",
                      SLURM_NTASKS="8", SLURM_STEP_NUM_TASKS="8"))
    host, port = parse_address(p.coordinator_address)
    assert host == "rack1-node01"  # not jax's string slicing ("rack")
    assert (p.num_processes, p.process_id, p.source) == (8, 1, "slurm")
    assert (p.cores, p.local_device_count, p.omp_threads_per_device) == (2, 2, 1)


def test_zero_padded_single_node_coordinator():
    env = step_env(SLURM_STEP_NODELIST="node[001]", SLURM_JOB_NODELIST="node[001]",
                   SLURM_STEP_TASKS_PER_NODE="4", SLURMD_NODENAME="node001", SLURM_NODEID="0")
    assert get_coordinator_address(env).startswith("node001:")


def test_step_devices_from_phasic_cpus_and_old_name():
    assert plan(step_env(PTDALG_CPUS="4")).local_device_count == 4
    assert plan(step_env(PTDALG_CPUS="4", PHASIC_CPUS="8")).local_device_count == 8
    p = plan(step_env(SLURM_CPUS_PER_TASK="8", PHASIC_CPUS="2"))
    assert (p.local_device_count, p.omp_threads_per_device) == (2, 4)
    assert plan(step_env(), cpus=3).local_device_count == 3


def test_ntasks_fallback_order():
    s = SlurmEnvironment.from_env(step_env(SLURM_NTASKS=UNSET))
    assert (s.ntasks, s.ntasks_source) == (4, "SLURM_STEP_NUM_TASKS")
    s = SlurmEnvironment.from_env(step_env(SLURM_NTASKS=UNSET, SLURM_STEP_NUM_TASKS=UNSET,
                                           SLURM_STEP_TASKS_PER_NODE="3(x2)",
                                           SLURM_PROCID="5"))
    assert (s.ntasks, s.ntasks_source) == (6, "2 nodes x SLURM_STEP_TASKS_PER_NODE")
    assert s.errors == []
    # One tasks-per-node number for several nodes means that many on each.
    s = SlurmEnvironment.from_env(step_env(SLURM_NTASKS=UNSET, SLURM_STEP_NUM_TASKS=UNSET,
                                           SLURM_STEP_TASKS_PER_NODE="2"))
    assert s.ntasks == 4


def test_step_tasks_per_node_preferred_over_job():
    s = SlurmEnvironment.from_env(step_env(SLURM_TASKS_PER_NODE="8(x2)"))
    assert s.tasks_per_node == (2, 2)


def test_het_and_array_fields():
    s = SlurmEnvironment.from_env(step_env(SLURM_HET_SIZE="2", SLURM_HET_JOB_OFFSET="1",
                                           SLURM_ARRAY_JOB_ID="4000", SLURM_ARRAY_TASK_ID="7"))
    assert (s.het_size, s.het_offset, s.array_job_id, s.array_task_id) == (2, 1, 4000, 7)


def test_single_task_step_is_not_distributed():
    p = plan(step_env(SLURM_NTASKS="1", SLURM_STEP_NUM_TASKS="1", SLURM_PROCID="0",
                      SLURM_STEP_NODELIST="n1", SLURM_STEP_TASKS_PER_NODE="1",
                      SLURMD_NODENAME="n1", SLURM_LOCALID="0"))
    assert (p.num_processes, p.coordinator_address, p.source) == (1, None, "slurm")


# -- partial or contradictory environments -------------------------------------------------

BATCH = {  # the batch script itself: no step variables (docs/pages/distributed/phasic_distributed.md)
    "ENVIRONMENT": "BATCH", "SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "c[1-4]",
    "SLURM_NTASKS": "4", "SLURM_TASKS_PER_NODE": "1(x4)", "SLURM_PROCID": "0",
    "SLURM_CPUS_PER_TASK": "4",
}
SALLOC = {"SLURM_JOB_ID": "78", "SLURM_JOB_NODELIST": "c[1-2]", "SLURM_NNODES": "2",
          "SLURM_NTASKS": "2", "SLURM_TASKS_PER_NODE": "1(x2)"}
SSH = {"SLURM_JOB_ID": "79", "SLURM_JOB_NODELIST": "c[1-2]",
       "SSH_CONNECTION": "10.0.0.1 5555 10.0.0.2 22"}

BAD_ENVIRONMENTS = [
    ("batch script outside srun", BATCH,
     ["the batch script itself (outside srun)", "srun --nodes=4 --ntasks=4 --cpus-per-task=4"]),
    ("salloc without srun", SALLOC,
     ["an salloc shell (outside srun)", "srun --nodes=2 --ntasks=2"]),
    ("ssh into the allocation", SSH,
     ["an ssh session into the allocation", "srun --jobid=79 --nodes=2"]),
    ("procid >= ntasks", step_env(SLURM_PROCID="4"),
     ["SLURM_PROCID=4 but the step has only 4 task(s) (from SLURM_NTASKS)"]),
    ("non-numeric ntasks", step_env(SLURM_NTASKS="four"),
     ["SLURM_NTASKS='four' is not an integer"]),
    ("non-numeric procid", step_env(SLURM_PROCID="1a"),
     ["SLURM_PROCID='1a' is not an integer"]),
    ("negative procid", step_env(SLURM_PROCID="-1"), ["SLURM_PROCID=-1 is below 0"]),
    ("zero ntasks", step_env(SLURM_NTASKS="0"), ["SLURM_NTASKS=0 is below 1"]),
    ("counts disagree", step_env(SLURM_STEP_NUM_TASKS="2"),
     ["SLURM_NTASKS=4 but SLURM_STEP_NUM_TASKS=2"]),
    ("tasks per node disagree", step_env(SLURM_STEP_TASKS_PER_NODE="3(x2)"),
     ["adds up to 6 tasks"]),
    ("tasks per node vs nodes", step_env(SLURM_STEP_TASKS_PER_NODE="1,1,2"),
     ["describes 3 nodes but the step node list has 2"]),
    ("empty node list", step_env(SLURM_STEP_NODELIST=",", SLURM_STEP_TASKS_PER_NODE=UNSET,
                                 SLURM_TASKS_PER_NODE=UNSET),
     ["the step node list is empty"]),
    ("malformed node list", step_env(SLURM_STEP_NODELIST="rack[2-1]"),
     ["the step node list 'rack[2-1]' is malformed", "runs backwards"]),
    ("no node list at all", step_env(SLURM_STEP_NODELIST=UNSET, SLURM_JOB_NODELIST=UNSET),
     ["no node list"]),
    ("procid missing in a step", step_env(SLURM_PROCID=UNSET), ["SLURM_PROCID is not set"]),
    ("no task count at all", step_env(SLURM_NTASKS=UNSET, SLURM_STEP_NUM_TASKS=UNSET,
                                      SLURM_STEP_TASKS_PER_NODE=UNSET,
                                      SLURM_TASKS_PER_NODE=UNSET, SLURM_STEP_NODELIST="n1",
                                      SLURM_JOB_NODELIST="n1", SLURMD_NODENAME="n1",
                                      SLURM_PROCID="0"),
     ["the task count is unknown"]),
    ("nodeid beyond the node list", step_env(SLURM_NODEID="5"),
     ["SLURM_NODEID=5 but the node list has 2 node(s)"]),
    ("rank 0 not on the first node", step_env(SLURM_PROCID="0", SLURM_NODEID="1",
                                              SLURMD_NODENAME="rack2-node01"),
     ["task 0 runs on 'rack2-node01' but the coordinator is the first node 'rack1-node01'",
      "--distribution=block"]),
    ("only some variables (hand-made)", {"SLURM_PROCID": "0", "SLURM_NTASKS": "2"},
     ["incomplete SLURM environment", "SLURM_NTASKS, SLURM_PROCID"]),
]


@pytest.mark.parametrize("name,env,fragments", BAD_ENVIRONMENTS, ids=[b[0] for b in BAD_ENVIRONMENTS])
def test_bad_environment_is_explained(name, env, fragments):
    with pytest.raises(SlurmEnvironmentError) as info:
        plan(env)
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in:\n{text}"
    # doctor sees the same errors without raising
    s = SlurmEnvironment.from_env(env)
    assert s.errors and s.context != "none"


def test_at_least_eight_bad_environments():
    assert len(BAD_ENVIRONMENTS) >= 8


def test_batch_script_of_a_single_task_job_runs_as_one_process():
    env = dict(BATCH, SLURM_JOB_NODELIST="c1", SLURM_NTASKS="1", SLURM_TASKS_PER_NODE="1")
    p = plan(env)
    assert (p.num_processes, p.source, p.cores) == (1, "slurm", 4)
    s = SlurmEnvironment.from_env(env)
    assert [w.code for w in s.problems] == ["outside-srun"]
    assert s.problems[0].severity == "warning"


def test_job_nodelist_fallback_warns():
    s = SlurmEnvironment.from_env(step_env(SLURM_STEP_NODELIST=UNSET))
    assert s.nodelist_source == "job" and s.nodes == ("rack1-node01", "rack2-node01")
    assert [p.code for p in s.problems] == ["job-nodelist"]


def test_no_slurm_at_all():
    assert detect_slurm_environment({"HOME": "/root"}) is None
    p = plan({})
    assert (p.source, p.num_processes, p.coordinator_address) == ("single", 1, None)
    with pytest.raises(SlurmEnvironmentError, match="not a SLURM job"):
        get_coordinator_address({})


def test_never_falls_back_to_localhost():
    for env in (BATCH, SALLOC, SSH, {"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}):
        with pytest.raises(SlurmEnvironmentError):
            get_coordinator_address(env)


# -- launcher variables --------------------------------------------------------------------

LAUNCH = {"PHASIC_COORDINATOR": "127.0.0.1:23456", "PHASIC_NUM_PROCESSES": "4",
          "PHASIC_PROCESS_ID": "2", "PHASIC_LOCAL_DEVICES": "2"}


def test_launcher_plan():
    p = plan(LAUNCH)
    assert (p.source, p.coordinator_address, p.num_processes, p.process_id,
            p.local_device_count) == ("launcher", "127.0.0.1:23456", 4, 2, 2)


def test_launcher_wins_over_slurm():
    assert plan({**step_env(), **LAUNCH}).source == "launcher"


@pytest.mark.parametrize(
    "over,error,fragment",
    [
        ({"PHASIC_PROCESS_ID": None}, LauncherEnvironmentError, "PHASIC_PROCESS_ID missing"),
        ({"PHASIC_PROCESS_ID": "4"}, LauncherEnvironmentError, "outside 0..3"),
        ({"PHASIC_PROCESS_ID": "x"}, LauncherEnvironmentError, "'x' is not an integer"),
        ({"PHASIC_NUM_PROCESSES": "0"}, LauncherEnvironmentError, "must be at least 1"),
        ({"PHASIC_COORDINATOR": "localhost"}, CoordinatorError, "is not host:port"),
        ({"PHASIC_COORDINATOR": "h:99999"}, CoordinatorError, "not a port number"),
        ({"PHASIC_LOCAL_DEVICES": "two"}, DistributedError, "PHASIC_LOCAL_DEVICES='two'"),
        ({"PHASIC_CPUS": "0", "PHASIC_LOCAL_DEVICES": None}, DistributedError,
         "PHASIC_CPUS=0 must be at least 1"),
    ],
)
def test_bad_launcher_variables(over, error, fragment):
    env = {k: v for k, v in {**LAUNCH, **over}.items() if v is not None}
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        plan(env)


def test_bad_cpus_argument():
    with pytest.raises(DistributedError, match="cpus=0"):
        plan({}, cpus=0)
