"""Helpers of the API tests: definitions, settings, a client over the app, polling and error checks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from definitions import named_workflow as workflow  # noqa: F401  (the API tests' builders, re-exported)
from definitions import node_configured as node  # noqa: F401
from fastapi import FastAPI

from services.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ALLOWED_ORIGIN = "http://allowed.example"
POLL_LIMIT_SECONDS = 10.0
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED"}


def load_example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def with_delay(definition: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The definition with ``delay_seconds`` set on every simulated external service call."""
    for spec in definition["dag"]["nodes"]:
        if spec["handler"] == "call_external_service":
            spec.setdefault("config", {})["delay_seconds"] = seconds
    return definition


def make_settings(**values: Any) -> Settings:
    values.setdefault("api_str", "/api")
    values.setdefault("backend_cors_origins", [ALLOWED_ORIGIN])
    return Settings(**values)


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def wait_final(client: httpx.AsyncClient, instance_id: str) -> dict[str, Any]:
    """Poll the status route until the run is final; fail after ``POLL_LIMIT_SECONDS``."""
    async with asyncio.timeout(POLL_LIMIT_SECONDS):
        while True:
            response = await client.get(f"/api/workflows/{instance_id}")
            assert response.status_code == 200, response.text
            status: dict[str, Any] = response.json()
            if status["state"] in FINAL_STATES:
                return status
            await asyncio.sleep(0.02)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    return error
