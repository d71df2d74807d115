"""Debugging a failed handler in distributed mode: the worker process keeps the traceback in the
attempt's error and what the handler logged in the attempt's log (on Redis, expiring with the run),
which the API process reads back (``GET /api/runs/{id}/nodes/{node}/logs``)."""

from __future__ import annotations

from collections.abc import Callable

from distributed_support import Cluster, node, workflow
from http_support import submit, trigger

MODULE = "redis_newcomer_handlers"
SOURCE = """
import logging

from services.worker import handler

log = logging.getLogger("my.handlers")


@handler("flaky_logger")
def flaky_logger(ctx):
    log.info("attempt %s: fetching %s", ctx.attempt, ctx.config["what"])
    ctx.log.warning("attempt %s: about to fail", ctx.attempt)
    raise RuntimeError(f"gave up on {ctx.config['what']}")
"""


async def test_a_failed_handlers_traceback_and_log_lines_reach_the_api(
    cluster: Callable[..., Cluster],
) -> None:
    engine = cluster()
    (engine.workdir / f"{MODULE}.py").write_text(SOURCE, encoding="utf-8")
    await engine.start_many(("web", "--handlers", MODULE), ("worker", "--handlers", MODULE))
    flaky = node("f", "flaky_logger", what="users")
    flaky["retry_policy"] = {"max_attempts": 2, "initial_backoff_seconds": 0.05}
    definition = workflow("attempt-logs", [flaky])
    async with engine.client() as client:
        run_id = await trigger(client, await submit(client, definition), {})
        await engine.wait_final([run_id], within=30)
        run = (await client.get(f"/api/runs/{run_id}")).json()
        logs = {
            attempt: (
                await client.get(f"/api/runs/{run_id}/nodes/f/logs", params={"attempt": attempt})
            ).json()
            for attempt in (1, 2)
        }

    assert run["status"] == "FAILED"
    error = run["nodes"]["f"]["error"]
    assert error["type"] == "RuntimeError"
    assert error["message"].startswith("gave up on users\nTraceback (most recent call last):\n"), error
    assert f"{MODULE}.py" in error["message"] and "in flaky_logger" in error["message"]
    for attempt in (1, 2):
        lines = logs[attempt]["lines"]
        assert logs[attempt]["attempt"] == attempt
        assert any(f"INFO my.handlers: attempt {attempt}: fetching users" in line for line in lines), lines
        assert any(f"WARNING dag.handler: attempt {attempt}: about to fail" in line for line in lines), lines
        assert lines[-1] == "RuntimeError: gave up on users", lines
    web, worker = engine.processes
    [web_line] = [line for line in web.log().splitlines() if "started api" in line]
    assert f"backend redis; Redis {engine.redis_server.url}" in web_line, web_line
    assert f"API at http://127.0.0.1:{engine.api_port}/api" in web_line, web_line
    [worker_line] = [line for line in worker.log().splitlines() if "started " in line]
    assert " INFO " in f" {worker_line}" and "flaky_logger" in worker_line, worker_line
    [key] = list(engine.redis.scan_iter(match=f"{engine.prefix}:*{run_id}:log:f:1"))
    assert engine.redis.ttl(key) > 0, "the log expires with the run's retention"
