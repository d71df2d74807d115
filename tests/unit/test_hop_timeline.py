"""``bench.hop_timeline``: the steps of a chain hop read from monitored commands (given lines, no timing)."""

from __future__ import annotations

import pytest

from bench.hop_steps import STEPS, parse


def _hop_lines(node: int, at: float) -> list[str]:
    """The commands of one hop of node ``n<node>``, ``at`` being its task's XADD (seconds)."""
    me, parent = f"n{node}", f"n{node - 1}"
    return [
        f"{at:.6f} lua: XADD p:{{s1}}:tasks * r run d def n {me} a 1 h noop",
        f"{at + 0.0004:.6f} tcp: XREADGROUP GROUP workers w COUNT 63 BLOCK 1000 STREAMS p:{{s0}}:tasks",
        f"{at + 0.0005:.6f} tcp: HGET p:{{s1}}:run:run status",
        f"{at + 0.0005:.6f} tcp: HMGET p:{{s1}}:run:run:out {parent}",
        f"{at + 0.0010:.6f} tcp: XADD p:{{s1}}:events * k ok r run n {me} a 1 t {at + 0.0009:.6f} w w s "
        f"{at + 0.0002:.6f} o {{}}",
        f"{at + 0.0015:.6f} tcp: EVALSHA abc 7 p:{{s1}}:events",
    ]


def test_each_step_of_a_hop_is_read_from_the_commands_and_the_workers_stamps() -> None:
    lines = [*_hop_lines(1, 100.0), *_hop_lines(2, 100.002), *_hop_lines(3, 100.004)]
    steps = parse(lines).steps_ms()
    # n3's next task never came: the hops of n1 and n2 are whole.
    assert all(len(values) == 2 for values in steps.values())
    expected = [0.2, 0.3, 0.4, 0.1, 0.5, 0.5, 2.0]
    for step, value in zip(STEPS, expected, strict=True):
        assert steps[step] == [pytest.approx(value, abs=1e-3)] * 2, step


def test_commands_of_other_shapes_are_ignored() -> None:
    steps = parse(["1.0 tcp: PING", "1.1 tcp: XADD p:{s0}:events * k failed r run n n1"]).steps_ms()
    assert all(values == [] for values in steps.values())
