"""Turn raw JSON into a ``WorkflowPlan``, reporting every problem at once with its JSON path.

Graph checks are O(V + E). The one exception is a template that reads an ancestor which is not a
direct dependency: the ancestors of that node are walked once (O(V + E) for each such node).
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

from pydantic import ValidationError

from domain.concurrency import ConcurrencySpec, compile_concurrency
from domain.conditions import Condition, parse_condition
from domain.definition import NodeDefinition, WorkflowDefinition
from domain.errors import ConditionError, InvalidDefinition, InvalidInput, Problem, TemplateError
from domain.input_schema import checked_input, schema_problems
from domain.limits import DEFAULT_LIMITS, Limits, json_size, nesting_depth
from domain.map_spec import (
    MAP_NAMES,
    MapSpec,
    compile_map,
    map_read_problems,
    map_reference_problem,
    map_sources,
    split_condition,
)
from domain.messages import DEFAULT_QUEUE
from domain.plain_nodes import SchemaNode, quick_definition
from domain.plan import NodeSpec, WorkflowPlan
from domain.rendering import CompiledConfig, compile_config
from domain.retry import NO_RETRY
from domain.run_policy import compile_output, with_run_policy
from domain.secret_refs import SECRETS_NAMESPACE, is_secret, node_secret_problems
from domain.templates import ONLY_INPUT, WORKFLOW_NAMESPACE, Reference
from domain.unknown_keys import unknown_key_message

RESERVED_IDS = frozenset({WORKFLOW_NAMESPACE, SECRETS_NAMESPACE})
EMPTY_CONFIG = CompiledConfig({})
"""The compiled empty config, shared by every node without one (most nodes of big definitions):
nothing changes a compiled config, and rendering one hands out a copy of its source."""


def _node_path(index: int) -> str:
    return f"$.dag.nodes[{index}]"


def build_plan(
    raw: Any,
    limits: Limits = DEFAULT_LIMITS,
    handlers: Collection[str] | None = None,
    *,
    default_attempt_timeout_seconds: float | None = None,
) -> WorkflowPlan:
    """Validate ``raw`` and compile it; raise ``InvalidDefinition`` listing every problem.

    ``handlers``: the names a worker knows; when given, unknown handlers are problems too.
    ``default_attempt_timeout_seconds``: the deadline of the attempts of nodes that set no timeout
    (a setting of the engine, not part of the definition).
    """
    with _collector_paused():
        return _build_plan(raw, limits, handlers, default_attempt_timeout_seconds, quick=True)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Compiling a big definition makes several objects per node, none in a reference cycle; the
    cyclic garbage collector would walk the growing heap again and again meanwhile (about 40 % of
    the time at 100,000 nodes) and find nothing. Reference counting still frees everything."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build_plan(
    raw: Any,
    limits: Limits,
    handlers: Collection[str] | None,
    default_attempt_timeout_seconds: float | None = None,
    *,
    quick: bool,
) -> WorkflowPlan:
    """``quick``: take ``domain.plain_nodes``'s way when it accepts the definition (False only in
    the test that holds both ways to the same result)."""
    raw_nodes = _check_shape(raw, limits)
    input_schema = raw.get("input_schema")
    # Not a JSON object: the model refuses it, with the others.
    input_schema_problems = (
        schema_problems(input_schema, "$.input_schema", limits) if isinstance(input_schema, dict) else []
    )
    checked = quick_definition(raw, raw_nodes) if quick else None
    nodes: Sequence[SchemaNode]
    if checked is None:
        try:
            definition = WorkflowDefinition.model_validate(raw)
        except ValidationError as error:
            problems = _pydantic_problems(error, raw)
            problems.extend(_graph_problems_of_valid_nodes(raw_nodes, limits, handlers))
            problems.extend(input_schema_problems)
            raise InvalidDefinition(problems) from None
        nodes = definition.dag.nodes
    else:
        definition, nodes = checked.head, checked.nodes
    checker = _GraphChecker(nodes, range(len(nodes)), limits, handlers)
    checker.check()
    output, output_problems = compile_output(definition.output, checker.index)
    problems = checker.problems + output_problems + input_schema_problems
    if problems:
        raise InvalidDefinition(problems)
    source = definition.model_dump(mode="json", exclude_none=True) if checked is None else checked.source()
    plan = checker.plan(definition.name, source)
    plan = with_run_policy(plan, definition, output, default_attempt_timeout_seconds)
    if map_problems := map_read_problems(plan):
        raise InvalidDefinition(map_problems)
    return plan


def _check_shape(raw: Any, limits: Limits) -> list[Any]:
    """Refuse at once what cannot be checked further; return the raw node list (maybe empty)."""
    if not isinstance(raw, dict):
        kind = _json_kind(raw)
        raise InvalidDefinition([Problem("$", f"a workflow must be a JSON object, got {kind}")])
    dag = raw.get("dag")
    nodes = dag.get("nodes") if isinstance(dag, dict) else None
    if not isinstance(nodes, list):
        return []
    if len(nodes) > limits.max_nodes:
        raise InvalidDefinition(
            [
                Problem(
                    "$.dag.nodes",
                    f"{len(nodes)} nodes exceed the limit of {limits.max_nodes}",
                    "max_nodes",
                )
            ]
        )
    return nodes


def _graph_problems_of_valid_nodes(
    raw_nodes: list[Any], limits: Limits, handlers: Collection[str] | None
) -> list[Problem]:
    """Graph problems among the nodes that are well formed, so that one report lists everything.

    Ids of malformed nodes still count as known, so no dependency on them is called unknown.
    """
    valid: list[NodeDefinition] = []
    positions: list[int] = []
    elsewhere: set[str] = set()
    for position, item in enumerate(raw_nodes):
        try:
            valid.append(NodeDefinition.model_validate(item))
            positions.append(position)
        except ValidationError:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                elsewhere.add(item["id"])
    checker = _GraphChecker(valid, positions, limits, handlers, elsewhere)
    checker.check()
    return checker.problems


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def _pydantic_problems(error: ValidationError, raw: Mapping[str, Any]) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = item["loc"]
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        message = _message(item["type"], item["msg"], loc)
        node_id = _raw_node_id(raw, loc)
        if node_id is not None:
            message += f" (node '{node_id}')"
        problems.append(Problem(path, message))
    return problems


def _message(kind: str, default: str, loc: tuple[int | str, ...]) -> str:
    if kind == "missing":
        return f"missing required field '{loc[-1]}'"
    if kind == "extra_forbidden":
        return unknown_key_message(loc)
    return default.removeprefix("Value error, ")


def _raw_node_id(raw: Mapping[str, Any], loc: tuple[int | str, ...]) -> str | None:
    if len(loc) < 3 or loc[:2] != ("dag", "nodes") or not isinstance(loc[2], int):
        return None
    try:
        node_id = raw["dag"]["nodes"][loc[2]]["id"]
    except (KeyError, IndexError, TypeError):
        return None
    return node_id if isinstance(node_id, str) else None


class _GraphChecker:
    """Checks over well-formed nodes; ``positions`` are their places in the submitted list."""

    def __init__(
        self,
        nodes: Sequence[SchemaNode],
        positions: Sequence[int],
        limits: Limits,
        handlers: Collection[str] | None,
        known_elsewhere: Collection[str] = (),
    ) -> None:
        self.nodes = nodes
        self.positions = positions
        self.known_elsewhere = known_elsewhere
        self.limits = limits
        self.handlers = handlers
        self.problems: list[Problem] = []
        self.index: dict[str, int] = {}
        self.parents: list[Sequence[int]] = [() for _ in self.nodes]
        self.configs: list[CompiledConfig] = []
        self.conditions: list[Condition | None] = []
        self.maps: list[MapSpec | None] = []
        self.concurrency: list[ConcurrencySpec | None] = []
        self._children_of: list[list[int]] | None = None
        self._listed_after_parents = True
        """Whether every node comes after all its dependencies in the list (so there is no cycle)."""
        self._empty_config_fits = (
            nesting_depth({}) <= limits.max_nesting_depth and json_size({}) <= limits.max_config_bytes
        )

    def _path(self, index: int) -> str:
        return _node_path(self.positions[index])

    def check(self) -> None:
        self._index_ids()
        edges = 0
        index = self.index
        all_parents = self.parents
        handlers = self.handlers
        empty_config_fits = self._empty_config_fits
        configs_append = self.configs.append
        conditions_append = self.conditions.append
        maps_append = self.maps.append
        concurrency_append = self.concurrency.append
        for position, node in enumerate(self.nodes):
            dependencies = node.dependencies
            edges += len(dependencies)
            found = tuple(map(index.get, dependencies))
            if (
                None in found
                or node.id in dependencies
                or (len(dependencies) > 1 and len(set(dependencies)) < len(dependencies))
            ):
                self._check_dependencies(position, node)  # something to report: the careful way
                self._listed_after_parents = False
            else:
                parents = cast(tuple[int, ...], found)  # no None in it
                all_parents[position] = parents
                if parents and max(parents) > position:
                    self._listed_after_parents = False
            if handlers is not None and node.handler not in handlers:
                self._unknown_handler(position, node)
            if not node.config and empty_config_fits:
                configs_append(EMPTY_CONFIG)  # what compiling {} gives
            else:
                self._check_config(self._path(position), node)
            if node.when is None:
                conditions_append(None)
            else:
                self._check_condition(self._path(position), node)
            if node.for_each is None and node.max_concurrency is None and node.tolerated_failures is None:
                maps_append(None)  # what compile_map gives then
            else:
                self._check_map(position, node)
            if node.concurrency_key is None and node.concurrency_limit is None:
                concurrency_append(None)  # what compile_concurrency gives then
            else:
                self._check_concurrency(position, node)
        if edges > self.limits.max_edges:
            self._add(
                "$.dag.nodes",
                f"{edges} dependencies exceed the limit of {self.limits.max_edges}",
                "max_edges",
            )
        self._check_cycles()
        self._check_template_roots()

    def _add(self, path: str, message: str, limit: str | None = None) -> None:
        self.problems.append(Problem(path, message, limit))

    def _index_ids(self) -> None:
        for position, node in enumerate(self.nodes):
            if node.id in RESERVED_IDS:
                self._add(f"{self._path(position)}.id", f"'{node.id}' is a reserved name")
            first = self.index.setdefault(node.id, position)
            if first != position:
                self._add(
                    f"{self._path(position)}.id",
                    f"duplicate node id '{node.id}' (first defined at {self._path(first)})",
                )

    def _unknown_handler(self, position: int, node: SchemaNode) -> None:
        known = ", ".join(sorted(self.handlers or ()))
        self._add(
            f"{self._path(position)}.handler",
            f"node '{node.id}' uses unknown handler '{node.handler}' (known: {known})",
        )

    def _check_dependencies(self, position: int, node: SchemaNode) -> None:
        path = self._path(position)
        seen: set[str] = set()
        parents: list[int] = []
        for slot, dependency in enumerate(node.dependencies):
            where = f"{path}.dependencies[{slot}]"
            if dependency == node.id:
                self._add(where, f"node '{node.id}' depends on itself")
            elif dependency in seen:
                self._add(where, f"node '{node.id}' lists dependency '{dependency}' twice")
            elif dependency not in self.index:
                if dependency not in self.known_elsewhere:
                    self._add(where, f"node '{node.id}' depends on unknown node '{dependency}'")
            else:
                parents.append(self.index[dependency])
            seen.add(dependency)
        self.parents[position] = parents

    def _check_map(self, position: int, node: SchemaNode) -> None:
        spec, problems = compile_map(
            node.for_each, node.max_concurrency, node.tolerated_failures, self._path(position), node.id
        )
        self.problems.extend(problems)
        self.maps.append(spec)
        if node.for_each is not None and node.heartbeat_timeout_seconds is not None:
            # A map's items are attempts of their own, whose heartbeats are not recorded yet.
            self._add(
                f"{self._path(position)}.heartbeat_timeout_seconds",
                f"node '{node.id}': heartbeat_timeout_seconds is not supported on a map node (for_each) yet",
            )

    def _check_concurrency(self, position: int, node: SchemaNode) -> None:
        limited, problems = compile_concurrency(
            node.concurrency_key, node.concurrency_limit, self._path(position), node.id
        )
        self.problems.extend(problems)
        self.concurrency.append(limited)

    def _check_condition(self, path: str, node: SchemaNode) -> None:
        condition = None
        if node.when is not None:
            try:
                condition = parse_condition(node.when)
            except (ConditionError, TemplateError) as error:
                self._add(f"{path}.when", f"{error} (node '{node.id}')")
        self.conditions.append(condition)

    def _check_config(self, path: str, node: SchemaNode) -> None:
        depth = nesting_depth(node.config)
        if depth > self.limits.max_nesting_depth:
            self._add(
                f"{path}.config",
                f"config of node '{node.id}' nests {depth} levels, over the limit of "
                f"{self.limits.max_nesting_depth}",
                "max_nesting_depth",
            )
            # Never serialise or compile (recursively) what was refused: hostile nesting must not
            # crash the validator.
            self.configs.append(CompiledConfig(node.config))
            return
        size = json_size(node.config)
        if size > self.limits.max_config_bytes:
            self._add(
                f"{path}.config",
                f"config of node '{node.id}' is {size} bytes, over the limit of "
                f"{self.limits.max_config_bytes}",
                "max_config_bytes",
            )
            self.configs.append(CompiledConfig(node.config))
            return
        compiled, problems = compile_config(node.config, f"{path}.config")
        self.problems.extend(Problem(p.path, f"{p.message} (node '{node.id}')") for p in problems)
        self.configs.append(compiled)

    def _check_cycles(self) -> None:
        """Kahn's algorithm; whatever it cannot order lies on or behind a cycle, which is named."""
        if self._listed_after_parents:
            return  # every edge points back in the list: no cycle can close
        children = self._children()
        waiting = [len(p) for p in self.parents]
        ready = deque(i for i, count in enumerate(waiting) if count == 0)
        ordered = 0
        while ready:
            current = ready.popleft()
            ordered += 1
            for child in children[current]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
        if ordered == len(self.nodes):
            return
        for cycle in _find_cycles(self.parents, [i for i, c in enumerate(waiting) if c > 0]):
            names = " -> ".join(self.nodes[i].id for i in cycle)
            self._add(
                f"{self._path(cycle[-1])}.dependencies",
                f"dependency cycle: {names} (each node depends on the one before it)",
            )

    def _children(self) -> list[list[int]]:
        if self._children_of is None:
            children: list[list[int]] = [[] for _ in self.nodes]
            for child, parents in enumerate(self.parents):
                for parent in parents:
                    children[parent].append(child)
            self._children_of = children
        return self._children_of

    def _check_template_roots(self) -> None:
        for position, (node, config) in enumerate(zip(self.nodes, self.configs, strict=True)):
            condition = self.conditions[position]
            mapped = self.maps[position]
            limited = self.concurrency[position]
            if not config.references and condition is None and mapped is None and limited is None:
                continue  # reads no node's output (nor any secret)
            direct = {self.nodes[p].id for p in self.parents[position]}
            ancestors: set[str] | None = None
            located = [(ref, ".config") for ref in config.references]
            if condition is not None:
                located.extend((ref, ".when") for ref in condition.references)
            if mapped is not None:
                located.append((mapped.source, ".for_each"))
            if limited is not None:
                located.extend((ref, ".concurrency_key") for ref in limited.key.references)
            self.problems.extend(node_secret_problems(node.id, self._path(position), config, condition))
            for ref, where in located:
                if ref.root in self.known_elsewhere or is_secret(ref):
                    continue  # a malformed node is reported on its own, a secret just above
                problem = map_reference_problem(node.id, mapped is not None, ref, where, self.index)
                if problem == "":
                    continue  # the map's own item or index
                problem = problem or self._reference_problem(node.id, ref)
                if problem is None and ref.root not in direct and ref.root != WORKFLOW_NAMESPACE:
                    if ancestors is None:
                        ancestors = self._ancestors(position)
                    if ref.root not in ancestors:
                        problem = (
                            f"'{ref.text}' reads node '{ref.root}', which is not an ancestor of "
                            f"'{node.id}'; add '{ref.root}' to its dependencies"
                        )
                if problem is not None:
                    self._add(f"{self._path(position)}{where}", problem)

    def _reference_problem(self, node_id: str, ref: Reference) -> str | None:
        root = ref.root
        if ref.reads_run_data_outside_input:
            return f"node '{node_id}': {ONLY_INPUT}"
        if root == WORKFLOW_NAMESPACE:
            return None
        if root == node_id:
            return f"node '{node_id}' cannot read its own output in a template"
        if root not in self.index:
            return f"node '{node_id}' reads unknown node '{root}' in a template"
        return None

    def _ancestors(self, position: int) -> set[str]:
        seen: set[int] = set()
        stack = list(self.parents[position])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.parents[current])
        return {self.nodes[i].id for i in seen}

    def plan(self, name: str, source: dict[str, Any]) -> WorkflowPlan:
        children = self._children()
        parents = self.parents
        configs = self.configs
        conditions = self.conditions
        maps = self.maps
        concurrency = self.concurrency
        specs: list[NodeSpec] = []
        append = specs.append
        for position, node in enumerate(self.nodes):
            config = configs[position]
            # A map's condition that reads its item is checked per item (``MapSpec.item_condition``).
            mapped, condition = split_condition(maps[position], conditions[position])
            limited = concurrency[position]
            append(
                NodeSpec(
                    id=node.id,
                    index=position,
                    handler=node.handler,
                    parents=tuple(parents[position]),
                    children=tuple(children[position]),
                    parent_ids=tuple(node.dependencies),
                    config=config,
                    retry=NO_RETRY if node.retry_policy is None else node.retry_policy.compiled(),
                    timeout_seconds=node.timeout_seconds,
                    reads=_reads(node, config, mapped, limited),
                    trigger_rule=node.trigger_rule,
                    condition=condition,
                    optional=node.optional,
                    heartbeat_timeout_seconds=node.heartbeat_timeout_seconds,
                    map=mapped,
                    concurrency=limited,
                    queue=node.queue or DEFAULT_QUEUE,
                )
            )
        roots = tuple(position for position, spec_parents in enumerate(parents) if not spec_parents)
        compiled = tuple(specs)
        return WorkflowPlan(name, compiled, self.index, roots, source, map_sources=map_sources(compiled))


def _reads(
    node: SchemaNode, config: CompiledConfig, mapped: MapSpec | None, limited: ConcurrencySpec | None
) -> frozenset[str]:
    """Roots whose data an attempt needs: parents, template roots (of its config, its concurrency
    key, a map's condition checked per item) and the workflow namespace (a map's item and index are
    not read from the store; its list is)."""
    reads = frozenset((*node.dependencies, *config.roots, WORKFLOW_NAMESPACE))
    if limited is not None:
        reads |= limited.key.roots
    if mapped is None:
        return reads
    if mapped.item_condition is not None:
        reads |= {ref.root for ref in mapped.item_condition.references}
    return (reads - MAP_NAMES) | {mapped.source.root}


def _find_cycles(parents: Sequence[Sequence[int]], candidates: list[int]) -> list[list[int]]:
    """One cycle per group of stuck nodes, found by an iterative DFS along dependency edges.

    Returned in execution order: each node depends on the one before it, the first repeated last.
    """
    state: dict[int, int] = {}  # 1 on the DFS stack, 2 finished
    cycles: list[list[int]] = []
    for start in candidates:
        if start in state:
            continue
        stack: list[tuple[int, int]] = [(start, 0)]
        on_path: list[int] = []
        while stack:
            current, next_slot = stack.pop()
            if next_slot == 0:
                state[current] = 1
                on_path.append(current)
            if next_slot < len(parents[current]):
                stack.append((current, next_slot + 1))
                parent = parents[current][next_slot]
                if state.get(parent) == 1:
                    loop = on_path[on_path.index(parent) :]
                    cycles.append([*reversed(loop), loop[-1]])
                elif parent not in state:
                    stack.append((parent, 0))
            else:
                state[current] = 2
                on_path.pop()
    return cycles


def validate_input(raw: Any, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """A run's input must be a JSON object within the size limit (before the definition is read)."""
    if not isinstance(raw, dict):
        raise InvalidInput([Problem("$", f"run input must be a JSON object, got {_json_kind(raw)}")])
    size = json_size(raw)
    if size > limits.max_input_bytes:
        raise InvalidInput(
            [
                Problem(
                    "$",
                    f"run input is {size} bytes, over the limit of {limits.max_input_bytes}",
                    "max_input_bytes",
                )
            ]
        )
    return raw


def typed_input(plan: WorkflowPlan, run_input: dict[str, Any]) -> dict[str, Any]:
    """``run_input`` (already through ``validate_input``) checked against the definition's
    ``input_schema``, if it has one: then a copy with the schema's defaults filled in."""
    schema = plan.source.get("input_schema")
    return run_input if schema is None else checked_input(schema, run_input)
