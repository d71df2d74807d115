"""``create_app``: the FastAPI application of the HTTP API deployable."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from domain.ports import RateLimiter
from services.api import (
    graph_routes,
    health_routes,
    item_routes,
    log_routes,
    metrics_routes,
    resource_routes,
    seed_routes,
)
from services.api.dependencies import ApiServices, ReadinessProbe, install_services
from services.api.docs import asset_paths, install_docs
from services.api.errors import install_error_handlers
from services.api.hot_routes import install_hot_routes
from services.api.metrics_routes import install_metrics_source
from services.api.middleware import BearerAuth, BodySizeLimit, JsonCORSMiddleware, RateLimit
from services.api.openapi import complete_openapi
from services.api.run_answers import install_answer_cache
from services.api.ui_routes import UI_PATH, install_ui
from services.application.errors import ConfigurationError
from services.application.workflows import WorkflowService
from services.runtime import tracing
from services.runtime.metrics_http import MetricsSource
from services.settings import Settings


def api_prefix(api_str: str) -> str:
    """``"api/"`` -> ``"/api"``; ``"/"`` or ``""`` -> ``""`` (routes at the root)."""
    stripped = api_str.strip().strip("/")
    return f"/{stripped}" if stripped else ""


NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's own OpenTelemetry, off while this process records no traces: on, it asks the global
providers whether anyone is listening on every request (reading the environment each time)."""


def create_app(
    workflows: Callable[[], WorkflowService] | WorkflowService,
    settings: Settings,
    ready: ReadinessProbe | None = None,
    metrics: MetricsSource | None = None,
    limiter: RateLimiter | None = None,
) -> FastAPI:
    """The API over ``workflows``: a WorkflowService, or a factory called once per request (e.g. the
    container's ``workflows`` provider). ``ready`` checks the backend for ``/ready`` (raises
    ``BackendUnavailable`` when it does not answer; None: always ready). ``metrics``: what
    ``{prefix}/metrics`` serves (None: the registry without stream statistics). Opens nothing: the
    caller owns the backend's resources.

    ``limiter``: the rate limit's buckets (needed when API_RATE_LIMIT_PER_SECOND is set).

    Middleware, outermost first: CORS (so refusals carry its headers), bearer authentication
    (API_TOKENS), the request body limit (MAX_REQUEST_BYTES).
    """

    def provide() -> WorkflowService:
        return workflows if isinstance(workflows, WorkflowService) else workflows()

    prefix = api_prefix(settings.api_str)
    docs = settings.api_enable_docs
    app = FastAPI(
        title="DAG workflow engine",
        summary="Register JSON workflow definitions (DAGs), start runs, follow them, read their results.",
        version="0.1.0",
        openapi_url=f"{prefix}/openapi.json" if docs else None,
        docs_url=None,  # served by ``install_docs``, with assets of its own instead of a CDN's
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        telemetry=None if tracing.enabled() else NO_NATIVE_TELEMETRY,
    )
    doc_pages: list[str] = []
    if docs:
        doc_pages = [*install_docs(app, prefix, f"{prefix}/openapi.json"), *asset_paths(prefix)]
    install_services(app, ApiServices(workflows=provide, ready=ready))
    install_metrics_source(app, metrics)
    install_answer_cache(app, settings.api_status_rebuild_spacing)
    for routes in (
        health_routes,
        metrics_routes,
        seed_routes,
        resource_routes,
        graph_routes,
        log_routes,
        item_routes,
    ):
        app.include_router(routes.router, prefix=prefix)
    install_hot_routes(app, prefix)
    install_ui(app, prefix)
    install_error_handlers(app)
    tokens = [token for token in settings.api_tokens if token.token.get_secret_value().strip()]
    open_paths = {f"{prefix}/health", f"{prefix}/ready", "/"}
    open_paths.update(url for url in (app.openapi_url, *doc_pages) if url)
    complete_openapi(app, open_paths if tokens else None)
    app.add_middleware(BodySizeLimit, limit=settings.max_request_bytes)
    if settings.api_rate_limit_per_second > 0:
        if limiter is None:
            raise ConfigurationError("API_RATE_LIMIT_PER_SECOND is set but the API was given no rate limiter")
        unlimited = {*open_paths, f"{prefix}/metrics"}
        app.add_middleware(
            RateLimit, limiter=limiter, now=time.time, open_paths=unlimited, open_prefixes=[f"{UI_PATH}/"]
        )
    if tokens:
        app.add_middleware(
            BearerAuth, tokens=tokens, open_paths=open_paths, open_prefixes=[f"{UI_PATH}/"], prefix=prefix
        )
    origins = [str(origin).rstrip("/") for origin in settings.backend_cors_origins]
    if origins:
        app.add_middleware(
            JsonCORSMiddleware,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag"],  # so that a page's script can name it in If-None-Match
        )
    return app
