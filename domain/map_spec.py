"""Maps: a node with ``for_each`` runs once per item of a list known only at run time.

- ``"for_each": "{{ node.path }}"`` (or ``{{ workflow.input.path }}``) names the list; it is read once,
  when the node it reads records its output (or when the run starts, for the input), and only its
  length is kept by the run: the items themselves are read by the workers that run them.
- In the node's config and condition, ``{{ item }}`` is the item (``{{ item.key }}`` reads into it)
  and ``{{ index }}`` its position. They are the map's own names: a map node cannot also read nodes
  called ``item`` or ``index``. A condition that reads them is checked for each item
  (``MapSpec.item_condition``); one that does not, once for the node.
- ``max_concurrency`` caps the items in flight (an item waiting for its retry holds its place);
  ``tolerated_failures`` (a count or a percentage) lets the node complete with that many items
  failed for good. One failure more and the node fails at once, its items in flight cancelled.
- Each item has the node's retry policy and timeout. An item is addressed as ``node#index`` (its
  key) in tasks, events, timers and history; node ids cannot contain ``#``.
- The node's output is the list of its items' outputs in order (a failed item tolerated stands as
  ``{"error": {"type", "message"}}``); stores keep the items apart and give the list when a node
  reads it (``MapOutput``), so no message ever carries the whole list.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domain.conditions import Condition
from domain.errors import Problem, TemplateError
from domain.templates import Reference, parse_string

if TYPE_CHECKING:
    from domain.plan import NodeSpec as PlanNode
    from domain.plan import WorkflowPlan

ITEM, INDEX = "item", "index"
MAP_NAMES = frozenset({ITEM, INDEX})
DEFAULT_MAX_CONCURRENCY = 1000
"""Items of a map in flight when its node does not say: what one commit dispatches at most."""
ITEM_SEPARATOR = "#"
ATTEMPTS_PER_LIFE = 100
"""An item's attempt numbers in the n-th life of its map (a redrive starts a new one) begin after
``(n - 1) * ATTEMPTS_PER_LIFE``: a retry policy has at most 100 attempts, so numbers never repeat
(old signals and staged outputs of an item never match a new attempt)."""
NOT_A_LIST = "ForEachError"
ITEMS_FAILED = "ItemsFailed"
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


@dataclass(frozen=True, slots=True)
class Tolerance:
    """Failed items a map node may have and still complete: ``count``, or ``percent`` of them."""

    count: int = 0
    percent: float | None = None

    def allows(self, failed: int, total: int) -> bool:
        if self.percent is None:
            return failed <= self.count
        return failed <= math.floor(total * self.percent / 100 + 1e-9)

    def describe(self) -> str:
        return f"{self.count}" if self.percent is None else f"{self.percent:g}%"


@dataclass(frozen=True, slots=True)
class MapSpec:
    source: Reference
    """The list the node maps over."""
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    tolerance: Tolerance = Tolerance()
    item_condition: Condition | None = None
    """The node's ``when`` when it reads ``item`` or ``index``: checked for each item, by the worker
    about to run it (only it has the item), before the handler; an item whose condition is false
    ends SKIPPED (its place in the output null), one whose condition cannot be evaluated FAILED."""


def split_condition(
    spec: MapSpec | None, condition: Condition | None
) -> tuple[MapSpec | None, Condition | None]:
    """A map's condition that reads its item goes with the items (``MapSpec.item_condition``); any
    other stays the node's, checked once before the map starts."""
    if spec is None or condition is None or not any(ref.root in MAP_NAMES for ref in condition.references):
        return spec, condition
    return dataclasses.replace(spec, item_condition=condition), None


@dataclass(frozen=True, slots=True)
class MapOutput:
    """The output of a completed map node, as a run holds it: the list of its ``count`` items'
    outputs, which the store keeps item by item (``item_key``) and assembles for whoever reads it."""

    count: int


def item_key(node_id: str, index: int) -> str:
    return f"{node_id}{ITEM_SEPARATOR}{index}"


def split_key(key: str) -> tuple[str, int | None]:
    """``("node", 3)`` for the key ``node#3``; ``("node", None)`` for a node's own id."""
    node_id, separator, index = key.partition(ITEM_SEPARATOR)
    if not separator or not index.isdigit():
        return key, None
    return node_id, int(index)


def compile_map(
    for_each: str | None, max_concurrency: int | None, tolerated: int | str | None, path: str, node_id: str
) -> tuple[MapSpec | None, list[Problem]]:
    """The node's ``MapSpec`` (None when it has no ``for_each``), and the problems of its fields."""
    if for_each is None:
        misplaced = [
            Problem(f"{path}.{name}", f"'{name}' applies only to a map: node '{node_id}' has no 'for_each'")
            for name, value in (("max_concurrency", max_concurrency), ("tolerated_failures", tolerated))
            if value is not None
        ]
        return None, misplaced
    problems: list[Problem] = []
    source = _source(for_each, f"{path}.for_each", node_id, problems)
    tolerance = _tolerance(tolerated, f"{path}.tolerated_failures", node_id, problems)
    if source is None or tolerance is None:
        return None, problems
    return MapSpec(source, max_concurrency or DEFAULT_MAX_CONCURRENCY, tolerance), problems


def _source(text: str, path: str, node_id: str, problems: list[Problem]) -> Reference | None:
    expected = (
        f"'for_each' must be one template naming a list, like '{{{{ node.items }}}}' (node '{node_id}')"
    )
    try:
        template = parse_string(text)
    except TemplateError as error:
        problems.append(Problem(path, f"{error} (node '{node_id}')"))
        return None
    if template is None or len(template.parts) != 1 or not isinstance(template.parts[0], Reference):
        problems.append(Problem(path, expected))
        return None
    reference = template.parts[0]
    if reference.root in MAP_NAMES:
        problems.append(Problem(path, f"'for_each' cannot read '{reference.root}' (node '{node_id}')"))
        return None
    return reference


def _tolerance(value: Any, path: str, node_id: str, problems: list[Problem]) -> Tolerance | None:
    if value is None:
        return Tolerance()
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return Tolerance(count=value)
    if isinstance(value, str) and (match := _PERCENT.fullmatch(value.strip())):
        percent = float(match.group(1))
        if percent <= 100:
            return Tolerance(percent=percent)
    problems.append(
        Problem(
            path,
            f"'tolerated_failures' must be a count (0 or more) or a percentage up to 100% like '10%', "
            f"got {value!r} (node '{node_id}')",
        )
    )
    return None


def map_reference_problem(
    node_id: str, is_map: bool, ref: Reference, where: str, node_ids: Collection[str]
) -> str | None:
    """The problem of a reference about maps: "" for a map's own ``item`` or ``index`` in its config
    (fine, and not a node), a message for a misuse, None when maps have nothing to say about it."""
    if ref.root not in MAP_NAMES:
        return None
    if not is_map:
        if ref.root in node_ids:
            return None  # a node that happens to be called so
        return (
            f"node '{node_id}' reads '{ref.root}', which only a map node (one with 'for_each') has; "
            "add 'for_each' or depend on a node of that name"
        )
    if ref.root in node_ids:
        return f"map node '{node_id}' cannot read a node called '{ref.root}': the name is its item's"
    if ref.root == INDEX and ref.path:
        return f"'{ref.text}': '{INDEX}' is a number, there is nothing to read in it (node '{node_id}')"
    return ""


def map_sources(specs: Sequence[PlanNode]) -> dict[str, tuple[int, ...]]:
    """Root -> the map nodes that read their list from it."""
    sources: dict[str, list[int]] = {}
    for spec in specs:
        if spec.map is not None:
            sources.setdefault(spec.map.source.root, []).append(spec.index)
    return {root: tuple(indices) for root, indices in sources.items()}


def map_read_problems(plan: WorkflowPlan) -> list[Problem]:
    """A map node's output is a list the store assembles for the nodes that read it: the run's own
    decisions (conditions, the output mapping) cannot read it."""
    maps = {spec.id for spec in plan.nodes if spec.map is not None}
    if not maps:
        return []
    hint = "read it in a node that depends on the map, and use that node's output"
    problems = [
        Problem(
            f"$.dag.nodes[{spec.index}].when",
            f"'{ref.text}': a condition cannot read map node '{ref.root}'; {hint}",
        )
        for spec in plan.nodes
        if spec.condition is not None
        for ref in spec.condition.references
        if ref.root in maps
    ]
    if plan.output is not None:
        problems.extend(
            Problem("$.output", f"'{ref.text}': the run's output cannot read map node '{ref.root}'; {hint}")
            for ref in plan.output.references
            if ref.root in maps
        )
    return problems
