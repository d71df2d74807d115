"""Latency distributions, shared by the benchmarks and the HTTP load generator."""

from __future__ import annotations

import math


def distribution_ms(seconds: list[float]) -> dict[str, float | int] | None:
    """Count, median, p90, p99, mean, min and max of ``seconds``, in milliseconds; None if empty.

    Percentiles are nearest-rank; the median is the middle value (the mean of the two middle ones
    for an even count)."""
    if not seconds:
        return None
    values = sorted(value * 1000 for value in seconds)
    count = len(values)

    def rank(fraction: float) -> float:
        return values[max(0, math.ceil(fraction * count) - 1)]

    middle = count // 2
    median = values[middle] if count % 2 else (values[middle - 1] + values[middle]) / 2
    return {
        "count": count,
        "median": median,
        "p90": rank(0.9),
        "p99": rank(0.99),
        "mean": sum(values) / count,
        "min": values[0],
        "max": values[-1],
    }
