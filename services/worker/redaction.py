"""Hiding secret values again in what a worker reports and logs.

A ``Redactor`` knows every secret value its worker process has resolved; it replaces each one, and
the forms a handler most often echoes it in (JSON-escaped, Python ``repr``-escaped, URL-encoded),
by ``***``: in an attempt's output (every string, keys included), its error message and traceback,
and, through a log-record factory, in every log line of the process (so in the attempt's log too).
A value the handler transformed otherwise (base64, hashed, sliced, upper-cased) cannot be
recognised and is not hidden.

The factory is process-wide because logging is: one worker process, one set of values. Until a
secret is resolved it costs one check per record.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from typing import Any
from urllib.parse import quote

REDACTED = "***"

_exception_text = logging.Formatter().formatException


def _forms(value: str) -> set[str]:
    """``value`` and the escaped forms in which an echo most often carries it."""
    return {
        value,
        json.dumps(value, ensure_ascii=False)[1:-1],
        json.dumps(value)[1:-1],
        repr(value)[1:-1],
        quote(value, safe=""),
    }


class Redactor:
    """Every secret value seen, and their escaped forms, each replaced by ``***`` where it appears."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._forms: tuple[str, ...] = ()
        """Longest first, so a form containing another is replaced whole. Replaced as a whole tuple:
        readers in any thread take no lock."""

    def add(self, value: str) -> None:
        if value in self._values:
            return
        with self._lock:
            values = self._values | {value}
            forms = {form for known in values for form in _forms(known) if form}
            self._forms = tuple(sorted(forms, key=len, reverse=True))
            self._values = values

    @property
    def active(self) -> bool:
        return bool(self._forms)

    def text(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def value(self, value: Any) -> Any:
        """A JSON value with every string (and key) redacted; other scalars as they are."""
        if not self._forms:
            return value
        return self._json(value)

    def _json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self._json(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._json(item) for item in value]
        return value

    def record(self, record: logging.LogRecord) -> None:
        """Redact one log record in place: its message (formatted now), traceback and stack."""
        try:
            message = record.getMessage()
        except Exception:  # logging reports a record it cannot format when a handler formats it
            return
        redacted = self.text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and record.exc_info[0] is not None:
            # Formatters use exc_text when it is set (runtime.logs' JSON formatter too).
            record.exc_text = self.text(_exception_text(record.exc_info))
        if record.stack_info:
            record.stack_info = self.text(record.stack_info)


_installed: tuple[weakref.ref[Redactor], ...] = ()
"""Replaced whole (read without a lock from any thread); weak, so a finished worker's values go."""
_install_lock = threading.Lock()


def _redact_made(record: logging.LogRecord) -> None:
    for reference in _installed:
        redactor = reference()
        if redactor is not None and redactor.active:
            redactor.record(record)


def install_log_redaction(redactor: Redactor) -> None:
    """Have every log record of this process redacted by ``redactor`` as it is made."""
    global _installed  # noqa: PLW0603 - logging's record factory is process-wide state
    with _install_lock:
        alive = tuple(ref for ref in _installed if ref() is not None)
        if any(ref() is redactor for ref in alive):
            return
        if not _installed:
            previous = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                _redact_made(record)
                return record

            logging.setLogRecordFactory(factory)
        _installed = (*alive, weakref.ref(redactor))
