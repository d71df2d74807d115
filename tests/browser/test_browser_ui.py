"""The web UI in a real headless Chromium (Debian's, driven by Playwright) against a real
``dag-service up``: the runs page, a run's graph coloured live, a failed node's error, the cancel
and redrive buttons, a 1,000-node run, starting a run from a definition. Screenshots:
``test-artifacts/screenshots/``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    UiServer,
    click_node,
    css_colour,
    node_pixel,
    shoot,
)
from definitions import node, workflow

pytestmark = pytest.mark.browser

TIMEOUT_MS = 20_000


def wait_counts(page: Any, **wanted: int) -> None:
    """Until the graph holds (at least) these numbers of nodes per status."""
    checks = " && ".join(f"(counts.{status} || 0) === {count}" for status, count in wanted.items())
    page.wait_for_function(
        "() => { const canvas = document.querySelector('#graph canvas');"
        " if (!canvas || !canvas.dataset.statusCounts) return false;"
        f" const counts = JSON.parse(canvas.dataset.statusCounts); return {checks}; }}",
        timeout=TIMEOUT_MS,
    )


def gated(gate_file: Path, name: str, *more: dict[str, Any]) -> dict[str, Any]:
    """start -> gate -> after (and ``more``): gate runs until ``gate_file`` exists."""
    return workflow(
        node("start"),
        node("gate", ["start"], {"open_when": str(gate_file)}, handler="gate"),
        node("after", ["gate"]),
        *more,
        name=name,
    )


def test_runs_page_lists_a_run(ui_server: UiServer, page: Any) -> None:
    run_id = ui_server.start_run(workflow(node("only"), name="listed"))
    ui_server.wait_status(run_id, "COMPLETED")
    page.goto(f"{ui_server.url}/#/runs")
    row = page.locator(f'#runs tr[data-run="{run_id}"]')
    row.wait_for(timeout=TIMEOUT_MS)
    assert "listed" in row.inner_text()
    assert row.locator(".badge").inner_text() == "COMPLETED"
    page.fill("input[name=workflow]", "no-such-workflow")
    page.click("form.filters button")
    page.locator("#runs td.notice").wait_for(timeout=TIMEOUT_MS)
    assert page.locator(f'#runs tr[data-run="{run_id}"]').count() == 0


def test_run_page_draws_every_node_and_colours_follow_the_run(
    ui_server: UiServer, page: Any, tmp_path: Path
) -> None:
    gate_file = tmp_path / "open"
    definition = gated(gate_file, "progress", node("side"))
    run_id = ui_server.start_run(definition)
    page.goto(f"{ui_server.url}/#/runs/{run_id}")
    page.wait_for_selector('#graph canvas[data-node-count="4"][data-drawn-nodes="4"]', timeout=TIMEOUT_MS)
    wait_counts(page, RUNNING=1, COMPLETED=2, PENDING=1)
    assert node_pixel(page, "gate") == css_colour(page, "--st-RUNNING")
    assert node_pixel(page, "after") == css_colour(page, "--st-PENDING")
    assert node_pixel(page, "start") == css_colour(page, "--st-COMPLETED")
    assert page.locator("#run-status .badge").inner_text() == "RUNNING"
    shoot(page, "run-progress-1-gate-running")

    gate_file.write_text("go", encoding="utf-8")  # the same page, no reload: the event stream moves it
    page.wait_for_selector('#run-status [data-status="COMPLETED"]', timeout=TIMEOUT_MS)
    wait_counts(page, COMPLETED=4)
    for node_id in ("start", "gate", "after", "side"):
        assert node_pixel(page, node_id) == css_colour(page, "--st-COMPLETED"), node_id
    page.locator("#events li").first.wait_for(timeout=TIMEOUT_MS)
    assert "run ended" in page.locator("#events li").first.inner_text()
    shoot(page, "run-progress-2-completed")


def test_clicking_a_failed_node_shows_its_error(ui_server: UiServer, page: Any) -> None:
    definition = workflow(
        node("begin"),
        node("boom", ["begin"], {"fail_attempts": 99, "delay_seconds": 0}, handler="call_external_service"),
        node("after_boom", ["boom"]),
        node("fine", ["begin"]),
        name="failing",
    )
    run_id = ui_server.start_run(definition)
    page.goto(f"{ui_server.url}/#/runs/{run_id}")
    page.wait_for_selector('#run-status [data-status="FAILED"]', timeout=TIMEOUT_MS)
    wait_counts(page, FAILED=1, SKIPPED=1, COMPLETED=2)
    assert "boom" in page.inner_text("#failed-nodes")
    assert node_pixel(page, "boom") == css_colour(page, "--st-FAILED")
    assert node_pixel(page, "after_boom") == css_colour(page, "--st-SKIPPED")

    click_node(page, "boom")
    page.wait_for_selector("#node-error", timeout=TIMEOUT_MS)
    assert "boom" in page.inner_text("#node-title")
    error = page.inner_text("#node-error")
    assert "SimulatedServiceError" in error and "configured to fail 99 time(s)" in error
    assert "Traceback (most recent call last):" in error and "in _simulate" in error, "the traceback shows"
    shoot(page, "failed-node-panel")

    click_node(page, "after_boom")
    page.wait_for_function(
        "() => (document.querySelector('#node-title') || {}).textContent?.includes('after_boom')",
        timeout=TIMEOUT_MS,
    )
    assert "why it was skipped" in page.inner_text("#node-panel").lower()
    assert "upstream node 'boom' failed" in page.inner_text("#node-error")
    assert "SKIPPED" in page.inner_text("#node-title")


def test_the_cancel_and_redrive_buttons_stop_a_run_and_run_it_again(
    ui_server: UiServer, page: Any, tmp_path: Path
) -> None:
    gate_file = tmp_path / "open"
    definition = gated(gate_file, "stopped_and_redriven")
    run_id = ui_server.start_run(definition)
    page.goto(f"{ui_server.url}/#/runs/{run_id}")
    wait_counts(page, RUNNING=1, COMPLETED=1, PENDING=1)
    assert page.locator("#redrive").count() == 0, "no redrive for a run that goes on"

    page.click("#cancel")
    page.wait_for_selector('#run-status [data-status="CANCELLED"]', timeout=TIMEOUT_MS)
    wait_counts(page, COMPLETED=1, CANCELLED=2)
    assert page.locator("#cancel").is_disabled(), "a finished run cannot be cancelled"
    assert ui_server.wait_status(run_id, "CANCELLED")["cancelled_by"] is None  # no tokens here
    shoot(page, "run-actions-1-cancelled")

    gate_file.write_text("go", encoding="utf-8")
    page.click("#redrive")
    page.wait_for_selector('#run-status [data-status="COMPLETED"]', timeout=TIMEOUT_MS)
    wait_counts(page, COMPLETED=3)
    run = ui_server.wait_status(run_id, "COMPLETED")
    assert run["nodes"]["start"]["attempts"] == 1, "a completed node is not run again"
    assert run["nodes"]["gate"]["attempts"] == 2 and run["nodes"]["after"]["attempts"] == 1
    shoot(page, "run-actions-2-redriven")


def test_a_thousand_node_run_renders(ui_server: UiServer, page: Any) -> None:
    middle = [f"p{i:03d}" for i in range(998)]
    definition = workflow(
        node("root"), *(node(p, ["root"]) for p in middle), node("sink", middle), name="wide"
    )
    run_id = ui_server.start_run(definition)
    ui_server.wait_status(run_id, "COMPLETED")
    started = time.monotonic()
    page.goto(f"{ui_server.url}/#/runs/{run_id}")
    page.wait_for_selector(
        '#graph canvas[data-node-count="1000"][data-drawn-nodes="1000"]', timeout=TIMEOUT_MS
    )
    wait_counts(page, COMPLETED=1000)
    opened = time.monotonic() - started
    assert opened < 10, f"a 1,000-node run took {opened:.1f} s to draw"
    shoot(page, "thousand-nodes-fit")
    for _ in range(8):  # zoom in: fewer nodes in view, labels drawn
        page.click(".graph-tools button[title='Zoom in']")
    page.wait_for_function(
        "() => Number(document.querySelector('#graph canvas').dataset.drawnNodes) < 1000", timeout=TIMEOUT_MS
    )
    shoot(page, "thousand-nodes-zoomed")


def test_a_run_starts_from_its_definition_page(ui_server: UiServer, page: Any) -> None:
    with ui_server.api() as client:
        created = client.post("/definitions", json=workflow(node("a"), node("b", ["a"]), name="from-ui"))
        definition_id = created.json()["definition_id"]
    page.goto(f"{ui_server.url}/#/definitions/{definition_id}")
    page.wait_for_selector('#graph canvas[data-drawn-nodes="2"]', timeout=TIMEOUT_MS)
    wait_counts(page, PENDING=2)  # the planned DAG, nothing started
    page.fill("#run-input", "[1, 2]")
    page.click("#start-run button[type=submit]")
    assert "must be a JSON object" in page.locator("#start-run .error-box").inner_text()
    page.fill("#run-input", '{"user": 7}')
    page.click("#start-run button[type=submit]")
    page.wait_for_url("**/#/runs/*", timeout=TIMEOUT_MS)
    page.wait_for_selector('#run-status [data-status="COMPLETED"]', timeout=TIMEOUT_MS)
    assert '"user": 7' in page.inner_text("#run-panel")
