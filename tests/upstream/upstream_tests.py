"""Upstream phasic 0.32.1's own test files, run unchanged against our packages.

    python tests/upstream/upstream_tests.py fetch DIR   # sdist -> DIR/<the two files>
    python tests/upstream/upstream_tests.py local DIR   # fetch, then run both here

The files are never committed here: they are taken at run time from upstream's
sdist, fetched with this Python's pip and checked against the sha256 recorded in
`phasic-0.32.1.sha256` next to this script. Only the two test files are extracted,
into DIR alone (no upstream conftest or package code comes along):

- `test_ffi_multi_process.py` (11 tests) runs with 8 forced CPU devices;
- `test_slurm_multinode_ffi.py` (10 tests) runs here outside SLURM, where upstream
  means every test to skip; `cluster/run_slurm.py --upstream-tests DIR` runs it
  inside a real multi-rank srun step.

Both run with `-p upstream_names` (see `upstream_names.py`) and the testkit plugin off.
`local` checks each file's JUnit totals (all passed; all skipped) and exits non-zero
otherwise. The sdist is kept in .nox/_upstream/ so a second run needs no download.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VERSION = "0.32.1"
SDIST = f"phasic-{VERSION}.tar.gz"
SHA256_FILE = HERE / f"phasic-{VERSION}.sha256"
CACHE = ROOT / ".nox" / "_upstream"
# member of the sdist -> name in DIR
FILES = {
    f"phasic-{VERSION}/tests/pytest/test_ffi_multi_process.py": "test_ffi_multi_process.py",
    f"phasic-{VERSION}/scratch/test_slurm_multinode_ffi.py": "test_slurm_multinode_ffi.py",
}
MULTI_DEVICE, SLURM = FILES.values()
EXPECTED_TESTS = {MULTI_DEVICE: 11, SLURM: 10}
DOWNLOAD_TIMEOUT = 300  # seconds
RUN_TIMEOUT = 1200  # seconds per pytest run; each test also has pytest-timeout's limit
TEST_TIMEOUT = 600  # upstream's SVGD tests fit 10000 points: about a minute each on 2 cores


def expected_sha256() -> str:
    """The recorded sha256 of upstream's sdist."""
    return SHA256_FILE.read_text().split()[0]


def sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_sdist() -> pathlib.Path:
    """Upstream's sdist, checked against the recorded sha256 (downloaded once)."""
    cached = CACHE / SDIST
    want = expected_sha256()
    if cached.exists() and sha256(cached) == want:
        return cached
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        # pip prepares the sdist's metadata, which needs an older scikit-build-core
        constraint = pathlib.Path(tmp) / "constraint.txt"
        constraint.write_text("scikit-build-core<0.8\n")
        env = dict(os.environ, PIP_CONSTRAINT=str(constraint))
        cmd = [sys.executable, "-m", "pip", "download", f"phasic=={VERSION}", "--no-deps",
               "--no-binary", "phasic", "--quiet", "-d", tmp]
        try:
            subprocess.run(cmd, env=env, check=True, timeout=DOWNLOAD_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise SystemExit(f"pip download of phasic=={VERSION} took over "
                             f"{DOWNLOAD_TIMEOUT} s; is the package index reachable?") from None
        except subprocess.CalledProcessError as exc:
            raise SystemExit(f"pip download of phasic=={VERSION} failed (exit status "
                             f"{exc.returncode}); see pip's message above") from None
        got = pathlib.Path(tmp) / SDIST
        if not got.exists():
            raise SystemExit(f"pip download produced no {SDIST} in {tmp}")
        digest = sha256(got)
        if digest != want:
            raise SystemExit(f"{SDIST} has sha256 {digest}, but {SHA256_FILE.name} records "
                             f"{want}: refusing to run files that are not upstream's release")
        shutil.move(got, cached)
    return cached


def fetch(dest: pathlib.Path) -> list[pathlib.Path]:
    """Extract upstream's two test files, alone, into `dest`; return their paths."""
    sdist = download_sdist()
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    with tarfile.open(sdist) as tar:
        for member, name in FILES.items():
            source = tar.extractfile(member)
            if source is None:
                raise SystemExit(f"{SDIST} has no file {member}")
            path = dest / name
            path.write_bytes(source.read())
            out.append(path)
    return out


def pytest_command(test: pathlib.Path, junit: pathlib.Path | None = None,
                   python: str = sys.executable) -> list[str]:
    """pytest on one upstream file, in its own directory, with our harness plugin
    (`junit`: where its JUnit XML goes; None leaves the option to the caller).

    Paths are made absolute: the command runs from the file's own directory.
    """
    test = test.resolve()
    cmd = [python, "-m", "pytest", str(test), "-v", "-p", "no:cacheprovider",
           "-p", "no:phasic_testkit", "-p", "upstream_names", "--rootdir", str(test.parent),
           f"--timeout={TEST_TIMEOUT}"]
    return cmd + ([f"--junitxml={junit}"] if junit is not None else [])


def harness_env(base: dict[str, str]) -> dict[str, str]:
    """`base` with this directory on PYTHONPATH (for `-p upstream_names`)."""
    env = dict(base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    return env


def junit_totals(path: pathlib.Path) -> dict[str, int]:
    """tests/failures/errors/skipped summed over a JUnit file's suites."""
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    if not path.exists():
        return totals
    for suite in ET.parse(path).getroot().iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, 0))
    return totals


def run_local(dest: pathlib.Path) -> int:
    """Both files on this machine: all 11 pass on 8 devices; all 10 SLURM tests skip."""
    multi, slurm = fetch(dest)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SLURMD_"))}
    runs = [
        (multi, dict(base, XLA_FLAGS="--xla_force_host_platform_device_count=8"),
         "passed"),
        (slurm, base, "skipped"),  # upstream skips every test outside SLURM
    ]
    ok = True
    for test, env, want in runs:
        junit = dest / f"junit-{test.stem}.xml"
        junit.unlink(missing_ok=True)
        print(f"== upstream {test.name} ({want} expected)", flush=True)
        try:
            status = subprocess.run(pytest_command(test, junit), env=harness_env(env),
                                    cwd=dest, timeout=RUN_TIMEOUT).returncode
        except subprocess.TimeoutExpired:
            print(f"   pytest did not finish within {RUN_TIMEOUT} s: killed")
            status = 124
        t = junit_totals(junit)
        n = EXPECTED_TESTS[test.name]
        bad = t["failures"] + t["errors"]
        good = (t["skipped"] == n) if want == "skipped" else (t["skipped"] == 0)
        verdict = status == 0 and t["tests"] == n and bad == 0 and good
        print(f"   {test.name}: {t['tests']} tests (expected {n}), {t['failures']} failed, "
              f"{t['errors']} errors, {t['skipped']} skipped; pytest exit status {status} "
              f"-> {'ok' if verdict else 'FAILED'}", flush=True)
        ok &= verdict
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("fetch", "local"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    dest = pathlib.Path(argv[1]).resolve()
    if argv[0] == "fetch":
        for path in fetch(dest):
            print(path)
        return 0
    return run_local(dest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
