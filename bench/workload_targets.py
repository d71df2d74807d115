"""The distributed benchmark's targets (PASS/FAIL per workload) and the Celery figures quoted for scale."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "W1": ("median dispatch hop", "hop_dispatch_ms.median", "<=", 1.0, "ms"),
    "W2": ("throughput", "nodes_per_second", ">=", 5_000.0, "nodes/s"),
    "W3": ("throughput", "runs_per_second", ">=", 500.0, "runs/s"),
    "W4": ("throughput", "nodes_per_second", ">=", 5_000.0, "nodes/s"),
}
CELERY_REFERENCE = {"W1_ms_per_hop": 2.0, "W2_tasks_per_second": 640.0, "W3_runs_per_second": 138.0}
CELERY_TEXT = (
    "reference for scale: Celery 5 on Redis, tuned, 2 prefork workers, on this kind of machine: "
    "W1 2.0 ms per hop, W2 640 tasks/s, W3 138 runs/s"
)


def lookup(row: dict[str, Any], dotted: str) -> Any:
    """``row["a"]["b"]`` for ``"a.b"``; None where a part is missing (a workload without the figure)."""
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, (label, key, op, target, unit) in TARGETS.items():
        if name not in results:
            continue
        value = lookup(results[name], key)
        passed = value is not None and (value <= target if op == "<=" else value >= target)
        rows.append(
            {
                "workload": name,
                "metric": label,
                "key": key,
                "value": value,
                "target": f"{op} {target:g} {unit}",
                "pass": passed,
            }
        )
    return rows
