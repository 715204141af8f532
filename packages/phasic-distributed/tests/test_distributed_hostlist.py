"""expand_hostlist against the real `scontrol show hostnames`, and round-trip properties."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from distributed_hostlists import INVALID_BOTH, INVALID_STRICTER, VALID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phasic_distributed import compress_hostlist, expand_hostlist


def _find_or_install_scontrol() -> str | None:
    """scontrol's path; installs Debian's slurm-client when we are root with apt-get."""
    path = shutil.which("scontrol")
    if path or os.geteuid() != 0 or not shutil.which("apt-get"):
        return path
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "install", "-y", "-q", "slurm-client"], env=env,
                       capture_output=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return shutil.which("scontrol")


@pytest.fixture(scope="module")
def scontrol(tmp_path_factory):
    """A function text -> list[str] | None (None: scontrol says 'Invalid hostlist')."""
    exe = _find_or_install_scontrol()
    if exe is None:
        pytest.skip("scontrol is not installed and could not be installed (no root/apt-get)")
    # scontrol needs a slurm.conf; ClusterName and SlurmctldHost are the minimum it
    # accepts. Without one it retries for 60 s, so always point SLURM_CONF at ours.
    conf = tmp_path_factory.mktemp("slurm") / "slurm.conf"
    conf.write_text("ClusterName=hostlisttest\nSlurmctldHost=localhost\n")
    env = dict(os.environ, SLURM_CONF=str(conf))

    def run(text: str) -> list[str] | None:
        proc = subprocess.run([exe, "show", "hostnames", text], env=env, capture_output=True,
                              text=True, timeout=30)
        if "Invalid hostlist" in proc.stderr:
            return None
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    return run


@pytest.mark.parametrize("text", sorted(VALID))
def test_corpus_matches_scontrol(scontrol, text):
    assert scontrol(text) == VALID[text]
    assert expand_hostlist(text) == VALID[text]


@pytest.mark.parametrize("text,_", INVALID_BOTH)
def test_scontrol_rejects_what_we_reject(scontrol, text, _):
    assert scontrol(text) is None
    with pytest.raises(ValueError):
        expand_hostlist(text)


@pytest.mark.parametrize("text,_", INVALID_STRICTER)
def test_we_reject_what_scontrol_misreads(scontrol, text, _):
    # scontrol accepts these with a surprising result; we refuse them on purpose.
    assert scontrol(text) is not None
    with pytest.raises(ValueError):
        expand_hostlist(text)


# -- generated hostlists ------------------------------------------------------------------

_prefix = st.text(alphabet="abcxyz-", min_size=1, max_size=4).filter(lambda s: s[0] != "-")


@st.composite
def bracket(draw) -> str:
    """A bracket body: comma list of numbers and ascending ranges, some zero padded."""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        lo = draw(st.integers(0, 120))
        width = draw(st.integers(1, 4))
        lo_text = str(lo).zfill(width)
        if draw(st.booleans()):
            parts.append(f"{lo_text}-{lo + draw(st.integers(0, 12))}")
        else:
            parts.append(lo_text)
    return ",".join(parts)


@st.composite
def hostlist_text(draw) -> str:
    entries = []
    for _ in range(draw(st.integers(1, 4))):
        groups = draw(st.integers(0, 3))
        entry = draw(_prefix)
        for g in range(groups):
            entry += f"[{draw(bracket())}]"
            if g < groups - 1 and draw(st.booleans()):
                entry += draw(_prefix)
        if groups == 0:
            entry += str(draw(st.integers(0, 999)))
        entries.append(entry)
    return ",".join(entries)


@given(hostlist_text())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_lists_match_scontrol(scontrol, text):
    assert expand_hostlist(text) == scontrol(text)


_host = st.builds(
    lambda p, n, w: p + str(n).zfill(w) if n is not None else p,
    _prefix, st.one_of(st.none(), st.integers(0, 300)), st.integers(1, 4),
)


@given(st.lists(_host, max_size=40))
@settings(max_examples=300, deadline=None)
def test_compress_then_expand_round_trips(hosts):
    assert expand_hostlist(compress_hostlist(hosts)) == hosts


@given(st.lists(st.integers(0, 500), min_size=1, max_size=60, unique=True))
@settings(max_examples=100, deadline=None)
def test_sorted_runs_compress_to_one_entry(numbers):
    hosts = [f"node{n:03d}" for n in sorted(numbers)]
    compressed = compress_hostlist(hosts)
    assert compressed.count("[") <= 1
    assert expand_hostlist(compressed) == hosts


def test_compress_rejects_unrepresentable_names():
    for bad in ["a,b", "x[1]", "", "two words"]:
        with pytest.raises(ValueError, match="cannot appear in a hostlist"):
            compress_hostlist([bad])


def test_expand_rejects_non_strings():
    with pytest.raises(TypeError, match="must be a str"):
        expand_hostlist(["node1"])  # type: ignore[arg-type]


def test_huge_product_is_refused_not_allocated():
    with pytest.raises(ValueError, match="limit"):
        expand_hostlist("a[1-1000]b[1-1000]c[1-10]")
