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
        "actions": [{"type": "assign", "params": {"routing_policy_id": policy_id}}],
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
    assert unknown.json()["errors"][0]["field"] == "actions[0].params.routing_policy_id"
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
