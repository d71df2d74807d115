# TEMPORARY local stand-in (not committed): the grammar helper delivers the real module.
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain.errors import DomainError
from domain.templates import Reference, parse_reference


class ConditionError(DomainError):
    pass


@dataclass(frozen=True, slots=True)
class ConditionResult:
    value: bool
    seen: dict[str, Any]

    def describe(self) -> str:
        return f"condition false (saw {self.seen})"


@dataclass(frozen=True, slots=True)
class Condition:
    text: str
    references: tuple[Reference, ...]

    def evaluate(self, resolve: Callable[[Reference], Any]) -> ConditionResult:
        # stand-in grammar: "{{ ref }}" (truthy) or "{{ ref }} == literal-json"

        _l, _, right = self.text.partition("==")
        ref = self.references[0]
        value = resolve(ref)
        seen = {ref.text: value}
        if right.strip():
            return ConditionResult(value == json.loads(right.strip()), seen)
        return ConditionResult(bool(value), seen)


def parse_condition(text: str) -> Condition:
    left = text.partition("==")[0].strip()
    if not (left.startswith("{{") and left.endswith("}}")):
        raise ConditionError(f"bad condition {text!r}")
    return Condition(text, (parse_reference(left[2:-2], left),))
