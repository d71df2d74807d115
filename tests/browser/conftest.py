"""Fixtures of the browser tests: one ``dag-service up`` process for the session (memory backend,
the handlers of ``browser_support``) and Debian's Chromium driven by Playwright (never a downloaded
browser). Screenshots go to ``test-artifacts/screenshots/`` (git-ignored), one or more per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import CHROMIUM, SCREENSHOTS, UiServer, start_ui_server

from bench.processes import DAG_SERVICE


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run installs it)"
    if os.environ.get("REQUIRE_REDIS") == "1":  # CI: a skipped browser test would hide a broken UI
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory, engine_pycache: Path) -> Iterator[UiServer]:
    _require_chromium()
    assert DAG_SERVICE.exists(), f"console script not installed at {DAG_SERVICE}"
    server = start_ui_server(tmp_path_factory.mktemp("ui-server"), engine_pycache)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(ui_server: UiServer) -> Iterator[object]:
    """Module-scoped: Playwright's sync API keeps an event loop running in this thread while it is
    open, and the asyncio tests of later modules need the thread free."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only where a browser test runs

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh page; its console errors fail the test (but those containing a text of the module's
    ``ALLOWED_CONSOLE_ERRORS``); a screenshot is kept at the end."""
    from playwright.sync_api import Browser  # noqa: PLC0415

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 1400, "height": 800})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    try:
        yield opened
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        opened.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-end.png"))
        allowed = getattr(request.module, "ALLOWED_CONSOLE_ERRORS", ())
        unexpected = [error for error in errors if not any(text in error for text in allowed)]
        assert not unexpected, f"the page logged errors: {unexpected}"
    finally:
        context.close()
