"""Log set-up of every command: text with a time stamp (the default, for a terminal) or, with
``LOG_FORMAT=json``, one JSON object per line with time, level, logger, message and the ids of what
the line is about (``run_id``, ``node_id``, ``attempt``, ``worker_id``) wherever they apply.

The ids live in context variables: a worker binds them for each attempt (each attempt is an asyncio
task with a context of its own, and a sync handler's thread gets a copy), so any log line written
while the attempt runs, the handler's own included, carries them without being passed around.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

type LogFormat = Literal["text", "json"]

RUN_ID: ContextVar[str | None] = ContextVar("run_id", default=None)
NODE_ID: ContextVar[str | None] = ContextVar("node_id", default=None)
ATTEMPT: ContextVar[int | None] = ContextVar("attempt", default=None)
WORKER_ID: ContextVar[str | None] = ContextVar("worker_id", default=None)
_IDS = (("run_id", RUN_ID), ("node_id", NODE_ID), ("attempt", ATTEMPT), ("worker_id", WORKER_ID))
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(ids)s"


def bind_worker(worker_id: str) -> None:
    """Every line of this task (and the tasks it starts) names the worker."""
    WORKER_ID.set(worker_id)


def bind_attempt(run_id: str, node_id: str, attempt: int, worker_id: str) -> None:
    """Every line of this task (an attempt of its own) names the attempt and its worker."""
    RUN_ID.set(run_id)
    NODE_ID.set(node_id)
    ATTEMPT.set(attempt)
    WORKER_ID.set(worker_id)


@contextmanager
def run_context(run_id: str) -> Iterator[None]:
    """Lines written inside the block name the run."""
    token = RUN_ID.set(run_id)
    try:
        yield
    finally:
        RUN_ID.reset(token)


class _ContextIds(logging.Filter):
    """Puts the bound ids on every record (``record.ids``: a text suffix; each as an attribute)."""

    def filter(self, record: logging.LogRecord) -> bool:
        suffix = []
        for name, variable in _IDS:
            bound = variable.get()
            if getattr(record, name, None) is None:
                setattr(record, name, bound)
            value = getattr(record, name)
            if value is not None:
                suffix.append(f"{name}={value}")
        record.ids = f" [{' '.join(suffix)}]" if suffix else ""
        return True


class _UtcText(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc(record.created)


def _utc(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record; the ids appear only when bound."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, _ in _IDS:
            value = getattr(record, name, None)
            if value is not None:
                document[name] = value
        if record.exc_info:
            # exc_text when set: a worker's log redaction leaves the traceback there, secrets hidden.
            document["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """One handler on the root logger, to stderr, in the chosen format (replacing any other)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextIds())
    handler.setFormatter(JsonFormatter() if log_format == "json" else _UtcText(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # Python's warnings become log lines in the same format
