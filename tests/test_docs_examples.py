"""Every Python example in the documentation runs, and prints what the page says.

For each page under docs/ (recursively), its fenced ```python blocks are run in
order in one fresh subprocess (a shared namespace, like a reader pasting them into
one session) with JAX's 64-bit mode on and no device-count or SLURM variables
inherited from the test run. Markers, written as HTML comments so they do not show
on the site:

- `<!-- not-run: reason -->` right before a block: the block is not executed (for
  snippets that need a real SLURM step, say). Such blocks are listed as warnings and
  must stay rare.
- `<!-- output -->` right before a ```text block that directly follows a python
  block: that text is the expected stdout of the python block, compared with
  doctest's rules (`...` matches anything, whitespace runs are equal).

Shell, JSON and text blocks are never executed.
"""

from __future__ import annotations

import dataclasses
import doctest
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import warnings

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGE_TIMEOUT_S = 300
MAX_NOT_RUN = 3  # keep non-executed examples rare

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n]*)$")
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>.*?)\s*-->")
OUTPUT = re.compile(r"<!--\s*output\s*-->")
# variables that would make a page's examples depend on how the test run was started
DROPPED_ENV = ("XLA_FLAGS", "PHASIC_CPUS", "PTDALG_CPUS", "JAX_NUM_CPU_DEVICES")


@dataclasses.dataclass
class Block:
    """One fenced code block of a page."""

    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    end_line: int  # 1-based line of the closing fence
    before: str  # the non-blank line just before the opening fence ("" if none)


@dataclasses.dataclass
class Example:
    """A python block to run, with its expected output if the page gives one."""

    page: str
    line: int
    code: str
    expected: str | None = None
    not_run: str | None = None  # the reason, when marked not-run


def fenced_blocks(text: str) -> list[Block]:
    """All fenced code blocks of a markdown text, in order (indented fences included)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        lang = (match["info"].split() or [""])[0].lower().lstrip(".{")
        before = next((b.strip() for b in reversed(lines[:i]) if b.strip()), "")
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        if j == len(lines):
            raise ValueError(f"unclosed code fence opened at line {i + 1}")
        blocks.append(Block(lang, textwrap.dedent("\n".join(body)) + "\n", i + 1, j + 1, before))
        i = j + 1
    return blocks


def page_examples(path: pathlib.Path, root: pathlib.Path = ROOT) -> list[Example]:
    """The python examples of one page, each with its marker and expected output."""
    text = path.read_text()
    lines = text.splitlines()
    rel = str(path.relative_to(root))
    blocks = fenced_blocks(text)
    examples: list[Example] = []
    for k, block in enumerate(blocks):
        if block.lang in {"python", "py"}:
            marker = NOT_RUN.fullmatch(block.before)
            example = Example(rel, block.line, block.code,
                              not_run=marker["reason"] if marker else None)
            if marker is not None and not example.not_run:
                raise ValueError(f"{rel}:{block.line}: a not-run marker needs a reason")
            examples.append(example)
        elif block.lang == "text" and OUTPUT.fullmatch(block.before) and examples:
            previous = blocks[k - 1] if k else None
            between = lines[previous.end_line:block.line - 1] if previous else []
            if previous is None or previous.lang not in {"python", "py"} or any(
                b.strip() and not OUTPUT.fullmatch(b.strip()) for b in between
            ):
                raise ValueError(
                    f"{rel}:{block.line}: an <!-- output --> block must directly follow "
                    "a python block"
                )
            examples[-1].expected = block.code
    return examples


def docs_pages() -> list[pathlib.Path]:
    """Every markdown page of the site."""
    return sorted(DOCS.rglob("*.md"))


# The child process: runs the blocks in one namespace, one stdout capture per block.
RUNNER = r'''
import contextlib, io, json, sys, traceback
try:  # an editable install of phasic-core rebuilds on this import: keep that out of the
    import phasic._core  # captured output (loading the extension starts no JAX backend)
except ImportError:
    pass
blocks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
outputs = []
for block in blocks:
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            exec(compile(block["code"], block["where"], "exec"), namespace)
    except BaseException:
        sys.stdout.write(buffer.getvalue())
        print(f"\nexample failed: {block['where']}", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
    outputs.append(buffer.getvalue())
json.dump(outputs, open(sys.argv[2], "w"))
'''


def child_env() -> dict[str, str]:
    """The environment of a fresh reader: x64 on, no inherited device or SLURM set-up."""
    env = {k: v for k, v in os.environ.items()
           if k not in DROPPED_ENV and not k.startswith("SLURM_")}
    env["JAX_ENABLE_X64"] = "1"
    # an editable (developer) install of phasic-core prints its rebuild to stdout
    env["SKBUILD_EDITABLE_VERBOSE"] = "0"
    return env


def run_examples(examples: list[Example], workdir: pathlib.Path) -> list[str]:
    """Run the examples (not-run ones excluded) in one subprocess; their stdouts.

    Raises AssertionError with the page, line and traceback when one fails.
    """
    runnable = [e for e in examples if e.not_run is None]
    spec = workdir / "blocks.json"
    result = workdir / "outputs.json"
    spec.write_text(json.dumps(
        [{"code": e.code, "where": f"{e.page}:{e.line}"} for e in runnable]))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", RUNNER, str(spec), str(result)],
            cwd=workdir, env=child_env(), capture_output=True, text=True,
            timeout=PAGE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"the examples of {runnable[0].page} did not finish within {PAGE_TIMEOUT_S} s"
        ) from exc
    if proc.returncode != 0:
        raise AssertionError(
            f"a documentation example failed (exit code {proc.returncode}).\n"
            f"--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
    return json.loads(result.read_text())


def check_outputs(examples: list[Example], outputs: list[str]) -> list[str]:
    """Mismatches between printed and documented output, one message each."""
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runnable = [e for e in examples if e.not_run is None]
    problems = []
    for example, got in zip(runnable, outputs, strict=True):
        if example.expected is not None and not checker.check_output(
            example.expected, got, flags
        ):
            problems.append(
                f"{example.page}:{example.line}: printed output differs from the page\n"
                f"--- the page says ---\n{example.expected}--- it printed ---\n{got}"
            )
    return problems


PAGES = [p for p in docs_pages() if any(e.not_run is None for e in page_examples(p))]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_examples_run(page: pathlib.Path, tmp_path: pathlib.Path) -> None:
    examples = page_examples(page)
    outputs = run_examples(examples, tmp_path)
    problems = check_outputs(examples, outputs)
    assert not problems, "\n\n".join(problems)


def test_docs_have_examples() -> None:
    """The extractor finds the getting-started examples (guards against finding none)."""
    examples = page_examples(DOCS / "pages" / "getting_started.md")
    assert sum(e.not_run is None for e in examples) >= 3
    assert any(e.expected is not None for e in examples)


def test_not_run_blocks_are_few_and_reported() -> None:
    skipped = [e for p in docs_pages() for e in page_examples(p) if e.not_run is not None]
    for example in skipped:
        warnings.warn(f"documentation example not run: {example.page}:{example.line} "
                      f"({example.not_run})", stacklevel=1)
    assert len(skipped) <= MAX_NOT_RUN, (
        f"{len(skipped)} documentation examples are marked not-run (at most {MAX_NOT_RUN}): "
        + ", ".join(f"{e.page}:{e.line}" for e in skipped)
    )


SAMPLE = """\
# sample

```python
x = 6 * 7
print(x)
```

<!-- output -->
```text
42
```

<!-- not-run: needs a SLURM step -->
```python
raise SystemExit("never runs")
```

```bash
exit 1
```

```python
print(f"value {x + 1} and more")
```

<!-- output -->
```text
value ... and more
```
"""


def test_extractor_and_checker_on_a_sample(tmp_path: pathlib.Path) -> None:
    """The machinery itself: markers, shared namespace, output check, failures seen."""
    page = tmp_path / "docs" / "sample.md"
    page.parent.mkdir()
    page.write_text(SAMPLE)
    examples = page_examples(page, tmp_path)
    assert [e.line for e in examples] == [3, 14, 22]
    assert examples[1].not_run == "needs a SLURM step"
    assert examples[0].expected == "42\n"
    outputs = run_examples(examples, tmp_path)
    assert outputs == ["42\n", "value 43 and more\n"]
    assert check_outputs(examples, outputs) == []
    # a wrong documented output is reported with its location
    examples[0].expected = "41\n"
    assert [p.splitlines()[0] for p in check_outputs(examples, outputs)] == [
        "docs/sample.md:3: printed output differs from the page"]
    # a failing block names the page and line
    examples[2].code = "1 / 0\n"
    with pytest.raises(AssertionError, match=r"(?s)docs/sample.md:22.*ZeroDivisionError"):
        run_examples(examples, tmp_path)


def test_output_marker_must_follow_python(tmp_path: pathlib.Path) -> None:
    page = tmp_path / "docs" / "bad.md"
    page.parent.mkdir()
    page.write_text("```python\nprint(1)\n```\n\nsome prose\n\n<!-- output -->\n```text\n1\n```\n")
    with pytest.raises(ValueError, match="must directly follow a python block"):
        page_examples(page, tmp_path)

