"""``create_app``: the FastAPI application of the HTTP API deployable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from services.api.errors import install_error_handlers
from services.api.routes import build_router
from services.api.schemas import request_body_schemas
from services.settings import Settings
from services.shared.workflows import WorkflowService


def api_prefix(api_str: str) -> str:
    """``"api/"`` -> ``"/api"``; ``"/"`` or ``""`` -> ``""`` (routes at the root)."""
    stripped = api_str.strip().strip("/")
    return f"/{stripped}" if stripped else ""


def create_app(workflows: Callable[[], WorkflowService] | WorkflowService, settings: Settings) -> FastAPI:
    """The API over ``workflows``: a WorkflowService, or a factory called once per request (e.g. the
    container's ``workflows`` provider). Opens nothing: the caller owns the backend's resources."""

    def provide() -> WorkflowService:
        # A plain zero-argument callable: FastAPI would read a provider's (*args, **kwargs) as query.
        return workflows if isinstance(workflows, WorkflowService) else workflows()

    prefix = api_prefix(settings.api_str)
    docs = settings.api_enable_docs
    app = FastAPI(
        title="DAG workflow engine",
        summary="Register JSON workflow definitions (DAGs), start runs, follow them, read their results.",
        version="0.1.0",
        openapi_url=f"{prefix}/openapi.json" if docs else None,
        docs_url=f"{prefix}/docs" if docs else None,
        redoc_url=f"{prefix}/redoc" if docs else None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.include_router(build_router(provide), prefix=prefix)
    install_error_handlers(app)
    _document_raw_bodies(app)
    origins = [str(origin).rstrip("/") for origin in settings.backend_cors_origins]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    return app


def _document_raw_bodies(app: FastAPI) -> None:
    """Add the schemas of the raw JSON bodies (see ``schemas.json_body``) to the OpenAPI components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(request_body_schemas())
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
