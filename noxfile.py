"""Nox sessions for the phasic monorepo.

`nox -s local` is the main job (the multi-CPU FFI suite on 8 CPU devices);
`nox -s ci` is everything CI checks. Arguments after `--` go to pytest (or to the
script a session runs).
"""

from __future__ import annotations

import hashlib
import pathlib
import shutil

import nox

ROOT = pathlib.Path(__file__).parent
CORE = ROOT / "packages" / "phasic-core"
DISTRIBUTED = ROOT / "packages" / "phasic-distributed"
TESTKIT = ROOT / "packages" / "phasic-testkit"
WHEELS = ROOT / ".nox" / "_wheels"

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests"]

TEST_DEPS = ["pytest>=8", "pytest-timeout", "pytest-xdist", "hypothesis", "scipy", "matplotlib"]
PACKAGE_TESTS = [
    "packages/phasic-distributed/tests",
    "packages/phasic-testkit/tests",
    "packages/phasic-core/tests",
    "tests",
    "bench/tests",
]


def _core_source_hash() -> str:
    """Hash of everything that goes into the phasic-core wheel (not its tests)."""
    digest = hashlib.sha256()
    for path in sorted(CORE.rglob("*")):
        rel = path.relative_to(CORE)
        if not path.is_file() or rel.parts[0] in {"tests", "build"} or "__pycache__" in rel.parts:
            continue
        digest.update(str(rel).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def install_core(session: nox.Session) -> None:
    """Build phasic-core once per state of its sources, then install that wheel.

    Every session that needs the C++ extension shares one build: compiling it
    takes a minute on two cores, installing a wheel takes a second.
    """
    dest = WHEELS / _core_source_hash()
    if not list(dest.glob("*.whl")):
        session.log(f"building phasic-core into {dest}")
        session.run("python", "-m", "pip", "wheel", "--no-deps", "-w", str(dest), str(CORE))
    session.install(*(str(p) for p in dest.glob("*.whl")))


def install_all(session: nox.Session, *extra: str) -> None:
    """phasic-distributed, phasic-testkit and phasic-core, plus test dependencies."""
    session.install(*TEST_DEPS, *extra)
    session.install("-e", str(DISTRIBUTED), "-e", str(TESTKIT))
    install_core(session)


@nox.session
def tests(session: nox.Session) -> None:
    """Every package's tests and the cross-package suites on this machine."""
    install_all(session)
    session.run("pytest", *(session.posargs or PACKAGE_TESTS))
    if not session.posargs:
        session.notify("testkit-external")


@nox.session
def local(session: nox.Session) -> None:
    """The main job: the multi-CPU FFI suite on 8 CPU devices, ending with a summary."""
    install_all(session)
    session.run(
        "pytest", "tests/test_multi_process_ffi.py", "-v", *session.posargs,
        env={"PHASIC_CPUS": "8"},
    )


@nox.session
def xdist(session: nox.Session) -> None:
    """The whole test suite under pytest-xdist (`-n auto`)."""
    install_all(session)
    session.run("pytest", "-n", "auto", *(session.posargs or PACKAGE_TESTS))


@nox.session
def slurm(session: nox.Session) -> None:
    """The multi-node suite under sbatch; `-- --local-cluster` brings up a local Slurm first.

    With `--local-cluster` (as root) the cluster's own safety tests run first:
    untrusted state, forged records, the lock, a checkout in a private directory.
    """
    install_all(session)
    if "--local-cluster" in session.posargs:
        session.run("pytest", "cluster/tests", "-q", "-p", "no:cacheprovider")
    session.run("python", "cluster/run_slurm.py", *session.posargs)


@nox.session
def mpi(session: nox.Session) -> None:
    """The FFI and testkit suites under Open MPI's `mpirun -n 4`, and two failing ranks.

    Installs Debian's openmpi-bin when mpirun is missing (needs root, as CI has).
    """
    if shutil.which("mpirun") is None:
        session.run("apt-get", "update", external=True)
        session.run("apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=300",
                    "openmpi-bin", external=True)
    install_all(session)
    session.run("python", "tests/run_mpi.py", *session.posargs)


@nox.session(name="testkit-external")
def testkit_external(session: nox.Session) -> None:
    """phasic-testkit alone in a fresh environment, used by a small 'other repository'."""
    session.install(str(DISTRIBUTED), str(TESTKIT))
    session.run("python", "packages/phasic-testkit/external/check_external.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: ratios measured side by side, JSON and plots in bench/results/."""
    install_all(session, "matplotlib")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (mkdocs, Material theme) with --strict."""
    install_all(session, "mkdocs-material", "mkdocstrings[python]")
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session(venv_backend="none")
def fuzz(session: nox.Session) -> None:
    """libFuzzer + ASan + UBSan on the C++ JSON parser and validator (`-- --seconds N`)."""
    session.run("bash", "packages/phasic-core/fuzz/run.sh",
                *(session.posargs or ["--seconds", "60"]), external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def ci(session: nox.Session) -> None:
    """Everything CI checks, in order (each step is its own session)."""
    session.notify("lint")
    session.notify("tests")
    session.notify("slurm", posargs=["--local-cluster"])
    session.notify("mpi")
    session.notify("docs")
    session.notify("bench", posargs=["--quick"])
    session.notify("fuzz", posargs=["--seconds", "60"])
