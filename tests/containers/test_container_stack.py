"""deploy/Dockerfile and docker-compose.yml, built and run for real on podman (marker ``containers``).

Run alone with ``uv run pytest -m containers -n 0`` (other runs leave it out). The
first run on a machine installs podman and builds the stand-in base images (a few minutes); later
runs reuse them. Every HTTP request goes to the port the compose file publishes on 127.0.0.1.
"""

from __future__ import annotations

import copy
import functools
import json
import subprocess
from typing import Any

import httpx
import pytest
from compose_stack import (
    NETWORK,
    ONE_OFF_LABEL,
    Container,
    Stack,
    StackError,
    containers,
    engine_settings,
    wait_for,
)
from podman_host import podman
from standins import ROOT

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1800)]

IMAGE = "dag-workflow-engine:local"  # docker-compose.yml's image name
APP_UID = "10001"  # deploy/Dockerfile's USER
IMAGE_SIZE_LIMIT = 250 * 1024 * 1024  # 205 MiB today
SCENARIOS = {"scenario_a_linear": "u-1", "scenario_b_fan_out_fan_in": "u-2", "scenario_c_full": "u-3"}
FINAL = {"COMPLETED", "FAILED", "CANCELLED"}


# --- the seed's HTTP calls --------------------------------------------------------------------------


def load_example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "examples" / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def submit(api: httpx.Client, definition: dict[str, Any]) -> str:
    response = api.post("/api/workflow", json=definition)
    assert response.status_code == 200, response.text
    execution_id: str = response.json()["execution_id"]
    return execution_id


def trigger(api: httpx.Client, execution_id: str, run_input: dict[str, Any]) -> str:
    response = api.post(f"/api/workflow/trigger/{execution_id}", json={"input": run_input})
    assert response.status_code == 200, response.text
    instance_id: str = response.json()["instance_id"]
    return instance_id


def get_json(api: httpx.Client, path: str) -> dict[str, Any]:
    response = api.get(path)
    assert response.status_code == 200, (path, response.text)
    body: dict[str, Any] = response.json()
    return body


def wait_final(api: httpx.Client, run_ids: list[str], within: float) -> dict[str, dict[str, Any]]:
    def all_final() -> dict[str, dict[str, Any]] | None:
        views = {run_id: get_json(api, f"/api/workflows/{run_id}") for run_id in run_ids}
        return views if all(view["state"] in FINAL for view in views.values()) else None

    return wait_for(f"{len(run_ids)} run(s) to finish", all_final, within)


def workflow(name: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "dag": {"nodes": list(nodes)}}


def node(node_id: str, handler: str, deps: list[str], **config: Any) -> dict[str, Any]:
    return {"id": node_id, "handler": handler, "dependencies": deps, "config": config}


def worker_hosts() -> dict[str, Container]:
    return {container.hostname: container for container in containers("worker")}


def host_of(worker_id: str) -> str:
    """A worker id is ``host-pid-role`` (services.runtime.serving.consumer_name)."""
    return worker_id.split("-", 1)[0]


# --- the image and its containers -------------------------------------------------------------------


def test_every_service_is_up_and_healthy_from_one_small_non_root_image(stack: Stack) -> None:
    running = stack.wait_healthy(within=120)  # each has passed its own check again, from now on
    services = sorted(container.service for container in running)
    assert services == ["api", "orchestrator", "redis", "worker", "worker"], running

    image = json.loads(podman("image", "inspect", IMAGE))[0]
    size = int(image["Size"])
    print(f"image {IMAGE}: {size / 1024 / 1024:.0f} MiB")
    assert size < IMAGE_SIZE_LIMIT, f"image is {size / 1024 / 1024:.0f} MiB"
    assert image["Config"]["User"] == f"{APP_UID}:{APP_UID}"
    for container in running:
        if container.service == "redis":
            continue
        assert podman("inspect", "--format", "{{.Image}}", container.id).strip() == image["Id"]
        assert podman("exec", container.id, "id", "-u").strip() == APP_UID, container.name


def one_off(*args: str, detach: bool = False, **settings: str) -> str:
    """``podman run`` of the stack's image on its network with the orchestrator's settings (and
    ``settings`` over them); docker-compose 1.29's own ``run`` asks for links, which podman refuses."""
    (orchestrator,) = containers("orchestrator")
    env = {**engine_settings(orchestrator), **settings}
    options = [f"--env={name}={value}" for name, value in env.items()]
    options += ["--detach"] if detach else ["--rm"]
    return podman(
        "run", *options, f"--label={ONE_OFF_LABEL}", f"--network={NETWORK}", IMAGE, *args, timeout=300
    )


def test_the_one_off_roles_start_from_the_image(stack: Stack) -> None:
    # web (API and orchestrator in one process) and up (everything in one) boot while the others run.
    servers = {role: one_off(role, detach=True).strip() for role in ("web", "up")}
    try:
        # The compose file's example: one run end to end inside one container, on the embedded backend.
        user = '{"user_id": "u-9"}'
        run_a = ("run", "examples/scenario_a_linear.json", "--input", user, "--json")
        report = json.loads(one_off(*run_a, ENGINE_BACKEND="memory"))
        assert report["status"] == "COMPLETED", report
        assert report["nodes"]["get_user"]["output"]["url"].endswith("/u-9")
        assert "valid: workflow 'scenario_c_full'" in one_off("validate", "examples/scenario_c_full.json")
        one_off("check")  # exit 0: the stack's Redis answers over the network
        for role, name in servers.items():
            wait_for(f"role {role} to serve /api/health", functools.partial(serves_health, name), within=90)
    finally:
        podman("rm", "--force", "--time", "5", *servers.values())


def serves_health(container: str) -> bool | None:
    """True once the container's API answers /api/health inside it (nothing published)."""
    probe = "import urllib.request; urllib.request.urlopen('http://localhost:8000/api/health', timeout=2)"
    args = ["podman", "exec", container, "python", "-c", probe]
    return (
        True if subprocess.run(args, capture_output=True, timeout=60, check=False).returncode == 0 else None
    )


# --- the seed's scenarios -----------------------------------------------------------------------------


def test_seed_scenarios_a_b_c_complete_through_the_published_port(api: httpx.Client) -> None:
    runs = {
        name: trigger(api, submit(api, load_example(name)), {"user_id": user})
        for name, user in SCENARIOS.items()
    }
    views = wait_final(api, list(runs.values()), within=120)

    for name, run_id in runs.items():
        user = SCENARIOS[name]
        view = views[run_id]
        assert view["state"] == "COMPLETED", view
        assert list(view["nodes"]) == [raw["id"] for raw in load_example(name)["dag"]["nodes"]]
        for node_id, node_view in view["nodes"].items():
            assert node_view["status"] == "COMPLETED", (name, node_id, node_view)
        outputs = get_json(api, f"/api/workflows/{run_id}/results")["results"]
        assert outputs["input"] == {"input_payload": {"user_id": user}}
        assert outputs["get_user"]["url"].endswith(f"/{user}")
        assert "{{" not in json.dumps(outputs)
    a = get_json(api, f"/api/workflows/{runs['scenario_a_linear']}/results")["results"]
    assert a["summarize_user"]["prompt"] == f"Summarize this user profile: {a['get_user']['fetched_content']}"
    # (Whether B's two calls overlapped is not asked here: the three runs share two workers that take
    # one task at a time. tests/e2e and tests/distributed check the parallelism.)
    b = get_json(api, f"/api/workflows/{runs['scenario_b_fan_out_fan_in']}/results")["results"]
    assert b["output"] == {"get_user": b["get_user"], "get_comments": b["get_comments"]}
    c = get_json(api, f"/api/workflows/{runs['scenario_c_full']}/results")["results"]
    assert c["final_report"]["prompt"].startswith("Write a report for user u-3.")
    assert c["output"] == {"final_report": c["final_report"]}


# --- scaling, a killed worker, a restarted Redis --------------------------------------------------------

FAN_OUT = workflow(
    "fan_out_8",
    node("input", "input", []),
    *(
        node(
            f"call_{n}", "call_external_service", ["input"], url=f"https://example.com/{n}", delay_seconds=1.0
        )
        for n in range(8)
    ),
    node("output", "output", [f"call_{n}" for n in range(8)]),
)
SLOW = workflow(
    "slow_chain",
    node("input", "input", []),
    node("slow", "call_external_service", ["input"], url="https://example.com/slow", delay_seconds=4.0),
    node("output", "output", ["slow"]),
)


def test_workers_scale_to_four_and_all_of_them_take_work(stack: Stack, api: httpx.Client) -> None:
    stack.compose("up", "--detach", "--no-build", "--no-recreate", "--scale", "worker=4", "worker")
    stack.wait_healthy(within=120)
    hosts = worker_hosts()
    assert len(hosts) == 4, hosts

    # One task at a time per worker (WORKER_CONCURRENCY=1): eight 1-second calls need all four.
    run_id = trigger(api, submit(api, FAN_OUT), {})
    assert wait_final(api, [run_id], within=60)[run_id]["state"] == "COMPLETED"
    detail = get_json(api, f"/api/runs/{run_id}")
    used = {host_of(n["worker_id"]) for node_id, n in detail["nodes"].items() if node_id.startswith("call_")}
    assert used == set(hosts), f"work went to {used}, workers are {set(hosts)}"


def test_a_worker_killed_mid_run_does_not_stop_the_run(stack: Stack, api: httpx.Client) -> None:
    run_id = trigger(api, submit(api, SLOW), {})

    def holder() -> str | None:
        slow = get_json(api, f"/api/runs/{run_id}")["nodes"]["slow"]
        return slow["worker_id"] if slow["status"] == "RUNNING" and slow["worker_id"] else None

    killed = worker_hosts()[host_of(wait_for("the slow node to start on a worker", holder, within=30))]
    try:
        podman("kill", killed.id)  # SIGKILL: the attempt it holds is never acknowledged
        view = wait_final(api, [run_id], within=90)[run_id]
        assert view["state"] == "COMPLETED", view
        slow = get_json(api, f"/api/runs/{run_id}")["nodes"]["slow"]
        assert host_of(slow["worker_id"]) != killed.hostname, slow
        results = get_json(api, f"/api/workflows/{run_id}/results")["results"]
        assert results["slow"]["url"] == "https://example.com/slow"
        assert results["output"] == {"slow": results["slow"]}
    finally:
        podman("start", killed.id)  # podman does not apply restart policies to a killed container


def test_redis_killed_and_restarted_loses_nothing_accepted(stack: Stack, api: httpx.Client) -> None:
    (redis,) = containers("redis")
    persistence = podman("exec", redis.id, "redis-cli", "INFO", "persistence")
    assert "aof_enabled:1" in persistence, persistence

    definition = copy.deepcopy(load_example("scenario_b_fan_out_fan_in"))
    execution_id = submit(api, definition)
    users = [f"u-{n}" for n in range(100, 110)]
    accepted = {trigger(api, execution_id, {"user_id": user}): user for user in users}

    # SIGKILL: no shutdown save; what Redis acknowledged must come back from the append-only file.
    podman("kill", redis.id)
    wait_for(
        "redis to stop",
        lambda: True if containers("redis", all_states=True)[0].state == "exited" else None,
        30,
    )
    podman("start", redis.id)
    stack.wait_healthy(within=120, service="redis")

    stored = get_json(api, f"/api/definitions/{execution_id}")["definition"]  # defaults filled in
    assert stored["name"] == definition["name"]
    assert [n["id"] for n in stored["dag"]["nodes"]] == [n["id"] for n in definition["dag"]["nodes"]]
    views = wait_final(api, list(accepted), within=180)
    for run_id, user in accepted.items():
        assert views[run_id]["state"] == "COMPLETED", views[run_id]
        results = get_json(api, f"/api/workflows/{run_id}/results")["results"]
        assert results["input"] == {"input_payload": {"user_id": user}}
        assert results["get_comments"]["url"].endswith(f"?user={user}")
    # And the stack takes new work after the restart.
    after = trigger(api, execution_id, {"user_id": "u-after"})
    assert wait_final(api, [after], within=60)[after]["state"] == "COMPLETED"


def test_stack_error_names_what_it_waited_for() -> None:
    with pytest.raises(StackError, match="waiting for nothing to happen"):
        wait_for("nothing to happen", lambda: None, within=0.2, every=0.05)
