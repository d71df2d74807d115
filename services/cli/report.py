"""How ``dag-service run`` shows a finished run, from its read model: a table for people (each
output shortened unless ``--full``), one JSON document for programs (times in ISO 8601 UTC, as the
API gives them; outputs whole)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from domain.node_state import ErrorInfo
from services.application.run_view import NodeView, RunView

_STATUS_STYLE = {"COMPLETED": "green", "FAILED": "red", "SKIPPED": "yellow", "CANCELLED": "yellow"}
SHORT_OUTPUT_CHARS = 300
"""An output shown without ``--full`` is its compact JSON up to this many characters."""


def iso_time(seconds: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC, the way the API writes times."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def short_output(output: Any) -> str:
    """``output`` as compact JSON, cut to ``SHORT_OUTPUT_CHARS`` with a note of what was cut."""
    text = json.dumps(output, ensure_ascii=False, separators=(", ", ": "))
    if len(text) <= SHORT_OUTPUT_CHARS:
        return text
    cut = len(text) - SHORT_OUTPUT_CHARS
    return f"{text[:SHORT_OUTPUT_CHARS]} ... ({cut} more characters; --full shows all)"


def _error_document(error: ErrorInfo | None) -> dict[str, str] | None:
    return None if error is None else {"type": error.type, "message": error.message}


def _node_document(node: NodeView) -> dict[str, Any]:
    """A node's fields; ``failed_attempts`` only when there were some, ``output`` only when it has one."""
    document: dict[str, Any] = {
        "status": node.status.value,
        "attempts": node.attempts,
        "queued_at": iso_time(node.queued_at),
        "started_at": iso_time(node.started_at),
        "finished_at": iso_time(node.finished_at),
        "worker_id": node.worker_id,
        "error": _error_document(node.error),
        "reason": node.reason,
    }
    if node.failed_attempts:
        document["failed_attempts"] = [
            {
                "attempt": failed.attempt,
                "started_at": iso_time(failed.started_at),
                "finished_at": iso_time(failed.finished_at),
                "error": _error_document(failed.error),
            }
            for failed in node.failed_attempts
        ]
    if node.has_output:
        document["output"] = node.output
    if node.items is not None:
        document["items"] = dataclasses.asdict(node.items)
    return document


def run_document(view: RunView) -> dict[str, Any]:
    """The ``--json`` document of a run."""
    return {
        "run_id": view.run_id,
        "definition_id": view.definition_id,
        "workflow": view.workflow,
        "status": view.status.value,
        "created_at": iso_time(view.created_at),
        "started_at": iso_time(view.started_at),
        "finished_at": iso_time(view.finished_at),
        "duration_seconds": view.duration_seconds,
        "nodes": {node_id: _node_document(node) for node_id, node in view.nodes.items()},
        "error": _error_document(view.error),
        "output": view.output,
    }


def _seconds(node: NodeView) -> str:
    duration = node.duration_seconds
    return "-" if duration is None else f"{duration:.3f}"


def print_human(console: Console, view: RunView, *, full: bool = False) -> None:
    status = view.status.value
    duration = view.duration_seconds
    took = f" in {duration:.2f} s" if duration is not None else ""
    headline = Text(f"Run {view.run_id} of '{view.workflow}': ")
    headline.append(status, style=_STATUS_STYLE.get(status, ""))
    headline.append(f"{took} ({view.completed_count}/{len(view.nodes)} nodes completed)")
    console.print(headline)
    table = Table("node", "status", "attempts", "seconds", "error")
    for node_id, node in view.nodes.items():
        error = node.error
        items = node.items
        table.add_row(
            Text(node_id),
            Text(node.status.value, style=_STATUS_STYLE.get(node.status.value, "")),
            str(node.attempts) if items is None else f"{items.completed}/{items.total} items",
            _seconds(node),
            Text("" if error is None else f"{error.type}: {error.message.partition(chr(10))[0]}"),
        )
    console.print(table)
    if view.error is not None:
        console.print(Text(f"run error: {view.error.type}: {view.error.message}", style="red"))
    if view.output is not None:
        console.print(Text("run output:", style="bold"))
        console.print(Text(json.dumps(view.output, indent=2, ensure_ascii=False)), soft_wrap=True)
    for node_id, node in view.nodes.items():
        if error_lines := (node.error.message.partition("\n")[2] if node.error else ""):
            console.print(Text(f"{node_id} error:", style="bold"))
            console.print(Text("\n".join(f"  {line}" for line in error_lines.splitlines())), soft_wrap=True)
    for node_id, node in view.nodes.items():
        if node.has_output:
            console.print(Text(f"{node_id} output:", style="bold"))
            shown = (
                json.dumps(node.output, indent=2, ensure_ascii=False) if full else short_output(node.output)
            )
            console.print(Text(shown), soft_wrap=True)


def print_json(view: RunView) -> None:
    print(json.dumps(run_document(view), indent=2, ensure_ascii=False))  # noqa: T201 - the command's output
