"""The built-in ``http`` handler against a real HTTP server on 127.0.0.1, through real engine runs
on the memory backend; and the SSRF guard's refusals, each made before any connection.

Every handler here dials through ``LoopbackOnlyDialer``: an address that is not loopback is never
dialed (the dialer refuses it and records it, and the ``no_forbidden_dial`` fixture fails the test),
so even a broken guard sends no packet off this machine. Loopback is reachable only because these
tests allow 127.0.0.0/8, as ``HTTP_ALLOW_NETWORKS`` would.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from engine_support import make_container, node, run_workflow, view, workflow
from loopback_http import LoopbackOnlyDialer, LoopbackServer, StubResolver, loopback_server

from services.settings import Settings
from services.worker.builtin import register_builtins
from services.worker.handlers.connect import AddressRefused
from services.worker.handlers.http import HttpHandler, HttpOptions
from services.worker.handlers.ssrf import AddressPolicy
from services.worker.registry import HandlerContext, HandlerRegistry

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
QUICK_RETRIES = {"max_attempts": 3, "initial_backoff_seconds": 0.01, "max_backoff_seconds": 0.01}


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with loopback_server() as running:
        yield running


@pytest.fixture
def dialer() -> Iterator[LoopbackOnlyDialer]:
    dialer = LoopbackOnlyDialer()
    yield dialer
    assert dialer.forbidden == [], f"the guard let these through to the connector: {dialer.forbidden}"


def handler_of(
    dialer: LoopbackOnlyDialer,
    *,
    allow_networks: tuple[Any, ...] = LOOPBACK,
    allow_hosts: frozenset[str] = frozenset(),
    max_bytes: int = 1024 * 1024,
    resolver: StubResolver | None = None,
) -> HttpHandler:
    options = HttpOptions(AddressPolicy(allow_hosts, allow_networks), max_bytes)
    return HttpHandler(options, resolver=resolver or StubResolver(["127.0.0.1"]), dialer=dialer)


def registry_with(http: HttpHandler) -> HandlerRegistry:
    return register_builtins(HandlerRegistry(), http=http)


def context(config: dict[str, Any]) -> HandlerContext:
    return HandlerContext(
        run_id="r", node_id="n", attempt=1, config=config, inputs={}, run_input={}, idempotency_key="r:n:1"
    )


async def run_nodes(http: HttpHandler, *nodes: dict[str, Any]) -> dict[str, Any]:
    return view(await run_workflow(make_container(registry_with(http)), workflow(*nodes)))


async def test_json_and_text_bodies_with_method_headers_query_and_body(
    server: LoopbackServer, dialer: LoopbackOnlyDialer
) -> None:
    echo = {
        "url": server.url("/echo?from=url"),
        "method": "post",
        "headers": {"x-tenant": "t-1"},
        "query": {"page": 2, "tag": ["a", "b"]},
        "json": {"user": "u-1"},
    }
    run = await run_nodes(
        handler_of(dialer),
        node("as_json", "http", config={"url": server.url("/json")}),
        node("as_text", "http", config={"url": server.url("/text")}),
        node("echo", "http", config=echo),
        node("text_body", "http", config={"url": server.url("/echo"), "method": "PUT", "text": "raw"}),
    )

    assert run["status"] == "COMPLETED", {n: v["error"] for n, v in run["nodes"].items()}
    as_json = run["nodes"]["as_json"]["output"]
    assert as_json["status"] == 200
    assert as_json["headers"]["content-type"] == "application/json"
    assert as_json["body"] == {"ok": True, "items": [1, 2, 3]}
    assert run["nodes"]["as_text"]["output"]["body"] == "plain words"
    echoed = run["nodes"]["echo"]["output"]["body"]
    assert echoed["method"] == "POST"
    assert echoed["headers"]["x-tenant"] == "t-1"
    assert echoed["headers"]["content-type"] == "application/json"
    assert echoed["query"] == {"from": "url", "page": "2", "tag": "a"}  # the server keeps the first tag
    assert echoed["body"] == '{"user":"u-1"}'
    assert run["nodes"]["text_body"]["output"]["body"]["body"] == "raw"
    assert all(address == ipaddress.ip_address("127.0.0.1") for address in dialer.dialed)


async def test_a_500_is_retried_until_it_succeeds(server: LoopbackServer, dialer: LoopbackOnlyDialer) -> None:
    run = await run_nodes(
        handler_of(dialer),
        node("flaky", "http", config={"url": server.url("/flaky/a?fails=2")}, retry_policy=QUICK_RETRIES),
    )

    flaky = run["nodes"]["flaky"]
    assert (flaky["status"], flaky["attempts"]) == ("COMPLETED", 3), flaky
    assert flaky["output"]["body"] == {"after": 3}
    assert server.hits("/flaky/a") == 3
    assert [a["error"]["type"] for a in flaky["failed_attempts"]] == ["HttpStatusError"] * 2


async def test_a_429_is_retried_and_a_404_is_not(server: LoopbackServer, dialer: LoopbackOnlyDialer) -> None:
    run = await run_nodes(
        handler_of(dialer),
        node("busy", "http", config={"url": server.url("/status/429")}, retry_policy=QUICK_RETRIES),
        node("missing", "http", config={"url": server.url("/status/404")}, retry_policy=QUICK_RETRIES),
        node("expected", "http", config={"url": server.url("/status/404"), "ok_statuses": [404]}),
    )

    busy, missing = run["nodes"]["busy"], run["nodes"]["missing"]
    assert (busy["status"], busy["attempts"], busy["error"]["type"]) == ("FAILED", 3, "HttpStatusError")
    assert "answered 429" in busy["error"]["message"]
    assert server.hits("/status/429") == 3
    assert (missing["status"], missing["attempts"]) == ("FAILED", 1)  # not retried
    assert missing["error"]["type"] == "HttpUnexpectedStatus"
    assert "answered 404 (ok_statuses: 2xx)" in missing["error"]["message"]
    expected = run["nodes"]["expected"]
    assert (expected["status"], expected["output"]["status"]) == ("COMPLETED", 404)
    assert server.hits("/status/404") == 2  # once for missing, once for expected


async def test_a_slow_answer_times_out_and_is_retried(
    server: LoopbackServer, dialer: LoopbackOnlyDialer
) -> None:
    started = time.monotonic()
    run = await run_nodes(
        handler_of(dialer),
        node(
            "slow",
            "http",
            config={"url": server.url("/slow?seconds=10"), "timeout": 0.2},
            retry_policy={**QUICK_RETRIES, "max_attempts": 2},
        ),
    )

    slow = run["nodes"]["slow"]
    assert (slow["status"], slow["attempts"], slow["error"]["type"]) == ("FAILED", 2, "HttpTimeout")
    assert "no answer within 0.2s" in slow["error"]["message"]
    assert time.monotonic() - started < 8  # nowhere near the server's 10 s


@pytest.mark.parametrize(
    ("path", "detail"),
    [("/big?bytes=200000", "stopped reading at"), ("/big?bytes=200000&declared=1", "declares 200000 bytes")],
)
async def test_a_body_over_the_cap_fails_the_node_saying_so(
    server: LoopbackServer, dialer: LoopbackOnlyDialer, path: str, detail: str
) -> None:
    run = await run_nodes(
        handler_of(dialer, max_bytes=1000),
        node("big", "http", config={"url": server.url(path)}, retry_policy=QUICK_RETRIES),
        node("small", "http", config={"url": server.url("/big?bytes=1000")}),
    )

    big = run["nodes"]["big"]
    assert (big["status"], big["attempts"], big["error"]["type"]) == ("FAILED", 1, "HttpResponseTooLarge")
    assert "over 1000 bytes (HTTP_MAX_RESPONSE_BYTES)" in big["error"]["message"]
    assert detail in big["error"]["message"]
    assert run["nodes"]["small"]["output"]["body"] == "x" * 1000  # at the cap is fine


async def test_a_bad_config_is_a_clear_node_error_not_retried(dialer: LoopbackOnlyDialer) -> None:
    run = await run_nodes(
        handler_of(dialer),
        node("typo", "http", config={"url": "http://127.0.0.1:1/", "timout": 3}, retry_policy=QUICK_RETRIES),
        node("scheme", "http", config={"url": "file:///etc/passwd"}),
        node("both", "http", config={"url": "http://127.0.0.1:1/", "json": {}, "text": "x"}),
    )

    errors = {n: run["nodes"][n]["error"] for n in ("typo", "scheme", "both")}
    assert {e["type"] for e in errors.values()} == {"HttpConfigError"}
    assert run["nodes"]["typo"]["attempts"] == 1
    assert "config.timout: Extra inputs are not permitted" in errors["typo"]["message"]
    assert "expected an http:// or https:// URL" in errors["scheme"]["message"]
    assert "both 'json' and 'text'" in errors["both"]["message"]
    assert dialer.dialed == []


# --- the SSRF guard: every refusal before any connection -----------------------------------------


@pytest.mark.parametrize(
    ("answer", "rule"),
    [
        ("127.0.0.1", "127.0.0.1, a loopback address"),
        ("169.254.169.254", "169.254.169.254, a link-local address (cloud metadata)"),
        ("10.0.0.5", "10.0.0.5, a private address"),
        ("fc00::1", "fc00::1, a unique-local address"),
        ("::ffff:10.0.0.1", "::ffff:10.0.0.1, a form of 10.0.0.1, a private address"),
        ("2002:a00:1::", "2002:a00:1::, a form of 10.0.0.1, a private address"),
        (
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::a9fe:a9fe, a form of 169.254.169.254, a link-local address (cloud metadata)",
        ),
        ("224.0.0.1", "224.0.0.1, a multicast address"),
        ("0.0.0.0", "0.0.0.0, an unspecified address"),
    ],
)
async def test_a_host_resolving_to_a_forbidden_address_is_refused_before_connecting(
    dialer: LoopbackOnlyDialer, answer: str, rule: str
) -> None:
    resolver = StubResolver([answer])
    http = handler_of(dialer, allow_networks=(), resolver=resolver)

    with pytest.raises(AddressRefused) as refused:
        await http.call(context({"url": "http://service.test/data"}))

    assert f"refused: service.test resolves to {rule}" in str(refused.value)
    assert "(set HTTP_ALLOW_HOSTS or HTTP_ALLOW_NETWORKS to allow it)" in str(refused.value)
    assert resolver.lookups == ["service.test"]
    assert dialer.dialed == []


async def test_an_address_literal_is_refused_naming_the_rule(dialer: LoopbackOnlyDialer) -> None:
    resolver = StubResolver([])
    http = handler_of(dialer, allow_networks=(), resolver=resolver)

    with pytest.raises(
        AddressRefused,
        match=r"^refused: 10\.0\.0\.5 is a private address \(set HTTP_ALLOW_NETWORKS to allow it\)$",
    ):
        await http.call(context({"url": "http://10.0.0.5:8080/"}))
    with pytest.raises(AddressRefused, match=re.escape("169.254.169.254 is a link-local address")):
        await http.call(context({"url": "http://169.254.169.254/latest/meta-data/"}))
    assert resolver.lookups == []
    assert dialer.dialed == []


async def test_one_forbidden_answer_among_others_refuses_the_host(dialer: LoopbackOnlyDialer) -> None:
    resolver = StubResolver(["93.184.215.14", "10.1.2.3"])  # the first is never dialed either
    http = handler_of(dialer, allow_networks=(), resolver=resolver)

    with pytest.raises(AddressRefused, match=re.escape("resolves to 10.1.2.3, a private address")):
        await http.call(context({"url": "https://mixed.test/"}))
    assert dialer.dialed == []


async def test_the_refusal_fails_the_node_for_good(dialer: LoopbackOnlyDialer) -> None:
    http = handler_of(dialer, allow_networks=(), resolver=StubResolver(["169.254.169.254"]))
    run = await run_nodes(
        http, node("meta", "http", config={"url": "http://metadata.test/"}, retry_policy=QUICK_RETRIES)
    )

    meta = run["nodes"]["meta"]
    assert (meta["status"], meta["attempts"], meta["error"]["type"]) == ("FAILED", 1, "AddressRefused")
    assert "cloud metadata" in meta["error"]["message"]


async def test_a_redirect_to_a_private_address_is_refused(
    server: LoopbackServer, dialer: LoopbackOnlyDialer
) -> None:
    http = handler_of(dialer)
    redirect = {"url": server.url("/redirect?to=http://10.0.0.7/admin"), "follow_redirects": True}

    with pytest.raises(AddressRefused, match=r"refused: 10\.0\.0\.7 is a private address"):
        await http.call(context(redirect))
    assert dialer.dialed == [ipaddress.ip_address("127.0.0.1")]  # the first hop only


async def test_a_redirect_through_a_host_name_is_checked_like_the_first_hop(
    server: LoopbackServer, dialer: LoopbackOnlyDialer
) -> None:
    resolver = StubResolver(["127.0.0.1"], by_host={"evil.test": ["fd12::1"]})
    http = handler_of(dialer, resolver=resolver)
    redirect = {"url": server.url("/redirect?to=http://evil.test/"), "follow_redirects": True}

    with pytest.raises(
        AddressRefused, match=re.escape("evil.test resolves to fd12::1, a unique-local address")
    ):
        await http.call(context(redirect))
    assert resolver.lookups == ["evil.test"]


async def test_redirects_are_not_followed_by_default_and_checked_when_they_are(
    server: LoopbackServer, dialer: LoopbackOnlyDialer
) -> None:
    http = handler_of(dialer)
    to_json = server.url("/redirect?to=/json")

    run = await run_nodes(
        http,
        node("off", "http", config={"url": to_json}),
        node("on", "http", config={"url": to_json, "follow_redirects": True}),
    )

    off = run["nodes"]["off"]
    assert (off["status"], off["error"]["type"]) == ("FAILED", "HttpUnexpectedStatus")
    assert "answered 302" in off["error"]["message"]
    assert "follow_redirects" in off["error"]["message"]
    assert run["nodes"]["on"]["output"]["body"] == {"ok": True, "items": [1, 2, 3]}
    assert server.hits("/json") == 1


async def test_an_allowed_host_is_dialed_at_the_address_checked_and_keeps_its_name(
    server: LoopbackServer, dialer: LoopbackOnlyDialer
) -> None:
    resolver = StubResolver(["127.0.0.1"])
    http = handler_of(dialer, allow_networks=(), allow_hosts=frozenset({"internal.test"}), resolver=resolver)

    output = await http.call(context({"url": f"http://internal.test:{server.port}/echo"}))
    with pytest.raises(
        AddressRefused, match=re.escape("other.test resolves to 127.0.0.1, a loopback address")
    ):
        await http.call(context({"url": f"http://other.test:{server.port}/echo"}))

    assert output["body"]["host"] == f"internal.test:{server.port}"  # the Host header is the name
    assert resolver.lookups == ["internal.test", "other.test"]  # one lookup each: no second one to swap
    assert dialer.dialed == [ipaddress.ip_address("127.0.0.1")]


def test_the_settings_make_the_allow_lists() -> None:
    settings = Settings(
        http_allow_hosts="Internal.Test., api.test",
        http_allow_networks="127.0.0.0/8,fd00::/8",
        http_max_response_bytes=5,
    )

    options = HttpOptions.of(settings)

    assert options.policy.allow_hosts == frozenset({"internal.test", "api.test"})
    assert options.policy.allow_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert options.max_response_bytes == 5
