"""The ``http`` handler in the real ``dag-service run``, configured from the environment: a loopback
server is reachable only once ``HTTP_ALLOW_NETWORKS`` allows it. Only 127.0.0.1 is ever addressed
(an address literal: nothing is resolved)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_cli import run_cli
from loopback_http import LoopbackServer, loopback_server


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with loopback_server() as running:
        yield running


def fetch_and_shape(tmp_path: Path, url: str) -> str:
    definition = {
        "name": "fetch_and_shape",
        "dag": {
            "nodes": [
                {"id": "fetch", "handler": "http", "dependencies": [], "config": {"url": url}},
                {
                    "id": "shape",
                    "handler": "transform",
                    "dependencies": ["fetch"],
                    "config": {"expression": "{ok: fetch.body.ok, n: length(fetch.body.items)}"},
                },
            ]
        },
    }
    path = tmp_path / "fetch.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    return str(path)


def test_http_reaches_loopback_only_when_the_setting_allows_it(
    tmp_path: Path, server: LoopbackServer, engine_pycache: Path
) -> None:
    file = fetch_and_shape(tmp_path, server.url("/json"))

    refused = run_cli("run", file, "--json", pycache_prefix=engine_pycache)
    allowed = run_cli(
        "run", file, "--json", pycache_prefix=engine_pycache, settings={"HTTP_ALLOW_NETWORKS": "127.0.0.1"}
    )

    assert refused.returncode == 1, refused.describe()
    error = refused.json()["nodes"]["fetch"]["error"]
    assert error["type"] == "AddressRefused"
    assert error["message"].startswith(
        "refused: 127.0.0.1 is a loopback address (set HTTP_ALLOW_NETWORKS to allow it)"
    )
    assert server.hits("/json") == 1  # only the allowed run reached the server
    assert allowed.returncode == 0, allowed.describe()
    assert allowed.json()["nodes"]["shape"]["output"] == {"ok": True, "n": 3}


def test_a_bad_allow_list_is_a_configuration_error(tmp_path: Path, engine_pycache: Path) -> None:
    result = run_cli(
        "run",
        fetch_and_shape(tmp_path, "http://127.0.0.1:1/"),
        settings={"HTTP_ALLOW_NETWORKS": "10.0.0.1/8"},
    )

    assert result.returncode == 78, result.describe()
    assert "HTTP_ALLOW_NETWORKS='10.0.0.1/8'" in result.stderr_text
    assert "Traceback" not in result.stderr
