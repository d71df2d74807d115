"""Bearer-token authentication (API_TOKENS) and the health and readiness checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from api_support import ALLOWED_ORIGIN, assert_error, client_for, make_settings, node, workflow

from domain.errors import BackendUnavailable
from services.api import create_app
from services.application.errors import ConfigurationError
from services.container import Container, open_backend
from services.settings import Settings, load_settings

TOKENS = ["first-token", "second-token"]
DEFINITION = workflow("one", node("input", "input"))


@pytest.fixture
async def guarded(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(container.workflows, make_settings(api_tokens=TOKENS))
    async with client_for(app) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_a_request_without_a_token_is_unauthorized(guarded: httpx.AsyncClient) -> None:
    response = await guarded.post("/api/workflow", json=DEFINITION)
    error = assert_error(response, 401, "unauthorized")
    assert "Bearer" in error["message"]
    assert response.headers["www-authenticate"] == "Bearer"
    for path in ("/api/workflows/any", "/api/workflows/any/results", "/api/nowhere"):
        response = await guarded.get(path)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong",
        "Bearer first-token-and-more",
        "Bearer first",
        "Basic Zmlyc3QtdG9rZW4=",
        "Bearer ",
        "first-token",
    ],
)
async def test_a_wrong_token_is_unauthorized(guarded: httpx.AsyncClient, authorization: str) -> None:
    response = await guarded.post("/api/workflow", json=DEFINITION, headers={"authorization": authorization})
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", TOKENS)
async def test_every_configured_token_is_accepted(guarded: httpx.AsyncClient, token: str) -> None:
    response = await guarded.post("/api/workflow", json=DEFINITION, headers=bearer(token))
    assert response.status_code == 200, response.text
    execution_id = response.json()["execution_id"]
    response = await guarded.post(
        f"/api/workflow/trigger/{execution_id}", headers={"Authorization": f"bearer {token}"}
    )
    assert response.status_code == 200, response.text


async def test_health_readiness_and_docs_need_no_token(guarded: httpx.AsyncClient) -> None:
    assert (await guarded.get("/api/health")).json() == {"status": "ok"}
    assert (await guarded.get("/api/ready")).json() == {"status": "ready"}
    assert (await guarded.get("/api/docs")).status_code == 200
    assert (await guarded.get("/api/redoc")).status_code == 200
    schema = (await guarded.get("/api/openapi.json")).json()
    assert schema["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    submit = schema["paths"]["/api/workflow"]["post"]
    assert submit["security"] == [{"bearer": []}]
    assert "401" in submit["responses"]
    assert "security" not in schema["paths"]["/api/health"]["get"]


async def test_cors_preflight_needs_no_token(guarded: httpx.AsyncClient) -> None:
    preflight = await guarded.options(
        "/api/workflow", headers={"origin": ALLOWED_ORIGIN, "access-control-request-method": "POST"}
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    refused = await guarded.post("/api/workflow", json=DEFINITION, headers={"origin": ALLOWED_ORIGIN})
    assert_error(refused, 401, "unauthorized")
    assert refused.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


async def test_tokens_from_the_environment_comma_separated(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKENS", " alpha , beta,, ")
    async with client_for(create_app(container.workflows, Settings())) as client:
        assert_error(await client.get("/api/workflows/any"), 401, "unauthorized")
        for token in ("alpha", "beta"):
            assert_error(await client.get("/api/workflows/any", headers=bearer(token)), 404, "not_found")
        assert_error(await client.get("/api/workflows/any", headers=bearer("")), 401, "unauthorized")


async def test_no_tokens_means_no_authentication(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/workflows/any"), 404, "not_found")
    schema = (await client.get("/api/openapi.json")).json()
    assert "securitySchemes" not in schema["components"]


async def test_ready_when_the_backend_answers(container: Container) -> None:
    async def probe() -> None:
        await open_backend(container)

    async with client_for(create_app(container.workflows, make_settings(), ready=probe)) as client:
        response = await client.get("/api/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_not_ready_when_the_backend_is_unavailable(container: Container) -> None:
    async def probe() -> None:
        raise BackendUnavailable("Redis at localhost:1 is unreachable")

    async with client_for(create_app(container.workflows, make_settings(), ready=probe)) as client:
        response = await client.get("/api/ready")
        assert (await client.get("/api/health")).status_code == 200
    error = assert_error(response, 503, "backend_unavailable")
    assert "localhost:1" in error["message"]


async def test_not_ready_when_the_backend_does_not_answer_in_time(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.api.health_routes.READY_TIMEOUT_SECONDS", 0.05)

    async def probe() -> None:
        await asyncio.sleep(10)

    async with client_for(create_app(container.workflows, make_settings(), ready=probe)) as client:
        error = assert_error(await client.get("/api/ready"), 503, "backend_unavailable")
    assert "did not answer" in error["message"]


async def test_named_tokens_with_scopes_from_the_environment(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = [{"name": "viewer", "token": "view-secret", "scopes": ["read"]}, "plain-secret"]
    monkeypatch.setenv("API_TOKENS", json.dumps(tokens))
    async with client_for(create_app(container.workflows, Settings())) as client:
        assert_error(await client.get("/api/workflows/any", headers=bearer("view-secret")), 404, "not_found")
        error = assert_error(
            await client.post("/api/workflow", json=DEFINITION, headers=bearer("view-secret")),
            403,
            "forbidden",
        )
        assert "'viewer'" in error["message"] and "'admin'" in error["message"]
        response = await client.post("/api/workflow", json=DEFINITION, headers=bearer("plain-secret"))
        assert response.status_code == 200, response.text  # a plain token has every scope


def test_a_token_with_an_unknown_scope_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKENS", '[{"name": "x", "token": "t", "scopes": ["write"]}]')
    with pytest.raises(ConfigurationError, match="API_TOKENS"):
        load_settings()
