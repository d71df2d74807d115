"""Errors of the domain layer. Adapters and services translate them, never the reverse."""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base of every error the domain raises."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a definition or an input, located by a JSON path such as
    ``$.dag.nodes[2].dependencies[0]``."""

    path: str
    message: str
    limit: str | None = None
    """The ``Limits`` field this problem exceeds, if it is about a limit (e.g. ``max_nodes``)."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidDefinition(DomainError):
    """A workflow definition was refused; ``problems`` lists every reason at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"invalid workflow definition ({len(problems)} problem(s)):\n{lines}")


class InvalidInput(DomainError):
    """The input given to a run was refused."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class TemplateError(DomainError):
    """A template could not be parsed or could not be resolved against the run's data."""


class ConditionError(DomainError):
    """A ``when`` condition could not be parsed, or could not be evaluated on the values it read.

    ``offset``: where in the condition's text the problem is (0-based), when it has a place.
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        super().__init__(message)


class NotFound(DomainError):
    """A definition or run that was asked for does not exist."""

    def __init__(self, kind: str, identifier: str) -> None:
        self.kind = kind
        self.identifier = identifier
        super().__init__(f"{kind} '{identifier}' not found")


class BackendError(DomainError):
    """A port's adapter failed. Adapters raise subclasses of this, translated from driver errors."""


class BackendUnavailable(BackendError):
    """The backend behind a port cannot be reached."""


class RunNotActive(DomainError):
    """A task of a run that is no longer running (it was cancelled): the task must not start."""

    def __init__(self, run_id: str, status: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(f"workflow run '{run_id}' is {status}")


class DefinitionAlreadyExists(DomainError):
    """A definition was added under an id a stored one already has (an idempotent registration
    repeated)."""

    def __init__(self, definition_id: str) -> None:
        self.definition_id = definition_id
        super().__init__(f"workflow definition '{definition_id}' already exists")


class RunAlreadyExists(DomainError):
    """A run was added under an id that a stored run already has (an idempotent start repeated)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"workflow run '{run_id}' already exists")
