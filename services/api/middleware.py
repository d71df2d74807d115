"""Middleware of the API: the request body limit and bearer-token authentication (pure ASGI: both
answer before any request body is buffered), and CORS; every refusal in the one error shape
(``errors.response_for``).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Collection, Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.ports import RateLimiter
from services.access import ApiToken, scope_for
from services.api.errors import response_for
from services.application.errors import Forbidden, PayloadTooLarge, RateLimited, Unauthorized, UsageError

TOKEN_NAME = "token_name"
"""Key of the request's state under which ``BearerAuth`` leaves the name of the token presented."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


DRAIN_MIN_BYTES = 1024 * 1024


def drain_bound(limit: int) -> int:
    """How many bytes past the limit the server reads (and drops) of a refused body before it
    answers: the limit itself, at least 1 MiB. A client that sends the whole body before reading
    the answer (urllib, requests) then reads the 413 instead of a reset connection."""
    return max(limit, DRAIN_MIN_BYTES)


async def _discard(receive: Receive, budget: int) -> bool:
    """Read and drop the rest of a request body, at most ``budget`` bytes; whether it ended."""
    while budget >= 0:
        message = await receive()
        if message["type"] != "http.request":
            return False  # the client went away
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


# Said when the rest of a refused body was not read: without it uvicorn would go on reading (and
# dropping) whatever the client sends after the answer, however much that is.
_CLOSE = {"Connection": "close"}


class BodySizeLimit:
    """Refuse a request body over ``limit`` bytes with 413 (``payload_too_large``).

    A ``Content-Length`` over the limit is refused before the application runs. Otherwise (a chunked
    body, or a ``Content-Length`` that lies) the bytes are counted as ``http.request`` messages
    arrive, and the application's read fails with ``PayloadTooLarge`` as soon as the count passes the
    limit: nothing larger than the limit (plus one chunk) is ever held.

    Before the 413 goes out, the rest of the body is read and dropped, up to ``drain_bound(limit)``
    bytes past the limit, so that clients still sending receive the answer; a body longer than
    that (or declared so) is answered at once and the connection closed while the client sends.
    A client that asked ``Expect: 100-continue`` has not sent the body yet: it is answered at once.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.drain = drain_bound(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        waiting_to_send = (_header(scope, b"expect") or b"").strip().lower() == b"100-continue"
        if declared is not None and declared.strip().isdigit() and int(declared) > self.limit:
            drained = False
            if not waiting_to_send and int(declared) <= self.limit + self.drain:
                drained = await _discard(receive, self.limit + self.drain)
            refusal = PayloadTooLarge(self.limit, int(declared))
            await response_for(refusal, headers=None if drained else _CLOSE)(scope, receive, send)
            return

        received = 0
        started = False
        undrained = False

        async def counting_receive() -> Message:
            nonlocal received, undrained
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    if message.get("more_body", False):
                        undrained = not await _discard(receive, self.drain)
                    raise PayloadTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and undrained:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except PayloadTooLarge as error:
            # Normally the API's exception handler has answered already; this covers a read outside it.
            if started:
                raise
            await response_for(error, headers=_CLOSE if undrained else None)(scope, receive, send)


class BearerAuth:
    """Require ``Authorization: Bearer <token>`` with one of ``tokens``, except on ``open_paths``,
    paths under ``open_prefixes`` (the web UI's static files) and CORS preflight requests. A refusal
    is a 401 (``unauthorized``) with ``WWW-Authenticate: Bearer``; a valid token without the scope
    the request needs (``access.scope_for``) is a 403 (``forbidden``) naming the scope. The token's
    name is left in ``scope["state"]["token_name"]`` for the routes (who started, who cancelled).

    Tokens are compared in constant time (``secrets.compare_digest``), against every configured token.
    """

    def __init__(
        self,
        app: ASGIApp,
        tokens: Sequence[ApiToken],
        open_paths: Collection[str],
        open_prefixes: Sequence[str] = (),
        prefix: str = "",
    ) -> None:
        self.app = app
        self.tokens = [(token.token.get_secret_value().encode(), token) for token in tokens]
        if not self.tokens or not all(secret for secret, _ in self.tokens):
            raise ValueError("BearerAuth needs non-empty tokens")
        self.open_paths = frozenset(open_paths)
        self.open_prefixes = tuple(open_prefixes)
        self.prefix = prefix

    def _accepts(self, scope: Scope) -> ApiToken | bool | None:
        """The token presented when valid; False: a wrong one; None: none at all."""
        header = _header(scope, b"authorization")
        if header is None:
            return None
        scheme, _, presented = header.strip().partition(b" ")
        if scheme.lower() != b"bearer" or not presented.strip():
            return False
        presented = presented.strip()
        matched: ApiToken | None = None
        for secret, token in self.tokens:  # no early exit: the time does not tell which token matched
            if secrets.compare_digest(presented, secret):
                matched = token
        return matched or False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        accepted = self._accepts(scope)
        if isinstance(accepted, ApiToken):
            needed = scope_for(scope["method"], scope["path"], self.prefix)
            if needed not in accepted.scopes:
                await response_for(Forbidden(accepted.name, needed.value))(scope, receive, send)
                return
            scope.setdefault("state", {})[TOKEN_NAME] = accepted.name
            await self.app(scope, receive, send)
            return
        if accepted is None:
            error = Unauthorized("this API requires a bearer token: send 'Authorization: Bearer <token>'")
            challenge = "Bearer"
        else:
            error = Unauthorized("the bearer token is not valid")
            challenge = 'Bearer error="invalid_token"'
        await response_for(error, headers={"WWW-Authenticate": challenge})(scope, receive, send)

    def _exempt(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if path in self.open_paths or (self.open_prefixes and path.startswith(self.open_prefixes)):
            return True
        return scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method") is not None


class RateLimit:
    """Answer 429 (``rate_limited``, with ``Retry-After`` in whole seconds, rounded up) to a client
    whose bucket is empty. The client is the token's name ``BearerAuth`` left (so this runs inside
    it), else the peer's address; ``open_paths`` and paths under ``open_prefixes`` are not limited."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        now: Callable[[], float],
        open_paths: Collection[str],
        open_prefixes: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.now = now
        self.open_paths = frozenset(open_paths)
        self.open_prefixes = tuple(open_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path in self.open_paths
            or path.startswith(self.open_prefixes or ("\0",))
        ):
            await self.app(scope, receive, send)
            return
        name = scope.get("state", {}).get(TOKEN_NAME)
        client = scope.get("client")
        key = f"token:{name}" if name else f"addr:{client[0] if client else 'unknown'}"
        wait = await self.limiter.take(key, self.now())
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            response = response_for(RateLimited(seconds), headers={"Retry-After": str(seconds)})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight (400) in the one error shape instead of plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        reason = bytes(response.body).decode(errors="replace").removeprefix("Disallowed CORS ")
        kept = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
        error = UsageError(f"CORS preflight refused: {reason} not allowed (see BACKEND_CORS_ORIGINS)")
        return response_for(error, headers=kept)
