"""mkdocs hook: the benchmark plots and numbers from `bench/results/`.

The benchmark session writes its PNG plots and JSON results to `bench/results/`
(committed). Rather than keeping copies under `docs/` that go stale, this hook

- adds those files to the site at `assets/bench/<name>` on every build, so the
  benchmarks page shows the latest committed plots, and
- replaces `{{ bench:NAME:PATH }}` or `{{ bench:NAME:PATH:FORMAT }}` in a page with
  a value read from `bench/results/NAME.json`, so the numbers quoted in the prose
  are the ones of that same run. PATH is dot-separated keys; a list step is an
  index (`moments.0`) or a selector (`moments[n=30]`, the element whose key `n`
  equals 30). FORMAT is a Python format spec (`.2f`, `.1e`, `,`).

A missing file or key stops the build with the file and key named.
`PHASIC_BENCH_RESULTS=<dir>` reads another results directory (e.g. to preview the
page with the results of a `--quick` run copied there under the full names).
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import re
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

RESULTS = pathlib.Path(
    os.environ.get("PHASIC_BENCH_RESULTS")
    or pathlib.Path(__file__).resolve().parents[2] / "bench" / "results"
)
SITE_DIR = "assets/bench"
SUFFIXES = {".png", ".json", ".svg"}
PLACEHOLDER = re.compile(r"\{\{\s*bench:(?P<name>[\w-]+):(?P<path>[^:}\s]+)(?::(?P<fmt>[^}\s]*))?\s*\}\}")
SELECTOR = re.compile(r"^(?P<key>\w+)\[(?P<field>\w+)=(?P<value>[^\]]+)\]$")

log = logging.getLogger("mkdocs.hooks.bench_assets")
_loaded: dict[str, Any] = {}


def on_files(files: Files, config: Any) -> Files:
    """Add every plot and JSON file of the results directory to the site."""
    if not RESULTS.is_dir():
        log.warning("no %s: the benchmarks page will have no plots", RESULTS)
        return files
    _loaded.clear()
    for path in sorted(RESULTS.iterdir()):
        if path.suffix in SUFFIXES and path.is_file():
            files.append(File.generated(config, f"{SITE_DIR}/{path.name}", abs_src_path=str(path)))
    return files


def _results(name: str) -> Any:
    if name not in _loaded:
        path = RESULTS / f"{name}.json"
        if not path.is_file():
            raise PluginError(
                f"bench hook: {path} does not exist; run `nox -s bench` and commit "
                "bench/results/, or fix the page's {{ bench:... }} reference"
            )
        _loaded[name] = json.loads(path.read_text())
    return _loaded[name]


def _step(value: Any, step: str) -> Any:
    """One step of a PATH: a dict key, a list index, or a list selector key[field=value]."""
    selector = SELECTOR.match(step)
    if selector:
        items = value[selector["key"]]
        matches = [item for item in items
                   if str(item.get(selector["field"])) == selector["value"]]
        if len(matches) != 1:
            raise KeyError(step)
        return matches[0]
    if isinstance(value, list):
        return value[int(step)]
    return value[step]


def lookup(name: str, path: str) -> Any:
    """The value at `path` in bench/results/<name>.json."""
    value = _results(name)
    for step in path.split("."):
        try:
            value = _step(value, step)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            raise PluginError(
                f"bench hook: {RESULTS / (name + '.json')} has no {path!r} (failed at {step!r})"
            ) from None
    return value


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Replace every {{ bench:NAME:PATH[:FORMAT] }} with its value."""

    def render(match: re.Match[str]) -> str:
        value = lookup(match["name"], match["path"])
        fmt = match["fmt"]
        return format(value, fmt) if fmt else str(value)

    return PLACEHOLDER.sub(render, markdown)
