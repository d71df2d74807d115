"""Scoped API tokens: a token has a name (recorded on the runs it starts and cancels) and scopes.

``read``: every GET; ``run``: start, cancel (and any other POST on runs); ``admin``: register
definitions. A plain token (the ``API_TOKENS`` list of strings) has every scope.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class Scope(StrEnum):
    READ = "read"
    RUN = "run"
    ADMIN = "admin"


ALL_SCOPES = frozenset(Scope)


class ApiToken(BaseModel):
    """One accepted bearer token: ``{"name": "ci", "token": "...", "scopes": ["read", "run"]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    token: SecretStr
    scopes: frozenset[Scope] = ALL_SCOPES


def api_token_of(item: object, position: int) -> object:
    """A plain string is a token of every scope, named by its position (``token-1``, ...)."""
    if isinstance(item, str | SecretStr):
        return {"name": f"token-{position + 1}", "token": item, "scopes": list(ALL_SCOPES)}
    return item


def scope_for(method: str, path: str, prefix: str) -> Scope:
    """The scope a request needs: registering definitions is ``admin``, any other write ``run``,
    reading ``read``. Decided by method and path before the route runs (and before the body is read)."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return Scope.READ
    if path in (f"{prefix}/definitions", f"{prefix}/workflow"):
        return Scope.ADMIN
    return Scope.RUN
