"""Write the fuzzer's seed corpus: real graphs serialized by phasic itself.

Usage: python make_corpus.py DIR. The seeds in fuzz/seeds/ were made with this
script; run it again after a schema change. Each seed is a graph that phasic
accepts (Kingman, the cyclic two-island model, a discrete chain, a graph with
several coefficients per edge, the smallest graphs), so mutations start from
valid text and reach the validator and the structure compiler, not just the
tokenizer.
"""

from __future__ import annotations

import pathlib
import sys

from phasic import Graph, models


def _discrete_chain() -> Graph:
    g = Graph(1, discrete=True)
    a, b, c = (g.find_or_create_vertex((i,)) for i in (1, 2, 3))
    g.starting_vertex().add_edge(a, 0.6)
    g.starting_vertex().add_edge(b, 0.4)
    a.add_edge(b, [0.5, 0.0])
    b.add_edge(a, 0.2)
    b.add_edge(c, [0.0, 0.3])
    a.add_edge(c, 0.1)
    return g


def _multi_coefficient() -> Graph:
    g = Graph(2)
    a, b, c = (g.find_or_create_vertex(s) for s in ((1, 0), (0, 1), (-3, 7)))
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge(b, [1.0, 2.5, 0.0, 1e-300])
    b.add_edge(a, [0.0, 0.5])
    b.add_edge(c, 3.25)
    return g


def _smallest() -> list[Graph]:
    only_start = Graph(0)
    one_step = Graph(1)
    one_step.starting_vertex().add_edge(one_step.find_or_create_vertex((1,)), 1.0)
    return [only_start, one_step]


def seeds() -> dict[str, str]:
    """name -> serialized graph."""
    out = {f"kingman{n}": models.kingman(n).to_json() for n in (2, 3, 5)}
    out["two_island3"] = models.two_island(3).to_json()
    out["discrete_chain"] = _discrete_chain().to_json()
    out["multi_coefficient"] = _multi_coefficient().to_json()
    for i, g in enumerate(_smallest()):
        out[f"smallest{i}"] = g.to_json()
    return out


def main() -> None:
    dest = pathlib.Path(sys.argv[1])
    dest.mkdir(parents=True, exist_ok=True)
    for name, text in seeds().items():
        (dest / f"{name}.json").write_text(text)
    print(f"wrote {len(seeds())} seeds to {dest}")


if __name__ == "__main__":
    main()
