"""What the browser tests share: the UI server process, handlers whose progress a test controls,
and small readers of the graph canvas (where a node is drawn, what colour it has)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.processes import (
    DAG_SERVICE,
    LOOPBACK,
    LoggedProcess,
    environment_without_settings,
    free_port,
    start_logged,
    stop_together,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
HANDLER_MODULE = "browser_test_handlers"
WAIT_SECONDS = 20.0

# ``gate`` finishes once the file named by its config exists: a test sees the node RUNNING, then
# lets it go on; ``noop`` returns at once.
HANDLERS_SOURCE = """
import asyncio
import os

from services.worker import handler


@handler("noop")
async def noop(ctx):
    return {"node": ctx.node_id}


@handler("gate")
async def gate(ctx):
    while not os.path.exists(ctx.config["open_when"]):
        await asyncio.sleep(0.02)
    return {"opened": ctx.node_id}
"""


@dataclass
class UiServer:
    process: LoggedProcess
    url: str

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api", timeout=30.0)

    def start_run(self, definition: dict[str, Any], run_input: dict[str, Any] | None = None) -> str:
        with self.api() as client:
            registered = client.post("/definitions", json=definition)
            assert registered.status_code == 201, registered.text
            body = {"definition_id": registered.json()["definition_id"], "input": run_input or {}}
            started = client.post("/runs", json=body)
            assert started.status_code == 201, started.text
            run_id: str = started.json()["run_id"]
            return run_id

    def wait_status(self, run_id: str, wanted: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_SECONDS
        with self.api() as client:
            while True:
                run: dict[str, Any] = client.get(f"/runs/{run_id}").json()
                if run["status"] == wanted:
                    return run
                assert time.monotonic() < deadline, f"run {run_id} is {run['status']}, not {wanted}"
                time.sleep(0.05)

    def stop(self) -> None:
        stop_together([self.process.popen], grace_seconds=5.0)


def start_ui_server(workdir: Path, pycache: Path, **settings: str) -> UiServer:
    """``dag-service up`` (memory backend, two workers) on a free loopback port; ``settings``:
    more environment variables."""
    (workdir / f"{HANDLER_MODULE}.py").write_text(HANDLERS_SOURCE, encoding="utf-8")
    port = free_port()
    env = environment_without_settings(pycache)
    python_path = [str(workdir), env.get("PYTHONPATH", "")]
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(part for part in python_path if part),
            "API_HOST": LOOPBACK,
            "API_PORT": str(port),
            "WORKER_HANDLER_MODULES": HANDLER_MODULE,
            "LOG_LEVEL": "WARNING",
            **settings,
        }
    )
    command = [str(DAG_SERVICE), "up", "--workers", "2"]
    process = start_logged("ui-server", command, workdir / "ui-server.log", env=env, cwd=workdir)
    server = UiServer(process, f"http://{LOOPBACK}:{port}")
    deadline = time.monotonic() + 30.0
    try:
        while True:
            process.ensure_running()
            try:
                if httpx.get(f"{server.url}/api/health", timeout=1.0).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the UI server did not answer:\n{process.tail()}"
            time.sleep(0.05)
    except BaseException:
        server.stop()
        raise


def status_counts(page: Any) -> dict[str, int]:
    """How many nodes of each status the graph holds (as of its last frame)."""
    counts: dict[str, int] = json.loads(page.get_attribute("#graph canvas", "data-status-counts") or "{}")
    return counts


def node_pixel(page: Any, node_id: str) -> tuple[int, int, int]:
    """The colour the canvas shows inside the node's box, right of its label (its fill)."""
    rgb: list[int] = page.evaluate(
        """(id) => {
            const canvas = document.querySelector('#graph canvas');
            const view = canvas.graphView, box = canvas.getBoundingClientRect();
            const point = view.screenPoint(id), ratio = window.devicePixelRatio || 1;
            const x = (point.x - box.left + (view.graph.node_width / 2 - 8) * view.scale) * ratio;
            const y = (point.y - box.top) * ratio;
            const pixel = canvas.getContext('2d').getImageData(Math.round(x), Math.round(y), 1, 1).data;
            return [pixel[0], pixel[1], pixel[2]];
        }""",
        node_id,
    )
    return rgb[0], rgb[1], rgb[2]


def click_node(page: Any, node_id: str) -> None:
    """Click the node where the canvas drew it (a real mouse click on the page)."""
    point = page.evaluate(
        "(id) => document.querySelector('#graph canvas').graphView.screenPoint(id)", node_id
    )
    page.mouse.click(point["x"], point["y"])


def shoot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def css_colour(page: Any, variable: str) -> tuple[int, int, int]:
    """A colour variable of the page's style sheet (e.g. ``--st-COMPLETED``) as RGB."""
    text: str = page.evaluate(f"getComputedStyle(document.documentElement).getPropertyValue('{variable}')")
    value = text.strip().lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
