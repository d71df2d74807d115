"""Where each node of a workflow's DAG is drawn: a layered layout, left to right.

One layout serves the web UI (``GET /definitions/{id}/graph`` hands it over as positions) and
``dag-service graph --format svg``, so both draw the same picture. It is computed here, in Python,
rather than in the browser: it is tested without a browser, cached per definition (definitions never
change) and the UI's JavaScript stays a renderer.

The steps (Sugiyama-style, without dummy nodes for long edges, to stay O(V + E) per sweep):

1. layer = length of the longest path from a root (a node sits one layer right of its last parent);
2. order within a layer: definition order first, then ``SWEEPS`` alternating sweeps that sort each
   layer by the barycenter (mean relative position) of its neighbours in the layers already placed,
   which removes most edge crossings;
3. coordinates: layers are columns ``LAYER_PITCH`` apart, nodes ``ROW_PITCH`` apart within one,
   every column centred on the tallest. A layer longer than ``max_rows`` (about twice the square
   root of the node count) wraps into sub-columns ``SUBCOLUMN_PITCH`` apart, so that a wide fan-out
   (1,000 parallel nodes) makes a block that fits a screen instead of a line one node wide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from domain.plan import WorkflowPlan

SWEEPS = 8
NODE_WIDTH = 160
NODE_HEIGHT = 36
LAYER_PITCH = 220
SUBCOLUMN_PITCH = 180
ROW_PITCH = 52
MARGIN = 20
MIN_WRAP_ROWS = 40


@dataclass(frozen=True, slots=True)
class PlacedNode:
    id: str
    handler: str
    layer: int
    row: int
    x: float
    """Left edge."""
    y: float
    """Top edge."""


@dataclass(frozen=True, slots=True)
class GraphLayout:
    nodes: tuple[PlacedNode, ...]
    """In definition order."""
    edges: tuple[tuple[int, int], ...]
    """(parent index, child index) into ``nodes``."""
    width: float
    height: float
    node_width: int = NODE_WIDTH
    node_height: int = NODE_HEIGHT


@dataclass(frozen=True, slots=True)
class GraphNode:
    """What the layout needs of a node: its id, its handler (a label) and its parents' indexes."""

    id: str
    handler: str
    parents: tuple[int, ...]


def _layers(nodes: Sequence[GraphNode], children: list[list[int]]) -> list[int]:
    """Longest path from a root, by Kahn's topological order (the DAG is valid: no cycle)."""
    waiting = [len(node.parents) for node in nodes]
    layer = [0] * len(nodes)
    ready = [index for index, count in enumerate(waiting) if count == 0]
    while ready:
        index = ready.pop()
        for child in children[index]:
            layer[child] = max(layer[child], layer[index] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return layer


def _sort_by_barycenter(
    members: list[int], neighbours: list[list[int]] | list[tuple[int, ...]], position: list[float]
) -> None:
    """Sort one layer by the mean position of each node's neighbours; a node without any keeps its
    own place (stable)."""
    keys: dict[int, float] = {}
    for index in members:
        around = neighbours[index]
        keys[index] = sum(position[n] for n in around) / len(around) if around else position[index]
    members.sort(key=keys.__getitem__)
    _number(members, position)


def _number(members: list[int], position: list[float]) -> None:
    """Positions relative to the layer's size, so layers of different sizes compare."""
    size = len(members)
    for row, index in enumerate(members):
        position[index] = (row + 0.5) / size


def layout_graph(nodes: Sequence[GraphNode]) -> GraphLayout:
    children: list[list[int]] = [[] for _ in nodes]
    for index, node in enumerate(nodes):
        for parent in node.parents:
            children[parent].append(index)
    layer_of = _layers(nodes, children)
    layers: list[list[int]] = [[] for _ in range(max(layer_of, default=-1) + 1)]
    for index, layer in enumerate(layer_of):
        layers[layer].append(index)
    position = [0.0] * len(nodes)
    for members in layers:
        _number(members, position)
    parents = [node.parents for node in nodes]
    for sweep in range(SWEEPS):
        if sweep % 2 == 0:
            for members in layers[1:]:
                _sort_by_barycenter(members, parents, position)
        else:
            for members in reversed(layers[:-1]):
                _sort_by_barycenter(members, children, position)
    max_rows = max(MIN_WRAP_ROWS, math.ceil(2 * math.sqrt(len(nodes))))
    tallest = max((min(len(members), max_rows) for members in layers), default=0)
    row_of = [0] * len(nodes)
    x_of = [0.0] * len(nodes)
    y_of = [0.0] * len(nodes)
    left = float(MARGIN)
    for members in layers:
        rows = min(len(members), max_rows)
        offset = (tallest - rows) * ROW_PITCH / 2
        for row, index in enumerate(members):
            column, place = divmod(row, max_rows)
            row_of[index] = row
            x_of[index] = left + column * SUBCOLUMN_PITCH
            y_of[index] = MARGIN + offset + place * ROW_PITCH
        left += (len(members) - 1) // max_rows * SUBCOLUMN_PITCH + LAYER_PITCH
    placed = tuple(
        PlacedNode(
            id=node.id,
            handler=node.handler,
            layer=layer_of[index],
            row=row_of[index],
            x=x_of[index],
            y=y_of[index],
        )
        for index, node in enumerate(nodes)
    )
    edges = tuple((parent, index) for index, node in enumerate(nodes) for parent in node.parents)
    width = left - LAYER_PITCH + NODE_WIDTH + MARGIN if layers else 2 * MARGIN
    height = 2 * MARGIN + max(tallest - 1, 0) * ROW_PITCH + NODE_HEIGHT
    return GraphLayout(nodes=placed, edges=edges, width=width, height=height)


def crossings(layout: GraphLayout) -> int:
    """Crossings between edges that join adjacent layers (what the sweeps reduce); for tests and
    measurements, O(E^2) per layer pair."""
    by_layer: dict[int, list[tuple[int, int]]] = {}
    for parent, child in layout.edges:
        upper, lower = layout.nodes[parent], layout.nodes[child]
        if lower.layer == upper.layer + 1:
            by_layer.setdefault(upper.layer, []).append((upper.row, lower.row))
    count = 0
    for edges in by_layer.values():
        for first, (a_top, a_bottom) in enumerate(edges):
            for b_top, b_bottom in edges[first + 1 :]:
                if (a_top - b_top) * (a_bottom - b_bottom) < 0:
                    count += 1
    return count


def layout_plan(plan: WorkflowPlan) -> GraphLayout:
    """The layout of a valid definition's DAG."""
    return layout_graph([GraphNode(spec.id, spec.handler, spec.parents) for spec in plan.nodes])
