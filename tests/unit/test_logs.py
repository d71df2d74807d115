"""Log lines: time-stamped text by default, JSON with LOG_FORMAT=json, the bound ids in both."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator

import pytest

from services.runtime.logs import bind_attempt, configure_logging, run_context


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_text_lines_start_with_a_utc_time_stamp_and_end_with_the_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO")
    log = logging.getLogger("t.text")
    log.info("plain %s", "line")
    with run_context("r-1"):
        log.warning("about a run")
    lines = capsys.readouterr().err.splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(rf"{stamp} INFO t\.text: plain line", lines[0]), lines[0]
    assert re.fullmatch(rf"{stamp} WARNING t\.text: about a run \[run_id=r-1\]", lines[1]), lines[1]


async def test_json_lines_carry_the_ids_of_the_attempt_that_wrote_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    log = logging.getLogger("t.json")

    async def attempt(node_id: str) -> None:
        bind_attempt("run-9", node_id, 2, "w-1")
        await asyncio.sleep(0)
        log.info("working on %s", node_id)

    await asyncio.gather(attempt("a"), attempt("b"))  # two tasks: two contexts, no mixing
    log.error("outside", exc_info=ValueError("boom"))
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [r["message"] for r in records] == ["working on a", "working on b", "outside"]
    for record, node_id in zip(records[:2], ("a", "b"), strict=True):
        assert record["run_id"] == "run-9" and record["node_id"] == node_id
        assert record["attempt"] == 2 and record["worker_id"] == "w-1"
        assert record["level"] == "INFO" and record["logger"] == "t.json"
    assert "run_id" not in records[2]
    assert "ValueError: boom" in records[2]["exception"]
