"""What operators see of a real deployment (api, orchestrator and worker processes on Redis):
the Prometheus metrics each process serves after a run, JSON logs that name what they are about,
and one trace per run whose spans come from all three processes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest
from distributed_support import Cluster, node, workflow
from otlp_receiver import OtlpReceiver, ReceivedSpan
from prometheus_client.parser import text_string_to_metric_families

from bench.processes import LOOPBACK, free_port
from services.runtime.tracing import run_trace_context

type Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> tuple[Samples, float]:
    """Every sample of the metrics at ``url`` by (name, labels), and how long the scrape took."""
    started = time.monotonic()
    response = httpx.get(url, timeout=5.0)
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, took


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.timeout(90)
async def test_metrics_after_a_run_count_runs_attempts_and_retries(cluster: Callable[..., Cluster]) -> None:
    engine = cluster()
    orchestrator_port, worker_port = free_port(), free_port()
    api = engine.start("api")
    orchestrator = engine.start("orchestrator", METRICS_PORT=str(orchestrator_port), METRICS_HOST=LOOPBACK)
    worker = engine.start("worker", METRICS_PORT=str(worker_port), METRICS_HOST=LOOPBACK)
    for process in (api, orchestrator, worker):
        await engine.wait_serving(process)
    definition = workflow(
        "observed",
        [
            node("first", "noop"),
            node("flaky", "call_external_service", ["first"], fail_attempts=1, delay_seconds=0),
            node("last", "noop", ["flaky"]),
        ],
    )
    definition["dag"]["nodes"][1]["retry_policy"] = {"max_attempts": 2, "initial_backoff_seconds": 0.05}
    async with engine.client() as client:
        created = await client.post("/api/definitions", json=definition)
        assert created.status_code == 201, created.text
        started = await client.post("/api/runs", json={"definition_id": created.json()["definition_id"]})
        run_id = started.json()["run_id"]
        await engine.wait_final([run_id], within=30)
        assert (await client.get(f"/api/runs/{run_id}")).json()["status"] == "COMPLETED"

    api_samples, _ = scrape(f"{engine.api_url}/api/metrics")
    assert value(api_samples, "dag_runs_started_total", workflow="observed") == 1

    ours, took = scrape(f"http://{LOOPBACK}:{orchestrator_port}/metrics")
    assert took < 1.0
    assert value(ours, "dag_runs_finished_total", workflow="observed", status="COMPLETED") == 1
    assert value(ours, "dag_node_dispatches_total") == 4  # first, flaky twice, last
    assert value(ours, "dag_node_retries_total") == 1
    assert value(ours, "dag_orchestrator_batch_size_events_count") >= 1
    assert value(ours, "dag_orchestrator_apply_seconds_count") == value(
        ours, "dag_orchestrator_batch_size_events_count"
    )
    event_streams = [labels for name, labels in ours if name == "dag_stream_length_entries"]
    assert len(event_streams) == 2 * 4, "events and tasks streams of the 4 shards"
    assert all(not any("run" in key for key, _ in labels) for _, labels in ours), "no run id label"

    theirs, _ = scrape(f"http://{LOOPBACK}:{worker_port}/metrics")
    flaky = {"handler": "call_external_service"}
    assert value(theirs, "dag_node_attempts_total", outcome="failed", **flaky) == 1
    assert value(theirs, "dag_node_attempts_total", outcome="succeeded", **flaky) == 1
    assert value(theirs, "dag_node_attempts_total", handler="noop", outcome="succeeded") == 2
    assert value(theirs, "dag_node_attempt_duration_seconds_count", outcome="succeeded", **flaky) == 1
    assert value(theirs, "dag_worker_slots") == 64
    assert value(theirs, "dag_worker_slots_in_use") == 0
    engine.check_all_alive()


LOGGING_HANDLERS = """
import logging

from services.worker import handler

log = logging.getLogger("observed.handlers")


@handler("says_async")
async def says_async(ctx):
    log.warning("async handler at work")
    return {}


@handler("says_sync")
def says_sync(ctx):
    log.warning("sync handler at work")
    return {}
"""


@pytest.mark.timeout(90)
async def test_json_logs_parse_line_by_line_and_carry_the_ids(cluster: Callable[..., Cluster]) -> None:
    engine = cluster(LOG_FORMAT="json", LOG_LEVEL="INFO")
    (engine.workdir / "observed_handlers.py").write_text(LOGGING_HANDLERS, encoding="utf-8")
    modules = "distributed_test_handlers,observed_handlers"
    api = engine.start("api", WORKER_HANDLER_MODULES=modules)
    orchestrator = engine.start("orchestrator")
    worker = engine.start("worker", WORKER_HANDLER_MODULES=modules)
    for process in (api, orchestrator, worker):
        await engine.wait_serving(process)
    definition = workflow(
        "logged",
        [node("a", "says_async"), node("b", "says_sync", ["a"])],
    )
    async with engine.client() as client:
        created = await client.post("/api/definitions", json=definition)
        started = await client.post("/api/runs", json={"definition_id": created.json()["definition_id"]})
        run_id = started.json()["run_id"]
        await engine.wait_final([run_id], within=30)
    engine.stop_all()

    records = {}
    for process in (api, orchestrator, worker):
        lines = [line for line in process.log().splitlines() if line.strip()]
        assert lines, f"{process.name} logged nothing"
        parsed = [json.loads(line) for line in lines]  # every line is one JSON object
        for record in parsed:
            assert {"time", "level", "logger", "message"} <= set(record), record
            assert record["time"].endswith("Z")
        records[process.name] = parsed
    worker_records = records[worker.name]
    by_message = {record["message"]: record for record in worker_records}
    for message, node_id in (("async handler at work", "a"), ("sync handler at work", "b")):
        record = by_message[message]
        assert record["run_id"] == run_id
        assert record["node_id"] == node_id
        assert record["attempt"] == 1
        assert record["worker_id"].endswith("-worker1")
    finished = [r for r in records[orchestrator.name] if r["message"].startswith(f"run {run_id} finished")]
    assert finished and finished[0]["run_id"] == run_id
    assert all("run_id" not in r for r in records[api.name] if r["message"].startswith("started "))


def _all_arrived(spans: list[ReceivedSpan], runs: int, spans_per_run: int) -> bool:
    """Every span of the runs, and the request span each run's root links to (the processes export
    in batches of their own, in any order)."""
    ours = [span for span in spans if "dag.run_id" in span.attributes]
    request_traces = {span.trace_id for span in spans if span.name == "POST /api/runs"}
    linked = {link[0] for span in ours for link in span.links}
    return len(ours) >= runs * spans_per_run and len(linked) == runs and linked <= request_traces


@pytest.mark.timeout(90)
async def test_one_trace_per_run_with_a_span_per_attempt_across_processes(
    cluster: Callable[..., Cluster],
) -> None:
    with OtlpReceiver() as receiver:
        engine = cluster(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_BSP_SCHEDULE_DELAY="100",
        )
        await engine.start_many(("api",), ("orchestrator",), ("worker",))
        definition = workflow(
            "traced",
            [
                node("first", "noop"),
                node("flaky", "call_external_service", ["first"], fail_attempts=1, delay_seconds=0),
            ],
        )
        definition["dag"]["nodes"][1]["retry_policy"] = {"max_attempts": 2, "initial_backoff_seconds": 0.05}
        async with engine.client() as client:
            created = await client.post("/api/definitions", json=definition)
            body = {"definition_id": created.json()["definition_id"]}
            run_ids = [(await client.post("/api/runs", json=body)).json()["run_id"] for _ in range(2)]
            await engine.wait_final(run_ids, within=30)

        # Per run: its root (api), 3 attempts (worker: first, flaky twice), its end (orchestrator).
        deadline = time.monotonic() + 20
        while not _all_arrived(receiver.snapshot(), runs=2, spans_per_run=5):
            assert time.monotonic() < deadline, f"spans missing: {receiver.snapshot()}"
            await asyncio.sleep(0.1)
        spans = receiver.snapshot()
        engine.stop_all()  # before the receiver goes: their exporters would retry against nothing

    # FastAPI traces each request on its own; the engine's spans are those about a run.
    request_traces = {span.trace_id for span in spans if span.name == "POST /api/runs"}
    spans = [span for span in spans if "dag.run_id" in span.attributes]
    assert {span.trace_id for span in spans} == {f"{run_trace_context(r)[0]:032x}" for r in run_ids}
    for run_id in run_ids:
        trace_number, root_number = run_trace_context(run_id)
        trace_id, root_id = f"{trace_number:032x}", f"{root_number:016x}"
        mine = [span for span in spans if span.trace_id == trace_id]
        [root] = [span for span in mine if span.parent_span_id == ""]
        assert (root.service, root.name, root.span_id) == ("dag-api", "run traced", root_id)
        assert root.attributes["dag.run_id"] == run_id
        [(request_trace, _)] = root.links  # (a span of) the request that started the run
        assert request_trace in request_traces
        attempts = sorted(
            (span.attributes["dag.node_id"], span.attributes["dag.attempt"], span.attributes["dag.outcome"])
            for span in mine
            if span.name.startswith("attempt ")
        )
        assert attempts == [("first", 1, "succeeded"), ("flaky", 1, "failed"), ("flaky", 2, "succeeded")]
        for span in mine:
            if span is not root:
                assert span.parent_span_id == root_id, span
        workers = {span.service for span in mine if span.name.startswith("attempt ")}
        assert workers == {"dag-worker"}
        assert all(
            span.attributes["dag.worker_id"].endswith("-worker1")
            for span in mine
            if "dag.worker_id" in span.attributes
        )
        [finished] = [span for span in mine if span.name == "run finished"]
        assert (finished.service, finished.attributes["dag.status"]) == ("dag-orchestrator", "COMPLETED")
