"""``bench.http_targets``: the HTTP path benchmark's ratios and verdicts, from given figures (no timing)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.http_targets import floor_multiples, ratios, speed_ratio, targets, verdicts


def _round(engine: dict[str, float], http: dict[str, dict[str, float]], floor: float) -> dict[str, Any]:
    def row(workload: str, value: float) -> dict[str, float]:
        key = (
            "e2e_ms_per_node"
            if workload == "W1"
            else "runs_per_second"
            if workload == "W3"
            else "nodes_per_second"
        )
        return {key: value}

    return {
        "floor_ms": {"engine": floor, "http": floor},
        "engine": {name: row(name, value) for name, value in engine.items()},
        "http": {
            style: {name: row(name, value) for name, value in rows.items()} for style, rows in http.items()
        },
    }


def test_a_ratio_is_a_speed_ratio_whichever_way_the_figure_reads() -> None:
    assert speed_ratio("W1", http=4.0, engine=2.0) == 0.5  # ms per hop: twice the time, half the speed
    assert speed_ratio("W2", http=1_000.0, engine=2_000.0) == 0.5  # nodes/s


def test_ratios_are_taken_within_each_round() -> None:
    rounds = [
        _round({"W2": 2_000.0}, {"sse": {"W2": 1_800.0}}, 0.5),
        _round({"W2": 1_000.0}, {"sse": {"W2": 1_000.0}}, 0.5),  # a slow round for both sides
    ]
    assert ratios(rounds, "sse", "W2") == [0.9, 1.0]
    assert ratios(rounds, "poll", "W2") == [None, None]


def test_targets_follow_the_issue() -> None:
    found = {(t.style, t.workload): t.at_least for t in targets(["poll", "sse"], ["W1", "W2", "W3", "W4"])}
    assert found == {
        ("poll", "W1"): 0.8,
        ("poll", "W3"): 0.8,
        ("poll", "W4"): 0.7,
        ("sse", "W1"): 0.9,
        ("sse", "W2"): 0.9,
        ("sse", "W3"): 0.9,
        ("sse", "W4"): 0.9,
    }


def test_verdicts_judge_the_median_ratio_and_the_floor_multiple() -> None:
    rounds = [
        _round({"W1": 2.0}, {"wait": {"W1": 2.0}}, 1.0),  # 1.0x, hop 2.0 floors
        _round({"W1": 2.0}, {"wait": {"W1": 4.0}}, 0.5),  # 0.5x, hop 4.0 floors
        _round({"W1": 2.0}, {"wait": {"W1": 2.1}}, 1.0),  # 0.95x, hop 2.0 floors
    ]
    rows = {row["target"]: row for row in verdicts(rounds, ["wait"], ["W1"])}
    wait = rows["W1 wait >= 0.9x in-engine"]
    assert wait["met"] is True
    spread = wait["spread"]
    assert (spread.low, spread.high, spread.count) == (0.5, 1.0, 3)
    assert spread.median == pytest.approx(2.0 / 2.1)
    floor = rows["W1 in-engine hop <= 2.5x floor"]
    assert floor["spread"].median == 2.0 and floor["spread"].high == 4.0
    assert floor["met"] is True
    assert floor_multiples(rounds, "http", "wait") == [2.0, 8.0, 2.1]


def test_a_workload_that_failed_is_not_measured() -> None:
    rounds = [_round({"W4": 2_000.0}, {}, 0.5)]
    rounds[0]["http"]["sse"] = {"W4": {"error": "1 run(s) did not complete"}}
    [row] = verdicts(rounds, ["sse"], ["W4"])
    assert row["met"] is None and row["spread"] is None
