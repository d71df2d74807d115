"""The layered layout of a DAG (``services.application.graph_layout``) and its text renderings."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ElementTree

from definitions import fan_out_in, node, workflow

from domain.validation import build_plan
from services.application.graph_layout import (
    LAYER_PITCH,
    GraphNode,
    crossings,
    layout_graph,
    layout_plan,
)
from services.application.graph_render import GraphFormat, render_graph


def test_a_node_sits_one_layer_right_of_its_last_parent() -> None:
    plan = build_plan(
        workflow(node("a"), node("b", ["a"]), node("c", ["b"]), node("d", ["a", "c"]), node("e"))
    )
    layout = layout_plan(plan)
    layers = {placed.id: placed.layer for placed in layout.nodes}
    assert layers == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 0}
    xs = {placed.id: placed.x for placed in layout.nodes}
    assert xs["b"] - xs["a"] == LAYER_PITCH
    assert len(layout.edges) == 4


def test_definition_order_does_not_decide_crossings() -> None:
    # Two chains listed crosswise: a1 -> b2 and a2 -> b1 with b1 listed first. Definition order
    # alone crosses the edges; the sweeps untangle them.
    nodes = [
        GraphNode("a1", "h", ()),
        GraphNode("a2", "h", ()),
        GraphNode("b1", "h", (1,)),
        GraphNode("b2", "h", (0,)),
        GraphNode("c1", "h", (2,)),
        GraphNode("c2", "h", (3,)),
    ]
    layout = layout_graph(nodes)
    assert crossings(layout) == 0


def test_barycenter_sweeps_reduce_crossings_of_a_shuffled_bipartite_graph() -> None:
    top = [GraphNode(f"t{i}", "h", ()) for i in range(12)]
    # Child i hangs from parent (i * 5) % 12: a permutation, drawable without any crossing.
    bottom = [GraphNode(f"b{i}", "h", ((i * 5) % 12,)) for i in range(12)]
    layout = layout_graph([*top, *bottom])
    assert crossings(layout) == 0


def test_no_two_nodes_overlap_and_the_box_holds_them_all() -> None:
    layout = layout_plan(build_plan(fan_out_in(300)))
    boxes = {(placed.x, placed.y) for placed in layout.nodes}
    assert len(boxes) == 300
    for placed in layout.nodes:
        assert placed.x >= 0 and placed.x + layout.node_width <= layout.width
        assert placed.y >= 0 and placed.y + layout.node_height <= layout.height


def test_a_wide_layer_wraps_into_a_block() -> None:
    layout = layout_plan(build_plan(fan_out_in(1000)))
    assert layout.height < 5000, "998 parallel nodes make a block, not a line one node wide"
    assert layout.width / layout.height < 4


def test_mermaid_and_dot_name_every_node_and_edge() -> None:
    plan = build_plan(workflow(node("a"), node("b", ["a"]), node("c", ["a", "b"]), name='say "hi"'))
    mermaid = render_graph(plan, GraphFormat.MERMAID)
    assert mermaid.startswith("flowchart LR\n")
    assert 'n0["a<br/><i>noop</i>"]' in mermaid
    assert {"n0 --> n1", "n0 --> n2", "n1 --> n2"} <= set(line.strip() for line in mermaid.splitlines())
    dot = render_graph(plan, GraphFormat.DOT)
    assert dot.startswith('digraph "say \\"hi\\"" {')
    assert "rankdir=LR;" in dot
    assert '"a" -> "c";' in dot and '"b" -> "c";' in dot


def test_svg_is_well_formed_and_draws_each_node_at_its_layout_position() -> None:
    plan = build_plan(workflow(node("a"), node("b", ["a"]), node("c", ["a"]), name="<svg & co>"))
    document = ElementTree.fromstring(render_graph(plan, GraphFormat.SVG))
    ns = {"svg": "http://www.w3.org/2000/svg"}
    groups = document.findall("svg:g[@data-node]", ns)
    assert [group.get("data-node") for group in groups] == ["a", "b", "c"]
    assert document.findtext("svg:title", namespaces=ns) == "<svg & co>"
    layout = layout_plan(plan)
    for group, placed in zip(groups, layout.nodes, strict=True):
        rect = group.find("svg:rect", ns)
        assert rect is not None
        assert (float(rect.get("x", "")), float(rect.get("y", ""))) == (placed.x, placed.y)
    assert len(document.findall("svg:g/svg:path", ns)) == 2


def test_layout_of_a_large_dag_is_quick() -> None:
    nodes = [GraphNode(f"r{i}", "h", ()) for i in range(100)]
    for layer, i in itertools.product(range(1, 50), range(100)):
        base = (layer - 1) * 100
        nodes.append(GraphNode(f"n{layer}_{i}", "h", (base + i, base + (i * 7 + 3) % 100)))
    layout = layout_graph(nodes)
    assert len(layout.nodes) == 5000
    assert max(placed.layer for placed in layout.nodes) == 49
