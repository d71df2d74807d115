"""Settings: prefix, docs, CORS; and the OpenAPI schema documents the shapes."""

from __future__ import annotations

import re

import httpx
import pytest
from api_support import ALLOWED_ORIGIN, assert_error, client_for, make_settings, node, workflow

from services.api import create_app
from services.container import Container
from services.settings import Settings


async def test_docs_and_schema_are_served_under_the_prefix(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/docs")).status_code == 200
    schema = (await client.get("/api/openapi.json")).json()
    assert {"/api/workflow", "/api/workflow/trigger/{execution_id}", "/api/workflows/{instance_id}"} <= set(
        schema["paths"]
    )
    components = schema["components"]["schemas"]
    assert {
        "WorkflowDefinition",
        "NodeDefinition",
        "TriggerRequest",
        "WorkflowStatus",
        "ErrorResponse",
    } <= set(components)
    submit = schema["paths"]["/api/workflow"]["post"]
    body_schema = submit["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/WorkflowDefinition"}
    assert submit["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    results = schema["paths"]["/api/workflows/{instance_id}/results"]["get"]
    assert results["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }


async def test_docs_disabled(container: Container) -> None:
    app = create_app(container.workflows, make_settings(api_enable_docs=False))
    async with client_for(app) as client:
        assert_error(await client.get("/api/docs"), 404, "not_found")
        assert_error(await client.get("/api/openapi.json"), 404, "not_found")
        assert (await client.get("/api/health")).status_code == 200


async def test_custom_api_str_from_the_environment(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_STR", "/v2/")
    app = create_app(container.workflows, Settings())
    async with client_for(app) as client:
        assert (await client.get("/v2/health")).json() == {"status": "ok"}
        assert (await client.get("/v2/docs")).status_code == 200
        assert_error(await client.get("/api/health"), 404, "not_found")
        response = await client.post("/v2/workflow", json=workflow("one", node("input", "input")))
        assert response.status_code == 200
        execution_id = response.json()["execution_id"]
        assert (await client.post(f"/v2/workflow/trigger/{execution_id}")).status_code == 200


async def test_a_service_instance_works_as_well_as_a_factory(container: Container) -> None:
    async with client_for(create_app(container.workflows(), make_settings())) as client:
        response = await client.post("/api/workflow", json=workflow("one", node("input", "input")))
        assert response.status_code == 200


async def test_cors_allows_configured_origins_only(client: httpx.AsyncClient) -> None:
    allowed = await client.get("/api/health", headers={"origin": ALLOWED_ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN

    preflight = await client.options(
        "/api/workflow",
        headers={"origin": ALLOWED_ORIGIN, "access-control-request-method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN

    other = await client.get("/api/health", headers={"origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_a_refused_cors_preflight_uses_the_error_shape(client: httpx.AsyncClient) -> None:
    refused = await client.options(
        "/api/workflow",
        headers={"origin": "http://elsewhere.example", "access-control-request-method": "POST"},
    )
    error = assert_error(refused, 400, "bad_request")
    assert "origin not allowed" in error["message"]
    assert "BACKEND_CORS_ORIGINS" in error["message"]
    assert "access-control-allow-origin" not in refused.headers


async def test_cors_origins_from_the_environment_as_in_the_seed(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKEND_CORS_ORIGINS", '["http://localhost:3000/"]')
    async with client_for(create_app(container.workflows, Settings())) as client:
        response = await client.get("/api/health", headers={"origin": "http://localhost:3000"})
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"


async def test_the_docs_pages_load_every_asset_from_the_api_itself(client: httpx.AsyncClient) -> None:
    """Offline docs: the pages reference no other host, and every script and style they name is
    served by the API."""
    for page in ("/api/docs", "/api/redoc"):
        html = (await client.get(page)).text
        assert "://" not in html.replace("http://www.w3.org", ""), f"{page} names another host"
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets, page
        for asset in assets:
            assert asset.startswith("/api/docs/assets/"), asset
            answer = await client.get(asset)
            assert answer.status_code == 200 and len(answer.content) > 1000, asset
