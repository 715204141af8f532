"""The harness that runs upstream phasic's own test files (tests/upstream/): it accepts
only the recorded sdist, extracts only the two files, reads JUnit totals, builds a
per-rank srun step, and its plugin supplies only the names it says it does.

The real download and runs are `nox -s upstream` and `nox -s slurm`; here pip is
replaced by a fake so that nothing leaves the machine.
"""

from __future__ import annotations

import io
import os
import pathlib
import re
import subprocess
import sys
import tarfile
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "upstream"))
sys.path.insert(0, str(ROOT / "cluster" / "local"))
sys.path.insert(0, str(ROOT / "cluster"))

import run_slurm  # noqa: E402
import upstream_tests  # noqa: E402


def fake_sdist(path: pathlib.Path) -> pathlib.Path:
    """An sdist-shaped tarball holding the two files and things that must stay behind."""
    prefix = f"phasic-{upstream_tests.VERSION}/"
    members = {**{m: f"# {name}\n" for m, name in upstream_tests.FILES.items()},
               prefix + "tests/pytest/conftest.py": "raise SystemExit('not me')\n",
               prefix + "src/phasic/__init__.py": "raise SystemExit('not me')\n"}
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_recorded_sha256_is_one_sha256():
    assert re.fullmatch(r"[0-9a-f]{64}", upstream_tests.expected_sha256())


def test_fetch_extracts_the_two_files_alone(tmp_path, monkeypatch):
    sdist = fake_sdist(tmp_path / upstream_tests.SDIST)
    monkeypatch.setattr(upstream_tests, "download_sdist", lambda: sdist)
    paths = upstream_tests.fetch(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        upstream_tests.FILES.values())
    assert [p.read_text() for p in paths] == [f"# {n}\n" for n in upstream_tests.FILES.values()]


def fake_pip(sdist_bytes: bytes):
    def run(cmd, env, check, timeout):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-binary" in cmd
        assert "scikit-build-core<0.8" in pathlib.Path(env["PIP_CONSTRAINT"]).read_text()
        dest = pathlib.Path(cmd[cmd.index("-d") + 1])
        (dest / upstream_tests.SDIST).write_bytes(sdist_bytes)
        return subprocess.CompletedProcess(cmd, 0)
    return run


def test_an_sdist_with_another_digest_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(upstream_tests, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(upstream_tests.subprocess, "run", fake_pip(b"not upstream's release"))
    with pytest.raises(SystemExit, match="refusing to run files that are not upstream's"):
        upstream_tests.download_sdist()
    assert not (tmp_path / "cache" / upstream_tests.SDIST).exists()


def test_the_recorded_digest_is_accepted_and_cached(tmp_path, monkeypatch):
    content = b"pretend sdist"
    monkeypatch.setattr(upstream_tests, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(upstream_tests, "expected_sha256",
                        lambda: __import__("hashlib").sha256(content).hexdigest())
    monkeypatch.setattr(upstream_tests.subprocess, "run", fake_pip(content))
    path = upstream_tests.download_sdist()
    assert path.read_bytes() == content
    monkeypatch.setattr(upstream_tests.subprocess, "run", None)  # a second call needs no pip
    assert upstream_tests.download_sdist() == path


def test_junit_totals(tmp_path):
    report = tmp_path / "r.xml"
    report.write_text('<testsuites><testsuite tests="11" failures="1" errors="2" '
                      'skipped="3"/><testsuite tests="1" failures="0" errors="0" '
                      'skipped="0"/></testsuites>')
    assert upstream_tests.junit_totals(report) == {
        "tests": 12, "failures": 1, "errors": 2, "skipped": 3}
    assert upstream_tests.junit_totals(tmp_path / "missing.xml")["tests"] == 0


def test_the_srun_step_gives_every_rank_its_report_and_log(tmp_path):
    test = tmp_path / "dir with space" / upstream_tests.SLURM
    wrap = run_slurm.upstream_wrap(test, tmp_path / "out")
    assert wrap.startswith("srun --kill-on-bad-exit=1 bash -c ")
    for piece in ('upstream-junit-rank"$SLURM_PROCID".xml', 'upstream-log-rank"$SLURM_PROCID"',
                  'upstream-exit-rank"$SLURM_PROCID"', "-p upstream_names",
                  "-p no:phasic_testkit", f"--timeout={upstream_tests.TEST_TIMEOUT}"):
        assert piece in wrap, piece


def test_plugin_supplies_only_missing_names_that_a_module_uses(tmp_path):
    (tmp_path / "conftest.py").write_text(
        "import upstream_names\nupstream_names.SUPPLIED['model_factory'] = 'Graph'\n")
    (tmp_path / "test_uses.py").write_text(textwrap.dedent("""
        import phasic
        # the file would decorate with @model_factory( without importing it


        def test_supplied():
            assert model_factory is phasic.Graph  # noqa: F821
    """))
    (tmp_path / "test_defines.py").write_text(textwrap.dedent("""
        model_factory = "mine"
        # @model_factory( is defined here, so it must stay


        def test_kept():
            assert model_factory == "mine"
    """))
    env = upstream_tests.harness_env(dict(os.environ))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "upstream_names",
         "--rootdir", str(tmp_path), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "2 passed" in proc.stdout
    assert "upstream_names supplied: test_uses.model_factory" in proc.stdout
