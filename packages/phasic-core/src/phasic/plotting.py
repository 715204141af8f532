"""Drawing a graph with Graphviz: `Graph.plot` returns a `graphviz.Digraph`.

One node per vertex, labelled by its state and index; the starting vertex is a box
labelled "S", absorbing vertices are double octagons. An edge is labelled by its
weight: a number for a constant edge or when a theta is given or stored, otherwise
its formula `base + c·θ[p] + ...`. A start edge into an absorbing vertex (a defect,
mass at T = 0) is dashed.

Building the drawing needs only the Python package `graphviz` (the `[plot]` extra of
phasic-core); rendering it (SVG/PNG, notebooks) needs Graphviz's `dot` program,
Debian's package `graphviz`. Without `dot` the drawing is still returned and its DOT
text is in `.source`; rendering then raises `DotNotFound` saying what to install.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import graphviz

    from .graph import Graph
    from .vertices import Edge, Vertex

# a drawing of more states than this is unreadable and slow to lay out
DEFAULT_MAX_VERTICES = 100
FONT = "Helvetica,Arial,sans-serif"
FILL = {"transient": "#eeeeee", "start": "#bbbbbb", "absorbing": "#bbbbbb"}
SHAPE = {"transient": "ellipse", "start": "box", "absorbing": "doubleoctagon"}
DOT_MISSING = (
    "Graphviz's `dot` program is not on PATH, so the drawing cannot be rendered. Install "
    "it (Debian/Ubuntu: `apt-get install graphviz`, the Debian package graphviz; conda: "
    "graphviz). The drawing itself works without it: its DOT text is in `.source`."
)
# upstream keywords for colouring (they need matplotlib and seaborn there)
UPSTREAM_COLOUR_KEYWORDS = ("color_by", "color_by_cmap", "color_by_lim", "dark", "rainbow")


def _graphviz() -> Any:
    """The `graphviz` package, or an ImportError saying how to install it."""
    try:
        import graphviz
    except ImportError as exc:
        raise ImportError(
            "Graph.plot() needs the Python package graphviz: install phasic-core with its "
            "plot extra (pip install 'packages/phasic-core[plot]' in the checkout) or "
            "pip install graphviz; rendering also needs Graphviz's dot program (Debian "
            "package graphviz)"
        ) from exc
    return graphviz


@functools.cache
def _drawing_class() -> type:
    """A `graphviz.Digraph` whose rendering explains a missing `dot` program.

    Made on first use so that importing phasic never imports graphviz.
    """
    graphviz = _graphviz()

    class DotNotFound(graphviz.ExecutableNotFound):
        """Graphviz's `dot` is missing: says which package to install."""

        def __init__(self) -> None:
            RuntimeError.__init__(self, DOT_MISSING)

    def explained(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except graphviz.ExecutableNotFound as exc:
                if isinstance(exc, DotNotFound):
                    raise
                raise DotNotFound() from exc
        return wrapper

    class PhaseTypeDrawing(graphviz.Digraph):
        """A `graphviz.Digraph` of a phasic Graph (see `phasic.plotting`)."""

        # pipe backs the notebook display (_repr_mimebundle_) as well
        pipe = explained(graphviz.Digraph.pipe)
        render = explained(graphviz.Digraph.render)
        view = explained(graphviz.Digraph.view)

    PhaseTypeDrawing.DotNotFound = DotNotFound
    return PhaseTypeDrawing


def number(value: float) -> str:
    """A weight for a label: whole numbers without a decimal point, others to 4 digits."""
    if value == round(value) and abs(value) < 1e15:
        return str(int(round(value)))
    return format(value, ".4g")


def formula(edge: Edge) -> str:
    """An edge's weight as `base + c·θ[p] + ...` (terms with a zero coefficient omitted)."""
    parts = [number(edge.base)] if edge.base != 0.0 or not edge.terms else []
    for p, c in edge.terms:
        if c != 0.0:
            parts.append(f"θ[{p}]" if c == 1.0 else f"{number(c)}·θ[{p}]")
    return " + ".join(parts) if parts else "0"


def state_label(vertex: Vertex, wrap: bool | int = True) -> str:
    """A vertex's state as `a,b,c`, broken into lines of `wrap` entries (True: 8)."""
    state = [str(x) for x in vertex.state().tolist()]
    width = 8 if wrap is True else (len(state) or 1) if wrap is False else int(wrap)
    lines = [",".join(state[i:i + width]) for i in range(0, len(state), width)]
    return ",\n".join(lines)


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _check_callable(name: str, value: Any, takes: str) -> None:
    if value is not None and value is not False and not callable(value):
        raise TypeError(f"{name} must be a function of {takes} (or None), got {value!r}")


def _check_attrs(name: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict of Graphviz attributes, got {value!r}")
    return {str(k): str(v) for k, v in value.items()}


def _vertex_limit(graph: Graph, max_vertices: Any, max_nodes: Any) -> None:
    """A ValueError when the graph has more vertices than are worth drawing."""
    if max_nodes is not None:
        if max_vertices is not None:
            raise TypeError("pass max_vertices or max_nodes (upstream's name), not both")
        max_vertices = max_nodes
    limit = DEFAULT_MAX_VERTICES if max_vertices is None else _check_positive_int(
        "max_vertices", max_vertices)
    n = graph.vertices_length()
    if n > limit:
        raise ValueError(
            f"the graph has {n} vertices, more than max_vertices={limit}: a drawing of that "
            f"many states is unreadable and slow to lay out. Draw a smaller model, or pass "
            f"max_vertices={n} to draw it anyway"
        )


def _edge_labeller(graph: Graph, theta: Any, symbolic: bool,
                   rate_fmt: Any) -> Callable[[Edge], str]:
    """How edges are labelled: numbers at a theta, or formulas."""
    if symbolic and theta is not None:
        raise ValueError("pass theta= (numeric edge labels) or symbolic=True (formulas), "
                         "not both")
    fmt = rate_fmt or number
    values = None
    if not symbolic and (theta is not None or graph._stored is not None):
        values = graph._theta(theta)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"theta must be finite to label edges with weights, got "
                             f"{values.tolist()}")

    def label(edge: Edge) -> str:
        if rate_fmt is False:
            return ""
        if values is None:
            return formula(edge) if edge.terms else fmt(edge.base)
        return fmt(edge.base + sum(c * float(values[p]) for p, c in edge.terms))

    return label


def _clusters(graph: Graph, by_state: Any, by_index: Any) -> dict[str, list[int]]:
    """Cluster label -> vertex indices, from upstream's `by_state` / `by_index` functions."""
    if by_state is not None and by_index is not None:
        raise ValueError("pass by_state or by_index, not both")
    clusters: dict[str, list[int]] = defaultdict(list)
    if by_state is None and by_index is None:
        return clusters
    for i in range(1, graph.vertices_length()):
        key = by_state(graph.vertex_at(i).state()) if by_state else by_index(i)
        clusters[str(key)].append(i)
    return clusters


def plot(
    graph: Graph,
    filename: str | None = None,
    *,
    theta: Any = None,
    symbolic: bool = False,
    max_vertices: int | None = None,
    max_nodes: int | None = None,
    wrap: bool | int = True,
    show_index: bool = True,
    label_fmt: Callable[[Vertex], str] | bool | None = None,
    rate_fmt: Callable[[float], str] | bool | None = None,
    by_state: Callable[[np.ndarray], Any] | None = None,
    by_index: Callable[[int], Any] | None = None,
    subgraphfun: Callable[[np.ndarray], Any] | None = None,
    rankdir: str = "LR",
    ranksep: float = 1.0,
    nodesep: float = 1.0,
    size: tuple[float, float] | None = (7, 7),
    fontsize: int = 12,
    penwidth: float = 1.0,
    constraint: bool = True,
    taillabel: bool = False,
    seed: int = 1,
    graph_attr: Mapping[str, Any] | None = None,
    node_attr: Mapping[str, Any] | None = None,
    edge_attr: Mapping[str, Any] | None = None,
    **upstream_only: Any,
) -> graphviz.Digraph:
    """The graph drawn as a `graphviz.Digraph` (see the module docstring for the marks).

    In a notebook the result displays itself; `.pipe(format="svg")` returns SVG bytes,
    `.render(...)` writes a file, `.source` is the DOT text.

    Args:
        filename: also render to this file; its suffix is the format (`"m.svg"`, `"m.png"`).
        theta: label edges with their weights at this theta; default: the stored theta
            (`update_weights`) if any, else parameterized edges show their formula.
        symbolic: label parameterized edges with their formula even if a theta is stored.
        max_vertices: refuse (ValueError) to draw more vertices than this (default 100).
        max_nodes: upstream's name of `max_vertices`.
        wrap: states longer than this many entries break over lines (True: 8, False: never).
        show_index: put the vertex index (`#i`) under the state.
        label_fmt: a function of a `Vertex` giving its label; False for no labels.
        rate_fmt: a function of a weight (float) giving an edge label; False for none.
        by_state: a function of a vertex's state naming the cluster (a framed group) the
            vertex is drawn in.
        by_index: the same, as a function of the vertex index.
        subgraphfun: upstream's old name of `by_state`.
        rankdir: the direction of the layout ("LR", "TB", ...).
        ranksep: Graphviz's space between ranks (inches).
        nodesep: Graphviz's space between nodes of one rank (inches).
        size: the largest (width, height) in inches; None leaves the size free.
        fontsize: the font size of labels (points).
        penwidth: the width of edges.
        constraint: whether edges order the ranks (Graphviz's `constraint`).
        taillabel: put edge labels at the tail of the edge instead of beside it.
        seed: Graphviz's `start`, the seed of layouts that use one.
        graph_attr: Graphviz graph attributes that override the defaults.
        node_attr: Graphviz node attributes that override the defaults.
        edge_attr: Graphviz edge attributes that override the defaults.
        **upstream_only: upstream's colouring keywords, refused with a TypeError.
    """
    if upstream_only:
        names = sorted(upstream_only)
        known = [n for n in names if n in UPSTREAM_COLOUR_KEYWORDS]
        raise TypeError(
            f"plot() got unsupported keyword(s) {', '.join(names)}"
            + (f"; upstream's colouring options ({', '.join(known)}) are not implemented: set "
               "node colours with node_attr or on the returned Digraph" if known else "")
        )
    if not isinstance(symbolic, (bool, np.bool_)):
        raise TypeError(f"symbolic must be a bool, got {symbolic!r}")
    _vertex_limit(graph, max_vertices, max_nodes)
    if not (wrap is True or wrap is False):
        wrap = _check_positive_int("wrap", wrap)
    for name, value, takes in (("label_fmt", label_fmt, "a Vertex"),
                               ("rate_fmt", rate_fmt, "a float"),
                               ("by_state", by_state, "a state"),
                               ("by_index", by_index, "an index"),
                               ("subgraphfun", subgraphfun, "a state")):
        _check_callable(name, value, takes)
    if subgraphfun is not None:
        if by_state is not None:
            raise ValueError("pass by_state or subgraphfun (its old name), not both")
        by_state = subgraphfun
    if filename is not None and (not isinstance(filename, str) or "." not in filename):
        raise ValueError(f"filename must be a path with a format suffix such as "
                         f"'model.svg' or 'model.png', got {filename!r}")
    edge_label = _edge_labeller(graph, theta, bool(symbolic), rate_fmt)

    def vertex_label(vertex: Vertex) -> str:
        if label_fmt is False:
            return ""
        text = label_fmt(vertex) if label_fmt else state_label(vertex, wrap)
        return f"{text}\n#{vertex.index()}" if show_index else str(text)

    attrs = {
        "graph": dict(rankdir=str(rankdir), ranksep=str(ranksep), nodesep=str(nodesep),
                      fontname=FONT, start=str(seed), pad="0.3",
                      **({"size": f"{size[0]},{size[1]}"} if size else {})),
        "node": dict(style="filled", color="black", fontname=FONT, fontsize=str(fontsize)),
        "edge": dict(fontname=FONT, fontsize=str(fontsize), penwidth=str(penwidth),
                     color="#3e3e3e", fontcolor="#3e3e3e",
                     constraint="true" if constraint else "false"),
    }
    attrs["graph"].update(_check_attrs("graph_attr", graph_attr))
    attrs["node"].update(_check_attrs("node_attr", node_attr))
    attrs["edge"].update(_check_attrs("edge_attr", edge_attr))
    drawing = _drawing_class()(graph_attr=attrs["graph"], node_attr=attrs["node"],
                               edge_attr=attrs["edge"])
    _add_vertices_and_edges(drawing, graph, vertex_label, edge_label, taillabel)
    for label, members in _clusters(graph, by_state, by_index).items():
        with drawing.subgraph(name=f"cluster_{label}",
                              graph_attr={"label": label, "style": "rounded"}) as cluster:
            for i in members:
                cluster.node(str(i))
    if filename is not None:
        stem, suffix = filename.rsplit(".", 1)
        drawing.render(stem, format=suffix, cleanup=True)
    return drawing


def _add_vertices_and_edges(drawing: Any, graph: Graph, vertex_label: Callable[[Any], str],
                            edge_label: Callable[[Edge], str], taillabel: bool) -> None:
    """One node per vertex (start, transient or absorbing) and one arrow per edge."""
    label_key = "taillabel" if taillabel else "xlabel"
    vertices = graph.vertices()
    out_edges: list[list[Edge]] = [v.edges() for v in vertices]
    for vertex, edges in zip(vertices, out_edges, strict=True):
        i = vertex.index()
        kind = "start" if i == 0 else "transient" if edges else "absorbing"
        label = "S" if i == 0 else vertex_label(vertex)
        drawing.node(str(i), label, shape=SHAPE[kind], fillcolor=FILL[kind])
    for vertex, edges in zip(vertices, out_edges, strict=True):
        for edge in edges:
            target = edge.to().index()
            # a start edge straight into an absorbing vertex is mass at T = 0: dashed
            defect = vertex.index() == 0 and not out_edges[target]
            drawing.edge(str(vertex.index()), str(target), **{label_key: edge_label(edge)},
                         **({"style": "dashed"} if defect else {}))
