"""Graph.plot: the graphviz drawing of a graph (phasic.plotting).

The drawings are read back through Graphviz itself (`dot -Tjson`), so the checks see
the nodes, shapes and edge labels that dot parsed, not our own DOT text.
"""

from __future__ import annotations

import json
import sys

import graphviz
import numpy as np
import pytest

from phasic import Graph, models, plotting


def laid_out(drawing: graphviz.Digraph) -> tuple[dict[str, dict], list[tuple[str, str, dict]]]:
    """(node name -> attributes, [(tail, head, attributes)]) as dot parsed the drawing."""
    data = json.loads(drawing.pipe(format="json"))
    objects = data["objects"]
    nodes = {o["name"]: o for o in objects if "nodes" not in o}  # clusters list their nodes
    names = {o["_gvid"]: o["name"] for o in objects}
    edges = [(names[e["tail"]], names[e["head"]], e) for e in data.get("edges", [])]
    return nodes, edges


def edge_labels(drawing: graphviz.Digraph, key: str = "xlabel") -> dict[tuple[str, str], str]:
    return {(t, h): a.get(key, "") for t, h, a in laid_out(drawing)[1]}


def constant_graph(discrete: bool = False) -> Graph:
    """S -> a; a -> b (2.5), a -> c (0.5); b -> c (3); c absorbing. State (x, y)."""
    g = Graph(2, discrete=discrete)
    a, b, c = (g.find_or_create_vertex(s) for s in [(1, 0), (0, 1), (0, 0)])
    g.starting_vertex().add_edge(a, 1.0)
    if discrete:
        a.add_edge(b, 0.25)
        a.add_edge(c, 0.5)
        b.add_edge(c, 1.0)
    else:
        a.add_edge(b, 2.5)
        a.add_edge(c, 0.5)
        b.add_edge(c, 3.0)
    return g


def test_constant_graph_nodes_edges_and_marks() -> None:
    nodes, edges = laid_out(constant_graph().plot())
    assert set(nodes) == {"0", "1", "2", "3"}
    assert nodes["0"]["label"] == "S" and nodes["0"]["shape"] == "box"
    assert nodes["1"]["label"] == "1,0\n#1" and nodes["1"]["shape"] == "ellipse"
    assert nodes["2"]["label"] == "0,1\n#2" and nodes["2"]["shape"] == "ellipse"
    assert nodes["3"]["label"] == "0,0\n#3" and nodes["3"]["shape"] == "doubleoctagon"
    assert {(t, h): a["xlabel"] for t, h, a in edges} == {
        ("0", "1"): "1", ("1", "2"): "2.5", ("1", "3"): "0.5", ("2", "3"): "3"}
    assert not any("style" in a for _, _, a in edges)


def test_discrete_graph_labels_are_probabilities() -> None:
    g = constant_graph(discrete=True)
    assert edge_labels(g.plot()) == {
        ("0", "1"): "1", ("1", "2"): "0.25", ("1", "3"): "0.5", ("2", "3"): "1"}


def test_parameterized_edges_show_formulas_or_values() -> None:
    g = models.kingman(3)  # S -> (3,0) -> (1,1) -> (0,1) at rates 3 theta, theta
    nodes, edges = laid_out(g.plot())
    assert [nodes[str(i)]["label"].split("\n")[0] for i in range(1, 4)] == ["3,0", "1,1", "0,1"]
    assert {(t, h): a["xlabel"] for t, h, a in edges} == {
        ("0", "1"): "1", ("1", "2"): "3·θ[0]", ("2", "3"): "θ[0]"}
    assert edge_labels(g.plot(theta=[0.25]))[("1", "2")] == "0.75"
    g.update_weights([2.0])  # the stored theta labels edges with numbers ...
    assert edge_labels(g.plot()) == {("0", "1"): "1", ("1", "2"): "6", ("2", "3"): "2"}
    # ... unless formulas are asked for; a given theta wins over the stored one
    assert edge_labels(g.plot(symbolic=True))[("1", "2")] == "3·θ[0]"
    assert edge_labels(g.plot(theta=[1.0 / 3.0]))[("1", "2")] == "1"


def test_base_plus_coefficients_formula() -> None:
    g = Graph(1)
    a, b = g.find_or_create_vertex((1,)), g.find_or_create_vertex((2,))
    g.starting_vertex().add_edge(a, 1.0)
    a.add_edge_parameterized(b, 0.5, [0.0, 2.0, 1.0])
    assert edge_labels(g.plot())[("1", "2")] == "0.5 + 2·θ[1] + θ[2]"
    assert edge_labels(g.plot(theta=[7.0, 0.25, 1e-3]))[("1", "2")] == "1.001"


def test_defect_edge_is_dashed() -> None:
    g = Graph(1)  # a third of the mass is absorbed at T = 0
    a, end = g.find_or_create_vertex((1,)), g.find_or_create_vertex((2,))
    g.starting_vertex().add_edge(a, 2.0)
    g.starting_vertex().add_edge(end, 1.0)
    a.add_edge(end, 1.0)
    nodes, edges = laid_out(g.plot())
    styles = {(t, h): a.get("style") for t, h, a in edges}
    assert styles == {("0", "1"): None, ("0", "2"): "dashed", ("1", "2"): None}
    assert nodes["2"]["shape"] == "doubleoctagon"


def test_label_and_rate_formats_clusters_and_attributes() -> None:
    g = models.two_island(2)
    drawing = g.plot(theta=[1.0, 0.5], label_fmt=lambda v: f"v{v.index()}", show_index=False,
                     rate_fmt=lambda w: f"{w:.2f}", by_state=lambda s: f"{sum(s)} lineages",
                     node_attr={"fontsize": 9}, taillabel=True)
    data = json.loads(drawing.pipe(format="json"))
    clusters = {o["name"]: o for o in data["objects"] if "nodes" in o}
    assert {c["label"] for c in clusters.values()} == {"2 lineages", "1 lineages"}
    nodes, edges = laid_out(drawing)
    assert nodes["3"]["label"] == "v3" and nodes["3"]["fontsize"] == "9"
    assert {(t, h): a["taillabel"] for t, h, a in edges}[("1", "3")] == "1.00"
    assert all("xlabel" not in a for _, _, a in edges)
    nodes, edges = laid_out(g.plot(label_fmt=False, rate_fmt=False))
    assert nodes["1"]["label"] == "" and all(not a.get("xlabel") for _, _, a in edges)


def test_wrap_breaks_long_states() -> None:
    g = models.kingman(10)  # states of 9 entries
    first = laid_out(g.plot(wrap=3))[0]["1"]["label"]
    assert first == "10,0,0,\n0,0,0,\n0,0,0\n#1"
    assert laid_out(g.plot())[0]["1"]["label"] == "10,0,0,0,0,0,0,0,\n0\n#1"
    assert laid_out(g.plot(wrap=False))[0]["1"]["label"] == "10,0,0,0,0,0,0,0,0\n#1"


def test_svg_and_png_contain_the_states(tmp_path) -> None:
    g = models.two_island(3)
    svg = g.plot(theta=[1.0, 0.5]).pipe(format="svg").decode()
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    for state in g.states()[1:]:
        assert f">{','.join(map(str, state))}</text>" in svg
    assert g.plot().pipe(format="png")[:8] == b"\x89PNG\r\n\x1a\n"
    g.plot(str(tmp_path / "island.svg"))  # upstream's filename: the suffix is the format
    assert "</svg>" in (tmp_path / "island.svg").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["island.svg"]  # no DOT file left


def test_notebook_display_is_svg() -> None:
    bundle = models.kingman(3).plot()._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"] and "3,0" in bundle["image/svg+xml"]


def test_without_dot_the_drawing_works_and_rendering_names_the_package(monkeypatch,
                                                                        tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no dot
    drawing = models.kingman(3).plot()
    assert '"3,0\n#1"' in drawing.source and drawing.source.count("->") == 3
    for render in (lambda: drawing.pipe(format="svg"), drawing._repr_mimebundle_,
                   lambda: drawing.render(str(tmp_path / "k"), format="svg")):
        with pytest.raises(graphviz.ExecutableNotFound,
                           match=r"dot.*not on PATH.*apt-get install graphviz.*\.source"):
            render()
    with pytest.raises(graphviz.ExecutableNotFound, match="Debian package graphviz"):
        models.kingman(3).plot(str(tmp_path / "k.svg"))


def test_without_the_python_package_the_error_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz now fails
    plotting._drawing_class.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"phasic-core\[plot\]"):
            models.kingman(3).plot()
    finally:
        plotting._drawing_class.cache_clear()


def test_big_graphs_are_refused_unless_asked_for() -> None:
    g = models.kingman(12)  # 78 vertices
    n = g.vertices_length()
    with pytest.raises(ValueError, match=rf"{n} vertices, more than max_vertices=50.*"
                                         rf"max_vertices={n}"):
        g.plot(max_vertices=50)
    with pytest.raises(ValueError, match="max_vertices=100"):
        models.kingman(15).plot()  # 177 vertices, the default limit
    assert len(laid_out(g.plot(max_nodes=n))[0]) == n  # upstream's name of the keyword


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"max_vertices": 0}, ValueError, r"max_vertices must be an int >= 1"),
    ({"max_vertices": 5, "max_nodes": 5}, TypeError, r"max_vertices or max_nodes"),
    ({"wrap": 0}, ValueError, r"wrap must be an int >= 1"),
    ({"theta": [1.0, 2.0]}, ValueError, r"theta must have shape \(1,\)"),
    ({"theta": [1.0], "symbolic": True}, ValueError, r"theta=.*or symbolic=True"),
    ({"theta": [float("nan")]}, ValueError, r"theta must be finite"),
    ({"theta": [1.0, 2.0], "rate_fmt": False}, ValueError, r"theta must have shape \(1,\)"),
    ({"symbolic": "yes"}, TypeError, r"symbolic must be a bool"),
    ({"label_fmt": "state"}, TypeError, r"label_fmt must be a function of a Vertex"),
    ({"by_state": len, "by_index": str}, ValueError, r"by_state or by_index"),
    ({"graph_attr": [("a", 1)]}, TypeError, r"graph_attr must be a dict"),
    ({"color_by": [1.0] * 4}, TypeError, r"color_by.*not implemented.*node_attr"),
    ({"colour": "red"}, TypeError, r"unsupported keyword\(s\) colour"),
    ({"filename": "model"}, ValueError, r"format suffix"),
])
def test_bad_arguments(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        models.kingman(3).plot(**kwargs)


def test_stored_theta_of_the_wrong_length_is_reported() -> None:
    g = models.kingman(3)
    g.update_weights([1.0])
    a = g.find_or_create_vertex((0, 0))
    g.starting_vertex().add_edge(a, [0.0, 1.0])  # param_length grows to 2
    with pytest.raises(ValueError, match=r"stored by update_weights has 1 entries"):
        g.plot()
    assert edge_labels(g.plot(symbolic=True))[("0", "4")] == "θ[1]"
    assert np.isclose(float(edge_labels(g.plot(theta=[1.0, 0.5]))[("0", "4")]), 0.5)
