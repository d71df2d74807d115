"""The HTTP API deployable (FastAPI). Build it with ``create_app``; the composition root wires it."""

from services.api.app import create_app

__all__ = ["create_app"]
