"""The SSRF guard's rules (``services.worker.handlers.ssrf``): which addresses are refused, why, and
what the allow-lists let through. Pure: nothing here resolves or connects."""

from __future__ import annotations

import ipaddress

import pytest

from services.worker.handlers.ssrf import AddressPolicy, address_kind, embedded_ipv4

NONE = AddressPolicy()


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.5", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a link-local address (cloud metadata)"),
        ("fd00:ec2::254", "a link-local address (cloud metadata)"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fc00::1", "a unique-local address"),
        ("fd12:3456::1", "a unique-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("240.0.0.1", "a reserved address"),
        ("100.64.0.1", "not a global address"),  # shared address space (carrier-grade NAT)
        ("::ffff:127.0.0.1", "a form of 127.0.0.1, a loopback address"),
        ("::ffff:10.0.0.1", "a form of 10.0.0.1, a private address"),
        ("::ffff:169.254.169.254", "a form of 169.254.169.254, a link-local address (cloud metadata)"),
        ("2002:7f00:1::", "a form of 127.0.0.1, a loopback address"),  # 6to4
        ("64:ff9b::a00:1", "a form of 10.0.0.1, a private address"),  # NAT64
        ("64:ff9b:1::a00:1", "a form of 10.0.0.1, a private address"),  # local-use NAT64
    ],
)
def test_forbidden_addresses_are_named_by_their_rule(address: str, kind: str) -> None:
    assert address_kind(ip(address)) == kind


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_global_addresses_pass(address: str) -> None:
    assert address_kind(ip(address)) is None
    assert NONE.refusal("example.test", [ip(address)]) is None


def test_embedded_ipv4_reads_mapped_6to4_and_nat64_forms() -> None:
    assert embedded_ipv4(ip("::ffff:1.2.3.4")) == ip("1.2.3.4")
    assert embedded_ipv4(ip("2002:102:304::")) == ip("1.2.3.4")
    assert embedded_ipv4(ip("64:ff9b::102:304")) == ip("1.2.3.4")
    assert embedded_ipv4(ip("2606:4700::1111")) is None
    assert embedded_ipv4(ip("1.2.3.4")) is None


def test_the_refusal_names_the_host_the_address_the_rule_and_the_setting() -> None:
    assert NONE.refusal("db.test", [ip("8.8.8.8"), ip("10.0.0.5")]) == (
        "refused: db.test resolves to 10.0.0.5, a private address "
        "(set HTTP_ALLOW_HOSTS or HTTP_ALLOW_NETWORKS to allow it)"
    )
    assert NONE.refusal("10.0.0.5", [ip("10.0.0.5")]) == (
        "refused: 10.0.0.5 is a private address (set HTTP_ALLOW_NETWORKS to allow it)"
    )
    assert NONE.refusal("[::1]", [ip("::1")]) == (
        "refused: ::1 is a loopback address (set HTTP_ALLOW_NETWORKS to allow it)"
    )


def test_allowed_networks_let_their_addresses_and_their_mapped_forms_through() -> None:
    policy = AddressPolicy(allow_networks=(ipaddress.ip_network("10.1.0.0/16"),))

    assert policy.refusal("svc.test", [ip("10.1.2.3")]) is None
    assert policy.refusal("svc.test", [ip("::ffff:10.1.2.3")]) is None
    assert policy.refusal("svc.test", [ip("10.2.0.1")]) is not None
    assert policy.refusal("svc.test", [ip("10.1.2.3"), ip("127.0.0.1")]) is not None  # every one counts


def test_an_allowed_host_passes_whatever_it_resolves_to_and_only_that_host() -> None:
    policy = AddressPolicy(allow_hosts=frozenset({"internal.test"}))

    assert policy.refusal("internal.test", [ip("10.0.0.1")]) is None
    assert policy.refusal("Internal.Test.", [ip("127.0.0.1")]) is None
    assert policy.refusal("api.internal.test", [ip("10.0.0.1")]) is not None
