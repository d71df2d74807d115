"""Clock and id generator backed by the operating system."""

from __future__ import annotations

import time
import uuid


class SystemClock:
    """``domain.ports.Clock`` on wall-clock time."""

    def now(self) -> float:
        return time.time()


class UuidIds:
    """``domain.ports.IdGenerator`` issuing random UUID4 hex strings."""

    def new_id(self) -> str:
        return uuid.uuid4().hex
