"""How long the web UI takes to open a large run: a real ``dag-service up`` (memory backend) runs a
layered DAG to the end, then Debian's headless Chromium (Playwright, /usr/bin/chromium) opens the run
page and the times are printed: the layout (first and cached), the run's read, and the page's first
frame with every node drawn in its final colour.

    uv run python -m bench.ui_large                    # 20 layers x 1,000 nodes, 2 parents each
    uv run python -m bench.ui_large --width 50 --layers 20
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import httpx

from bench.processes import (
    DAG_SERVICE,
    LOOPBACK,
    environment_without_settings,
    free_port,
    start_logged,
    stop_together,
)

CHROMIUM = "/usr/bin/chromium"


def layered(width: int, layers: int) -> dict[str, object]:
    nodes = []
    for layer in range(layers):
        for i in range(width):
            parents = (
                [] if layer == 0 else sorted({f"n{layer - 1}_{i}", f"n{layer - 1}_{(i * 7 + 3) % width}"})
            )
            nodes.append({"id": f"n{layer}_{i}", "handler": "input", "dependencies": parents, "config": {}})
    return {"name": f"layered-{width * layers}", "dag": {"nodes": nodes}}


def timed(call: object) -> tuple[float, object]:
    started = time.monotonic()
    result = call()  # type: ignore[operator]
    return time.monotonic() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--layers", type=int, default=20)
    options = parser.parse_args()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    total = options.width * options.layers
    port = free_port()
    env = environment_without_settings()
    env.update({"API_HOST": LOOPBACK, "API_PORT": str(port), "LOG_LEVEL": "WARNING"})
    with tempfile.TemporaryDirectory() as folder:
        server = start_logged("up", [str(DAG_SERVICE), "up"], Path(folder) / "up.log", env=env)
        try:
            base = f"http://{LOOPBACK}:{port}"
            with httpx.Client(base_url=f"{base}/api", timeout=120) as client:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        client.get("/health")
                        break
                    except httpx.TransportError:
                        assert time.monotonic() < deadline, server.tail()
                        time.sleep(0.1)
                definition_id = client.post(
                    "/definitions", json=layered(options.width, options.layers)
                ).json()["definition_id"]
                first, graph = timed(lambda: client.get(f"/definitions/{definition_id}/graph"))
                cached, _ = timed(lambda: client.get(f"/definitions/{definition_id}/graph"))
                run_id = client.post("/runs", json={"definition_id": definition_id}).json()["run_id"]
                while client.get(f"/runs/{run_id}").json()["status"] not in ("COMPLETED", "FAILED"):
                    time.sleep(0.5)
                read, run = timed(lambda: client.get(f"/runs/{run_id}"))
            edges = len(graph.json()["edges"])  # type: ignore[attr-defined]
            print(f"{total} nodes, {edges} edges")
            print(f"layout: first {first:.2f} s, cached {cached:.3f} s, {len(graph.content) / 1e6:.1f} MB")  # type: ignore[attr-defined]
            print(f"run read: {read:.2f} s, {len(run.content) / 1e6:.1f} MB")  # type: ignore[attr-defined]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 800})
                started = time.monotonic()
                page.goto(f"{base}/#/runs/{run_id}")
                page.wait_for_function(
                    "(total) => { const c = document.querySelector('#graph canvas');"
                    " return c && c.dataset.statusCounts &&"
                    " JSON.parse(c.dataset.statusCounts).COMPLETED === total; }",
                    arg=total,
                    timeout=120_000,
                )
                opened = time.monotonic() - started
                print(f"page: every node drawn in its final colour {opened:.2f} s after navigation")
                redraw = page.evaluate(
                    "() => { const v = document.querySelector('#graph canvas').graphView;"
                    " const t = performance.now(); v._draw(); return performance.now() - t; }"
                )
                print(f"one redraw of the whole graph: {redraw:.1f} ms")
                browser.close()
        finally:
            stop_together([server.popen], grace_seconds=5.0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
