"""Schemathesis against the app's own OpenAPI schema: whatever it sends (valid and invalid data), the
API never answers 5xx and every response matches the schema.

The app runs on the memory backend without an engine (runs stay PENDING): the API contract is what is
under test. Requests go through Schemathesis's own ASGI client, on its own event loop. Authentication
is on, so the schema under test documents the bearer scheme; every case carries a valid token.
"""

from __future__ import annotations

import asyncio
import os

import httpx
import schemathesis
from api_support import make_settings
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from services.api import create_app
from services.application.waiting import MAX_WAIT_SECONDS
from services.container import Container

TOKEN = "schemathesis-token"
STATEFUL_EXAMPLES = int(os.environ.get("SCHEMATHESIS_STATEFUL_EXAMPLES", "15"))
"""Sequences per run of the stateful test (CI: the default, a few seconds); set it higher by hand."""


def _app() -> FastAPI:
    container = Container()
    container.backend.override("memory")  # opens nothing: memory adapters only
    return create_app(container.workflows, make_settings(api_tokens=[TOKEN]))


def short_waits(case: schemathesis.Case) -> None:
    """A valid ``?wait=`` (up to 60 s) becomes 0.01 s: runs here never end (no engine), so each such
    call would wait its whole time. Invalid values are left as generated (a 422 is under test)."""
    wait = (case.query or {}).get("wait")
    try:
        seconds = float(wait)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return
    if 0.01 < seconds <= MAX_WAIT_SECONDS:
        case.query = {**(case.query or {}), "wait": 0.01}


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
    short_waits(case)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=[not_a_server_error, response_schema_conformance],
    )


# Stateful: sequences that register definitions, start runs, cancel and read them, chained through
# the links Schemathesis infers from the response schemas and path parameters. A run's events
# stream is left out: with no engine its runs never end, so the stream would never close.
STATEFUL_APP = _app()
stateful_schema = schemathesis.openapi.from_asgi("/api/openapi.json", STATEFUL_APP).exclude(
    path_regex=r"/events"
)
APIWorkflow = stateful_schema.as_state_machine()
SEED_DEFINITION = {
    "name": "seeded",
    "dag": {
        "nodes": [{"id": "a", "handler": "input"}, {"id": "b", "handler": "output", "dependencies": ["a"]}]
    },
}


async def _seed() -> None:
    transport = httpx.ASGITransport(app=STATEFUL_APP)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
        registered = await client.post("/api/definitions", json=SEED_DEFINITION)
        assert registered.status_code == 201, registered.text
        definition_id = registered.json()["definition_id"]
        started = await client.post("/api/runs", json={"definition_id": definition_id})
        assert started.status_code == 201, started.text


class AuthenticatedWorkflow(APIWorkflow):  # type: ignore[misc,valid-type]
    def setup(self) -> None:
        """Every sequence starts with a registered definition and a run of it, so that the lists
        (GET /definitions, GET /runs) hand real ids to the steps after them (read, cancel)."""
        asyncio.run(_seed())

    def before_call(self, case: schemathesis.Case) -> None:
        short_waits(case)
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKEN}"}

    def validate_response(self, response: object, case: schemathesis.Case, **kwargs: object) -> None:
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


TestStatefulSequences = AuthenticatedWorkflow.TestCase
TestStatefulSequences.settings = settings(
    max_examples=STATEFUL_EXAMPLES,
    stateful_step_count=8,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
