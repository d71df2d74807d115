"""``{{ secrets.NAME }}``: a value a worker supplies when it renders a node's config, never run data.

The domain knows only the shape of a secret reference and where one may stand: in a node's
``config``, written exactly ``secrets.NAME``. A ``when`` condition may not read one (the values a
condition saw are written into a skipped node's reason and the run's history), nor may the
workflow's ``output`` (it is stored with the run). ``secrets`` is a reserved root, so no node may be
called that.

The values belong to the worker: it hands the renderer a ``SecretLookup`` (name -> value) and hides
the values again in whatever the attempt reports. The API and validation never see a value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from domain.errors import DomainError, Problem, TemplateError
from domain.templates import Reference

if TYPE_CHECKING:  # types only: rendering uses this module
    from domain.conditions import Condition
    from domain.rendering import CompiledConfig

SECRETS_NAMESPACE = "secrets"
SECRET_FORM = "{{ secrets.NAME }}"

type SecretLookup = Callable[[str], str]
"""A secret's value by name; raises ``SecretUnavailable`` when there is none."""


class SecretUnavailable(DomainError):
    """No value for secret ``name`` where the config was rendered; names the secret, never a value."""

    def __init__(self, name: str, detail: str, location: str = "") -> None:
        self.name = name
        self.detail = detail
        self.location = location
        prefix = f"{location}: " if location else ""
        super().__init__(f"{prefix}secret '{name}' is not available: {detail}")

    def at(self, location: str) -> SecretUnavailable:
        """The same error, saying where in the config the secret was asked for."""
        return SecretUnavailable(self.name, self.detail, location)


def no_secrets(name: str) -> str:
    """The lookup of a renderer given no secrets."""
    raise SecretUnavailable(name, "no secrets are given where this config is rendered")


def is_secret(ref: Reference) -> bool:
    return ref.root == SECRETS_NAMESPACE


def resolve(ref: Reference, data: Mapping[str, Any], secrets: SecretLookup) -> Any:
    """A secret from ``secrets``, anything else from the run's ``data``."""
    if ref.root != SECRETS_NAMESPACE:
        return ref.resolve_in(data)
    problem = _shape_problem(ref)
    if problem is not None:  # validation refuses it; this is for a config compiled without it
        raise TemplateError(problem)
    return secrets(str(ref.path[0]))


def _shape_problem(ref: Reference) -> str | None:
    if len(ref.path) == 1 and isinstance(ref.path[0], str):
        return None
    return f"'{ref.text}': a secret is read as exactly '{SECRET_FORM}', one name and nothing after it"


def config_problem(node_id: str, ref: Reference) -> str | None:
    """What is wrong with secret reference ``ref`` in the config of node ``node_id``, if anything."""
    problem = _shape_problem(ref)
    return None if problem is None else f"{problem} (node '{node_id}')"


def condition_problem(node_id: str, ref: Reference) -> str:
    return (
        f"'{ref.text}': a condition cannot read a secret: the values it reads are shown in the "
        f"node's skip reason and the run's history (node '{node_id}')"
    )


def output_problem(ref: Reference) -> str:
    return f"'{ref.text}': the workflow's output cannot read a secret: it is stored with the run"


def node_secret_problems(
    node_id: str, node_path: str, config: CompiledConfig, condition: Condition | None
) -> list[Problem]:
    """Every misplaced or malformed secret reference of one node, at the JSON path of its string."""
    problems = []
    for ref, path in zip(config.references, config.reference_paths, strict=True):
        if is_secret(ref) and (problem := config_problem(node_id, ref)) is not None:
            problems.append(Problem(path, problem))
    for ref in () if condition is None else condition.references:
        if is_secret(ref):
            problems.append(Problem(f"{node_path}.when", condition_problem(node_id, ref)))
    return problems


def output_problems(output: CompiledConfig) -> list[Problem]:
    """A secret reference anywhere in the workflow's ``output``, at the JSON path of its string."""
    return [
        Problem(path, output_problem(ref))
        for ref, path in zip(output.references, output.reference_paths, strict=True)
        if is_secret(ref)
    ]
