"""Fault injection for the fault suite (``tests/faults``): inert unless ``DAG_FAULT_CRASH_AT`` is set.

``crash_point(name)`` marks a place in a process's work. When the environment names that place in
``DAG_FAULT_CRASH_AT``, the process kills itself there (SIGKILL: no cleanup, nothing acknowledged),
on the ``DAG_FAULT_CRASH_AFTER``-th time it gets there (default 1). The environment is read once, at
import; when the variable is unset a call is one comparison.
"""

from __future__ import annotations

import os
import signal

CRASH_AT_VARIABLE = "DAG_FAULT_CRASH_AT"
CRASH_AFTER_VARIABLE = "DAG_FAULT_CRASH_AFTER"

_crash_at = os.environ.get(CRASH_AT_VARIABLE) or None
_crash_after = int(os.environ.get(CRASH_AFTER_VARIABLE) or "1") if _crash_at else 0
_hits = 0


def crash_point(name: str) -> None:
    """SIGKILL this process if ``DAG_FAULT_CRASH_AT`` names ``name`` and this is the chosen hit."""
    if _crash_at is None or name != _crash_at:
        return
    global _hits  # noqa: PLW0603 - one counter per process, on purpose
    _hits += 1
    if _hits >= _crash_after:
        os.write(2, f"fault injection: crash point {name} (hit {_hits}): SIGKILL\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)
