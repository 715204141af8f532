"""One network namespace per node on a private bridge, so each node has its own address.

    root namespace: bridge phasic-br0 10.213.0.254/24, slurmctld, munged
    phasic-nodeK:   eth0 10.213.0.K/24 (veth peer of phasic-vethK on the bridge), lo

The subnet exists only on the bridge and inside the namespaces created here: no
route, NAT or forwarding leads anywhere else. Every item is recorded (through the
`record` callback) *before* it is created, so ``down`` removes exactly what this
module made, even after a crash half way.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from collections.abc import Callable

from safe_files import ClusterError

SUBNET = ipaddress.ip_network("10.213.0.0/24")
BRIDGE = "phasic-br0"
BRIDGE_ADDRESS = "10.213.0.254"
MAX_NODES = 250


def namespace(node_index: int) -> str:
    """Name of node K's network namespace."""
    return f"phasic-node{node_index}"


def veth(node_index: int) -> str:
    """Name of the root-namespace end of node K's link (``ip link set phasic-vethK down`` cuts it)."""
    return f"phasic-veth{node_index}"


def address(node_index: int) -> str:
    """Node K's address: 10.213.0.K."""
    return str(SUBNET.network_address + node_index)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise ClusterError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here (``ip netns add`` fails), or None if they can."""
    probe = f"phasic-probe-{os.getpid()}"
    try:
        proc = _ip("netns", "add", probe, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run `ip`: {exc}"
    if proc.returncode != 0:
        return f"`ip netns add` failed: {proc.stderr.strip() or proc.returncode}"
    _ip("netns", "delete", probe, check=False)
    return None


def _links() -> set[str]:
    return {line.split(":")[1].strip().split("@")[0]
            for line in _ip("-o", "link", "show").stdout.splitlines()}


def check_free(nodes: int) -> None:
    """Refuse to reuse names or the subnet that something else on this host already has."""
    if nodes > MAX_NODES:
        raise ClusterError(f"{nodes} nodes: the namespace mode supports at most {MAX_NODES}")
    taken = _links() & {BRIDGE, *(veth(k) for k in range(1, nodes + 1))}
    spaces = set(_ip("netns", "list").stdout.split())
    taken |= spaces & {namespace(k) for k in range(1, nodes + 1)}
    if taken:
        raise ClusterError(
            f"{', '.join(sorted(taken))} already exist(s) but were not made by this cluster's "
            "last `up` (no record): remove them (`ip link delete NAME`, `ip netns delete NAME`)")
    for line in _ip("-o", "-4", "addr", "show").stdout.splitlines():
        addr = ipaddress.ip_interface(line.split()[3])
        if addr.network.overlaps(SUBNET):
            raise ClusterError(
                f"{SUBNET} overlaps {addr} on {line.split()[1]}: this host already uses the "
                "cluster's private test subnet; free it first")


def create(nodes: int, record: Callable[[dict[str, str]], None]) -> None:
    """The bridge and `nodes` namespaces, each wired to it; `record` is called before each item."""
    record({"kind": "link", "name": BRIDGE})
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{BRIDGE_ADDRESS}/{SUBNET.prefixlen}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    for k in range(1, nodes + 1):
        ns, host_end = namespace(k), veth(k)
        record({"kind": "netns", "name": ns})
        _ip("netns", "add", ns)
        record({"kind": "link", "name": host_end})
        _ip("link", "add", host_end, "type", "veth", "peer", "name", f"phasic-in{k}")
        _ip("link", "set", f"phasic-in{k}", "netns", ns)
        _ip("-n", ns, "link", "set", f"phasic-in{k}", "name", "eth0")
        _ip("-n", ns, "addr", "add", f"{address(k)}/{SUBNET.prefixlen}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "set", host_end, "master", BRIDGE)
        _ip("link", "set", host_end, "up")


def remove(items: list[dict[str, str]]) -> list[str]:
    """Delete the recorded links and namespaces (newest first); return what was removed.

    Only names this module records are accepted, so a tampered record cannot
    make root delete an arbitrary interface.
    """
    removed = []
    links, spaces = _links(), set(_ip("netns", "list").stdout.split())
    for item in reversed(items):
        name = item.get("name", "")
        if not name.startswith("phasic-"):
            raise ClusterError(f"refusing to delete {name!r}: not a name this cluster creates")
        if item.get("kind") == "link" and name in links:
            _ip("link", "delete", name)  # deleting one end of a veth deletes its peer
            removed.append(name)
        elif item.get("kind") == "netns" and name in spaces:
            _ip("netns", "delete", name)
            removed.append(name)
    return removed


def leftovers() -> list[str]:
    """Links and namespaces with this module's name prefix that exist on the host now."""
    names = _links() | set(_ip("netns", "list").stdout.split())
    return sorted(n for n in names if n.startswith("phasic-"))


def set_link(node_index: int, up: bool) -> None:
    """Bring node K's link up or down (down: its packets stop, like a pulled cable)."""
    _ip("link", "set", veth(node_index), "up" if up else "down")


def exec_prefix(node_index: int, node_name: str) -> list[str]:
    """Run a command in node K's namespace with its own hostname (a fresh UTS namespace).

    ``nsenter --net`` rather than ``ip netns exec``: the latter also remounts /sys,
    which hides /sys/fs/cgroup, and slurmd refuses to start without it. Each step
    execs the next, so the pid stays that of the final program.
    """
    return ["nsenter", f"--net=/run/netns/{namespace(node_index)}", "unshare", "--uts", "--",
            "sh", "-c", 'hostname "$0" && exec "$@"', node_name]
