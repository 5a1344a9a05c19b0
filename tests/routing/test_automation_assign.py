"""The automation action `assign` with a routing policy, run by the real arq worker."""

import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.settings import Settings
from tests.automation.harness import running_worker, wait_for
from tests.factories import create_element, create_user
from tests.routing.test_routing import HOT, _setup


@pytest.fixture(scope="module")
def worker(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    with running_worker(settings) as process:
        yield process


def _rule(policy_id: str) -> dict[str, object]:
    return {
        "name": "Route new leads",
        "entity_type": "lead",
        "trigger": {"type": "element.created"},
        "actions": [{"type": "assign", "params": {"policy_id": policy_id}}],
    }


async def test_a_rule_routes_new_leads_through_a_policy(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    policy = await _setup(
        client,
        tiers=[
            {"name": "hot", "min_score": 80, "user_tier": "senior", "script": "Call {{ title }} now"},
            {"name": "auto", "min_score": 0},
        ],
    )
    senior = await create_user(client, "Sam", "senior", capacity=5)
    unknown = await client.post("/automation/rules", json=_rule(str(uuid.uuid4())))
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "actions[0].params.policy_id"
    created = await client.post("/automation/rules", json=_rule(policy["id"]))
    assert created.status_code == 201, created.text

    element = await create_element(client, "lead", title="Hot lead", values={"rating": HOT})

    async def assigned() -> str | None:
        value: str | None = (await client.get(f"/elements/{element['id']}")).json()["assigned_to"]
        return value

    assert await wait_for(assigned) == senior["id"]
    history = (await client.get(f"/elements/{element['id']}/history")).json()["items"]
    routed = next(e["data"] for e in history if e["kind"] == "routed")
    assert (routed["tier"], routed["assigned_to"]) == ("hot", senior["id"])
    tasks = (await client.get("/tasks", params={"element_id": element["id"]})).json()["items"]
    assert [t["description"] for t in tasks] == ["Call Hot lead now"]


async def test_a_score_action_fires_element_scored_rules(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    await _setup(client)  # an active factors model on `rating`
    rules = [
        {
            "name": "Score on arrival",
            "entity_type": "lead",
            "trigger": {"type": "element.created"},
            "actions": [{"type": "score", "params": {}}],
        },
        {
            "name": "Hot leads",
            "entity_type": "lead",
            "trigger": {"type": "element.scored"},
            "condition": {"field": "score", "op": "gte", "value": 80},
            "actions": [{"type": "add_comment", "params": {"text": "hot: {{ score }}"}}],
        },
    ]
    for rule in rules:
        response = await client.post("/automation/rules", json=rule)
        assert response.status_code == 201, response.text
    hot = await create_element(client, "lead", title="hot", values={"rating": HOT})
    cold = await create_element(client, "lead", title="cold", values={"rating": 10})

    async def comments(element_id: str) -> list[str]:
        history = (await client.get(f"/elements/{element_id}/history")).json()["items"]
        return [e["data"]["text"] for e in history if e["kind"] == "comment"]

    assert await wait_for(lambda: comments(hot["id"])) == ["hot: 100"]

    async def scored_cold() -> bool:
        history = (await client.get(f"/elements/{cold['id']}/history")).json()["items"]
        return any(e["kind"] == "scored" for e in history)

    await wait_for(scored_cold)
    assert await comments(cold["id"]) == []
