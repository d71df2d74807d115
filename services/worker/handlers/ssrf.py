"""The SSRF guard's rules: which addresses the ``http`` handler may connect to.

Pure (``ipaddress`` only): the connector (``services.worker.handlers.connect``) resolves a host,
asks ``AddressPolicy.refusal`` about every address it got, and dials only an address that passed.
An address is refused unless it is global unicast; an IPv6 address that carries an IPv4 one
(IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``)
is judged by the IPv4 address it carries too, since that is where a gateway would send it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
type IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
HOSTS_SETTING = "HTTP_ALLOW_HOSTS"
NETWORKS_SETTING = "HTTP_ALLOW_NETWORKS"


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in prefix for prefix in NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: IPAddress) -> str | None:
    """Why ``address`` itself may not be reached (``None``: a global unicast address)."""
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address in METADATA_ADDRESSES:
        return "a link-local address (cloud metadata)"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv6Address) and address in UNIQUE_LOCAL:
        return "a unique-local address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a global address"
    return None


def address_kind(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached, judging an embedded IPv4 address too."""
    inner = embedded_ipv4(address)
    if inner is not None:
        inner_kind = _kind(inner)
        if inner_kind is not None:
            return f"a form of {inner}, {inner_kind}"
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return None  # a socket sends it to the IPv4 address it maps, which passed
    return _kind(address)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """``allow_hosts``: host names (lower case) trusted whatever they resolve to;
    ``allow_networks``: networks whose addresses are allowed even when not global."""

    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.allow_hosts

    def _network_allowed(self, address: IPAddress) -> bool:
        inner = embedded_ipv4(address)
        candidates = (address,) if inner is None else (address, inner)
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.allow_networks
        )

    def refusal(self, host: str, addresses: Iterable[IPAddress]) -> str | None:
        """The refusal message for connecting to ``host`` at ``addresses`` (every one is checked:
        one forbidden answer refuses the host), or ``None`` when it may go ahead."""
        if self.host_allowed(host):
            return None
        for address in addresses:
            if self._network_allowed(address):
                continue
            kind = address_kind(address)
            if kind is None:
                continue
            if host == str(address) or _is_literal_of(host, address):
                return f"refused: {address} is {kind} (set {NETWORKS_SETTING} to allow it)"
            return (
                f"refused: {host} resolves to {address}, {kind} "
                f"(set {HOSTS_SETTING} or {NETWORKS_SETTING} to allow it)"
            )
        return None


def _is_literal_of(host: str, address: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")) == address
    except ValueError:
        return False
