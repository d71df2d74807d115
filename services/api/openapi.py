"""The OpenAPI document's additions: the raw JSON bodies the routes read themselves, and the bearer
scheme when authentication is on."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from domain.definition import WorkflowDefinition
from services.api.errors import error_responses
from services.api.resource_schemas import RedriveRequest, StartRunRequest
from services.api.seed_schemas import TriggerRequest

_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def request_body_schemas() -> dict[str, Any]:
    """OpenAPI component schemas of the bodies the routes read raw (they parse JSON themselves)."""
    schemas: dict[str, Any] = {}
    for model in (WorkflowDefinition, TriggerRequest, StartRunRequest, RedriveRequest):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def json_body(component: str, *, required: bool) -> dict[str, Any]:
    """``openapi_extra`` documenting a raw JSON request body by a component from ``request_body_schemas``."""
    schema = {"$ref": f"#/components/schemas/{component}"}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


def complete_openapi(app: FastAPI, open_paths: set[str] | None) -> None:
    """Add the schemas of the raw JSON bodies (see ``json_body``) to the OpenAPI components, and,
    when authentication is on (``open_paths`` given), the bearer scheme and its 401 on every
    operation outside ``open_paths``."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(request_body_schemas())
            if open_paths is not None:
                components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
                unauthorized = error_responses(401)[401]
                for path, operations in schema.get("paths", {}).items():
                    if path in open_paths:
                        continue
                    for method, operation in operations.items():
                        if method in _HTTP_METHODS:
                            operation["security"] = [{"bearer": []}]
                            operation.setdefault("responses", {})["401"] = {
                                "description": unauthorized["description"],
                                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                                "content": {
                                    "application/json": {
                                        "schema": {"$ref": "#/components/schemas/ErrorResponse"}
                                    }
                                },
                            }
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
