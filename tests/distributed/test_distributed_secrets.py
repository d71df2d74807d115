"""Secrets in distributed mode: a real worker process resolves ``{{ secrets.NAME }}`` from its own
environment and secrets directory (the API process has neither), its handlers echo the values every
careless way, and afterwards no value is anywhere: not in any Redis key (every key read whole, of
every type), not in what the API answers (run view, seed routes, events stream, attempt logs), not
in any process's log (the worker logs at DEBUG, as JSON).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis
from distributed_support import Cluster, workflow
from http_support import submit, trigger
from secret_forms import secret_check, sha256

MODULE = "secret_echo_handlers"
SOURCE = """
import hashlib
import json
import logging

from services.worker import handler

log = logging.getLogger("my.handlers")


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


@handler("echo")
async def echo(ctx):
    token, password = ctx.config["token"], ctx.config["password"]
    log.info("calling with token %s and password %s", token, password)
    ctx.log.warning("header %s", ctx.config["auth"])
    return {
        "config": ctx.config,
        "as_key": {token: password},
        "json": json.dumps({"password": password}),
        "digests": [sha256(token), sha256(password)],
    }


@handler("boom")
def boom(ctx):
    token, password = ctx.config["token"], ctx.config["password"]
    try:
        raise ValueError(f"inner failure with {password}")
    except ValueError as inner:
        log.exception("the service refused %s", token)
        raise RuntimeError(f"rejected {token} / {json.dumps(password)}") from inner
"""

TOKEN = "tok-5d0c8e1f9a7b"
PASSWORD = 'pa"ss\\word-3e6aé'
REDACTED = "***"
CONFIG = {
    "token": "{{ secrets.api_token }}",
    "password": "{{ secrets.db-password }}",
    "auth": "Bearer {{ secrets.api_token }}",
}


assert_no_secret = secret_check(TOKEN, PASSWORD)


def dump_redis(client: redis.Redis) -> dict[str, Any]:
    """Every key's whole value, by key, read as its type says."""
    dumped: dict[str, Any] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        readers: dict[str, Callable[[], Any]] = {
            "string": lambda key=key: client.get(key),
            "hash": lambda key=key: client.hgetall(key),
            "list": lambda key=key: client.lrange(key, 0, -1),
            "set": lambda key=key: sorted(client.smembers(key)),
            "zset": lambda key=key: client.zrange(key, 0, -1, withscores=True),
            "stream": lambda key=key: client.xrange(key),
        }
        assert kind in readers, f"{key} is a {kind}, which this dump cannot read"
        dumped[key] = readers[kind]()
    return dumped


async def test_no_secret_value_reaches_redis_the_api_or_any_log(cluster: Callable[..., Cluster]) -> None:
    engine = cluster()
    (engine.workdir / f"{MODULE}.py").write_text(SOURCE, encoding="utf-8")
    secrets_dir = engine.workdir / "run-secrets"
    secrets_dir.mkdir()
    (secrets_dir / "db-password").write_text(PASSWORD + "\n", encoding="utf-8")
    web = engine.start("web", "--handlers", MODULE, LOG_LEVEL="DEBUG")
    worker = engine.start(
        "worker",
        "--handlers",
        MODULE,
        DAG_SECRET_API_TOKEN=TOKEN,
        SECRETS_DIR=str(secrets_dir),
        LOG_LEVEL="DEBUG",
        LOG_FORMAT="json",
    )
    for process in (web, worker):
        await engine.wait_serving(process)
    echo = {"id": "echo", "handler": "echo", "dependencies": [], "config": CONFIG}
    boom = {"id": "boom", "handler": "boom", "dependencies": [], "config": CONFIG}
    boom["retry_policy"] = {"max_attempts": 2, "initial_backoff_seconds": 0.05}
    after = {
        "id": "after",
        "handler": "echo",
        "dependencies": ["echo"],
        "config": {**CONFIG, "seen": "{{ echo }}"},
    }
    definition = workflow("secrets", [echo, boom, after])
    definition["output"] = {"echoed": "{{ echo.config }}"}

    async with engine.client() as client:
        instance_id = await submit(client, definition)
        run_id = await trigger(client, instance_id, {})
        await engine.wait_final([run_id], within=30)
        answers = {
            path: (await client.get(path)).text
            for path in (
                f"/api/runs/{run_id}",
                f"/api/runs/{run_id}/results",
                f"/api/workflows/{run_id}",
                f"/api/workflows/{run_id}/results",
                f"/api/runs/{run_id}/events",  # the whole stream: it closes once the run has ended
                *(
                    f"/api/runs/{run_id}/nodes/{node}/logs?attempt={attempt}"
                    for node, attempt in (("echo", 1), ("boom", 1), ("boom", 2), ("after", 1))
                ),
            )
        }
    run = json.loads(answers[f"/api/runs/{run_id}"])
    results = json.loads(answers[f"/api/runs/{run_id}/results"])["results"]
    dumped = json.dumps(dump_redis(engine.redis), ensure_ascii=False)

    # The handlers had the real values (their digests), and every echo of them is hidden.
    echoed = results["echo"]
    assert echoed["digests"] == [sha256(TOKEN), sha256(PASSWORD)]
    assert echoed["config"] == {"token": REDACTED, "password": REDACTED, "auth": f"Bearer {REDACTED}"}
    assert echoed["as_key"] == {REDACTED: REDACTED}
    assert json.loads(echoed["json"]) == {"password": REDACTED}
    assert results["after"]["config"]["seen"]["config"] == echoed["config"]
    error = run["nodes"]["boom"]["error"]
    assert error["type"] == "RuntimeError" and run["nodes"]["boom"]["attempts"] == 2
    assert error["message"].startswith(f'rejected {REDACTED} / "{REDACTED}"\nTraceback'), error
    assert f"ValueError: inner failure with {REDACTED}" in error["message"]
    echo_log = answers[f"/api/runs/{run_id}/nodes/echo/logs?attempt=1"]
    assert f"calling with token {REDACTED} and password {REDACTED}" in echo_log
    assert f"header Bearer {REDACTED}" in echo_log
    assert f"the service refused {REDACTED}" in worker.log()
    assert "Bearer {{ secrets.api_token }}" in dumped and f"Bearer {REDACTED}" in dumped, "all was read"
    assert "event: node_failed" in answers[f"/api/runs/{run_id}/events"]

    assert_no_secret(dumped, "Redis")
    for path, answer in answers.items():
        assert_no_secret(answer, f"GET {path}")
    assert_no_secret(web.log(), "the web process's log")
    assert_no_secret(worker.log(), "the worker process's log")
    assert "secrets from" in worker.log() and str(secrets_dir) in worker.log(), "its start-up line"
