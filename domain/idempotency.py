"""Idempotent starts and registrations: a client that retries a start (a registration) with the
same idempotency key gets the run it started (the version it registered) the first time, not a
second one.

The run's id is derived from the key, so the store's own "this run id is new" check, atomic with
the run's creation, is what de-duplicates (likewise a definition's id, and "this definition id is
new"): across API replicas, and with no second record to keep
in step with the run (the key lives as long as the run does: the run's retention). The request's
fingerprint is kept with the run, so that the same key with a different request is told apart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from domain.errors import InvalidInput, Problem

MAX_KEY_LENGTH = 200


@dataclass(frozen=True, slots=True)
class IdempotentStart:
    key: str
    fingerprint: str
    """A hash of what the request asked for (the definition and the input)."""

    @property
    def run_id(self) -> str:
        return self._derived_id("run")

    @property
    def definition_id(self) -> str:
        return self._derived_id("definition")

    def _derived_id(self, kind: str) -> str:
        return hashlib.sha256(f"{kind}\n{self.key}".encode()).hexdigest()[:32]


def idempotent_start(key: str, where: str, *request: Any) -> IdempotentStart:
    """The start of ``request`` (JSON values) under ``key``; ``InvalidInput`` naming ``where`` (the
    header or field that gave it) when the key is empty, too long or not printable ASCII."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        message = f"an idempotency key is 1 to {MAX_KEY_LENGTH} printable ASCII characters, got {key!r:.60}"
        raise InvalidInput([Problem(where, message)])
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return IdempotentStart(key, hashlib.sha256(canonical.encode()).hexdigest())
