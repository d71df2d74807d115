"""A node's config compiled once per definition, rendered once per attempt.

Compilation finds every template and records where it is; rendering rebuilds only the parts of the
config that hold templates, so a config without templates costs one shallow copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from domain.errors import Problem, TemplateError
from domain.secret_refs import SECRETS_NAMESPACE, SecretLookup, SecretUnavailable, no_secrets, resolve
from domain.templates import Reference, StringTemplate, parse_string


class _Renderer(Protocol):
    def render(self, data: Mapping[str, Any], secrets: SecretLookup) -> Any: ...


@dataclass(frozen=True, slots=True)
class _StringRenderer:
    template: StringTemplate
    location: str

    def render(self, data: Mapping[str, Any], secrets: SecretLookup) -> Any:
        try:
            return self.template.render(lambda ref: resolve(ref, data, secrets))
        except SecretUnavailable as missing:
            raise missing.at(self.location) from None
        except TemplateError as error:
            raise TemplateError(f"{self.location}: {error}") from None


@dataclass(frozen=True, slots=True)
class _DictRenderer:
    constant: dict[str, Any]
    dynamic: tuple[tuple[str, _Renderer], ...]

    def render(self, data: Mapping[str, Any], secrets: SecretLookup) -> Any:
        rendered = dict(self.constant)
        for key, renderer in self.dynamic:
            rendered[key] = renderer.render(data, secrets)
        return rendered


@dataclass(frozen=True, slots=True)
class _ListRenderer:
    items: tuple[Any, ...]
    dynamic: tuple[tuple[int, _Renderer], ...]

    def render(self, data: Mapping[str, Any], secrets: SecretLookup) -> Any:
        rendered = list(self.items)
        for index, renderer in self.dynamic:
            rendered[index] = renderer.render(data, secrets)
        return rendered


@dataclass(frozen=True, slots=True)
class CompiledConfig:
    source: dict[str, Any]
    renderer: _Renderer | None = None
    references: tuple[Reference, ...] = ()

    roots: frozenset[str] = frozenset()
    """Names the config reads from run data: node ids and possibly the workflow namespace (never
    the secrets, which are not run data)."""

    reference_paths: tuple[str, ...] = ()
    """The JSON path of the string holding each of ``references``, in the same order."""

    def render(self, data: Mapping[str, Any], secrets: SecretLookup = no_secrets) -> dict[str, Any]:
        """Return a fresh config with every template replaced; ``data`` maps roots to values and
        ``secrets`` gives each ``{{ secrets.NAME }}`` (the worker's; nobody else has any)."""
        if self.renderer is None:
            return dict(self.source)
        rendered: dict[str, Any] = self.renderer.render(data, secrets)
        return rendered


@dataclass(slots=True)
class _Compiler:
    root_path: str
    label: str
    problems: list[Problem] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    reference_paths: list[str] = field(default_factory=list)

    def compile(self, value: Any, path: str) -> _Renderer | None:
        if isinstance(value, str):
            return self._string(value, path)
        if isinstance(value, dict):
            return self._dict(value, path)
        if isinstance(value, list):
            return self._list(value, path)
        return None

    def _string(self, value: str, path: str) -> _Renderer | None:
        try:
            template = parse_string(value)
        except TemplateError as error:
            self.problems.append(Problem(path, str(error)))
            return None
        if template is None:
            return None
        self.references.extend(template.references)
        self.reference_paths.extend(path for _ in template.references)
        return _StringRenderer(template, self.label + path.removeprefix(self.root_path))

    def _dict(self, value: dict[str, Any], path: str) -> _Renderer | None:
        dynamic = []
        for key, item in value.items():
            renderer = self.compile(item, f"{path}.{key}")
            if renderer is not None:
                dynamic.append((key, renderer))
        return _DictRenderer(value, tuple(dynamic)) if dynamic else None

    def _list(self, value: list[Any], path: str) -> _Renderer | None:
        dynamic = []
        for index, item in enumerate(value):
            renderer = self.compile(item, f"{path}[{index}]")
            if renderer is not None:
                dynamic.append((index, renderer))
        return _ListRenderer(tuple(value), tuple(dynamic)) if dynamic else None


def compile_config(
    config: dict[str, Any], path: str, label: str = "config"
) -> tuple[CompiledConfig, list[Problem]]:
    """Compile ``config`` found at JSON path ``path``; problems name each bad template's path.
    ``label`` begins the location a rendering error names (``config.url``)."""
    compiler = _Compiler(path, label)
    renderer = compiler.compile(config, path)
    references = tuple(compiler.references)
    roots = frozenset(ref.root for ref in references if ref.root != SECRETS_NAMESPACE)
    compiled = CompiledConfig(config, renderer, references, roots, tuple(compiler.reference_paths))
    return compiled, compiler.problems
