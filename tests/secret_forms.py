"""How a secret's value could sit in a store, an answer or a log, and the check that it does not:
shared by the secrets tests of every suite."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable


def forms(value: str, depth: int = 3) -> set[str]:
    """The value as is and JSON-encoded (both ASCII modes) up to ``depth`` times: a JSON document
    stored inside another (an output inside an event) escapes it twice."""
    found = {value}
    for _ in range(depth):
        found |= {json.dumps(form, ensure_ascii=ascii)[1:-1] for form in found for ascii in (True, False)}
    return found


def secret_check(*secrets: str, shown: int = 3000) -> Callable[[str, str], None]:
    """``check(text, where)`` fails naming ``where`` (and the start of ``text``) when any form of
    any of ``secrets`` is in ``text``."""
    every_form = set().union(*(forms(secret) for secret in secrets))

    def check(text: str, where: str) -> None:
        found = sorted(form for form in every_form if form in text)
        assert not found, f"{where} holds a secret ({found}): {text[:shown]}"

    return check


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
