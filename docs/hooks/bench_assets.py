"""mkdocs hook: serve the benchmark plots and results from `bench/results/`.

The benchmark session writes its PNG plots and JSON results to `bench/results/`
(committed). Rather than keeping copies under `docs/` that go stale, this hook adds
those files to the site at `assets/bench/<name>` on every build, so the benchmarks
page always shows the latest committed run.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

from mkdocs.structure.files import File, Files

RESULTS = pathlib.Path(__file__).resolve().parents[2] / "bench" / "results"
SITE_DIR = "assets/bench"
SUFFIXES = {".png", ".json", ".svg"}

log = logging.getLogger("mkdocs.hooks.bench_assets")


def on_files(files: Files, config: Any) -> Files:
    """Add every plot and JSON file of bench/results/ to the site under assets/bench/."""
    if not RESULTS.is_dir():
        log.warning("no %s: the benchmarks page will have no plots", RESULTS)
        return files
    for path in sorted(RESULTS.iterdir()):
        if path.suffix in SUFFIXES and path.is_file():
            files.append(File.generated(config, f"{SITE_DIR}/{path.name}", abs_src_path=str(path)))
    return files
