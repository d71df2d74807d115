"""A body over MAX_REQUEST_BYTES, sent to a real API process (uvicorn on loopback) by curl, Python's
urllib and httpx, with a Content-Length and chunked: each client reads the 413 and its JSON error
instead of a reset connection. A body far over the bound is not read past it."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from distributed_support import Cluster

from bench.processes import LOOPBACK
from services.api.middleware import drain_bound

LIMIT = 100_000
BODY = b'{"pad": "' + b"x" * (3 * LIMIT) + b'"}'  # over the limit, within the bound read before the answer
CHUNK = 16 * 1024


@pytest.fixture
async def api(cluster: Callable[..., Cluster]) -> Cluster:
    engine = cluster(MAX_REQUEST_BYTES=str(LIMIT))
    await engine.start_many(("api",))
    return engine


def assert_refused(status: int, body: bytes) -> None:
    assert status == 413, (status, body[:300])
    error = json.loads(body)["error"]
    assert error["code"] == "payload_too_large", error
    assert "MAX_REQUEST_BYTES" in error["message"] and str(LIMIT) in error["message"], error


def chunks(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]


def urllib_post(url: str, chunked: bool) -> tuple[int, bytes]:
    data: Any = chunks(BODY) if chunked else BODY
    headers = {"content-type": "application/json"}
    if not chunked:
        headers["content-length"] = str(len(BODY))
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_urllib_reads_the_413(api: Cluster, chunked: bool) -> None:
    status, body = await asyncio.to_thread(urllib_post, f"{api.api_url}/api/workflow", chunked)
    assert_refused(status, body)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_httpx_reads_the_413(api: Cluster, chunked: bool) -> None:
    def post() -> httpx.Response:
        content: Any = chunks(BODY) if chunked else BODY
        with httpx.Client(timeout=30) as client:
            return client.post(
                f"{api.api_url}/api/workflow", content=content, headers={"content-type": "application/json"}
            )

    response = await asyncio.to_thread(post)
    assert ("transfer-encoding" in response.request.headers) is chunked
    assert_refused(response.status_code, response.content)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_curl_reads_the_413(api: Cluster, chunked: bool, tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    payload = tmp_path / "body.json"
    payload.write_bytes(BODY)
    extra = ["-H", "transfer-encoding: chunked"] if chunked else []
    command = [curl, "-sS", "-o", "-", "-w", "\n%{http_code}", "-H", "content-type: application/json"]
    command += [*extra, "--data-binary", f"@{payload}", f"{api.api_url}/api/workflow"]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition(b"\n")
    assert_refused(int(status), body)


def send_until_refused(port: int, total: int) -> int:
    """Send a chunked body of ``total`` bytes on a raw socket; how many bytes went out before the
    server answered or closed the connection."""
    sent = 0
    with socket.create_connection((LOOPBACK, port), timeout=30) as connection:
        head = b"POST /api/workflow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        connection.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        piece = b"%x\r\n" % CHUNK + b" " * CHUNK + b"\r\n"
        try:
            while sent < total:
                connection.sendall(piece)
                sent += CHUNK
        except (BrokenPipeError, ConnectionResetError):
            pass
    return sent


@pytest.mark.timeout(120)
async def test_a_body_far_over_the_bound_is_not_read_past_it(api: Cluster) -> None:
    total = 200 * 1024 * 1024
    sent = await asyncio.to_thread(send_until_refused, api.api_port, total)
    # What the server read (LIMIT + the bound) plus what the kernel's buffers took meanwhile.
    assert sent < LIMIT + drain_bound(LIMIT) + 32 * 1024 * 1024, sent
    async with api.client() as client:
        assert (await client.get("/api/health")).status_code == 200
