"""JSON semantics for values read by conditions: equality, ordering, membership, truthiness.

Python's own rules differ from JSON's in ways a user would trip on: ``True == 1`` and ``1 in [True]``
hold in Python, but a JSON boolean is not a number. Equality here is JSON's: ``1 == 1.0``,
``true != 1``, ``null == null``, arrays and objects equal item by item. It is iterative, so deeply
nested node outputs cannot exhaust the stack.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def copy_json(value: Any) -> Any:
    """A copy of JSON data (dicts, lists, scalars): much cheaper than ``deepcopy``, which also
    handles shared references and cycles that JSON data cannot have."""
    if type(value) is dict:
        return {key: copy_json(item) for key, item in value.items()}
    if type(value) is list:
        return [copy_json(item) for item in value]
    return value


def json_type(value: Any) -> str:
    """The JSON name of a value's type, as error messages show it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(left: Any, right: Any) -> bool:
    pending: list[tuple[Any, Any]] = [(left, right)]
    while pending:
        a, b = pending.pop()
        kind = json_type(a)
        if kind != json_type(b):
            return False
        if kind == "array":
            if len(a) != len(b):
                return False
            pending.extend(zip(a, b, strict=True))
        elif kind == "object":
            if a.keys() != b.keys():
                return False
            pending.extend((a[key], b[key]) for key in a)
        elif a != b:
            return False
    return True


def contains(container: Any, item: Any) -> bool | str:
    """``item in container``, or the reason it cannot be asked (a message, not an exception)."""
    kind = json_type(container)
    if kind == "array":
        return any(json_equal(item, element) for element in container)
    if kind == "string":
        if not isinstance(item, str):
            return f"'in' a string needs a string on the left, got {json_type(item)}"
        return item in container
    if kind == "object":
        if not isinstance(item, str):
            return f"'in' an object tests its keys, which are strings; got {json_type(item)}"
        return item in container
    return f"'in' needs an array, a string or an object on the right, got {kind}"


def truthy(value: Any) -> bool:
    """JSON truthiness: null, false, 0, "", [] and {} are false; everything else is true."""
    if value is None or value is False:
        return False
    if is_number(value) or isinstance(value, str | Sequence | Mapping):
        return bool(value)
    return True


def shortened(value: Any, limit: int = 200) -> str:
    """A value as compact JSON, cut to about ``limit`` characters for messages."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=repr)
    except (ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
