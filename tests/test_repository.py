"""The repository keeps its promises: README's commands are what CI and nox run, it
cites nothing outside itself, and its docs and test helpers follow one scheme."""

from __future__ import annotations

import pathlib
import re
import subprocess
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def readme_setup_commands() -> list[str]:
    """The commands of the first bash block of README.md, comments stripped."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no bash block with the set-up commands"
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


def test_readme_starts_with_main_job_and_tests() -> None:
    commands = readme_setup_commands()
    assert len(commands) == 2
    assert commands[0].endswith("nox -s local")


def test_ci_runs_the_readme_test_command() -> None:
    nox_part = readme_setup_commands()[1].split("&&")[-1].strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert nox_part in ci_lines, f".ci/run does not run {nox_part!r}"


def test_every_session_in_readme_exists() -> None:
    noxfile = (ROOT / "noxfile.py").read_text()
    defined = set(re.findall(r"^def (\w+)\(session", noxfile, re.M))
    defined |= set(re.findall(r'name="([\w-]+)"', noxfile))
    named = set(re.findall(r"`nox -s ([\w-]+)", (ROOT / "README.md").read_text()))
    assert named, "README names no nox session"
    missing = {s for s in named if s not in defined and s.replace("-", "_") not in defined}
    assert not missing, f"README names sessions the noxfile lacks: {sorted(missing)}"


def tracked_files() -> list[pathlib.Path]:
    """Every file git tracks here (the working tree when git is not available)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True, timeout=60).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".nox", "site", "build", "dist", "__pycache__"}
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    assert names, "no files found: is this the repository root?"
    return [ROOT / n for n in names if (ROOT / n).is_file()]


# Built from pieces so that this file does not match itself.
OUTSIDE_REFERENCE = re.compile("DESIGN" + r"\.md|\b" + "issue" + r"[- ]?#?\d", re.I)


def test_repository_stands_alone() -> None:
    """No file cites a document the repository lacks, or a tracker number."""
    found = []
    for path in tracked_files():
        text = path.read_bytes().decode("utf-8", errors="ignore")
        for lineno, line in enumerate(text.splitlines(), 1):
            if OUTSIDE_REFERENCE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()[:100]}")
    assert not found, ("cite our own docs (e.g. docs/pages/accuracy.md) instead of files "
                       "outside the repository or tracker numbers:\n" + "\n".join(found))


def test_outside_reference_pattern_catches_what_it_should() -> None:
    issue = "iss" + "ue"  # split, so that this file does not match itself
    for bad in ("see DESIGN" + ".md", f"the {issue}-2 targets", f"{issue.title()} 6 bound",
                f"{issue} #3"):
        assert OUTSIDE_REFERENCE.search(bad), bad
    for good in ("issues with threads", f"the {issue}'s bar was met", f"re{issue} 2"):
        assert not OUTSIDE_REFERENCE.search(good), good


def public_modules() -> list[str]:
    """Dotted names of every module of the three packages not starting with `_`."""
    names = []
    for src in sorted(ROOT.glob("packages/*/src")):
        for path in sorted(src.rglob("*.py")):
            rel = path.relative_to(src).with_suffix("")
            if not any(part.startswith("_") for part in rel.parts):
                names.append(".".join(rel.parts))
    assert len(names) > 10, names
    return names


def test_api_reference_documents_every_public_module() -> None:
    api = (ROOT / "docs" / "pages" / "api.md").read_text()
    documented = set(re.findall(r"^::: ([\w.]+)", api, re.M))
    missing = [m for m in public_modules() if m not in documented]
    assert not missing, f"docs/pages/api.md lacks a `::: module` section for {missing}"


def test_test_helpers_are_named_after_their_package() -> None:
    """Helper modules in packages/<pkg>/tests/ start with the package's short name.

    pytest puts every tests/ folder on sys.path, so two packages' `helpers.py` would
    shadow each other; the prefix keeps the names unique and says whose they are.
    """
    wrong = []
    for tests in sorted(ROOT.glob("packages/*/tests")):
        prefix = tests.parent.name.removeprefix("phasic-") + "_"
        for path in sorted(tests.glob("*.py")):
            if path.name == "conftest.py" or path.name.startswith("test_"):
                continue
            if not path.name.startswith(prefix):
                wrong.append(f"{path.relative_to(ROOT)} (expected {prefix}*.py)")
    assert not wrong, f"rename test helper modules: {wrong}"


def test_sibling_dependency_pinned_to_the_same_version() -> None:
    """phasic-distributed is unpublished: its dependents pin exactly the version here."""
    version = tomllib.loads((ROOT / "packages/phasic-distributed/pyproject.toml").read_text()
                            )["project"]["version"]
    for package in ("phasic-core", "phasic-testkit"):
        deps = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text()
                             )["project"]["dependencies"]
        sibling = [d for d in deps if d.startswith("phasic-distributed")]
        assert sibling == [f"phasic-distributed=={version}"], (package, sibling)


def test_docs_never_install_an_unpublished_package_by_name() -> None:
    by_name = re.compile(r"pip install\s+['\"]?phasic-(core|distributed|testkit)\b")
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}"
             for p in tracked_files() if p.suffix == ".md"
             for m in by_name.finditer(p.read_text())]
    assert not found, f"install from dist/ or the checkout instead: {found}"


def test_one_jax_lower_bound_everywhere() -> None:
    """All three packages declare the jax floor that `nox -s oldest-jax` tests."""
    floors = {p.parent.name: set(re.findall(r'"jax>=([\d.]+)"', p.read_text()))
              for p in sorted(ROOT.glob("packages/*/pyproject.toml"))}
    assert len(floors) == 3 and all(len(f) == 1 for f in floors.values()), floors
    assert len(set().union(*floors.values())) == 1, floors
