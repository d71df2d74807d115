"""``{{ node_id.path.to.value }}`` templates: a small explicit grammar, never evaluated.

Grammar inside ``{{ }}`` (surrounding spaces allowed)::

    reference := name ( "." key | "[" digits "]" )*
    name, key := [A-Za-z0-9_-]+

A string that is exactly one template takes the referenced value with its JSON type; templates inside
longer text are rendered as text (strings as is, anything else as compact JSON). The first name is a
node id, ``workflow`` for run data (``{{ workflow.input.user_id }}``), or ``secrets`` for a value
only the worker has (``{{ secrets.api_token }}``, see ``domain.secret_refs``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from domain.errors import TemplateError

WORKFLOW_NAMESPACE = "workflow"
ONLY_INPUT = f"only '{WORKFLOW_NAMESPACE}.input' can be read"
_OPEN, _CLOSE = "{{", "}}"
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_INDEX = re.compile(r"\[(\d+)\]")

type PathSegment = str | int
type Resolver = Callable[[Reference], Any]


@dataclass(frozen=True, slots=True)
class Reference:
    root: str
    path: tuple[PathSegment, ...]
    text: str

    @property
    def reads_run_data_outside_input(self) -> bool:
        """A reference to the workflow namespace other than ``workflow.input...``: only the run's input
        can be read there (ONLY_INPUT says so)."""
        return self.root == WORKFLOW_NAMESPACE and (not self.path or self.path[0] != "input")

    def resolve_in(self, data: Mapping[str, Any]) -> Any:
        """Walk ``path`` from ``data[root]``; a clear TemplateError names the first missing step."""
        if self.root not in data:
            raise TemplateError(f"{self.text}: no output from '{self.root}'")
        value = data[self.root]
        walked = self.root
        for segment in self.path:
            value = _step(value, segment, walked, self.text)
            walked += f"[{segment}]" if isinstance(segment, int) else f".{segment}"
        return value


def _step(value: Any, segment: PathSegment, walked: str, text: str) -> Any:
    if isinstance(value, Mapping):
        key = str(segment)
        if key in value:
            return value[key]
        keys = ", ".join(sorted(map(str, value))[:10]) or "none"
        raise TemplateError(f"{text}: '{walked}' has no key '{key}' (keys: {keys})")
    if isinstance(value, list):
        index = segment if isinstance(segment, int) else _as_index(segment)
        if index is not None and 0 <= index < len(value):
            return value[index]
        raise TemplateError(f"{text}: '{walked}' has no item {segment} (length {len(value)})")
    kind = "null" if value is None else type(value).__name__
    raise TemplateError(f"{text}: '{walked}' is {kind}, cannot read '{segment}' from it")


def _as_index(segment: str) -> int | None:
    return int(segment) if segment.isdigit() else None


def parse_reference(expression: str, text: str) -> Reference:
    """Parse the inside of one ``{{ }}``; anything but a plain reference is refused."""
    body = expression.strip()
    match = _NAME.match(body)
    if match is None:
        raise TemplateError(f"{text}: expected a reference like 'node_id.path', got '{body}'")
    root, position = match.group(), match.end()
    path: list[PathSegment] = []
    while position < len(body):
        if body[position] == ".":
            key = _NAME.match(body, position + 1)
            if key is None:
                raise TemplateError(f"{text}: expected a key after '.' at offset {position}")
            path.append(key.group())
            position = key.end()
            continue
        index = _INDEX.match(body, position)
        if index is None:
            raise TemplateError(
                f"{text}: unexpected '{body[position]}' at offset {position}; "
                "only names, '.key' and '[index]' are allowed"
            )
        path.append(int(index.group(1)))
        position = index.end()
    return Reference(root, tuple(path), text)


@dataclass(frozen=True, slots=True)
class StringTemplate:
    """A string holding at least one template, split into literal text and references."""

    parts: tuple[str | Reference, ...]

    def render(self, resolve: Resolver) -> Any:
        if len(self.parts) == 1 and isinstance(self.parts[0], Reference):
            return resolve(self.parts[0])
        return "".join(part if isinstance(part, str) else _as_text(resolve(part)) for part in self.parts)

    @property
    def references(self) -> tuple[Reference, ...]:
        return tuple(p for p in self.parts if isinstance(p, Reference))


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def parse_string(text: str) -> StringTemplate | None:
    """Split ``text`` into literals and references; None when it holds no template."""
    if _OPEN not in text:
        return None
    parts: list[str | Reference] = []
    position = 0
    while (start := text.find(_OPEN, position)) != -1:
        end = text.find(_CLOSE, start + 2)
        if end == -1:
            raise TemplateError(f"unclosed '{{{{' at offset {start} in '{text}'")
        if start > position:
            parts.append(text[position:start])
        parts.append(parse_reference(text[start + 2 : end], text[start : end + 2]))
        position = end + 2
    if position < len(text):
        parts.append(text[position:])
    return StringTemplate(tuple(parts))
