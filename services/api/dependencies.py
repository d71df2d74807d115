"""What the routes share: the use cases and the readiness probe ``create_app`` was given (kept on
the application's state), the JSON-only body check, and the answer a hot route serializes itself.

Dependencies are ``async def``: FastAPI runs a plain ``def`` one in a thread.
"""

# No "from __future__ import annotations": FastAPI reads ``Service`` and ``JSON_BODY`` as objects.
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from pydantic import BaseModel

from services.api.bodies import check_json_content_type
from services.api.middleware import TOKEN_NAME
from services.application.workflows import WorkflowService

ServiceProvider = Callable[[], WorkflowService]
ReadinessProbe = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ApiServices:
    workflows: ServiceProvider
    """Gives the use cases for a request."""
    ready: ReadinessProbe | None
    """Checks the backend (raises ``BackendUnavailable``); None: always ready."""


def install_services(app: FastAPI, services: ApiServices) -> None:
    app.state.api_services = services


def services_of(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.api_services
    return services


async def workflow_service(request: Request) -> WorkflowService:
    """The use cases for this request. The hottest routes call this themselves: FastAPI's
    injection costs more than the work it would save there."""
    return services_of(request).workflows()


Service = Annotated[WorkflowService, Depends(workflow_service)]


def token_name(request: Request) -> str | None:
    """The name of the bearer token the request came with (None: the API needs no token)."""
    name: str | None = request.scope.get("state", {}).get(TOKEN_NAME)
    return name


async def _json_only(request: Request) -> None:
    check_json_content_type(request.headers)


JSON_BODY = [Depends(_json_only)]
"""``dependencies=`` of a route that reads a JSON body: 415 for a body declared as anything else."""


def json_response(
    model: BaseModel, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """The hottest routes serialize their own answer once; FastAPI would validate the model it
    was built as, turn it into plain data, then encode that."""
    return Response(model.model_dump_json(), status_code, headers, media_type="application/json")
