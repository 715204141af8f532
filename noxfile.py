"""Nox sessions for the phasic monorepo.

`nox -s local` is the main job (the multi-CPU FFI suite on 8 CPU devices);
`nox -s ci` is everything CI checks. Arguments after `--` go to pytest (or to the
script a session runs).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import shutil
import tomllib

import nox

ROOT = pathlib.Path(__file__).parent
CORE = ROOT / "packages" / "phasic-core"
DISTRIBUTED = ROOT / "packages" / "phasic-distributed"
TESTKIT = ROOT / "packages" / "phasic-testkit"
WHEELS = ROOT / ".nox" / "_wheels"
DIST = ROOT / "dist"
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
UPSTREAM_TESTS = "tests/upstream/upstream_tests.py"  # fetches and runs upstream's test files

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests"]

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


def install_core(session: nox.Session, extras: str = "") -> None:
    """Build phasic-core once per state of its sources, then install that wheel.

    Every session that needs the C++ extension shares one build: compiling it
    takes a minute on two cores, installing a wheel takes a second.
    """
    dest = WHEELS / _core_source_hash()
    if not list(dest.glob("*.whl")):
        session.log(f"building phasic-core into {dest}")
        # run_install: the build is part of installing (it runs under --install-only too)
        session.run_install("python", "-m", "pip", "wheel", "--no-deps", "-w", str(dest),
                            str(CORE))
    wheels = [str(p) for p in dest.glob("*.whl")]
    session.install(*(f"{w}{extras}" for w in wheels))
    # A rebuilt wheel keeps its version number, so pip would leave an older build in a
    # reused environment (`nox -r`): put this build in place whatever is installed.
    session.install("--force-reinstall", "--no-deps", *wheels)


def install_all(session: nox.Session, *extra: str, groups: tuple[str, ...] = ("test",)) -> None:
    """The three packages with their `test` extras, the root pyproject's dependency
    `groups` (the cross-package suites' own needs) and any `extra` requirements.

    Test dependencies are declared once, where they belong: each package's
    `[project.optional-dependencies] test`, and the root `[dependency-groups]`.
    """
    requirements = [r for g in groups for r in nox.project.dependency_groups(PYPROJECT, g)]
    if requirements or extra:
        session.install(*requirements, *extra)
    session.install("-e", f"{DISTRIBUTED}[test]", "-e", f"{TESTKIT}[test]")
    install_core(session, extras="[test,plot]")


def apt_install(session: nox.Session, program: str, package: str) -> None:
    """Install Debian's `package` when `program` is not on PATH (needs root, as CI has)."""
    if shutil.which(program) is not None:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        session.error(f"{program} is missing: install the Debian package {package} "
                      f"(apt-get install {package}, as root) or your system's equivalent")
    session.run("apt-get", "update", external=True)
    session.run("apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=300", package,
                external=True, env={"DEBIAN_FRONTEND": "noninteractive"})


def install_dot(session: nox.Session) -> None:
    """Graphviz's dot, which the drawing tests and the docs' figures render with."""
    apt_install(session, "dot", "graphviz")


@nox.session
def tests(session: nox.Session) -> None:
    """Every package's tests and the cross-package suites on this machine."""
    install_all(session)
    install_dot(session)
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
    install_dot(session)
    session.run("pytest", "-n", "auto", *(session.posargs or PACKAGE_TESTS))


@nox.session
def slurm(session: nox.Session) -> None:
    """The multi-node suite under sbatch; `-- --local-cluster` brings up a local Slurm first.

    Its steps include upstream phasic's SLURM test file (fetched as in `upstream`) on
    a 2-rank srun step, with a JUnit report and a log per rank.

    With `--local-cluster` (as root) the cluster's own safety tests run first:
    untrusted state, forged records, the lock, a checkout in a private directory.
    """
    install_all(session)
    if "--local-cluster" in session.posargs:
        session.run("pytest", "cluster/tests", "-q", "-p", "no:cacheprovider")
    # upstream's SLURM test file, fetched for the job's upstream step
    upstream_dir = pathlib.Path(session.create_tmp()) / "upstream-tests"
    session.run("python", UPSTREAM_TESTS, "fetch", str(upstream_dir))
    session.run("python", "cluster/run_slurm.py", "--upstream-tests", str(upstream_dir),
                *session.posargs)


@nox.session
def upstream(session: nox.Session) -> None:
    """Upstream phasic 0.32.1's own test files, unchanged, against our packages.

    Fetched from upstream's sdist (sha256-checked; never committed): its multi-device
    FFI file on 8 CPU devices must pass, its SLURM file must skip outside SLURM
    (`nox -s slurm -- --local-cluster` runs it inside a 2-rank srun step).
    """
    install_all(session)
    session.run("python", UPSTREAM_TESTS, "local",
                str(pathlib.Path(session.create_tmp()) / "upstream-tests"))


@nox.session
def mpi(session: nox.Session) -> None:
    """The FFI and testkit suites under Open MPI's `mpirun -n 4`, and two failing ranks.

    Installs Debian's openmpi-bin when mpirun is missing (needs root, as CI has).
    """
    apt_install(session, "mpirun", "openmpi-bin")
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
    install_all(session, groups=("bench",))
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (mkdocs, Material theme) with --strict."""
    install_all(session, groups=("docs",))
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session(venv_backend="none")
def fuzz(session: nox.Session) -> None:
    """libFuzzer + ASan + UBSan on the C++ JSON parser and validator (`-- --seconds N`)."""
    session.run("bash", "packages/phasic-core/fuzz/run.sh",
                *(session.posargs or ["--seconds", "60"]), external=True)


# distribution name -> source folder
PACKAGES = {"phasic-distributed": DISTRIBUTED, "phasic-testkit": TESTKIT, "phasic-core": CORE}
# distribution name -> a check that it works when installed alone (prints its version)
INSTALLED_CHECKS = {
    "phasic-distributed": "import phasic_distributed as m; assert m.plan({}).num_processes == 1",
    # phasic-testkit must never need phasic-core
    "phasic-testkit": "import importlib.util, phasic_testkit as m, phasic_testkit.plugin; "
                      "assert importlib.util.find_spec('phasic') is None, 'phasic is installed'",
    # the C++ extension loads and its FFI targets register with the jax installed
    "phasic-core": "import jax; jax.config.update('jax_enable_x64', True); import phasic as m; "
                   "s = m.models.kingman(3).to_json(); "
                   "assert abs(float(m.compute_moments_ffi(s, jax.numpy.ones(1), 1)[0]) - 4 / 3)"
                   " < 1e-15",
}
SIBLINGS = set(PACKAGES)


def third_party_requirements() -> list[str]:
    """Every runtime dependency of the three packages that is not one of them."""
    reqs = []
    for path in PACKAGES.values():
        deps = tomllib.loads((path / "pyproject.toml").read_text())["project"]["dependencies"]
        reqs += [d for d in deps if re.split(r"[\s<>=!~\[;]", d, maxsplit=1)[0] not in SIBLINGS]
    return sorted(set(reqs))


@nox.session
def dist(session: nox.Session) -> None:
    """sdists and wheels of the three packages into dist/, each installed from there alone.

    Each wheel is built from its sdist (so the sdist is complete), then installed into
    a fresh venv with `pip install --no-index --find-links dist <name>`: the sibling
    dependency (pinned `phasic-distributed==X.Y.Z`) must come from dist/, never from a
    registry; third-party dependencies come from a wheelhouse downloaded first.
    phasic-testkit is checked to work without phasic-core.
    """
    session.install(*nox.project.dependency_groups(PYPROJECT, "dist"))
    shutil.rmtree(DIST, ignore_errors=True)
    for path in PACKAGES.values():
        session.run("python", "-m", "build", "--outdir", str(DIST), str(path))
    wheelhouse = pathlib.Path(session.create_tmp()) / "wheelhouse"
    session.run("python", "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
                "--dest", str(wheelhouse), *third_party_requirements())
    for name, check in INSTALLED_CHECKS.items():
        venv = pathlib.Path(session.create_tmp()) / f"fresh-{name}"
        shutil.rmtree(venv, ignore_errors=True)
        session.run("python", "-m", "venv", str(venv))
        python = str(venv / "bin" / "python")
        session.run(python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
                    str(DIST), "--find-links", str(wheelhouse), name, external=True)
        session.run(python, "-c", f"{check}; print('{name}', m.__version__, 'works')",
                    external=True)


def declared_jax_floor(session: nox.Session) -> str:
    """The lowest jax the three packages declare (they must all declare the same)."""
    floors = {name: set(re.findall(r'"jax>=([\d.]+)"', (path / "pyproject.toml").read_text()))
              for name, path in PACKAGES.items()}
    found = set().union(*floors.values())
    if len(found) != 1 or not all(floors.values()):
        session.error(f"the packages must declare one jax lower bound, found {floors}")
    return found.pop()


@nox.session(name="oldest-jax")
def oldest_jax(session: nox.Session) -> None:
    """The core suites and the distributed/testkit unit tests on the oldest declared jax.

    The core wheel is compiled against the FFI headers of the newest jax (its build
    requirement), exactly as a user would get it; then jax and jaxlib are replaced by
    the `jax>=` lower bound the pyprojects declare. If that bound does not work, this
    session fails.
    """
    install_all(session, groups=())
    install_dot(session)
    floor = declared_jax_floor(session)
    session.install(f"jax=={floor}", f"jaxlib=={floor}")
    session.run("python", "-c", f"import jax, jaxlib; assert jax.__version__ == '{floor}' == "
                "jaxlib.__version__, (jax.__version__, jaxlib.__version__); "
                "print('jax', jax.__version__)")
    session.run("pytest", *(session.posargs or [
        "packages/phasic-core/tests", "packages/phasic-distributed/tests",
        "packages/phasic-testkit/tests", "-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")


@nox.session
def ci(session: nox.Session) -> None:
    """Everything CI checks, in order (each step is its own session)."""
    session.notify("lint")
    session.notify("tests")
    session.notify("upstream")
    session.notify("slurm", posargs=["--local-cluster"])
    session.notify("mpi")
    session.notify("docs")
    session.notify("bench", posargs=["--quick"])
    session.notify("fuzz", posargs=["--seconds", "60"])
    session.notify("dist")
    session.notify("oldest-jax")
