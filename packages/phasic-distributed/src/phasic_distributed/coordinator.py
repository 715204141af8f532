"""The coordinator's address: which host, which port, and whether it can be reached.

Port choice under a scheduler: every rank computes the same port from the
scheduler's port key and slot (under SLURM the job or array id, and a slot per
step, array task and het-job component; under mpirun the PMIx namespace), so no
communication is needed. Ports are taken from 10000-65535 minus the kernel's ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``), where outgoing connections would
otherwise grab them. Steps of one job (and array tasks of one array) get
consecutive slots, so concurrent steps never share a port (up to 64 steps per
array task). ``PHASIC_COORDINATOR_PORT`` and ``PHASIC_COORDINATOR_HOST`` override.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from .env_vars import COORDINATOR_HOST, COORDINATOR_PORT
from .errors import CoordinatorError, SlurmEnvironmentError
from .schedulers import Placement
from .schedulers.slurm import port_key
from .slurm import SlurmEnvironment, require_step

PORT_MIN = 10000
PORT_MAX = 65535
_PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Linux's default ephemeral range, used when /proc cannot be read.
DEFAULT_EPHEMERAL = (32768, 60999)


def ephemeral_port_range(path: Path = _PORT_RANGE_FILE) -> tuple[int, int]:
    """The kernel's ephemeral port range (lo, hi), or Linux's default if unreadable."""
    try:
        lo, hi = (int(x) for x in path.read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL


def _allowed_ports(ephemeral: tuple[int, int]) -> list[tuple[int, int]]:
    """Port spans outside the ephemeral range: from PORT_MIN up, else from 1024 up."""
    lo, hi = ephemeral
    for floor in (PORT_MIN, 1024):
        spans = [(floor, min(lo - 1, PORT_MAX)), (max(hi + 1, floor), PORT_MAX)]
        spans = [(a, b) for a, b in spans if a <= b]
        if spans:
            return spans
    return []


def parse_port(text: str, name: str) -> int:
    """A TCP port from text, or `CoordinatorError` naming the variable."""
    try:
        port = int(text)
    except ValueError:
        raise CoordinatorError(f"{name}={text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise CoordinatorError(f"{name}={port} is not a port number (1-65535)")
    return port


def port_for_key(key: str, slot: int = 0, ephemeral: tuple[int, int] | None = None) -> int:
    """The coordinator port of a job: a hash of `key`, plus `slot`, in the allowed spans."""
    ephemeral = ephemeral or ephemeral_port_range()
    spans = _allowed_ports(ephemeral)
    size = sum(b - a + 1 for a, b in spans)
    if not size:
        raise CoordinatorError(
            f"the ephemeral port range {ephemeral} leaves no port for the coordinator; "
            f"set {COORDINATOR_PORT} (the same on every task)"
        )
    base = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    index = (base + slot) % size
    for a, b in spans:
        if index <= b - a:
            return a + index
        index -= b - a + 1
    raise AssertionError("unreachable: index is below the span total")


def slurm_port(s: SlurmEnvironment, ephemeral: tuple[int, int] | None = None) -> int:
    """The deterministic coordinator port for this SLURM step (no override applied)."""
    return port_for_key(*port_key(s), ephemeral=ephemeral)


def placement_address(placement: Placement, env: Mapping[str, str]) -> str:
    """``host:port`` of the coordinator of a scheduler's job.

    The host is `placement.coordinator_host` (``PHASIC_COORDINATOR_HOST``
    overrides), the port comes from its port key (``PHASIC_COORDINATOR_PORT``
    overrides).
    """
    host = env.get(COORDINATOR_HOST) or placement.coordinator_host
    if not host:
        raise CoordinatorError(
            f"{placement.scheduler}: no host to put the coordinator on; set {COORDINATOR_HOST} "
            "to rank 0's host (the same on every rank)"
        )
    override = env.get(COORDINATOR_PORT)
    if override:
        port = parse_port(override, COORDINATOR_PORT)
    else:
        port = port_for_key(placement.port_key, placement.port_slot)
    return format_address(host, port)


def get_coordinator_address(env: Mapping[str, str] | None = None) -> str:
    """``host:port`` of the coordinator of this srun step.

    The host is the first node of the step's node list (``PHASIC_COORDINATOR_HOST``
    overrides); the port is `slurm_port` (``PHASIC_COORDINATOR_PORT`` overrides).
    Raises `SlurmEnvironmentError` outside a usable srun step: never a silent
    localhost fallback.
    """
    from .schedulers.slurm import Slurm

    env = os.environ if env is None else env
    s = require_step(env)
    if not s.nodes and not env.get(COORDINATOR_HOST):
        raise SlurmEnvironmentError("no node list to take the coordinator host from")
    return placement_address(Slurm().placement(env), env)


def format_address(host: str, port: int) -> str:
    """``host:port``, with IPv6 literals bracketed."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[v6]:port``); `CoordinatorError` if malformed."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise CoordinatorError(f"coordinator address {address!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, parse_port(port_text, f"port of coordinator address {address!r}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def resolve(host: str, port: int, rank: int, timeout: float) -> list[tuple]:
    """getaddrinfo with a deadline (a dead DNS server must not hang us)."""
    result: list = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            result.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failure.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise CoordinatorError(
            f"rank {rank}: resolving coordinator host {host!r} (port {port}) took more "
            f"than {timeout:.0f} s; check DNS or use an IP address"
        )
    if failure:
        raise CoordinatorError(
            f"rank {rank}: coordinator host {host!r} (port {port}) does not resolve: "
            f"{failure[0]}; check the node list or set PHASIC_COORDINATOR_HOST"
        )
    return result


def wait_for_coordinator(host: str, port: int, rank: int, timeout: float) -> float:
    """Block until a TCP connection to host:port succeeds; return the seconds waited.

    Raises `CoordinatorError` naming host, port and rank when `timeout` passes.
    """
    start = time.monotonic()
    deadline = start + timeout
    infos = resolve(host, port, rank, max(deadline - time.monotonic(), 0.1))
    last: OSError | None = None
    while True:
        for family, kind, proto, _, addr in infos:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                with socket.socket(family, kind, proto) as sock:
                    sock.settimeout(min(remaining, 2.0))
                    sock.connect(addr)
                return time.monotonic() - start
            except OSError as exc:
                last = exc
        if time.monotonic() >= deadline:
            raise CoordinatorError(
                f"rank {rank}: coordinator {format_address(host, port)} not reachable "
                f"within {timeout:.1f} s (last error: {last}); is task 0 running and "
                "did it start? check its log, the node list and firewalls"
            )
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))


def bind_address(host: str, port: int, infos: list[tuple]) -> str:
    """Where rank 0's coordinator listens (``ip:port``), given what `host` resolved to.

    Loopback when the coordinator host is a loopback address or ``localhost`` (the
    ranks are on this machine); otherwise the host's own non-loopback address, so
    that only that network reaches it. A node name that resolves to loopback only
    (some systems map their own name to 127.0.1.1) says nothing about the address
    other nodes use: then every interface, as JAX does by default.
    """
    addresses = [info[4][0] for info in infos]
    outside = [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
    if outside:
        return format_address(outside[0], port)
    if host == "localhost" or _is_ip(host):
        return format_address(addresses[0] if addresses else "127.0.0.1", port)
    return format_address("::", port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_port_free(port: int, rank: int = 0) -> None:
    """Raise `CoordinatorError` if the coordinator cannot bind `port` on this host."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError as exc:
            why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc})"
            raise CoordinatorError(
                f"rank {rank}: coordinator port {port} {why} on {socket.gethostname()}; "
                "set PHASIC_COORDINATOR_PORT to a free port (the same on every task)"
            ) from None


def listening_addresses(port: int) -> list[str]:
    """The local addresses on which a TCP socket listens on `port`, in this network namespace.

    Read from /proc/net/tcp and /proc/net/tcp6 (Linux). "0.0.0.0" or "::" means every
    interface; an IPv4-mapped IPv6 address (how an IPv4 bind shows up on a dual-stack
    socket) is given as plain IPv4. Used to check that a coordinator is not exposed
    on more interfaces than its ranks need.
    """
    found = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            address, hex_port = fields[1].split(":")
            if fields[3] != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))
            ip = ipaddress.ip_address(raw)
            found.add(str(getattr(ip, "ipv4_mapped", None) or ip))
    return sorted(found)
