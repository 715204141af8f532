"""Open MPI's mpirun behind the scheduler seam, from recorded environments.

RANK1_OF_2 is what rank 1 of `mpirun -n 2` saw on the development machine (Open
MPI 4.1.4, Debian 12; the variables phasic does not read are left out).
"""

from __future__ import annotations

import pytest

from phasic_distributed import MpiEnvironmentError, Step, plan, scheduler_step
from phasic_distributed.coordinator import parse_address, port_for_key
from phasic_distributed.env_vars import rank_environment
from phasic_distributed.schedulers import present_scheduler

RANK1_OF_2 = {
    "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1",
    "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
    "OMPI_COMM_WORLD_NODE_RANK": "1", "OMPI_UNIVERSE_SIZE": "2",
    "OMPI_MCA_ess_base_jobid": "1344798721", "OMPI_MCA_ess_base_vpid": "1",
    "OMPI_MCA_orte_hnp_uri": "1344798720.0;tcp://192.0.2.2,10.213.0.254:54021",
    "PMIX_NAMESPACE": "1344798721", "PMIX_RANK": "1", "PMIX_HOSTNAME": "vm",
}


def test_a_recorded_rank():
    assert scheduler_step(RANK1_OF_2) == Step("openmpi", 1, 2)
    p = plan(RANK1_OF_2)
    assert (p.source, p.num_processes, p.process_id) == ("openmpi", 2, 1)
    host, port = parse_address(p.coordinator_address)
    # all ranks on this host: rank 0's host is this one, on loopback
    assert host == "127.0.0.1"
    assert port == port_for_key("openmpi:1344798721")
    at = present_scheduler(RANK1_OF_2).placement(RANK1_OF_2)
    assert (at.local_rank, at.local_size, at.host, at.problems) == (1, 2, "vm", ())


def test_every_rank_of_a_job_gets_the_same_coordinator_and_another_job_another_port():
    addresses = {plan({**RANK1_OF_2, "OMPI_COMM_WORLD_RANK": str(r),
                       "OMPI_COMM_WORLD_LOCAL_RANK": str(r)}).coordinator_address
                 for r in range(2)}
    assert len(addresses) == 1
    other = plan({**RANK1_OF_2, "PMIX_NAMESPACE": "1344864257"}).coordinator_address
    assert other != addresses.pop()


def test_overrides():
    p = plan({**RANK1_OF_2, "PHASIC_COORDINATOR_PORT": "23456"})
    assert p.coordinator_address == "127.0.0.1:23456"


def test_single_rank_is_one_process():
    env = {**RANK1_OF_2, "OMPI_COMM_WORLD_SIZE": "1", "OMPI_COMM_WORLD_RANK": "0",
           "OMPI_COMM_WORLD_LOCAL_SIZE": "1", "OMPI_COMM_WORLD_LOCAL_RANK": "0"}
    assert scheduler_step(env) is None
    p = plan(env)
    assert (p.source, p.num_processes, p.coordinator_address) == ("openmpi", 1, None)


def test_several_hosts_need_the_coordinator_host():
    env = {**RANK1_OF_2, "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3"}
    with pytest.raises(MpiEnvironmentError) as info:
        plan(env)
    assert "the 4 ranks are on several hosts" in str(info.value)
    assert "PHASIC_COORDINATOR_HOST" in str(info.value)
    p = plan({**env, "PHASIC_COORDINATOR_HOST": "node01"})
    assert parse_address(p.coordinator_address)[0] == "node01"


@pytest.mark.parametrize("over, fragment", [
    ({"OMPI_COMM_WORLD_RANK": "two"}, "OMPI_COMM_WORLD_RANK='two' is not an integer"),
    ({"OMPI_COMM_WORLD_RANK": "2"}, "OMPI_COMM_WORLD_RANK=2 but OMPI_COMM_WORLD_SIZE=2"),
    ({"OMPI_COMM_WORLD_RANK": "-1"}, "OMPI_COMM_WORLD_RANK=-1 is below 0"),
    ({"OMPI_COMM_WORLD_SIZE": "0"}, "OMPI_COMM_WORLD_SIZE=0 is below 1"),
    ({"OMPI_COMM_WORLD_LOCAL_SIZE": "3"},
     "OMPI_COMM_WORLD_LOCAL_SIZE=3 but OMPI_COMM_WORLD_SIZE=2"),
    ({"OMPI_COMM_WORLD_RANK": None}, "OMPI_COMM_WORLD_RANK is not set"),
])
def test_bad_environments_are_explained(over, fragment):
    env = {k: v for k, v in {**RANK1_OF_2, **over}.items() if v is not None}
    with pytest.raises(MpiEnvironmentError) as info:
        plan(env)
    assert fragment in str(info.value)
    assert "fix:" in str(info.value)


def test_step_check_rejects_non_integers():
    with pytest.raises(MpiEnvironmentError, match="OMPI_COMM_WORLD_SIZE='x'"):
        scheduler_step({**RANK1_OF_2, "OMPI_COMM_WORLD_SIZE": "x"})


def test_no_job_name_warns_that_jobs_share_a_port():
    env = {k: v for k, v in RANK1_OF_2.items()
           if k not in ("PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid")}
    at = present_scheduler(env).placement(env)
    assert [p.severity for p in at.problems] == ["warning"]
    assert "same coordinator port" in at.problems[0].message


def test_mpirun_inside_a_slurm_job_is_mpirun():
    """mpirun's ranks in an allocation carry the SLURM variables of mpirun's daemons."""
    daemons = {"SLURM_JOB_ID": "77", "SLURM_STEP_ID": "1", "SLURM_PROCID": "0",
               "SLURM_NTASKS": "1", "SLURM_STEP_NODELIST": "c1"}
    p = plan({**daemons, **RANK1_OF_2})
    assert (p.source, p.num_processes, p.process_id) == ("openmpi", 2, 1)


def test_a_launched_rank_drops_the_schedulers_variables():
    env = rank_environment({**RANK1_OF_2, "SLURM_PROCID": "3", "HOME": "/root"},
                           coordinator="127.0.0.1:5000", nprocs=2, rank=0, devices=1)
    assert not [k for k in env if k.startswith(("OMPI_", "PMIX_", "SLURM_"))]
    assert env["HOME"] == "/root" and env["PHASIC_PROCESS_ID"] == "0"
    assert plan(env).source == "launcher"
