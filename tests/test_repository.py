"""The repository keeps its promises: README's commands are what CI and nox run."""

from __future__ import annotations

import pathlib
import re

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
