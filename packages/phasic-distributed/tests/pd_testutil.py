"""Test helpers for phasic-distributed (a unique module name: several packages have tests/)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

#: Variables that would change what plan() sees; removed from every child.
_SCRUB = ("SLURM", "PHASIC_", "PTDALG_", "OMP_NUM_THREADS", "XLA_FLAGS", "JAX_")


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without SLURM/PHASIC/JAX variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env.update(extra)
    return env


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 60):
    """Run `code` in a fresh interpreter -> CompletedProcess (text, both streams)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=clean_env() if env is None else env,
        capture_output=True, text=True, timeout=timeout,
    )


def listening_addresses(port: int) -> list[str]:
    """The local addresses on which a TCP socket listens on `port` (from /proc/net/tcp*).

    "0.0.0.0" or "::" means every interface; IPv4-mapped IPv6 addresses are given as IPv4.
    """
    import ipaddress

    found = []
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            lines = open(table).read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = bytes.fromhex(address)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))
            ip = ipaddress.ip_address(raw)
            found.append(str(getattr(ip, "ipv4_mapped", None) or ip))  # ::ffff:a.b.c.d
    return sorted(found)
