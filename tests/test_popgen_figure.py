"""The two-island figure on the population-genetics page is what its example draws.

The page's drawing example writes `two_island.svg`; the committed copy under
docs/assets/ must show the same nodes, labels and edges (coordinates and the
Graphviz version may differ). `python tests/test_popgen_figure.py` runs the example
and replaces the committed copy.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import sys
import tempfile

from test_docs_examples import page_examples, run_examples

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "pages" / "popgen.md"
FIGURE = ROOT / "docs" / "assets" / "two_island.svg"
WRITTEN = "two_island.svg"  # the file name the example writes in its working directory

GROUP = re.compile(r'<g id="(?:node|edge)\d+" class="(node|edge)">(.*?)</g>', re.S)
TITLE = re.compile(r"<title>(.*?)</title>", re.S)
TEXT = re.compile(r"<text[^>]*>(.*?)</text>", re.S)


def drawn(svg: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(node or edge, its Graphviz title, its texts) for every element, sorted."""
    return sorted((kind, TITLE.search(body)[1], tuple(TEXT.findall(body)))
                  for kind, body in GROUP.findall(svg))


def draw(workdir: pathlib.Path) -> pathlib.Path:
    """Run the page's drawing example (it needs no other block) in `workdir`."""
    examples = [e for e in page_examples(PAGE, ROOT) if WRITTEN in e.code]
    assert len(examples) == 1, f"{PAGE.name} should have one example writing {WRITTEN}"
    examples[0].expected = None
    run_examples(examples, workdir)
    return workdir / WRITTEN


def test_committed_figure_is_what_the_example_draws(tmp_path: pathlib.Path) -> None:
    fresh = drawn(draw(tmp_path).read_text())
    assert len(fresh) == 10 + 17  # the two-island model of 3 lineages
    assert ("node", "1", ("3,0", "#1")) in fresh
    assert drawn(FIGURE.read_text()) == fresh, (
        f"{FIGURE.relative_to(ROOT)} is not what the example on {PAGE.name} draws: run "
        "`python tests/test_popgen_figure.py` to regenerate it"
    )


def test_the_page_shows_the_figure() -> None:
    assert f"(../assets/{FIGURE.name})" in PAGE.read_text()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(draw(pathlib.Path(tmp)), FIGURE)
    print(f"wrote {FIGURE.relative_to(ROOT)}", file=sys.stderr)
