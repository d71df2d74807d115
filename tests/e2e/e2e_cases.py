"""Every command the end-to-end tests run, by key, so that the session fixture can start them together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from definitions import named_workflow as workflow
from definitions import node_with as node
from e2e_cli import EXAMPLES

USER_INPUT = {"user_id": "u-123"}
USER_INPUT_JSON = json.dumps(USER_INPUT)


def example(name: str) -> str:
    return str(EXAMPLES / f"{name}.json")


def load_example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


# -- valid runs ----------------------------------------------------------------------------------

BACKOFF_DEFINITION = workflow(
    "backoff",
    node("input", "input"),
    node(
        "flaky",
        "call_external_service",
        ["input"],
        config={"url": "https://example.com/flaky", "delay_seconds": 0.05, "fail_attempts": 2},
        retry_policy={"max_attempts": 3, "initial_backoff_seconds": 0.3, "backoff_multiplier": 2},
    ),
    node("output", "output", ["flaky"]),
)


def scenario_commands(workdir: Path) -> dict[str, tuple[str, ...]]:
    (workdir / "user_input.json").write_text(USER_INPUT_JSON, encoding="utf-8")
    (workdir / "backoff.json").write_text(json.dumps(BACKOFF_DEFINITION), encoding="utf-8")
    return {
        "a_json": ("run", example("scenario_a_linear"), "--input", USER_INPUT_JSON, "--json"),
        "b_json": ("run", example("scenario_b_fan_out_fan_in"), "--input", USER_INPUT_JSON, "--json"),
        "c_json": (
            "run",
            example("scenario_c_full"),
            "--input-file",
            str(workdir / "user_input.json"),
            "--workers",
            "3",
            "--json",
        ),
        "a_human": ("run", example("scenario_a_linear"), "--input", USER_INPUT_JSON),
        "retries_json": ("run", example("retries_and_failure"), "--json"),
        "retries_human": ("run", example("retries_and_failure")),
        "backoff_json": ("run", str(workdir / "backoff.json"), "--json"),
        "validate_c": ("validate", example("scenario_c_full")),
        "typed_bad_input": ("run", example("typed_input"), "--input", '{"user_id": 5, "language": "es"}'),
    }


# -- invalid definitions -------------------------------------------------------------------------

CYCLE_ROTATIONS = ("a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c")

# case -> (definition, substrings the error output must contain, naming the offending node)
INVALID_DEFINITIONS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "duplicate_id": (
        workflow(
            "dup",
            node("input", "input"),
            node("fetch", "call_llm_service", ["input"]),
            node("fetch", "call_llm_service", ["input"]),
        ),
        ["$.dag.nodes[2].id", "duplicate node id 'fetch'"],
    ),
    "unknown_dependency": (
        workflow("unknown_dep", node("input", "input"), node("report", "output", ["input", "ghost"])),
        ["$.dag.nodes[1].dependencies[1]", "node 'report' depends on unknown node 'ghost'"],
    ),
    "self_dependency": (
        workflow("self_dep", node("input", "input"), node("loop", "output", ["input", "loop"])),
        ["$.dag.nodes[1].dependencies[1]", "node 'loop' depends on itself"],
    ),
    "cycle": (
        # a runs after c, b after a, c after b: a -> b -> c -> a.
        workflow(
            "cycle",
            node("input", "input"),
            node("a", "call_llm_service", ["input", "c"]),
            node("b", "call_llm_service", ["a"]),
            node("c", "call_llm_service", ["b"]),
        ),
        ["dependency cycle:"],
    ),
    "template_reads_non_ancestor": (
        workflow(
            "non_ancestor",
            node("input", "input"),
            node("left", "call_llm_service", ["input"], config={"prompt": "left"}),
            node("right", "call_llm_service", ["input"], config={"prompt": "about {{ left.response }}"}),
        ),
        ["$.dag.nodes[2].config", "reads node 'left', which is not an ancestor of 'right'"],
    ),
    "unknown_handler": (
        workflow("unknown_handler", node("input", "input"), node("fetch", "no_such_handler", ["input"])),
        ["$.dag.nodes[1].handler", "node 'fetch' uses unknown handler 'no_such_handler'"],
    ),
    "reserved_name": (
        workflow("reserved", node("input", "input"), node("workflow", "output", ["input"])),
        ["$.dag.nodes[1].id", "'workflow' is a reserved name"],
    ),
    "misspelt_key": (
        workflow("misspelt", node("input", "input"), node("fetch", "call_llm_service", ["input"], timeout=5)),
        ["$.dag.nodes[1].timeout", 'unknown key "timeout"; did you mean "timeout_seconds"? (node \'fetch\')'],
    ),
}
COMMANDS = ("validate", "run")


def invalid_key(case: str, command: str) -> str:
    return f"invalid:{case}:{command}"


def invalid_commands(workdir: Path) -> dict[str, tuple[str, ...]]:
    commands = {}
    for case, (definition, _) in INVALID_DEFINITIONS.items():
        path = workdir / f"{case}.json"
        path.write_text(json.dumps(definition), encoding="utf-8")
        for command in COMMANDS:
            extra = ("--input", USER_INPUT_JSON) if command == "run" else ()
            commands[invalid_key(case, command)] = (command, str(path), *extra)
    return commands


# -- usage errors (run with the work directory as cwd, so file names stay short) -----------------

MISSING = "a_workflow_definition_that_does_not_exist_anywhere_on_this_disk"

# case -> (arguments, the one message expected on stderr after "error: ")
USAGE_ERRORS: dict[str, tuple[tuple[str, ...], str]] = {
    # A name long enough that the message passes 80 columns: it must still be one line.
    "missing_file": (("run", f"{MISSING}.json"), f"{MISSING}.json: no such file"),
    "malformed_file": (("run", "malformed.json"), "malformed.json is not valid JSON"),
    "malformed_input": (
        ("run", example("scenario_a_linear"), "--input", '{"user_id": '),
        "--input is not valid JSON",
    ),
    "non_object_input": (
        ("run", example("scenario_a_linear"), "--input", "[1, 2]"),
        "run input must be a JSON object, got an array",
    ),
    "both_inputs": (
        ("run", example("scenario_a_linear"), "--input", "{}", "--input-file", "user_input.json"),
        "give either --input or --input-file, not both",
    ),
}


def usage_key(case: str) -> str:
    return f"usage:{case}"


def usage_commands(workdir: Path) -> dict[str, tuple[str, ...]]:
    (workdir / "malformed.json").write_text('{"name": "broken", "dag": {"nodes": [', encoding="utf-8")
    return {usage_key(case): args for case, (args, _) in USAGE_ERRORS.items()}
