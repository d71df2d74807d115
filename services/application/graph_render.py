"""A definition's DAG as text another tool draws: Mermaid, Graphviz DOT, or a standalone SVG drawn
from ``graph_layout`` (the web UI's layout: the same picture)."""

from __future__ import annotations

import json
from enum import StrEnum
from xml.sax.saxutils import escape, quoteattr

from domain.plan import WorkflowPlan
from services.application.graph_layout import GraphLayout, layout_plan

LABEL_CHARS = 22


class GraphFormat(StrEnum):
    MERMAID = "mermaid"
    DOT = "dot"
    SVG = "svg"


def render_graph(plan: WorkflowPlan, graph_format: GraphFormat) -> str:
    if graph_format is GraphFormat.MERMAID:
        return mermaid(plan)
    if graph_format is GraphFormat.DOT:
        return dot(plan)
    return svg(layout_plan(plan), plan.name)


def _mermaid_label(text: str) -> str:
    # Mermaid has no escape for '"' inside a quoted label; its entity code is understood.
    return text.replace('"', "#quot;")


def mermaid(plan: WorkflowPlan) -> str:
    """``flowchart LR``; nodes are named n0, n1 ... (a node id may hold characters Mermaid's names
    cannot) and labelled with their id and handler."""
    lines = ["flowchart LR"]
    for spec in plan.nodes:
        lines.append(
            f'    n{spec.index}["{_mermaid_label(spec.id)}<br/><i>{_mermaid_label(spec.handler)}</i>"]'
        )
    for spec in plan.nodes:
        lines.extend(f"    n{parent} --> n{spec.index}" for parent in spec.parents)
    return "\n".join(lines) + "\n"


def _dot_string(text: str) -> str:
    return json.dumps(text)  # a DOT quoted string escapes '"' and '\' as JSON does


def dot(plan: WorkflowPlan) -> str:
    lines = [
        f"digraph {_dot_string(plan.name)} {{",
        "    rankdir=LR;",
        '    node [shape=box, style="rounded"];',
    ]
    for spec in plan.nodes:
        label = _dot_string(f"{spec.id}\n{spec.handler}")
        lines.append(f"    {_dot_string(spec.id)} [label={label}];")
    for spec in plan.nodes:
        for parent in spec.parents:
            lines.append(f"    {_dot_string(plan.nodes[parent].id)} -> {_dot_string(spec.id)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "\u2026"


def edge_path(layout: GraphLayout, parent: int, child: int) -> str:
    """A cubic curve from the parent's right side to the child's left side."""
    start, end = layout.nodes[parent], layout.nodes[child]
    x1, y1 = start.x + layout.node_width, start.y + layout.node_height / 2
    x2, y2 = end.x, end.y + layout.node_height / 2
    bend = max((x2 - x1) / 2, 20)
    return f"M{x1:g},{y1:g} C{x1 + bend:g},{y1:g} {x2 - bend:g},{y2:g} {x2:g},{y2:g}"


def svg(layout: GraphLayout, title: str) -> str:
    """A standalone SVG document (nodes not started: the planned DAG)."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{layout.width:g}" height="{layout.height:g}" '
        f'viewBox="0 0 {layout.width:g} {layout.height:g}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        '<g fill="none" stroke="#8a94a6" stroke-width="1.2">',
    ]
    parts.extend(f'<path d="{edge_path(layout, parent, child)}"/>' for parent, child in layout.edges)
    parts.append("</g>")
    for node in layout.nodes:
        parts.append(
            f"<g data-node={quoteattr(node.id)}>"
            f'<rect x="{node.x:g}" y="{node.y:g}" width="{layout.node_width}" '
            f'height="{layout.node_height}" rx="6" fill="#eef1f6" stroke="#5b6475"/>'
            f'<text x="{node.x + 8:g}" y="{node.y + 15:g}" fill="#1d2330">{escape(_short(node.id))}</text>'
            f'<text x="{node.x + 8:g}" y="{node.y + 29:g}" fill="#5b6475" font-size="10">'
            f"{escape(_short(node.handler))}</text></g>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
