"""Invalid definitions and usage errors: exit 2, a message naming the problem, never a traceback."""

from __future__ import annotations

import pytest
from e2e_cases import (
    COMMANDS,
    CYCLE_ROTATIONS,
    INVALID_DEFINITIONS,
    USAGE_ERRORS,
    invalid_key,
    usage_key,
)
from e2e_cli import CliBatch, CliResult

EXIT_INVALID = 2


def assert_refused(result: CliResult) -> None:
    assert result.returncode == EXIT_INVALID, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert result.stdout == "", result.describe()  # nothing was validated or run
    assert result.stderr.startswith("error: "), result.describe()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", list(INVALID_DEFINITIONS))
def test_invalid_definition_exits_2_naming_the_offending_node(cli: CliBatch, case: str, command: str) -> None:
    result = cli[invalid_key(case, command)]
    assert_refused(result)

    text = result.stderr_text
    assert "error: invalid workflow definition: $.dag.nodes[" in text
    for expected in INVALID_DEFINITIONS[case][1]:
        assert expected in text, result.describe()


@pytest.mark.parametrize("command", COMMANDS)
def test_cycle_is_named_in_arrow_form(cli: CliBatch, command: str) -> None:
    text = cli[invalid_key("cycle", command)].stderr_text
    assert any(f"dependency cycle: {cycle}" in text for cycle in CYCLE_ROTATIONS), text
    assert "input" not in text.split("dependency cycle:")[1]  # only the nodes on the cycle


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_usage_error_exits_2_with_a_clear_message(cli: CliBatch, case: str) -> None:
    result = cli[usage_key(case)]
    assert_refused(result)
    assert USAGE_ERRORS[case][1] in result.stderr_text, result.describe()


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_usage_error_is_one_line(cli: CliBatch, case: str) -> None:
    result = cli[usage_key(case)]
    assert result.returncode == EXIT_INVALID
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.describe()
    assert lines[0].startswith("error: ")
    assert USAGE_ERRORS[case][1] in lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_problem_is_printed_on_one_line(cli: CliBatch, command: str) -> None:
    """Longer than 80 columns: not wrapped when stderr is not a terminal, so it can be grepped."""
    result = cli[invalid_key("unknown_handler", command)]
    assert result.returncode == EXIT_INVALID
    lines = [line for line in result.stderr.splitlines() if "no_such_handler" in line]
    assert len(lines) == 1, result.describe()
    line = lines[0]
    assert line.startswith(
        "error: invalid workflow definition: $.dag.nodes[1].handler: node 'fetch' uses unknown handler "
        "'no_such_handler'"
    )
    assert "(known: " in line and "call_external_service" in line and line.endswith(")")
    assert len(line) > 80
