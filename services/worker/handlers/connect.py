"""How the ``http`` handler connects: resolve once, vet every address, dial a vetted one.

``GuardedBackend`` is an httpcore network backend: httpcore asks it for a TCP stream to
``(host, port)``; it resolves the host with its ``Resolver``, refuses (``AddressRefused``) unless
``AddressPolicy`` allows every address, and dials the checked address itself with its ``Dialer``,
so no second DNS lookup can swap the address (DNS rebinding). The HTTP ``Host`` header and the TLS
server name stay the host name: httpcore sets them from the URL, not from what was dialed.

Both seams are Protocols so tests stub the resolver and hand in a dialer that fails the test if it
is ever asked for an address that is not loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Protocol

import httpcore
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

from services.worker.handlers.ssrf import AddressPolicy, IPAddress
from services.worker.registry import NonRetryableError

type SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


class AddressRefused(NonRetryableError):
    """Raised before connecting: the host or one of its addresses is not allowed (the message
    names the rule and the setting that would allow it)."""


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` has for TCP (raises ``OSError`` when it has none)."""
        ...


class Dialer(Protocol):
    async def dial(
        self,
        address: IPAddress,
        port: int,
        timeout: float | None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None,
        socket_options: Iterable[SocketOption] | None,
    ) -> AsyncNetworkStream:
        """A TCP stream to ``address`` (an address, never a name: nothing is resolved here)."""
        ...


class SystemResolver:
    """The operating system's resolver (``getaddrinfo``, off the event loop's thread)."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        answers = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        seen: dict[IPAddress, None] = {}
        for _family, _type, _proto, _name, sockaddr in answers:
            # An IPv6 sockaddr may carry a zone (fe80::1%eth0); the address is what is judged.
            seen[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
        return list(seen)


class DirectDialer:
    """httpcore's own backend, given an address literal (so it resolves nothing)."""

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def dial(
        self,
        address: IPAddress,
        port: int,
        timeout: float | None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None,
        socket_options: Iterable[SocketOption] | None,
    ) -> AsyncNetworkStream:
        return await self._backend.connect_tcp(
            str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )


class GuardedBackend(AsyncNetworkBackend):
    def __init__(self, policy: AddressPolicy, resolver: Resolver, dialer: Dialer) -> None:
        self._policy = policy
        self._resolver = resolver
        self._dialer = dialer

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        addresses = await self._addresses(host.strip("[]"), port, timeout)
        refusal = self._policy.refusal(host.strip("[]"), addresses)
        if refusal is not None:
            raise AddressRefused(refusal)
        last: Exception | None = None
        for address in addresses:  # the first that answers, in the resolver's order
            try:
                return await self._dialer.dial(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last = error
        raise last or httpcore.ConnectError(f"{host} has no address")

    async def _addresses(self, host: str, port: int, limit: float | None) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        try:
            async with asyncio.timeout(limit):
                addresses = await self._resolver.resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took over {limit}s") from None
        except OSError as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from None
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no address")
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        raise AddressRefused(f"refused: unix socket {path} (only TCP to vetted addresses)")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
