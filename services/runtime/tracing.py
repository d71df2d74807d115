"""OpenTelemetry traces, off unless the standard ``OTEL_*`` variables ask for them
(``OTEL_TRACES_EXPORTER`` = otlp or console, or an ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``;
``OTEL_SDK_DISABLED=true`` turns them off). Off, nothing here is imported or called on any path.

One run is one trace across the api, orchestrator and worker processes: its W3C trace context is a
function of the run id (``run_trace_context``), which every stream message already carries, so no
message, codec or stored record changes shape, and no process asks another for it. The api records
the root span (``run <workflow>``) when it creates the run; each worker records a span per attempt
(handler, worker, outcome) as a child of it; the orchestrator records the run's end.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

log = logging.getLogger(__name__)

_IDS: ContextVar[tuple[int, int] | None] = ContextVar("dag_trace_ids", default=None)
_state: dict[str, Any] = {}


def configured(env: Mapping[str, str] = os.environ) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters == "none":
        return False
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return bool(exporters or endpoint)


def enabled() -> bool:
    return "tracer" in _state


def run_trace_context(run_id: str) -> tuple[int, int]:
    """(trace id, root span id) of a run's trace: the same in every process."""
    digest = hashlib.sha256(b"dag-workflow-engine run " + run_id.encode()).digest()
    return int.from_bytes(digest[:16]) or 1, int.from_bytes(digest[16:24]) or 1


def traceparent(run_id: str) -> str:
    """The W3C ``traceparent`` of a run's root span (to join the run's trace from outside)."""
    trace_id, span_id = run_trace_context(run_id)
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def configure(service_name: str) -> None:
    """Install the SDK's tracer provider when ``OTEL_*`` asks for traces; else do nothing."""
    if not configured() or enabled():
        return
    from opentelemetry import trace  # noqa: PLC0415 - only when traces are on
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator  # noqa: PLC0415

    class _RunIds(RandomIdGenerator):
        """The ids of a run's root span come from the run id; every other id is random."""

        def generate_trace_id(self) -> int:
            ids = _IDS.get()
            return ids[0] if ids else super().generate_trace_id()

        def generate_span_id(self) -> int:
            ids = _IDS.get()
            return ids[1] if ids else super().generate_span_id()

    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}), id_generator=_RunIds())
    for exporter in _exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _state.update(provider=provider, tracer=provider.get_tracer("dag-workflow-engine"))
    log.info("traces on: service %s", name)


def _exporters() -> list[Any]:
    names = [
        n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",") if n.strip()
    ]
    exporters: list[Any] = []
    for exporter in names:
        if exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            exporters.append(OTLPSpanExporter())
        elif exporter == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter  # noqa: PLC0415

            exporters.append(ConsoleSpanExporter())
        else:
            log.warning("OTEL_TRACES_EXPORTER=%s is not supported here (otlp, console); ignored", exporter)
    return exporters


def shutdown() -> None:
    """Send what is still buffered (on a process's way out)."""
    provider = _state.pop("provider", None)
    _state.pop("tracer", None)
    if provider is not None:
        provider.shutdown()


def _parent(run_id: str) -> Any:
    from opentelemetry import trace  # noqa: PLC0415

    trace_id, span_id = run_trace_context(run_id)
    remote = trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(1))
    return trace.set_span_in_context(trace.NonRecordingSpan(remote))


def run_created(run_id: str, workflow: str, definition_id: str, at: float) -> None:
    """The root span of the run's trace (api), linked to the span of the request that made it (the
    request's own trace: FastAPI traces every request once a tracer provider is set)."""
    from opentelemetry import trace  # noqa: PLC0415
    from opentelemetry.context import Context  # noqa: PLC0415

    request = trace.get_current_span().get_span_context()
    links = [trace.Link(request)] if request.is_valid else []
    token = _IDS.set(run_trace_context(run_id))
    try:
        span = _state["tracer"].start_span(
            f"run {workflow}",
            context=Context(),
            links=links,
            start_time=int(at * 1e9),
            attributes={"dag.run_id": run_id, "dag.workflow": workflow, "dag.definition_id": definition_id},
        )
    finally:
        _IDS.reset(token)
    span.end()


def run_finished(run_id: str, status: str) -> None:
    """The run's end (orchestrator)."""
    span = _state["tracer"].start_span(
        "run finished", context=_parent(run_id), attributes={"dag.run_id": run_id, "dag.status": status}
    )
    span.end()


def attempt_finished(
    *,
    run_id: str,
    node_id: str,
    attempt: int,
    handler: str,
    worker_id: str,
    outcome: str,
    started_at: float | None,
    finished_at: float,
    error: str | None,
) -> None:
    """One attempt of a node, from its start on the worker to its result (worker)."""
    from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

    span = _state["tracer"].start_span(
        f"attempt {node_id}",
        context=_parent(run_id),
        start_time=int((started_at if started_at is not None else finished_at) * 1e9),
        attributes={
            "dag.run_id": run_id,
            "dag.node_id": node_id,
            "dag.attempt": attempt,
            "dag.handler": handler,
            "dag.worker_id": worker_id,
            "dag.outcome": outcome,
        },
    )
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=int(finished_at * 1e9))
