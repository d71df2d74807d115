"""The services' error base and the one table mapping every error to an HTTP status and exit code."""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import BackendUnavailable, InvalidDefinition, InvalidInput, NotFound, RunAlreadyExists
from domain.statuses import RunStatus


class ServiceError(Exception):
    """Base of errors raised by the services layer."""


class UsageError(ServiceError):
    """The caller asked for something malformed: a missing file, JSON that does not parse."""


class ConfigurationError(ServiceError):
    """A setting (or a flag standing for one) has a value the service cannot use; the message is
    one line: the setting, the value, what is accepted."""


class NodeNotFound(NotFound):
    """A run exists but has no node of that id."""

    def __init__(self, run_id: str, node_id: str) -> None:
        super().__init__("node", node_id)
        self.args = (f"workflow run '{run_id}' has no node '{node_id}'",)


class RunNotFinished(ServiceError):
    """Results were asked for while the run is still going."""

    def __init__(self, run_id: str, status: RunStatus) -> None:
        super().__init__(
            f"workflow run '{run_id}' is not finished yet (status {status.value}); results are "
            "available once it is COMPLETED, FAILED or CANCELLED"
        )


class RunNotFinishedYet(RunNotFinished):
    """Results were asked for through the resource API while the run is still going (409; the
    seed's route answers 400 for the same thing)."""


class RunAlreadyFinished(ServiceError):
    """A cancel was asked for a run that has already ended."""

    def __init__(self, run_id: str, status: RunStatus) -> None:
        self.status = status
        super().__init__(f"workflow run '{run_id}' has already finished ({status.value}); nothing to cancel")


class RunNotRedrivable(ServiceError):
    """A redrive was asked for a run that cannot be redriven now (COMPLETED, RUNNING, PENDING, or
    nothing to run again): 409."""


class UnknownRedriveNode(InvalidInput):
    """``from`` of a redrive names a node the run's workflow does not have (422)."""


class IdempotencyKeyReused(ServiceError):
    """A start or registration repeated an idempotency key with a different request (409);
    ``what``: what the key's first request made ("run", "definition"), ``made_id`` its id."""

    def __init__(self, key: str, made_id: str, what: str = "run") -> None:
        self.key = key
        self.made_id = made_id
        super().__init__(
            f"idempotency key '{key}' was used for another request ({what} '{made_id}'); use a new "
            f"key for a new {what}"
        )


class Unauthorized(ServiceError):
    """The request carries no valid bearer token while the API requires one (API_TOKENS)."""


class Forbidden(ServiceError):
    """The bearer token is valid but lacks the scope the request needs (403)."""

    def __init__(self, token_name: str, scope: str) -> None:
        self.scope = scope
        super().__init__(
            f"the token '{token_name}' lacks the scope '{scope}' this request needs (see API_TOKENS)"
        )


class RateLimited(ServiceError):
    """The client made more requests than API_RATE_LIMIT_PER_SECOND allows (429)."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"too many requests (API_RATE_LIMIT_PER_SECOND); retry after {retry_after} second(s)"
        )


class PayloadTooLarge(ServiceError):
    """The request body is over MAX_REQUEST_BYTES; refused before it is buffered."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        self.limit = limit
        what = "the request body" if size is None else f"the request body of {size} bytes"
        super().__init__(f"{what} is over the limit of {limit} bytes (MAX_REQUEST_BYTES)")


class UnsupportedMediaType(ServiceError):
    """The request body is declared as something other than JSON."""

    def __init__(self, content_type: str) -> None:
        self.content_type = content_type
        super().__init__(
            f"the request body is declared as '{content_type}'; send JSON (Content-Type: application/json)"
        )


@dataclass(frozen=True, slots=True)
class ApiErrorDetail:
    path: str | None
    message: str


class ApiError(ServiceError):
    """The HTTP API answered a client command (``dag-service submit`` ...) with an error.

    Carries what the server said: ``status``, ``code``, ``message`` and ``details``. The table below
    maps classes, so the outcome is chosen by class, not by a field: ``ApiError.from_response``
    builds ``ApiRequestRejected`` for a 4xx (the request is wrong: exit 2, like any invalid input)
    and ``ApiServerError`` for a 5xx (the service cannot serve it now: exit 3, like an unreachable
    backend). The table stays the one place that turns an error into an exit code. These errors are
    only raised on the client side; the HTTP status in their table rows (502) is what a server would
    answer were one to relay them, never what the remote API answered (that is ``status``).
    """

    def __init__(
        self, status: int, code: str, message: str, details: tuple[ApiErrorDetail, ...] = ()
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        super().__init__(f"{message} (HTTP {status} {code})")

    @staticmethod
    def from_response(
        status: int, code: str, message: str, details: tuple[ApiErrorDetail, ...] = ()
    ) -> ApiError:
        kind = ApiServerError if status >= 500 else ApiRequestRejected
        return kind(status, code, message, details)


class ApiRequestRejected(ApiError):
    """The API refused the request (4xx: unknown id, invalid definition, run not finished, 401 ...)."""


class ApiServerError(ApiError):
    """The API could not serve the request (5xx: 503 backend unavailable, or a server bug)."""


class ApiUnreachable(ServiceError):
    """No HTTP answer from the API at all: connection refused, DNS failure, timeout."""


@dataclass(frozen=True, slots=True)
class ErrorOutcome:
    code: str
    http_status: int
    exit_code: int


EXIT_COMPLETED, EXIT_FAILED, EXIT_INVALID, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_CONFIG = 78
"""A configuration mistake (``EX_CONFIG`` of sysexits.h): nothing ran."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (SIGINT), as shells report it (128 + 2)."""

# Most specific first: the first class the error is an instance of wins.
ERROR_TABLE: tuple[tuple[type[Exception], ErrorOutcome], ...] = (
    (InvalidDefinition, ErrorOutcome("invalid_definition", 400, EXIT_INVALID)),
    (UnknownRedriveNode, ErrorOutcome("unknown_node", 422, EXIT_INVALID)),
    (InvalidInput, ErrorOutcome("invalid_input", 400, EXIT_INVALID)),
    (UsageError, ErrorOutcome("bad_request", 400, EXIT_INVALID)),
    (RunNotFinishedYet, ErrorOutcome("run_not_finished", 409, EXIT_INVALID)),
    (RunNotFinished, ErrorOutcome("run_not_finished", 400, EXIT_INVALID)),
    (RunAlreadyFinished, ErrorOutcome("run_already_finished", 409, EXIT_INVALID)),
    (RunNotRedrivable, ErrorOutcome("run_not_redrivable", 409, EXIT_INVALID)),
    (IdempotencyKeyReused, ErrorOutcome("idempotency_key_reused", 409, EXIT_INVALID)),
    (RunAlreadyExists, ErrorOutcome("run_already_exists", 409, EXIT_INVALID)),
    (Unauthorized, ErrorOutcome("unauthorized", 401, EXIT_INVALID)),
    (Forbidden, ErrorOutcome("forbidden", 403, EXIT_INVALID)),
    (RateLimited, ErrorOutcome("rate_limited", 429, EXIT_UNAVAILABLE)),
    (NotFound, ErrorOutcome("not_found", 404, EXIT_INVALID)),
    (PayloadTooLarge, ErrorOutcome("payload_too_large", 413, EXIT_INVALID)),
    (UnsupportedMediaType, ErrorOutcome("unsupported_media_type", 415, EXIT_INVALID)),
    (BackendUnavailable, ErrorOutcome("backend_unavailable", 503, EXIT_UNAVAILABLE)),
    (ConfigurationError, ErrorOutcome("configuration_error", 500, EXIT_CONFIG)),
    # Client commands talking to a remote API (see ``ApiError``).
    (ApiRequestRejected, ErrorOutcome("api_request_rejected", 502, EXIT_INVALID)),
    (ApiServerError, ErrorOutcome("api_server_error", 502, EXIT_UNAVAILABLE)),
    (ApiUnreachable, ErrorOutcome("api_unreachable", 502, EXIT_UNAVAILABLE)),
)


def outcome_of(error: Exception) -> ErrorOutcome | None:
    """How to report ``error``; None when it is not an expected error (a bug)."""
    for kind, outcome in ERROR_TABLE:
        if isinstance(error, kind):
            return outcome
    return None
