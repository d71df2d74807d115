"""The settings that choose how Redis is reached: one server, a cluster or sentinels, and WAIT."""

from __future__ import annotations

import pytest

from adapters.redis.topology import RedisTopology
from services.application.errors import ConfigurationError
from services.container import Container
from services.settings import load_settings


def topology_of(**values: object) -> RedisTopology:
    container = Container()
    container.settings.override(load_settings(**values))
    topology: RedisTopology = container.redis_topology()
    return topology


def test_one_server_by_default_shown_without_its_password() -> None:
    topology = topology_of(redis_url="redis://:secret@db.example:6380/2")

    assert (topology.cluster, topology.sentinel, topology.wait_replicas) == (False, False, 0)
    assert topology.shown() == "db.example:6380"


def test_a_cluster_is_seeded_by_the_url_or_host_and_port() -> None:
    topology = topology_of(redis_cluster=True, redis_host="node-3", redis_port=7003)

    assert topology.cluster
    assert topology.url == "redis://node-3:7003/0"
    assert topology.shown() == "the cluster seeded by node-3:7003"


def test_sentinels_are_read_as_host_port_pairs() -> None:
    topology = topology_of(
        redis_sentinels="10.0.0.1:26379, sentinel-b:26380",
        redis_sentinel_master="jobs",
        redis_wait_replicas=1,
    )

    assert topology.sentinels == (("10.0.0.1", 26379), ("sentinel-b", 26380))
    assert (topology.sentinel_master, topology.wait_replicas) == ("jobs", 1)
    assert topology.shown() == "the master 'jobs' of the sentinels 10.0.0.1:26379,sentinel-b:26380"


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"redis_sentinels": "sentinel-a"}, "REDIS_SENTINELS='sentinel-a': 'sentinel-a' is not host:port"),
        ({"redis_sentinels": "a:99999"}, "'a:99999' is not host:port"),
        (
            {"redis_cluster": True, "redis_sentinels": "a:1"},
            "REDIS_CLUSTER and REDIS_SENTINELS exclude each other",
        ),
        (
            {"redis_cluster": True, "redis_wait_replicas": 1},
            "REDIS_WAIT_REPLICAS is not offered with REDIS_CLUSTER",
        ),
        ({"redis_cluster": True, "redis_db": 3}, "REDIS_DB must be 0 with REDIS_CLUSTER"),
        ({"redis_wait_replicas": -1}, "REDIS_WAIT_REPLICAS=-1"),
    ],
)
def test_a_topology_that_cannot_work_is_refused_naming_the_settings(
    values: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(**values)

    assert named in str(refused.value)
    assert "?" not in str(refused.value)  # every problem is named by its setting
