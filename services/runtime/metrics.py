"""The engine's Prometheus metrics, defined once (prometheus-client's default registry).

Names follow Prometheus conventions: units in the name, ``_total`` for counters. Labels are bounded
sets (a workflow name, a handler name, a status, an outcome, a stream of the configured shards);
never a run id. The stream adapter counts what only it sees (``adapters.redis.stream_metrics``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNS_STARTED = Counter("dag_runs_started_total", "Runs created, by workflow name.", ["workflow"])
RUNS_FINISHED = Counter(
    "dag_runs_finished_total",
    "Runs that ended, by workflow name and final status (applied by this process's orchestrator).",
    ["workflow", "status"],
)
NODES_DISPATCHED = Counter("dag_node_dispatches_total", "Node attempts queued for a worker.")
RETRIES_SCHEDULED = Counter("dag_node_retries_total", "Failed attempts that scheduled another attempt.")
ATTEMPTS = Counter(
    "dag_node_attempts_total",
    "Attempts a worker of this process finished, by handler and outcome (succeeded, failed, timed_out).",
    ["handler", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "dag_node_attempt_duration_seconds",
    "How long an attempt ran on its worker, by handler and outcome.",
    ["handler", "outcome"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
TIMEOUTS = Counter(
    "dag_node_timeouts_total", "Attempts that ran past their node's timeout_seconds, by handler.", ["handler"]
)
BATCH_SIZE = Histogram(
    "dag_orchestrator_batch_size_events",
    "Events an orchestrator applied in one batch.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
)
APPLY_SECONDS = Histogram(
    "dag_orchestrator_apply_seconds",
    "Time to apply one batch of events (decide and commit).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
WORKER_SLOTS = Gauge("dag_worker_slots", "Attempts the workers of this process may run at once.")
WORKER_SLOTS_IN_USE = Gauge(
    "dag_worker_slots_in_use", "Tasks the workers of this process hold (received, not yet acknowledged)."
)
STREAM_LENGTH = Gauge("dag_stream_length_entries", "Entries in a stream.", ["stream"])
STREAM_PENDING = Gauge(
    "dag_stream_pending_entries", "Entries delivered to a consumer and not yet acknowledged.", ["stream"]
)
STREAM_LAG = Gauge(
    "dag_stream_lag_entries", "Entries of a stream not yet delivered to its consumer group.", ["stream"]
)
