"""Schemathesis against the app's own OpenAPI schema: whatever it sends (valid and invalid data), the
API never answers 5xx and every response matches the schema.

The app runs on the memory backend without an engine (runs stay PENDING): the API contract is what is
under test. Requests go through Schemathesis's own ASGI client, on its own event loop. Authentication
is on, so the schema under test documents the bearer scheme; every case carries a valid token.
"""

from __future__ import annotations

import schemathesis
from api_support import make_settings
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from services.api import create_app
from services.container import Container

TOKEN = "schemathesis-token"


def _app() -> FastAPI:
    container = Container()
    container.backend.override("memory")  # opens nothing: memory adapters only
    return create_app(container.workflows, make_settings(api_tokens=[TOKEN]))


# Loaded at collection (Schemathesis's lazy fixture loader does not work with pytest 9 yet).
schema = schemathesis.openapi.from_asgi("/api/openapi.json", _app())


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_error_and_every_response_matches_the_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
