"""The OpenAPI pages (Swagger UI and ReDoc) with their scripts and styles served by the API itself,
from the distribution packaged by ``fastapi-offline``: the pages work offline, and fetch nothing
from a CDN (FastAPI's own pages load them from one, and ReDoc's its fonts from Google)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
_PACKAGED = files("fastapi_offline") / "static"


def asset_paths(prefix: str) -> list[str]:
    """Where each asset is served (open without a token, like the pages)."""
    return [f"{prefix}/docs/assets/{name}" for name in ASSETS]


def install_docs(app: FastAPI, prefix: str, openapi_url: str) -> tuple[str, str]:
    """Add the two pages and their assets; returns the pages' paths (docs, redoc)."""
    docs_url, redoc_url, assets = f"{prefix}/docs", f"{prefix}/redoc", f"{prefix}/docs/assets"
    title = app.title

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
        )

    @app.get(redoc_url, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )

    for name, media_type in ASSETS.items():
        path = str(_PACKAGED / name)

        async def asset(path: str = path, media_type: str = media_type) -> FileResponse:
            return FileResponse(path, media_type=media_type, headers={"cache-control": "max-age=86400"})

        app.add_api_route(f"{assets}/{name}", asset, methods=["GET"], include_in_schema=False)
    return docs_url, redoc_url
