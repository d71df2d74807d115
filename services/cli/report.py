"""How a finished run is shown: a table for people, one JSON document for programs."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

_STATUS_STYLE = {"COMPLETED": "green", "FAILED": "red", "SKIPPED": "yellow", "CANCELLED": "yellow"}


def _seconds(node: dict[str, Any]) -> str:
    if node["started_at"] is None or node["finished_at"] is None:
        return "-"
    return f"{node['finished_at'] - node['started_at']:.3f}"


def print_human(console: Console, view: dict[str, Any]) -> None:
    status = view["status"]
    done = sum(1 for node in view["nodes"].values() if node["status"] == "COMPLETED")
    duration = view["duration_seconds"]
    took = f" in {duration:.2f} s" if duration is not None else ""
    style = _STATUS_STYLE.get(status, "")
    headline = Text(f"Run {view['run_id']} of '{view['workflow']}': ")
    headline.append(status, style=style)
    headline.append(f"{took} ({done}/{len(view['nodes'])} nodes completed)")
    console.print(headline)
    table = Table("node", "status", "attempts", "seconds", "error")
    for node_id, node in view["nodes"].items():
        error = node["error"]
        table.add_row(
            Text(node_id),
            Text(node["status"], style=_STATUS_STYLE.get(node["status"], "")),
            str(node["attempts"]),
            _seconds(node),
            Text("" if error is None else f"{error['type']}: {error['message']}"),
        )
    console.print(table)
    for node_id, node in view["nodes"].items():
        if "output" in node:
            console.print(Text(f"{node_id} output:", style="bold"))
            console.print(Text(json.dumps(node["output"], indent=2, ensure_ascii=False)), soft_wrap=True)


def print_json(view: dict[str, Any]) -> None:
    print(json.dumps(view, indent=2, ensure_ascii=False))  # noqa: T201 - the command's output
