"""Per-attempt logs: what a handler logged during one attempt, and how much of it is kept.

Both stores keep at most ``MAX_LINES`` lines per attempt (the first ones: what led up to a failure
is usually logged early, and a handler that logs in a loop must not fill the store); the worker
cuts each line to ``MAX_LINE_CHARS`` before storing it.
"""

from __future__ import annotations

MAX_LINES = 1000
MAX_LINE_CHARS = 4000
TRUNCATED_MARK = " ... [cut]"


def bounded_line(line: str) -> str:
    """``line`` cut to ``MAX_LINE_CHARS`` characters (marked as cut)."""
    if len(line) <= MAX_LINE_CHARS:
        return line
    return line[: MAX_LINE_CHARS - len(TRUNCATED_MARK)] + TRUNCATED_MARK
