"""What only the stream adapter sees, counted for Prometheus: entries taken over from a silent
consumer and entries dead-lettered, by kind of stream (``events``, ``tasks``: a bounded label)."""

from __future__ import annotations

from prometheus_client import Counter

RECLAIMED = Counter(
    "dag_stream_reclaimed_entries_total",
    "Stream entries taken over from a consumer that went quiet (after the visibility timeout).",
    ["kind"],
)
DEAD_LETTERED = Counter(
    "dag_dead_letters_total",
    "Stream entries moved to a dead-letter stream (delivered too often, or undecodable).",
    ["kind"],
)
