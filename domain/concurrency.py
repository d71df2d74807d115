"""Global concurrency limits: ``"concurrency_key"`` on a node (a template, e.g.
``"tenant-{{ workflow.input.tenant }}"``) names a pool of slots shared by every run and every worker;
at most its limit of attempts with that key run at once, the others wait for a slot, first come
first served.

The limit is the node's ``concurrency_limit`` (default 1), unless the setting ``CONCURRENCY_LIMITS``
names the rendered key. The slots are held by the worker around the handler call (``ConcurrencySlots``
port): they are a resource across runs, not a rule of one run, so the run aggregate knows nothing of
them; a slot whose worker died is freed when its lease lapses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.errors import Problem
from domain.rendering import CompiledConfig, compile_config
from domain.secret_refs import SECRETS_NAMESPACE

DEFAULT_LIMIT = 1
_KEY = "key"


@dataclass(frozen=True, slots=True)
class ConcurrencySpec:
    key: CompiledConfig
    """``{"key": <the concurrency_key>}``, compiled: rendered per attempt with the config's data."""
    limit: int = DEFAULT_LIMIT

    def render_key(self, data: Mapping[str, Any]) -> str:
        """The attempt's key; raises ``TemplateError`` as a config does."""
        value = self.key.render(data)[_KEY]
        return value if isinstance(value, str) else str(value)

    def limit_of(self, key: str, overrides: Mapping[str, int]) -> int:
        return overrides.get(key, self.limit)


def compile_concurrency(
    key: str | None, limit: int | None, path: str, node_id: str
) -> tuple[ConcurrencySpec | None, list[Problem]]:
    """The node's ``ConcurrencySpec`` (None without a key), and the problems of its fields."""
    if key is None:
        if limit is None:
            return None, []
        message = f"'concurrency_limit' needs a 'concurrency_key' (node '{node_id}')"
        return None, [Problem(f"{path}.concurrency_limit", message)]
    compiled, problems = compile_config({_KEY: key}, f"{path}.concurrency_key", label="concurrency_key")
    located = [Problem(f"{path}.concurrency_key", f"{p.message} (node '{node_id}')") for p in problems]
    located.extend(
        Problem(
            f"{path}.concurrency_key",
            f"'{ref.text}': a concurrency key cannot read a secret (node '{node_id}')",
        )
        for ref in compiled.references
        if ref.root == SECRETS_NAMESPACE
    )
    return ConcurrencySpec(compiled, DEFAULT_LIMIT if limit is None else limit), located
