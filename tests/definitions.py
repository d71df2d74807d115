"""Workflow definitions in the seed's JSON shape, one line each: the builders of every test suite, and
of the distributed benchmark's workloads (``bench.workloads`` imports this as ``tests.definitions``).

``node`` and ``workflow`` build everything. The suites had builders of their own, each called its own
way; they now import these, under the names their call sites already use, so that not one call
site (nor what it sends) changed:

- unit (``domain_builders``): ``node(id, deps, config=...)``, handler ``noop``; ``workflow(*nodes)``;
- contract: ``node`` with ``handler=handler_named_after_id`` (``h-<id>``), workflows named
  ``contract``;
- integration, e2e: ``node_with(id, handler, deps, **node_keys)``; integration workflows named
  ``integration``, e2e ``named_workflow(name, *nodes)``;
- api, distributed, faults: ``node_configured(id, handler, deps, **config)``; api
  ``named_workflow(name, *nodes)``, distributed and faults ``workflow_of(name, nodes)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import EllipsisType
from typing import Any

type Handler = str | Callable[[str], str]
"""A handler name, or a function of the node id that gives it."""


def handler_named_after_id(node_id: str) -> str:
    """``h-<id>``: every node its own handler (the contract suite registers none of them)."""
    return f"h-{node_id}"


def node(
    node_id: str,
    deps: Iterable[str] | None = (),
    config: dict[str, Any] | EllipsisType | None = None,
    *,
    handler: Handler = "noop",
    **node_keys: Any,
) -> dict[str, Any]:
    """A node; ``config`` defaults to ``{}`` (``...`` leaves the key out, for validation tests);
    ``node_keys`` (``retry_policy``, ``timeout_seconds``, ...) are added as given."""
    raw: dict[str, Any] = {
        "id": node_id,
        "handler": handler(node_id) if callable(handler) else handler,
        "dependencies": list(deps or ()),
    }
    if config is not ...:
        raw["config"] = {} if config is None else config
    raw.update(node_keys)
    return raw


def node_with(
    node_id: str, handler: str, deps: Iterable[str] | None = None, **node_keys: Any
) -> dict[str, Any]:
    """``node`` with the handler second; keywords are keys of the node (``config=``, ``retry_policy=``)."""
    return node(node_id, deps, handler=handler, **node_keys)


def node_configured(
    node_id: str, handler: str, deps: Iterable[str] | None = None, **config: Any
) -> dict[str, Any]:
    """``node`` with the handler second; keywords are its config (``delay_seconds=2``)."""
    return node(node_id, deps, handler=handler, config=config)


def workflow(*nodes: dict[str, Any], name: str = "wf") -> dict[str, Any]:
    return {"name": name, "dag": {"nodes": list(nodes)}}


def named_workflow(name: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    return workflow(*nodes, name=name)


def workflow_of(name: str, nodes: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return workflow(*nodes, name=name)


# -- shapes --------------------------------------------------------------------------------------------


def diamond(*, name: str = "diamond", handler: Handler = "noop", **a_keys: Any) -> dict[str, Any]:
    """a -> (b, c) -> d; ``a_keys`` are added to node a (e.g. ``retry_policy``)."""
    return workflow(
        node("a", handler=handler, **a_keys),
        node("b", ["a"], handler=handler),
        node("c", ["a"], handler=handler),
        node("d", ["b", "c"], handler=handler),
        name=name,
    )


def chain(length: int, *, handler: Handler = "noop") -> dict[str, Any]:
    """n0 -> n1 -> ... -> n<length-1>, named ``chain-<length>``."""
    nodes = [node("n0", handler=handler)]
    nodes += [node(f"n{i}", [f"n{i - 1}"], handler=handler) for i in range(1, length)]
    return workflow(*nodes, name=f"chain-{length}")


def fan_out_in(total: int, *, handler: Handler = "noop") -> dict[str, Any]:
    """root -> p0 .. p<total-3> in parallel -> sink: ``total`` nodes, named ``fan-<total>``."""
    middle = [f"p{i}" for i in range(total - 2)]
    nodes = [
        node("root", handler=handler),
        *(node(p, ["root"], handler=handler) for p in middle),
        node("sink", middle, handler=handler),
    ]
    return workflow(*nodes, name=f"fan-{total}")
