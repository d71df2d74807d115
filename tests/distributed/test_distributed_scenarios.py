"""The seed's scenarios on a real deployment: 1 API, 2 orchestrators, 2 workers, 1 redis-server.

Each scenario is submitted over HTTP and triggered 20 times at once. Every run must complete with
its own data (no run reads another's input or outputs), and every node must be dispatched and
completed exactly once, which is checked both in the API's view and in the task streams.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
from distributed_support import Cluster, gather_limited, load_example, results, status
from http_support import submit, trigger

RUNS_PER_SCENARIO = 20
SIMULATED_DELAY_SECONDS = 0.05
SCENARIOS = ("scenario_a_linear", "scenario_b_fan_out_fan_in", "scenario_c_full")
USER = re.compile(r"u-\d+")


def quick_copy(name: str) -> dict[str, Any]:
    """The example as is, except that the simulated services answer in 0.05 s instead of their
    default (2 s for call_external_service), to keep the test short; data flow is unchanged."""
    definition = copy.deepcopy(load_example(name))
    for spec in definition["dag"]["nodes"]:
        if spec["handler"] in ("call_external_service", "call_llm_service"):
            spec["config"]["delay_seconds"] = SIMULATED_DELAY_SECONDS
    return definition


def check_scenario_a(outputs: dict[str, Any], user: str) -> None:
    assert outputs["get_user"]["url"].endswith(f"/{user}")
    prompt = outputs["summarize_user"]["prompt"]
    assert set(USER.findall(prompt)) == {user}, prompt
    assert outputs["output"] == {"summarize_user": outputs["summarize_user"]}


def check_scenario_b(outputs: dict[str, Any], user: str) -> None:
    assert outputs["get_user"]["url"].endswith(f"/{user}")
    assert outputs["get_comments"]["url"].endswith(f"?user={user}")
    assert outputs["output"] == {
        "get_user": outputs["get_user"],
        "get_comments": outputs["get_comments"],
    }


def check_scenario_c(outputs: dict[str, Any], user: str) -> None:
    prompt = outputs["final_report"]["prompt"]
    assert f"Write a report for user {user}." in prompt, prompt
    assert set(USER.findall(prompt)) == {user}, prompt  # nothing of another run leaked in
    assert "{{" not in prompt and "}}" not in prompt, prompt
    assert outputs["output"] == {"final_report": outputs["final_report"]}


CHECKS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "scenario_a_linear": check_scenario_a,
    "scenario_b_fan_out_fan_in": check_scenario_b,
    "scenario_c_full": check_scenario_c,
}


@pytest.mark.timeout(120)
async def test_seed_scenarios_run_exactly_once_across_replicas(cluster: Callable[..., Cluster]) -> None:
    engine = cluster()
    await engine.start_many(("api",), ("orchestrator",), ("orchestrator",), ("worker",), ("worker",))
    async with engine.client() as client:
        definitions = {name: await submit(client, quick_copy(name)) for name in SCENARIOS}
        # run id -> (scenario, user id); every trigger of every scenario at once.
        planned = [(name, f"u-{n}") for name in SCENARIOS for n in range(RUNS_PER_SCENARIO)]
        run_ids = await asyncio.gather(
            *(trigger(client, definitions[name], {"user_id": user}) for name, user in planned)
        )
        assert len(set(run_ids)) == len(planned)
        runs = dict(zip(run_ids, planned, strict=True))

        await engine.wait_final(run_ids, within=60)

        views = await gather_limited(status(client, run_id) for run_id in run_ids)
        outputs = await gather_limited(results(client, run_id) for run_id in run_ids)

    for view, result in zip(views, outputs, strict=True):
        name, user = runs[view["instance_id"]]
        assert view["state"] == "COMPLETED", view
        assert view["workflow_id"] == definitions[name]
        for node_id, node_view in view["nodes"].items():
            assert node_view["status"] == "COMPLETED", (name, node_id, node_view)
            assert node_view["attempts"] == 1, (name, node_id, node_view)
            assert node_view["error"] is None, (name, node_id, node_view)
        assert result["status"] == "COMPLETED"
        assert set(result["results"]) == set(view["nodes"])
        assert result["results"]["input"] == {"input_payload": {"user_id": user}}
        CHECKS[name](result["results"], user)

    # Exactly one task entry per node of every run, in all the task streams of this deployment.
    dispatched = engine.task_counts()
    expected = {(view["instance_id"], node_id) for view in views for node_id in view["nodes"]}
    assert set(dispatched) == expected
    duplicates = {key: count for key, count in dispatched.items() if count != 1}
    assert duplicates == {}, f"nodes dispatched more than once: {duplicates}"
    assert engine.pending_tasks() == 0
    engine.check_all_alive()
