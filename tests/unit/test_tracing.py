"""When traces are on (the standard OTEL_* variables), and the trace context a run id gives."""

from __future__ import annotations

from services.runtime.tracing import configured, run_trace_context, traceparent


def test_traces_are_off_unless_otel_variables_ask_for_them() -> None:
    assert not configured({})
    assert not configured({"OTEL_SERVICE_NAME": "x"})
    assert configured({"OTEL_TRACES_EXPORTER": "otlp"})
    assert configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert configured({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert not configured({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not configured({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})


def test_a_run_id_gives_one_w3c_trace_context_everywhere() -> None:
    trace_id, span_id = run_trace_context("run-1")
    assert run_trace_context("run-1") == (trace_id, span_id)
    assert run_trace_context("run-2")[0] != trace_id
    assert 0 < trace_id < 2**128 and 0 < span_id < 2**64
    assert traceparent("run-1") == f"00-{trace_id:032x}-{span_id:016x}-01"
