"""Contract of ``AttemptLogStore``: what handlers logged, per (run, node, attempt), kept in order,
bounded, apart from other attempts, and (on Redis) expiring with the run's retention."""

from __future__ import annotations

import uuid

import pytest
from contract_support import Backend

from adapters.memory import InMemoryAttemptLogStore
from domain.attempt_logs import MAX_LINES


def run_id() -> str:
    return f"run-{uuid.uuid4().hex[:8]}"


async def test_lines_are_read_back_in_order_and_appends_add_to_them(backend: Backend) -> None:
    run = run_id()
    await backend.attempt_logs.append(run, "a", 1, ["first", "second"])
    await backend.attempt_logs.append(run, "a", 1, ["third (the attempt ran again)"])
    assert await backend.attempt_logs.read(run, "a", 1) == [
        "first",
        "second",
        "third (the attempt ran again)",
    ]


async def test_attempts_nodes_and_runs_are_kept_apart(backend: Backend) -> None:
    run, other_run = run_id(), run_id()
    await backend.attempt_logs.append(run, "a", 1, ["a1"])
    await backend.attempt_logs.append(run, "a", 2, ["a2"])
    await backend.attempt_logs.append(run, "b", 1, ["b1"])
    await backend.attempt_logs.append(other_run, "a", 1, ["other"])
    assert await backend.attempt_logs.read(run, "a", 1) == ["a1"]
    assert await backend.attempt_logs.read(run, "a", 2) == ["a2"]
    assert await backend.attempt_logs.read(run, "b", 1) == ["b1"]
    assert await backend.attempt_logs.read(other_run, "a", 1) == ["other"]


async def test_an_attempt_that_logged_nothing_reads_empty(backend: Backend) -> None:
    run = run_id()
    await backend.attempt_logs.append(run, "a", 1, [])
    assert await backend.attempt_logs.read(run, "a", 1) == []
    assert await backend.attempt_logs.read(run, "never", 3) == []


async def test_an_attempt_keeps_its_first_lines_up_to_the_bound(backend: Backend) -> None:
    run = run_id()
    await backend.attempt_logs.append(run, "a", 1, [f"line {n}" for n in range(MAX_LINES - 2)])
    await backend.attempt_logs.append(run, "a", 1, [f"more {n}" for n in range(5)])
    lines = await backend.attempt_logs.read(run, "a", 1)
    assert len(lines) == MAX_LINES
    assert lines[0] == "line 0"
    assert lines[-3:] == [f"line {MAX_LINES - 3}", "more 0", "more 1"]


async def test_lines_keep_their_text_exactly(backend: Backend) -> None:
    run = run_id()
    lines = ['  File "h.py", line 3, in h', "ünïcödé ✓", "", "tab\tseparated"]
    await backend.attempt_logs.append(run, "a", 1, lines)
    assert await backend.attempt_logs.read(run, "a", 1) == lines


@pytest.mark.contract_skip(memory="the memory backend keeps a bounded number of attempts, no expiry")
async def test_redis_logs_expire_with_the_run_retention(backend: Backend) -> None:
    run = run_id()
    await backend.attempt_logs.append(run, "a", 1, ["kept"])
    assert backend.keys is not None
    ttls = [
        await backend.client.ttl(key)
        async for key in backend.client.scan_iter(f"{backend.keys.prefix}:*{run}*")
    ]
    assert ttls, "the attempt's log is stored under the run's keys"
    retention = backend.settings.run_retention_seconds
    assert all(retention - 5 <= ttl <= retention for ttl in ttls), ttls


async def test_the_memory_store_keeps_the_most_recent_attempts() -> None:
    """No expiry in memory: the oldest attempts' logs go first once ``max_attempts`` are kept."""
    store = InMemoryAttemptLogStore(max_attempts=2)
    for attempt in (1, 2, 3):
        await store.append("run", "a", attempt, [f"attempt {attempt}"])
    assert await store.read("run", "a", 1) == []
    assert [await store.read("run", "a", attempt) for attempt in (2, 3)] == [["attempt 2"], ["attempt 3"]]
