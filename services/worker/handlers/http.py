"""The built-in ``http`` handler: one HTTP request per attempt, through the SSRF guard.

A status outside ``ok_statuses`` fails the attempt: 429 and 5xx are retried as the node's policy
says, any other is not (repeating the same request would get the same answer). The body is read
as a stream and reading stops at ``HTTP_MAX_RESPONSE_BYTES``, failing the node.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpcore
import httpx
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from services.settings import Settings, load_settings
from services.worker.handlers.connect import (
    Dialer,
    DirectDialer,
    GuardedBackend,
    Resolver,
    SystemResolver,
)
from services.worker.handlers.ssrf import AddressPolicy
from services.worker.registry import HandlerContext, NonRetryableError

DEFAULT_TIMEOUT_SECONDS = 30.0
USER_AGENT = "dag-workflow-engine"
ERROR_BODY_CHARS = 200


class HttpConfigError(NonRetryableError):
    """The node's config is not a request this handler can make."""


class HttpStatusError(Exception):
    """The server answered 429 or 5xx: worth another attempt."""


class HttpUnexpectedStatus(NonRetryableError):
    """The server answered another status outside ``ok_statuses`` (a 4xx, or a redirect not followed)."""


class HttpTimeout(Exception):
    """No complete answer within the request's ``timeout``."""


class HttpConnectionError(Exception):
    """The connection failed or broke (refused, reset, a protocol error)."""


class HttpResponseTooLarge(NonRetryableError):
    """The body is over ``HTTP_MAX_RESPONSE_BYTES``."""


class HttpRedirectError(NonRetryableError):
    """Redirects loop or go on past the limit."""


class HttpRequest(BaseModel):
    """The node's ``config``: unknown keys are refused, so a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str | int | float | bool | list[str | int | float | bool]] = Field(default_factory=dict)
    json_body: JsonValue = Field(default=None, alias="json")
    text: str | None = None
    timeout: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0, le=3600)
    ok_statuses: list[int] | None = None
    follow_redirects: bool = False

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as error:
            raise ValueError(f"not a URL: {error}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("expected an http:// or https:// URL with a host")
        return value

    def is_ok(self, status: int) -> bool:
        return 200 <= status < 300 if self.ok_statuses is None else status in self.ok_statuses


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """What the settings say about every request (``HTTP_*``)."""

    policy: AddressPolicy
    max_response_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> HttpOptions:
        return cls(
            AddressPolicy(
                frozenset(host.lower().rstrip(".") for host in settings.http_allow_hosts),
                tuple(settings.http_allow_networks),
            ),
            settings.http_max_response_bytes,
        )


def options_from_environment() -> HttpOptions:
    return HttpOptions.of(load_settings())


class HttpHandler:
    """Register ``HttpHandler(...).call``. ``options`` (or a function giving them, called once, at
    the first request: the built-in handler reads the environment's settings, which the process
    checked when it started); ``resolver`` and ``dialer`` are the seams tests replace."""

    def __init__(
        self,
        options: HttpOptions | Callable[[], HttpOptions] = options_from_environment,
        *,
        resolver: Resolver | None = None,
        dialer: Dialer | None = None,
    ) -> None:
        self._options = options
        self._resolver = resolver or SystemResolver()
        self._dialer = dialer or DirectDialer()
        # One connection pool per event loop (connections belong to the loop that opened them).
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def options(self) -> HttpOptions:
        if not isinstance(self._options, HttpOptions):
            self._options = self._options()
        return self._options

    async def call(self, ctx: HandlerContext) -> dict[str, Any]:
        request = parse_request(ctx.config)
        client = self._client()
        try:
            async with asyncio.timeout(request.timeout):
                return await self._send(client, request)
        except TimeoutError:
            raise HttpTimeout(f"{_what(request)}: no answer within {request.timeout}s") from None
        except httpx.TimeoutException as error:
            raise HttpTimeout(f"{_what(request)}: timed out ({error})") from None
        except httpx.TooManyRedirects as error:
            raise HttpRedirectError(f"{_what(request)}: {error}") from None
        except httpx.TransportError as error:
            raise HttpConnectionError(f"{_what(request)}: {type(error).__name__}: {error}") from None

    async def _send(self, client: httpx.AsyncClient, request: HttpRequest) -> dict[str, Any]:
        content = request.text.encode() if request.text is not None else None
        has_json = "json_body" in request.model_fields_set
        url = httpx.URL(request.url)
        if request.query:  # merged into the URL's own query (httpx's params= would replace it)
            url = url.copy_merge_params(request.query)
        async with client.stream(
            request.method,
            url,
            headers={"user-agent": USER_AGENT, **request.headers},
            json=request.json_body if has_json else None,
            content=content,
            timeout=request.timeout,
            follow_redirects=request.follow_redirects,
        ) as response:
            body = await self._read_capped(response, request)
        if not request.is_ok(response.status_code):
            raise _status_error(request, response.status_code, body)
        return {
            "status": response.status_code,
            "headers": dict(response.headers.items()),
            "body": decoded_body(response, body),
        }

    async def _read_capped(self, response: httpx.Response, request: HttpRequest) -> bytes:
        cap = self.options().max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise _too_large(request, cap, f"it declares {declared} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:  # stop reading: the rest is never downloaded
                raise _too_large(request, cap, f"stopped reading at {size} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            backend = GuardedBackend(self.options().policy, self._resolver, self._dialer)
            client = httpx.AsyncClient(transport=GuardedTransport(backend), trust_env=False)
            self._clients[loop] = client
        return client


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a connection pool that connects through ``backend``. httpx takes no
    network backend of its own, so its pool (``_pool``, what its requests go to) is replaced by
    the same pool, built with the backend; proxies and the environment are never consulted."""

    def __init__(self, backend: GuardedBackend) -> None:
        super().__init__(trust_env=False)
        limits = httpx.Limits()  # httpx's defaults: measured best of (100, 20), (64, 64), (32, 32)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def parse_request(config: dict[str, Any]) -> HttpRequest:
    if "json" in config and "text" in config:
        raise HttpConfigError("config has both 'json' and 'text': give one body")
    try:
        return HttpRequest.model_validate(config)
    except ValidationError as error:
        problems = "; ".join(
            f"config.{'.'.join(str(part) for part in problem['loc']) or '?'}: "
            f"{str(problem['msg']).removeprefix('Value error, ')}"
            for problem in error.errors()
        )
        raise HttpConfigError(f"invalid http request: {problems}") from None


def decoded_body(response: httpx.Response, body: bytes) -> Any:
    """JSON when the answer says it is JSON (and is), else text."""
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    text = body.decode(response.encoding or "utf-8", errors="replace")
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _what(request: HttpRequest) -> str:
    return f"{request.method} {request.url}"


def _status_error(request: HttpRequest, status: int, body: bytes) -> Exception:
    excerpt = body[:ERROR_BODY_CHARS].decode("utf-8", errors="replace")
    accepted = "2xx" if request.ok_statuses is None else ", ".join(map(str, request.ok_statuses))
    message = f"{_what(request)} answered {status} (ok_statuses: {accepted}); body: {excerpt!r}"
    if 300 <= status < 400 and not request.follow_redirects:
        message += "; redirects are followed only with follow_redirects: true"
    if status == 429 or status >= 500:  # the statuses worth retrying
        return HttpStatusError(message)
    return HttpUnexpectedStatus(message)


def _too_large(request: HttpRequest, cap: int, detail: str) -> HttpResponseTooLarge:
    return HttpResponseTooLarge(
        f"{_what(request)}: the response body is over {cap} bytes (HTTP_MAX_RESPONSE_BYTES): {detail}"
    )
