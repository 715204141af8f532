"""Coordinator port: deterministic per step, distinct between concurrent steps, off the ephemeral range."""

from __future__ import annotations

import socket

import pytest

from phasic_distributed import (
    CoordinatorError,
    SlurmEnvironment,
    free_port,
    get_coordinator_address,
)
from phasic_distributed.coordinator import (
    PORT_MAX,
    PORT_MIN,
    check_port_free,
    ephemeral_port_range,
    parse_address,
    slurm_port,
)


def env_for(job="1000", step="0", procid="0", **extra) -> dict[str, str]:
    env = {
        "SLURM_JOB_ID": job, "SLURM_STEP_ID": step, "SLURM_PROCID": procid,
        "SLURM_NTASKS": "4", "SLURM_STEP_NODELIST": "cn[07-08]",
        "SLURM_STEP_TASKS_PER_NODE": "2(x2)",
    }
    env.update(extra)
    return env


def port_of(env) -> int:
    return parse_address(get_coordinator_address(env))[1]


def test_same_port_on_every_rank_of_a_step():
    ports = {port_of(env_for(procid=str(r), SLURM_LOCALID=str(r % 2), SLURM_NODEID=str(r // 2)))
             for r in range(4)}
    assert len(ports) == 1


def test_concurrent_steps_of_one_job_get_distinct_ports():
    ports = [port_of(env_for(step=str(s))) for s in range(64)]
    assert len(set(ports)) == 64


def test_array_tasks_and_het_components_get_distinct_ports():
    array = [port_of(env_for(job=str(5000 + t), SLURM_ARRAY_JOB_ID="5000",
                             SLURM_ARRAY_TASK_ID=str(t))) for t in range(100)]
    assert len(set(array)) == 100
    het = [port_of(env_for(step=str(s), SLURM_HET_SIZE="3", SLURM_HET_JOB_OFFSET=str(h)))
           for s in range(10) for h in range(3)]
    assert len(set(het)) == 30


def test_ports_avoid_the_ephemeral_range_of_this_kernel():
    lo, hi = ephemeral_port_range()
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        assert (lo, hi) == tuple(int(x) for x in f.read().split())
    for job in range(300):
        port = port_of(env_for(job=str(job)))
        assert PORT_MIN <= port <= PORT_MAX and not lo <= port <= hi


@pytest.mark.parametrize("ephemeral", [(1024, 65000), (10000, 65535), (20000, 40000)])
def test_ports_avoid_other_ephemeral_ranges(ephemeral):
    lo, hi = ephemeral
    for job in range(200):
        s = SlurmEnvironment.from_env(env_for(job=str(job)))
        port = slurm_port(s, ephemeral)
        assert 1024 <= port <= PORT_MAX and not lo <= port <= hi
        if ephemeral[0] > PORT_MIN or ephemeral[1] < PORT_MAX:
            assert port >= PORT_MIN


def test_no_port_left_is_an_error():
    s = SlurmEnvironment.from_env(env_for())
    with pytest.raises(CoordinatorError, match="set PHASIC_COORDINATOR_PORT"):
        slurm_port(s, (1, 65535))


def test_unreadable_proc_file_falls_back_to_linux_default(tmp_path):
    assert ephemeral_port_range(tmp_path / "missing") == (32768, 60999)


def test_port_and_host_overrides():
    assert get_coordinator_address(env_for(PHASIC_COORDINATOR_PORT="23456")) == "cn07:23456"
    assert get_coordinator_address(env_for(PHASIC_COORDINATOR_HOST="10.1.2.3",
                                           PHASIC_COORDINATOR_PORT="23456")) == "10.1.2.3:23456"
    for bad in ("0", "65536", "http"):
        with pytest.raises(CoordinatorError, match="PHASIC_COORDINATOR_PORT"):
            get_coordinator_address(env_for(PHASIC_COORDINATOR_PORT=bad))


def test_parse_address_forms():
    assert parse_address("node1:1234") == ("node1", 1234)
    assert parse_address("[::1]:1234") == ("::1", 1234)
    for bad in ("node1", ":12", "node1:"):
        with pytest.raises(CoordinatorError):
            parse_address(bad)


def test_free_port_is_bindable_and_busy_port_is_reported():
    port = free_port()
    check_port_free(port)
    with socket.socket() as s:
        s.bind(("", port))
        s.listen()
        with pytest.raises(CoordinatorError, match=f"rank 0: coordinator port {port} is in use"):
            check_port_free(port)


def _infos(*addresses: str) -> list[tuple]:
    """What socket.getaddrinfo returns, reduced to what bind_address reads."""
    return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
             (a, 0)) for a in addresses]


@pytest.mark.parametrize("host, addresses, expected", [
    ("127.0.0.1", ["127.0.0.1"], "127.0.0.1:5000"),      # local ranks: loopback only
    ("localhost", ["::1", "127.0.0.1"], "[::1]:5000"),
    ("node01", ["10.1.2.3"], "10.1.2.3:5000"),            # a scheduler: the node's address
    ("node01", ["127.0.1.1", "10.1.2.3"], "10.1.2.3:5000"),
    ("node01", ["fe80::1%eth0"], "[fe80::1%eth0]:5000"),
    # a node name that resolves to loopback only says nothing about the address
    # other nodes use: every interface, as JAX would
    ("node01", ["127.0.1.1"], "[::]:5000"),
])
def test_bind_address(host, addresses, expected):
    from phasic_distributed.coordinator import bind_address

    assert bind_address(host, 5000, _infos(*addresses)) == expected
