"""``dag-service graph FILE --format mermaid|dot|svg``: a definition's DAG as a picture's source."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.application.graph_render import GraphFormat, render_graph
from services.cli.files import read_json_file
from services.cli.options import FileArgument
from services.cli.typer_app import guarded


def graph(
    file: FileArgument,
    graph_format: Annotated[
        GraphFormat, typer.Option("--format", help="mermaid, dot (Graphviz) or svg (the web UI's layout).")
    ] = GraphFormat.MERMAID,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Draw a workflow definition's DAG (it is validated first)."""
    from domain.validation import build_plan
    from services.settings import Settings

    def render() -> str:
        return render_graph(build_plan(read_json_file(file), Settings().limits()), graph_format)

    text = guarded(render)
    if output is None:
        typer.echo(text, nl=False)
    else:
        guarded(lambda: output.write_text(text, encoding="utf-8"))
