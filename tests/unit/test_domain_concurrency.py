"""``concurrency_key`` and ``concurrency_limit`` compiled by validation (``domain.concurrency``)."""

from __future__ import annotations

from domain_builders import node, plan_of, problems_of, workflow


def test_a_key_is_rendered_from_the_run_and_its_limit_defaults_to_one() -> None:
    plan = plan_of(node("a", concurrency_key="tenant-{{ workflow.input.tenant }}"))
    spec = plan.node("a").concurrency
    assert spec is not None and spec.limit == 1
    assert spec.render_key({"workflow": {"input": {"tenant": "t7"}}}) == "tenant-t7"
    assert spec.limit_of("tenant-t7", {"tenant-t7": 5}) == 5  # the setting names the key
    assert spec.limit_of("tenant-t8", {"tenant-t7": 5}) == 1


def test_a_key_reads_only_ancestors_and_never_a_secret_and_a_limit_needs_a_key() -> None:
    problems = problems_of(
        workflow(
            node("a", concurrency_limit=3),
            node("b", concurrency_key="{{ c.x }}"),
            node("c", concurrency_key="{{ secrets.token }}"),
        )
    )
    assert {p.path: p.message for p in problems} == {
        "$.dag.nodes[0].concurrency_limit": "'concurrency_limit' needs a 'concurrency_key' (node 'a')",
        "$.dag.nodes[1].concurrency_key": "'{{ c.x }}' reads node 'c', which is not an ancestor of 'b'; "
        "add 'c' to its dependencies",
        "$.dag.nodes[2].concurrency_key": "'{{ secrets.token }}': a concurrency key cannot read a secret "
        "(node 'c')",
    }


def test_a_map_item_may_choose_its_key() -> None:
    plan = plan_of(
        node("src"),
        node(
            "each", ["src"], for_each="{{ src.xs }}", concurrency_key="{{ item.tenant }}", concurrency_limit=2
        ),
    )
    spec = plan.node("each").concurrency
    assert spec is not None and spec.render_key({"item": {"tenant": "t1"}}) == "t1"
    assert "item" not in plan.node("each").reads
