"""Raw request bodies: the API parses JSON itself so that bad JSON is a 400 and validation stays in
the domain."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from domain.errors import InvalidInput, Problem
from domain.idempotency import IdempotentStart, idempotent_start
from services.application.errors import UnsupportedMediaType, UsageError

_KINDS: dict[type, str] = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _json_kind(value: Any) -> str:
    return "an object" if isinstance(value, dict) else _KINDS.get(type(value), "a number")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or a ``+json`` type (``application/merge-patch+json``); parameters ignored."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def check_json_content_type(headers: Mapping[str, str]) -> None:
    """``UnsupportedMediaType`` (415) when a body is declared as something other than JSON.

    A body without a ``Content-Type`` is read as JSON; one declared as anything else is refused, so
    ``curl -d`` (which declares form data) needs ``-H 'content-type: application/json'``. An empty
    body is fine whatever its declared type.
    """
    content_type = headers.get("content-type")
    if content_type is None or is_json_media_type(content_type):
        return
    length = headers.get("content-length")
    declares_body = length.strip() != "0" if length is not None else "transfer-encoding" in headers
    if declares_body:
        raise UnsupportedMediaType(content_type)


def parse_json(raw: bytes, expected: str) -> Any:
    """Parse a request body; ``UsageError`` (400) when it is empty or not strict JSON."""
    if not raw.strip():
        raise UsageError(f"the request body is empty; expected {expected} as JSON")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise UsageError("the request body is nested too deeply to parse") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity, huge integers
        raise UsageError(f"the request body is not valid JSON: {error}") from None


def trigger_body_of(raw: bytes) -> tuple[Any, str | None]:
    """(run input, request id) of a trigger body ``{"input": {...}, "request_id": "..."}``; both
    optional (an empty body means an empty input).

    Only the envelope is checked here; the input itself is the domain's to validate.
    """
    if not raw.strip():
        return {}, None
    body = parse_json(raw, 'an object like {"input": {...}}')
    if not isinstance(body, dict):
        message = f'the request body must be a JSON object like {{"input": {{...}}}}, got {_json_kind(body)}'
        raise InvalidInput([Problem("$", message)])
    unknown = [key for key in body if key not in ("input", "request_id")]
    if unknown:
        hint = "the run input goes under 'input'"
        raise InvalidInput([Problem(f"$.{key}", f"unknown field '{key}'; {hint}") for key in unknown])
    request_id = body.get("request_id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput([Problem("$.request_id", f"must be a string, got {_json_kind(request_id)}")])
    return body.get("input", {}), request_id


IDEMPOTENCY_HEADER = "idempotency-key"


def idempotency_of(headers: Mapping[str, str], body_key: str | None, *request: Any) -> IdempotentStart | None:
    """The idempotent start asked for by the ``Idempotency-Key`` header (or a body's
    ``request_id``), of the request ``request``; None when neither is given."""
    header = headers.get(IDEMPOTENCY_HEADER)
    if header is not None and body_key is not None and header != body_key:
        message = "the Idempotency-Key header and request_id differ; give one of them"
        raise InvalidInput([Problem("$.request_id", message)])
    if header is not None:
        return idempotent_start(header, "Idempotency-Key header", *request)
    if body_key is not None:
        return idempotent_start(body_key, "$.request_id", *request)
    return None


def under_input(error: InvalidInput) -> InvalidInput:
    """Locate the domain's input problems (paths relative to the input) within the request body."""
    problems = error.problems
    return InvalidInput(
        [Problem("$.input" + problem.path[1:], problem.message, problem.limit) for problem in problems]
    )


def redrive_from_of(raw: bytes) -> list[str]:
    """The ``from`` of a redrive body ``{"from": ["node", ...]}`` (optional; an empty body is none)."""
    if not raw.strip():
        return []
    body = parse_json(raw, 'an object like {"from": ["node"]}')
    if not isinstance(body, dict):
        message = f'the request body must be a JSON object like {{"from": ["node"]}}, got {_json_kind(body)}'
        raise InvalidInput([Problem("$", message)])
    problems = [Problem(f"$.{key}", f"unknown field '{key}'; expected from") for key in body if key != "from"]
    chosen = body.get("from", [])
    if not isinstance(chosen, list):
        problems.append(Problem("$.from", f"must be an array of node ids, got {_json_kind(chosen)}"))
    else:
        problems += [
            Problem(f"$.from[{i}]", f"must be a node id (a string), got {_json_kind(item)}")
            for i, item in enumerate(chosen)
            if not isinstance(item, str)
        ]
    if problems:
        raise InvalidInput(problems)
    return list(dict.fromkeys(chosen))


def start_request_of(raw: bytes) -> tuple[str | None, str | None, Any]:
    """(definition id, workflow name, run input) of ``POST /runs``: exactly one of the first two."""
    body = parse_json(raw, 'an object like {"definition_id": "...", "input": {...}}')
    if not isinstance(body, dict):
        message = f"the request body must be a JSON object, got {_json_kind(body)}"
        raise InvalidInput([Problem("$", message)])
    problems = [
        Problem(f"$.{key}", f"unknown field '{key}'; expected definition_id or workflow, and input")
        for key in body
        if key not in ("definition_id", "workflow", "input")
    ]
    chosen = [key for key in ("definition_id", "workflow") if key in body]
    if len(chosen) != 1:
        problems.append(Problem("$", "give exactly one of definition_id (a version) or workflow (a name)"))
    problems += [
        Problem(f"$.{key}", f"must be a non-empty string, got {_json_kind(body[key])}")
        for key in chosen
        if not isinstance(body[key], str) or not body[key]
    ]
    if problems:
        raise InvalidInput(problems)
    return body.get("definition_id"), body.get("workflow"), body.get("input", {})
