"""A workflow's ``input_schema``: a JSON Schema (draft 2020-12) that a run's input must satisfy.

The schema is checked when the definition is registered (``schema_problems``: it must itself be a
valid 2020-12 schema whose ``$ref``s resolve, and accept an object); a run's input is checked when
the run starts (``checked_input``), with ``default``s of the schema's object properties filled in
first, so a defaulted property also satisfies ``required``. ``format`` is asserted (``email``,
``date``, ...), as users of a typed contract expect. The validator library is ``jsonschema``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator, Mapping
from functools import cache, lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from domain.errors import InvalidInput, Problem
from domain.limits import DEFAULT_LIMITS, Limits, json_size, nesting_depth

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})
"""Keywords whose values are data, not schemas: a ``$ref`` key inside them is not a reference."""
_MESSAGE_CHARS = 300

type JsonPath = Iterable[str | int]


def json_path(root: str, parts: JsonPath) -> str:
    return root + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)


def schema_problems(schema: Any, path: str, limits: Limits = DEFAULT_LIMITS) -> list[Problem]:
    """Every reason ``schema`` (found at ``path`` in the definition) cannot check run inputs.

    Its size and nesting are bounded like a node's config, before the meta-schema (which recurses)
    reads it.
    """
    if not isinstance(schema, Mapping):
        return [Problem(path, "must be a JSON Schema object")]
    depth = nesting_depth(schema)
    if depth > limits.max_nesting_depth:
        message = f"input_schema nests {depth} levels, over the limit of {limits.max_nesting_depth}"
        return [Problem(path, message, "max_nesting_depth")]
    size = json_size(schema)
    if size > limits.max_config_bytes:
        message = f"input_schema is {size} bytes, over the limit of {limits.max_config_bytes}"
        return [Problem(path, message, "max_config_bytes")]
    declared = schema.get("$schema", DRAFT_2020_12)
    if not isinstance(declared, str) or declared.rstrip("#") != DRAFT_2020_12:
        return [Problem(f"{path}.$schema", f"only draft 2020-12 is supported ({DRAFT_2020_12})")]
    found = _explained(_meta_validator(), schema)
    problems = sorted((Problem(json_path(path, where), message) for where, message in found), key=_by_path)
    if problems:
        return problems
    problems.extend(_unresolvable_references(schema, path))
    if not _accepts_an_object(schema.get("type", "object")):
        problems.append(
            Problem(f"{path}.type", "a run's input is always a JSON object, so the schema must accept one")
        )
    return problems


def checked_input(schema: Mapping[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``value`` with the schema's defaults filled in; ``InvalidInput`` with every problem."""
    filled: dict[str, Any] = _with_defaults(schema, value)
    validator = _validator(_key(schema))
    try:
        problems = [
            Problem(json_path("$", where), message) for where, message in _explained(validator, filled)
        ]
    except Unresolvable as error:  # refused at registration; only a schema stored before could hold one
        problems = [Problem("$", f"the workflow's input_schema cannot be used: {error}")]
    if problems:
        raise InvalidInput(problems)
    return filled


def _by_path(problem: Problem) -> str:
    return problem.path


@cache
def _meta_validator() -> Draft202012Validator:
    return Draft202012Validator(Draft202012Validator.META_SCHEMA)


def _key(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=256)
def _validator(key: str) -> Draft202012Validator:
    """Compiled once per distinct schema (plans are rebuilt from stored JSON, so keyed by content)."""
    return Draft202012Validator(json.loads(key), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _explained(validator: Draft202012Validator, instance: Any) -> Iterator[tuple[list[str | int], str]]:
    """(instance location, message) of every error; ``required`` points at the missing property."""
    for found in validator.iter_errors(instance):
        # anyOf/oneOf: the branch that came closest says more than "is not valid under any of ..."
        error = best_match(found.context) if found.context else found
        where = list(error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, Mapping):
            where += _missing_property(error)
        yield where, _shortened(error.message)


def _missing_property(error: ValidationError) -> list[str | int]:
    required = error.validator_value if isinstance(error.validator_value, list) else []
    for name in required:
        if isinstance(name, str) and error.message.startswith(repr(name)):
            return [name]
    return []


def _shortened(message: str) -> str:
    return message if len(message) <= _MESSAGE_CHARS else message[: _MESSAGE_CHARS - 1] + "…"


def _accepts_an_object(declared: Any) -> bool:
    return declared == "object" or (isinstance(declared, list) and "object" in declared)


def _unresolvable_references(schema: Mapping[str, Any], path: str) -> list[Problem]:
    """``$ref``s that point nowhere (remote ones are never fetched). Refs below a nested ``$id`` are
    resolved against that resource by the validator and are not second-guessed here."""
    resource = DRAFT202012.create_resource(schema)
    uri = resource.id() or ""
    resolver = Registry().with_resource(uri, resource).crawl().resolver(base_uri=uri)
    problems: list[Problem] = []
    pending: list[tuple[Any, list[str | int]]] = [(schema, [])]
    while pending:
        node, where = pending.pop()
        if isinstance(node, Mapping):
            if where and "$id" in node:
                continue
            reference = node.get("$ref")
            if isinstance(reference, str):
                try:
                    resolver.lookup(reference)
                except Unresolvable:
                    problems.append(
                        Problem(
                            json_path(path, [*where, "$ref"]),
                            f"'{reference}' does not resolve (only references within the schema work)",
                        )
                    )
            pending.extend((child, [*where, key]) for key, child in node.items() if key not in _DATA_KEYWORDS)
        elif isinstance(node, list):
            pending.extend((child, [*where, index]) for index, child in enumerate(node))
    return sorted(problems, key=_by_path)


def _with_defaults(schema: Any, value: Any) -> Any:
    """``value`` with each absent property that has a ``default`` filled in, through nested objects."""
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(value, dict) or not isinstance(properties, Mapping):
        return value
    filled = dict(value)
    for name, subschema in properties.items():
        if not isinstance(subschema, Mapping):
            continue
        if name in filled:
            filled[name] = _with_defaults(subschema, filled[name])
        elif "default" in subschema:
            filled[name] = _with_defaults(subschema, copy.deepcopy(subschema["default"]))
    return filled
