"""The local cluster's block in /etc/hosts: written, recognized and removed.

The nodes' names must resolve (slurmd looks its own name up, JAX the coordinator's),
so `slurm_cluster.up` adds a marked block to /etc/hosts and `down` removes it; every
other line of the file is left exactly as it was.
"""

from __future__ import annotations

import pathlib

import netns

HOSTS_FILE = pathlib.Path("/etc/hosts")
HOSTS_BEGIN = "# >>> phasic local slurm cluster (cluster/local/slurm_cluster.py)"
HOSTS_END = "# <<< phasic local slurm cluster"


def block(names: list[str], mode: str) -> str:
    """The lines naming the nodes: their own addresses (netns), or all 127.0.0.1."""
    if mode == "netns":
        body = "".join(f"{netns.address(k)} {name}\n" for k, name in enumerate(names, start=1))
    else:
        body = f"127.0.0.1 {' '.join(names)}\n"
    return f"{HOSTS_BEGIN}\n{body}{HOSTS_END}\n"


def without_block(text: str) -> str:
    """`text` (an /etc/hosts) without our marked block; every other line kept as it was."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.strip() == HOSTS_BEGIN:
            inside = True
        elif line.strip() == HOSTS_END:
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out)


def _write(text: str) -> None:
    # Write in place: in containers /etc/hosts is often a bind mount that cannot be renamed.
    with HOSTS_FILE.open("r+") as fh:
        fh.seek(0)
        fh.write(text)
        fh.truncate()


def add_block(names: list[str], mode: str) -> None:
    """Make ``node1`` … ``nodeN`` resolve: our block replaces any earlier one."""
    base = without_block(HOSTS_FILE.read_text())
    if base and not base.endswith("\n"):
        base += "\n"
    _write(base + block(names, mode))


def remove_block() -> None:
    """Undo :func:`add_block`; other lines of /etc/hosts are left as they were."""
    text = HOSTS_FILE.read_text()
    if HOSTS_BEGIN in text:
        _write(without_block(text))
