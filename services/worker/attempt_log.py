"""What a handler leaves behind for debugging: its log lines during an attempt, and the traceback of
the exception that failed it.

Every attempt runs in its own asyncio task, so a context variable says which attempt's lines a
log record belongs to; sync handlers run in threads with a copy of that context. A capture handler
on the root logger appends each record to the current attempt's lines (bounded), and the worker
stores them (``domain.ports.AttemptLogStore``) before it reports the attempt's result.
"""

from __future__ import annotations

import contextvars
import logging
import time
import traceback
from pathlib import Path

from domain.attempt_logs import MAX_LINES, bounded_line

CAPTURE_LEVEL = logging.INFO
MAX_TRACEBACK_CHARS = 4000

_current: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("dag_attempt_log", default=None)
_WORKER_FILES = frozenset(str(Path(__file__).with_name(name)) for name in ("loop.py", "cancels.py"))
"""The worker's own modules a handler's call passes through (the loop, the cancel watch)."""


def _is_worker_frame(filename: str) -> bool:
    return filename in _WORKER_FILES or "/concurrent/futures/" in filename


class _UtcFormatter(logging.Formatter):
    """Times as ISO 8601 UTC with milliseconds, as the API writes them."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


class AttemptLogCapture(logging.Handler):
    """Appends records logged while an attempt runs to that attempt's lines."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = _current.get()
        if lines is None or len(lines) >= MAX_LINES:
            return
        try:
            text = self.format(record)
        except Exception:  # a record that cannot be formatted is logging's own report to make
            self.handleError(record)
            return
        lines.extend(bounded_line(line) for line in text.splitlines()[: MAX_LINES - len(lines)])


def install_capture() -> None:
    """Put the capture handler on the root logger once per process. The root logger then lets INFO
    through (a handler's ``log.info`` is what its log is for); the process's own output handlers
    that had no level of their own keep the level the root logger had, so what a process prints
    does not change."""
    root = logging.getLogger()
    if any(isinstance(existing, AttemptLogCapture) for existing in root.handlers):
        return
    before = root.getEffectiveLevel()
    if before > CAPTURE_LEVEL:
        for existing in root.handlers:
            if existing.level == logging.NOTSET:
                existing.setLevel(before)
        root.setLevel(CAPTURE_LEVEL)
    capture = AttemptLogCapture(CAPTURE_LEVEL)
    capture.setFormatter(_UtcFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(capture)


def start_attempt_log() -> list[str]:
    """A fresh list of lines for the attempt running in the current task."""
    lines: list[str] = []
    _current.set(lines)
    return lines


def handler_traceback(error: BaseException) -> str:
    """The exception's traceback from the handler's first frame on (the worker's frames dropped),
    at most ``MAX_TRACEBACK_CHARS``: the start and the end (the failing frames) are kept."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None and _is_worker_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(error), error, tb)).rstrip()
    if len(text) <= MAX_TRACEBACK_CHARS:
        return text
    head, tail = text[: MAX_TRACEBACK_CHARS // 4], text[-(MAX_TRACEBACK_CHARS * 3 // 4) :]
    return f"{head}\n  ... ({len(text) - len(head) - len(tail)} characters cut) ...\n{tail}"


def failure_message(error: BaseException) -> str:
    """The attempt's error message: the exception's text, then its traceback."""
    return f"{error}\n{handler_traceback(error)}" if str(error) else handler_traceback(error)


def record_failure(message: str) -> None:
    """End the current attempt's lines with its failure (message and traceback), as an ERROR line."""
    lines = _current.get()
    if lines is None:
        return
    stamp = _UtcFormatter().formatTime(logging.makeLogRecord({}))
    text = f"{stamp} ERROR attempt failed: {message}".splitlines()
    room = MAX_LINES - len(lines)
    if len(text) > room:  # the traceback's end is what matters: keep it, over the first lines if need be
        del lines[max(0, len(lines) - (len(text) - room)) :]
    lines.extend(bounded_line(line) for line in text[-MAX_LINES:])
