"""Automation x lead qualification: the `score` action, `assign` through a routing policy and `score` conditions,
end to end with a real worker (REST -> outbox -> arq -> the same scoring and routing services the API uses)."""

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.automation.harness import running_worker, wait_for
from tests.factories import create_element, create_field, create_type, create_user, created

# One enum factor: hot scores 100, warm 1 + round(99 * 60 / 100) = 60, cold 1.
HEAT = {"field": "heat", "kind": "enum", "points": {"hot": 100, "warm": 60, "cold": 0}}
TIERS = [
    {"name": "senior", "min_score": 80, "user_tier": "senior"},
    {"name": "regular", "min_score": 50, "user_tier": "regular"},
    {"name": "automatic", "min_score": 0},
]


@pytest.fixture(scope="module")
def worker(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    with running_worker(settings) as process:
        yield process


async def _lead_type(client: httpx.AsyncClient, *, activate: bool = True) -> dict[str, Any]:
    """The `lead` type with a `heat` enum, a factors model over it (active unless told) and the policy."""
    await create_type(client, "lead")
    await create_field(client, "lead", "heat", "enum", options=[{"value": "hot"}, {"value": "warm"}, {"value": "cold"}])
    model = created(
        await client.post(
            "/scoring/models", json={"name": "heat", "entity_type": "lead", "kind": "factors", "factors": [HEAT]}
        )
    )
    if activate:
        assert (await client.post(f"/scoring/models/{model['id']}/activate")).status_code == 200
    policy = created(await client.post("/routing/policies", json={"name": "p", "entity_type": "lead", "tiers": TIERS}))
    return {"model": model, "policy": policy}


async def _rule(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    return created(
        await client.post(
            "/automation/rules",
            json={"name": "Qualify", "entity_type": "lead", "trigger": {"type": "element.created"}, **body},
        )
    )


async def _finished_run(client: httpx.AsyncClient, rule_id: str, element_id: str) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        response = await client.get("/automation/runs", params={"rule_id": rule_id, "element_id": element_id})
        runs = [r for r in response.json()["items"] if r["status"] in ("succeeded", "failed", "skipped")]
        return runs[0] if runs else None

    run: dict[str, Any] = await wait_for(finished)
    return run


async def _history(client: httpx.AsyncClient, element_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/elements/{element_id}/history")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


class TestSavingRules:
    async def test_an_unknown_or_foreign_policy_or_model_is_refused_naming_the_parameter(
        self, client: httpx.AsyncClient
    ) -> None:
        await _lead_type(client)
        await create_type(client, "deal")
        foreign = created(await client.post("/routing/policies", json={"name": "d", "entity_type": "deal"}))
        response = await client.post(
            "/automation/rules",
            json={
                "name": "R",
                "entity_type": "lead",
                "trigger": {"type": "element.created"},
                "actions": [
                    {"type": "add_comment", "params": {"text": "hi"}},
                    {"type": "assign", "params": {"policy_id": str(uuid.uuid4())}},
                    {"type": "assign", "params": {"policy_id": foreign["id"]}},
                    {"type": "score", "params": {"model_id": str(uuid.uuid4())}},
                    {"type": "assign", "params": {"policy_id": foreign["id"], "user_id": str(uuid.uuid4())}},
                    {"type": "assign", "params": {"user_id": str(uuid.uuid4())}},
                ],
            },
        )
        assert response.status_code == 422, response.text
        errors = {e["field"]: e["message"] for e in response.json()["errors"]}
        assert "unknown routing policy" in errors["actions[1].params.policy_id"]
        assert "not for 'lead'" in errors["actions[2].params.policy_id"]
        assert "unknown scoring model" in errors["actions[3].params.model_id"]
        assert "exactly one of user_id and policy_id" in errors["actions[4].params"]
        assert "not found in this workspace" in errors["actions[5].params.user_id"]
        assert (await client.get("/automation/rules")).json()["items"] == []

    async def test_a_valid_policy_is_kept_and_checked_again_on_update(self, client: httpx.AsyncClient) -> None:
        setup = await _lead_type(client)
        rule = await _rule(client, actions=[{"type": "assign", "params": {"policy_id": setup["policy"]["id"]}}])
        assert rule["actions"] == [{"type": "assign", "params": {"policy_id": setup["policy"]["id"]}}]
        missing = str(uuid.uuid4())
        response = await client.patch(
            f"/automation/rules/{rule['id']}", json={"actions": [{"type": "assign", "params": {"policy_id": missing}}]}
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "actions[0].params.policy_id"
        assert (await client.get(f"/automation/rules/{rule['id']}")).json()["actions"] == rule["actions"]


async def test_new_leads_are_scored_and_routed_by_tier_and_capacity(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    """The seed's worked example: 80+ to a senior, 50-79 to the regular with the most room, below 50 to nobody."""
    setup = await _lead_type(client)
    senior = await create_user(client, "Sam Senior", "senior", capacity=1)
    rita = await create_user(client, "Rita Regular", "regular", capacity=2)
    rob = await create_user(client, "Rob Regular", "regular", capacity=1)
    rule = await _rule(
        client,
        actions=[
            {"type": "score", "params": {"only_unscored": True}},
            {"type": "assign", "params": {"policy_id": setup["policy"]["id"]}},
        ],
    )

    async def lead(title: str, heat: str) -> dict[str, Any]:
        element = await create_element(client, "lead", title=title, values={"heat": heat})
        run = await _finished_run(client, rule["id"], element["id"])
        assert run["status"] == "succeeded", run
        body: dict[str, Any] = (await client.get(f"/elements/{element['id']}")).json()
        return body

    hot = await lead("Hot", "hot")
    warm = await lead("Warm", "warm")
    cold = await lead("Cold", "cold")
    assert (hot["score"], warm["score"], cold["score"]) == (100, 60, 1)
    assert hot["assigned_to"] == senior["id"]
    assert warm["assigned_to"] == rita["id"]  # 2 free against Rob's 1
    assert cold["assigned_to"] is None

    # The only senior is full: the next hot lead still goes to him, flagged; a regular with room is not used.
    hot2 = await lead("Hot again", "hot")
    assert hot2["assigned_to"] == senior["id"]
    # Rita 1/2 and Rob 0/1 both have 1 free: the tie goes to Rob, never routed to.
    warm2 = await lead("Warm again", "warm")
    assert warm2["assigned_to"] == rob["id"]

    def routed(history: list[dict[str, Any]]) -> dict[str, Any]:
        entries: list[dict[str, Any]] = [e["data"] for e in history if e["kind"] == "routed"]
        assert len(entries) == 1, history
        return entries[0]

    decisions = {e["title"]: routed(await _history(client, e["id"])) for e in (hot, warm, cold, hot2, warm2)}
    assert {t: (d["tier"], d["over_capacity"]) for t, d in decisions.items()} == {
        "Hot": ("senior", False),
        "Warm": ("regular", False),
        "Cold": ("automatic", False),
        "Hot again": ("senior", True),
        "Warm again": ("regular", False),
    }
    assert decisions["Hot"]["reasons"][0] == "score 100 is in tier 'senior' (80+)"
    assert "Sam Senior has the most free capacity (1)" in decisions["Hot"]["reasons"]
    assert "Rita Regular 0/2" in decisions["Warm"]["reasons"][1]
    assert "tier 'automatic' has no users: handled automatically" in decisions["Cold"]["reasons"]
    assert any("over capacity" in r for r in decisions["Hot again"]["reasons"])
    assert decisions["Hot again"]["policy_id"] == setup["policy"]["id"]
    # The score action kept the score the active model gave at creation: no second scoring.
    assert not any(e["kind"] == "scored" for e in await _history(client, hot["id"]))
    users = {u["id"]: u for u in (await client.get("/users")).json()["items"]}
    assert (users[senior["id"]]["load"], users[rita["id"]]["load"], users[rob["id"]]["load"]) == (2, 1, 1)


async def test_the_score_action_scores_an_unscored_lead_with_a_named_model(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    """No active model: nothing scores the lead on creation, the action does (then the policy routes it)."""
    setup = await _lead_type(client, activate=False)
    senior = await create_user(client, "Sue Senior", "senior", capacity=3)
    rule = await _rule(
        client,
        actions=[
            {"type": "score", "params": {"model_id": setup["model"]["id"], "only_unscored": True}},
            {"type": "assign", "params": {"policy_id": setup["policy"]["id"]}},
        ],
    )
    element = await create_element(client, "lead", title="Hot", values={"heat": "hot"})
    assert element["score"] is None
    run = await _finished_run(client, rule["id"], element["id"])
    assert run["status"] == "succeeded", run
    found = (await client.get(f"/elements/{element['id']}")).json()
    assert (found["score"], found["assigned_to"]) == (100, senior["id"])
    scored = [e["data"] for e in await _history(client, element["id"]) if e["kind"] == "scored"]
    assert [(s["score"], s["model_id"]) for s in scored] == [(100, setup["model"]["id"])]


async def test_a_score_condition_fires_only_for_high_score_leads(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    await _lead_type(client)
    rule = await _rule(
        client,
        condition={"field": "score", "op": "gte", "value": 80},
        actions=[{"type": "add_comment", "params": {"text": "Hot lead {{ title }} scored {{ score }}"}}],
    )
    hot = await create_element(client, "lead", title="Hot", values={"heat": "hot"})
    warm = await create_element(client, "lead", title="Warm", values={"heat": "warm"})
    assert (await _finished_run(client, rule["id"], hot["id"]))["status"] == "succeeded"
    assert (await _finished_run(client, rule["id"], warm["id"]))["status"] == "skipped"
    comments = [e["data"]["text"] for e in await _history(client, hot["id"]) if e["kind"] == "comment"]
    assert comments == ["Hot lead Hot scored 100"]
    assert not [e for e in await _history(client, warm["id"]) if e["kind"] == "comment"]


async def test_concurrent_runs_never_overbook(client: httpx.AsyncClient, worker: subprocess.Popen[bytes]) -> None:
    """24 hot leads in one batch: the worker runs their rules concurrently; 4 seniors of capacity 5 get 5 each and
    the 4 left over go over capacity one apiece (the least loaded each time)."""
    setup = await _lead_type(client)
    seniors = [await create_user(client, f"Senior {i}", "senior", capacity=5) for i in range(4)]
    rule = await _rule(client, actions=[{"type": "assign", "params": {"policy_id": setup["policy"]["id"]}}])
    items = [{"op": "create", "data": {"title": f"lead {i}", "values": {"heat": "hot"}}} for i in range(24)]
    response = await client.post("/entity-types/lead/elements/batch", json={"items": items})
    assert response.status_code == 200, response.text
    ids = {e["id"] for e in response.json()["items"]}

    async def all_done() -> list[dict[str, Any]]:
        runs = (await client.get("/automation/runs", params={"rule_id": rule["id"], "limit": 100})).json()["items"]
        finished = [r for r in runs if r["status"] in ("succeeded", "failed", "skipped")]
        return runs if len(finished) == len(ids) else []

    runs = await wait_for(all_done, seconds=30)
    assert {r["status"] for r in runs} == {"succeeded"}, [r["error"] for r in runs]
    users = {u["id"]: u["load"] for u in (await client.get("/users")).json()["items"]}
    assert sorted(users[s["id"]] for s in seniors) == [6, 6, 6, 6]
    flagged = 0
    for element_id in ids:
        routed = [e for e in await _history(client, element_id) if e["kind"] == "routed"]
        flagged += routed[0]["data"]["over_capacity"]
    assert flagged == 4
