"""Client commands' HTTP side: calling a running ``dag-service`` API (``submit``, ``trigger`` ...).

Every failure leaves as an error of the shared table (``services.application.errors``): no answer at all
is ``ApiUnreachable``; an error answer is ``ApiError.from_response`` with the server's code, message
and details; a URL that cannot be used is a ``UsageError``. The token comes from ``DAG_API_TOKEN``
only, never from a command-line flag, so it stays out of shell history.

HTTP goes through ``http_calls`` (the standard library); rich is imported when first needed (a client
command's start-up is mostly imports).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from services.application.errors import ApiError, ApiErrorDetail, ApiUnreachable, UsageError
from services.cli import http_calls
from services.defaults import DEFAULT_API_STR

if TYPE_CHECKING:
    from rich.console import Console

API_URL_ENV = "DAG_API_URL"
API_TOKEN_ENV = "DAG_API_TOKEN"
DEFAULT_TIMEOUT_SECONDS = 30.0
# The API sends a keep-alive comment every 15 s on an idle event stream.
STREAM_READ_TIMEOUT_SECONDS = 60.0
STREAM_RECONNECTS = 5
LONG_POLL_SECONDS = 60.0
"""The longest wait the API allows on a status request (``?wait=``)."""
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})

_STATUS_STYLE = {"COMPLETED": "green", "FAILED": "red", "SKIPPED": "yellow", "CANCELLED": "yellow"}


def _api_prefix() -> str:
    """The server's path prefix as this machine's ``API_STR`` says (``/api`` by default)."""
    stripped = os.environ.get("API_STR", DEFAULT_API_STR).strip().strip("/")
    return f"/{stripped}" if stripped else ""


def default_api_url() -> str:
    """``DAG_API_URL``, else the local default: ``http://localhost:8000`` + ``API_STR``."""
    return os.environ.get(API_URL_ENV) or f"http://localhost:8000{_api_prefix()}"


def with_api_prefix(url: str) -> str:
    """``url`` as given when it has a path, else with the API prefix: ``http://host:8000`` and
    ``http://host:8000/api`` both reach the API."""
    url = url.strip().rstrip("/")
    return url if urlsplit(url).path else url + _api_prefix()


def _unauthorized_hint(token: str | None) -> str:
    if token:
        return f"the token in {API_TOKEN_ENV} is not one the server accepts (its API_TOKENS)"
    return f"the server requires a token: set {API_TOKEN_ENV} to one of its API_TOKENS"


def _error_of(response: http_calls.Answer, token: str | None = None) -> ApiError:
    """The server's ``{"error": {"code", "message", "details"}}``, or the bare status if it is not that."""
    status = response.status
    code = response.reason.lower().replace(" ", "_") or "error"
    message = f"the API answered HTTP {status} {response.reason}".rstrip()
    details: tuple[ApiErrorDetail, ...] = ()
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        raw_details = error.get("details")
        if isinstance(raw_details, list):
            details = tuple(
                ApiErrorDetail(
                    path=None if item.get("path") is None else str(item["path"]),
                    message=str(item.get("message", "")),
                )
                for item in raw_details
                if isinstance(item, dict)
            )
    if status == 401:
        message = f"{message.rstrip('.')}; {_unauthorized_hint(token)}"
    return ApiError.from_response(status, code, message, details)


class ApiClient:
    """A few calls to one API (``base_url`` includes the prefix, e.g. ``http://host:8000/api``)."""

    def __init__(
        self, base_url: str, token: str | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        self.base_url = with_api_prefix(base_url)
        self._token = token if token is not None else os.environ.get(API_TOKEN_ENV) or None
        self._timeout = timeout

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"accept": accept}
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        return headers

    def _request(self, method: str, path: str, body: Any = None, *, waiting: float = 0.0) -> dict[str, Any]:
        """``waiting``: the seconds the API may hold the answer back (``?wait=``), on top of the timeout."""
        headers = self._headers("application/json")
        timeout = self._timeout + waiting
        try:
            response = http_calls.request(method, self.base_url + path, body, headers, timeout)
        except http_calls.BadUrl:
            raise self._bad_url() from None
        except http_calls.TimedOut:
            raise ApiUnreachable(f"the API at {self.base_url} did not answer within {timeout:g} s") from None
        except OSError:
            raise ApiUnreachable(f"cannot reach the API at {self.base_url}") from None
        if response.is_error:
            raise _error_of(response, self._token)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ApiError.from_response(
                502, "bad_answer", f"the API at {self.base_url} answered {method} {path} with no JSON object"
            )
        return answer

    def _bad_url(self) -> UsageError:
        return UsageError(f"--api-url {self.base_url!r} is not a usable URL (e.g. http://localhost:8000/api)")

    def submit(self, definition: Any) -> dict[str, Any]:
        return self._request("POST", "/workflow", definition)

    def trigger(self, execution_id: str, run_input: Any) -> dict[str, Any]:
        path = f"/workflow/trigger/{quote(execution_id, safe='')}"
        return self._request("POST", path, {"input": run_input})

    def status(self, instance_id: str) -> dict[str, Any]:
        return self._request("GET", f"/workflows/{quote(instance_id, safe='')}")

    def status_when_final(self, instance_id: str) -> dict[str, Any]:
        """The run's status once it has ended: long-polls (``?wait=``), woken by the engine."""
        path = f"/workflows/{quote(instance_id, safe='')}?wait={LONG_POLL_SECONDS:g}"
        while True:
            answer = self._request("GET", path, waiting=LONG_POLL_SECONDS)
            if answer.get("state") in FINAL_STATES:
                return answer

    def results(self, instance_id: str) -> dict[str, Any]:
        return self._request("GET", f"/workflows/{quote(instance_id, safe='')}/results")

    def run(self, run_id: str) -> dict[str, Any]:
        return self._request("GET", f"/runs/{quote(run_id, safe='')}")

    def cancel(self, run_id: str) -> dict[str, Any]:
        return self._request("POST", f"/runs/{quote(run_id, safe='')}/cancel")

    def redrive(self, run_id: str, from_nodes: list[str]) -> dict[str, Any]:
        body = {"from": from_nodes} if from_nodes else None
        return self._request("POST", f"/runs/{quote(run_id, safe='')}/redrive", body)

    def handlers(self) -> dict[str, Any]:
        return self._request("GET", "/handlers")

    def attempt_log(self, run_id: str, node_id: str, attempt: int | None) -> dict[str, Any]:
        query = "" if attempt is None else f"?attempt={attempt}"
        return self._request(
            "GET", f"/runs/{quote(run_id, safe='')}/nodes/{quote(node_id, safe='')}/logs{query}"
        )

    def events(self, run_id: str) -> Iterator[dict[str, Any]]:
        """The run's events (``GET /runs/{id}/events``, Server-Sent Events) until the one that ends
        the run; a dropped connection is resumed after the last event received."""
        last = 0
        reconnects = 0
        while True:
            try:
                for event in self._event_stream(run_id, last):
                    last = int(event["seq"])
                    reconnects = 0
                    yield event
                return
            except (http_calls.Broken, http_calls.TimedOut):
                reconnects += 1
                if reconnects > STREAM_RECONNECTS:
                    raise ApiUnreachable(f"lost the event stream of the API at {self.base_url}") from None

    def _event_stream(self, run_id: str, after: int) -> Iterator[dict[str, Any]]:
        url = f"{self.base_url}/runs/{quote(run_id, safe='')}/events"
        headers = self._headers("text/event-stream")
        if after:
            headers["last-event-id"] = str(after)
        try:
            with http_calls.stream(url, headers, STREAM_READ_TIMEOUT_SECONDS) as (response, lines):
                if response.is_error:
                    raise _error_of(response, self._token)
                data: list[str] = []
                for line in lines:
                    if line.startswith("data:"):
                        data.append(line[5:].removeprefix(" "))
                    elif not line and data:
                        yield json.loads("\n".join(data))
                        data = []
        except http_calls.BadUrl:
            raise self._bad_url() from None
        except http_calls.NoConnection:
            raise ApiUnreachable(f"cannot reach the API at {self.base_url}") from None


def print_document(document: dict[str, Any]) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))  # noqa: T201 - the command's output


def print_document_line(document: dict[str, Any]) -> None:
    print(json.dumps(document, ensure_ascii=False), flush=True)  # noqa: T201 - the command's output


def print_status(console: Console, status: dict[str, Any]) -> None:
    """The run state on one line, then a table of its nodes (status, attempts, error or reason:
    ``_error_or_reason``), then the rest of each error (a handler's traceback)."""
    from rich.table import Table
    from rich.text import Text

    state = str(status.get("state", "?"))
    nodes: dict[str, Any] = status.get("nodes") or {}
    done = sum(1 for node in nodes.values() if node.get("status") == "COMPLETED")
    headline = Text(f"Run {status.get('instance_id')} of '{status.get('name')}': ")
    headline.append(state, style=_STATUS_STYLE.get(state, ""))
    headline.append(f" ({done}/{len(nodes)} nodes completed)")
    console.print(headline)
    table = Table("node", "status", "attempts", "error or reason")
    for node_id, node in nodes.items():
        node_status = str(node.get("status", "?"))
        table.add_row(
            Text(node_id),
            Text(node_status, style=_STATUS_STYLE.get(node_status, "")),
            str(node.get("attempts", "")),
            Text(_error_or_reason(node)),
        )
    console.print(table)
    for node_id, node in nodes.items():
        rest = more_lines((node.get("error") or {}).get("message"))
        if rest:
            console.print(Text(f"{node_id} error:", style="bold"))
            console.print(Text(rest), soft_wrap=True)


def _error_or_reason(node: dict[str, Any]) -> str:
    """A node's error (type and first line), or its reason when that says something else (a node
    waiting for its retry: when it is due, then the error of the attempt that failed)."""
    error = node.get("error")
    said_error = f"{error.get('type')}: {first_line(error.get('message'))}" if error else ""
    reason = node.get("reason")
    if not reason or (error and reason == error.get("message")):
        return said_error
    return f"{reason} (last error {said_error})" if error else str(reason)


def first_line(message: object) -> str:
    return str(message or "").partition("\n")[0]


def more_lines(message: object) -> str:
    """An error message after its first line (a traceback), indented; empty when there is none."""
    rest = str(message or "").partition("\n")[2]
    return "\n".join(f"  {line}" for line in rest.splitlines())


def event_line(event: dict[str, Any]) -> str:
    """One line about a run event: time, kind, node and what it caused."""
    parts = [str(event.get("at", ""))[11:23], str(event.get("kind"))]
    if event.get("node_id") is not None:
        parts.append(f"{event['node_id']} (attempt {event.get('attempt')})")
    if event.get("worker_id"):
        parts.append(f"on {event['worker_id']}")
    error = event.get("error")
    if error:
        parts.append(f"- {error.get('type')}: {first_line(error.get('message'))}")
    if event.get("retry_at"):
        parts.append(f"- retry at {str(event['retry_at'])[11:23]}")
    if event.get("progress") is not None:
        parts.append(f"- progress {json.dumps(event['progress'])[:200]}")
    if event.get("redriven"):
        parts.append(f"-> runs again {', '.join(event['redriven'])}")
    if event.get("dispatched"):
        parts.append(f"-> queued {', '.join(event['dispatched'])}")
    if event.get("skipped"):
        parts.append(f"-> skipped {', '.join(event['skipped'])}")
    if event.get("run_status"):
        parts.append(f"=> run {event['run_status']}")
    rest = more_lines((error or {}).get("message"))
    return " ".join(parts) + (f"\n{rest}" if rest else "")
