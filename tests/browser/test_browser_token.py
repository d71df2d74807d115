"""With API_TOKENS the page asks for a token once, keeps it for the tab's session, and never puts it
in a URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import UiServer, start_ui_server

pytestmark = pytest.mark.browser

TOKEN = "browser-test-token"
ALLOWED_CONSOLE_ERRORS = ("status of 401",)  # the first call, before the token is given


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory, engine_pycache: Path) -> Iterator[UiServer]:
    """This module's own server, with a token (replaces the shared one for these tests)."""
    server = start_ui_server(tmp_path_factory.mktemp("ui-token-server"), engine_pycache, API_TOKENS=TOKEN)
    try:
        yield server
    finally:
        server.stop()


def test_the_token_is_asked_once_and_kept_for_the_session(ui_server: UiServer, page: Any) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"{ui_server.url}/api", headers=headers) as client:
        created = client.post(
            "/definitions",
            json={"name": "guarded", "dag": {"nodes": [{"id": "a", "handler": "noop", "dependencies": []}]}},
        )
        run_id = client.post("/runs", json={"definition_id": created.json()["definition_id"]}).json()[
            "run_id"
        ]
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(f"{ui_server.url}/#/runs")
    page.wait_for_selector("#token-dialog[open]")
    page.fill("#token-input", TOKEN)
    page.click("#token-form button[value=save]")
    page.wait_for_selector(f'#runs tr[data-run="{run_id}"]')
    page.reload()
    page.wait_for_selector(f'#runs tr[data-run="{run_id}"]')
    assert not page.is_visible("#token-dialog")
    assert urls and all(TOKEN not in url for url in urls)
