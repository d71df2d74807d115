"""The message for a key no definition object knows: the key, the nearest known one, the known ones.

The known keys are read from the pydantic models of ``domain.definition`` (walking a validation
error's location through their field types), so a field added to a model is known here at once.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from domain.definition import EXTENSION_PREFIX, WorkflowDefinition


def unknown_key_message(loc: Sequence[int | str], root: type[BaseModel] = WorkflowDefinition) -> str:
    """``unknown key "outptu"; did you mean "output"?`` for the key at the end of ``loc``."""
    key = str(loc[-1])
    known = known_keys(loc[:-1], root)
    message = f'unknown key "{key}"'
    if not known:
        return message
    nearest = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if nearest:
        return f'{message}; did you mean "{nearest[0]}"?'
    listed = ", ".join(known)
    free = f'keys starting with "{EXTENSION_PREFIX}" are free for your own use'
    return f"{message}; known keys: {listed} ({free})"


def known_keys(loc: Sequence[int | str], root: type[BaseModel] = WorkflowDefinition) -> list[str]:
    """The keys of the object at ``loc`` (a pydantic error location), [] when it is not a model."""
    current: Any = root
    for part in loc:
        current = _step(_unwrapped(current), part)
        if current is None:
            return []
    model = _unwrapped(current)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _step(annotation: Any, part: int | str) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (list, tuple) and isinstance(part, int) and args:
        return args[0]
    if origin is dict and isinstance(part, str) and len(args) == 2:
        return args[1]
    return None


def _unwrapped(annotation: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` are ``X`` (pydantic's locations do not name them)."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
