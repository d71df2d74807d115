"""The web UI: plain ES modules, CSS and one HTML page shipped inside this package (no JavaScript
build, nothing for a user to install). ``/`` answers the page with the API's prefix written in;
``/ui/...`` the static files. Both are open without a token: the page asks for one and sends it on
every API call (kept in the browser's session storage, never in a URL).
"""

from __future__ import annotations

from functools import cache
from html import escape
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

UI_FILES = Path(__file__).resolve().parent / "ui"
UI_PATH = "/ui"


@cache
def _index_template() -> str:
    return (UI_FILES / "index.html").read_text(encoding="utf-8")


def install_ui(app: FastAPI, prefix: str) -> None:
    """Serve the UI at ``/`` (the API's routes stay under ``prefix``)."""
    page = _index_template().replace("__API_PREFIX__", escape(prefix, quote=True))

    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    app.mount(UI_PATH, StaticFiles(directory=UI_FILES), name="ui")
