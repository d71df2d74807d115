"""``dag-service graph FILE --format ...`` prints (or writes) the definition's DAG."""

from __future__ import annotations

import json
from pathlib import Path

from definitions import node, workflow
from typer.testing import CliRunner

from services.cli import app


def test_graph_prints_each_format_and_refuses_an_invalid_definition(tmp_path: Path) -> None:
    source = tmp_path / "wf.json"
    source.write_text(json.dumps(workflow(node("a"), node("b", ["a"]), name="cli")), encoding="utf-8")
    runner = CliRunner()
    mermaid = runner.invoke(app, ["graph", str(source)])
    assert mermaid.exit_code == 0, mermaid.output
    assert "n0 --> n1" in mermaid.output
    dot = runner.invoke(app, ["graph", str(source), "--format", "dot"])
    assert '"a" -> "b";' in dot.output
    written = tmp_path / "wf.svg"
    svg = runner.invoke(app, ["graph", str(source), "--format", "svg", "-o", str(written)])
    assert svg.exit_code == 0, svg.output
    assert written.read_text(encoding="utf-8").startswith("<svg ")

    source.write_text(json.dumps(workflow(node("a", ["a"]))), encoding="utf-8")
    refused = runner.invoke(app, ["graph", str(source)])
    assert refused.exit_code == 2
    assert "invalid workflow definition" in refused.output
