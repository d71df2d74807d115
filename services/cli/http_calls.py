"""The client commands' HTTP calls, on the standard library's ``http.client``.

httpx (the tests' client) costs a client command a fifth of a second of start-up to import; what
the commands need is a request with a JSON body and a streamed response read line by line, which
``http.client`` does with a fraction of that. Every failure leaves as one of the errors below.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class BadUrl(ValueError):
    """The URL is not an http(s) URL with a host."""


class NoConnection(OSError):
    """The server could not be reached at all (refused, unknown host, connect timeout)."""


class TimedOut(OSError):
    """The server took longer than the timeout to answer."""


class Broken(OSError):
    """The connection failed after it was made (reset, closed mid-answer, a read timeout)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: str
    body: bytes

    @property
    def is_error(self) -> bool:
        return self.status >= 400

    def json(self) -> Any:
        return json.loads(self.body)


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadUrl(url)
    try:
        port = parts.port
    except ValueError:
        raise BadUrl(url) from None
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return kind(parts.hostname, port, timeout=timeout), target


def _send(
    connection: http.client.HTTPConnection,
    method: str,
    target: str,
    body: Any,
    headers: dict[str, str],
) -> http.client.HTTPResponse:
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers = {**headers, "content-type": "application/json"}
    try:
        connection.request(method, target, body=data, headers=headers)
        return connection.getresponse()
    except TimeoutError:
        raise TimedOut() from None
    except (OSError, http.client.HTTPException) as error:
        raise NoConnection(str(error)) from None


def request(method: str, url: str, body: Any, headers: dict[str, str], timeout: float) -> Answer:
    """One request; the whole answer read."""
    connection, target = _connection(url, timeout)
    try:
        response = _send(connection, method, target, body, headers)
        try:
            content = response.read()
        except TimeoutError:
            raise TimedOut() from None
        except (OSError, http.client.HTTPException) as error:
            raise Broken(str(error)) from None
        return Answer(response.status, response.reason, content)
    finally:
        connection.close()


@contextmanager
def stream(url: str, headers: dict[str, str], timeout: float) -> Iterator[tuple[Answer, Iterator[str]]]:
    """A GET whose answer is read line by line (each read waits at most ``timeout``); an error
    answer comes whole, with no lines."""
    connection, target = _connection(url, timeout)
    try:
        response = _send(connection, "GET", target, None, headers)
        if response.status >= 400:
            yield Answer(response.status, response.reason, response.read()), iter(())
            return

        def lines() -> Iterator[str]:
            while True:
                try:
                    raw = response.readline()
                except (OSError, http.client.HTTPException) as error:  # a read timeout included
                    raise Broken(str(error)) from None
                if not raw:
                    return
                yield raw.decode("utf-8").rstrip("\r\n")

        yield Answer(response.status, response.reason, b""), lines()
    finally:
        connection.close()
