import asyncio
import random
from collections import Counter
from typing import Any

import httpx

from tests.factories import create_element, create_field, create_type, create_user

# rating 80+ scores 100, 50-79 scores 67, below 50 scores 1 (1 + round(99 * points / 90)).
BANDS = [{"min": 0, "max": 50, "points": 0}, {"min": 50, "max": 80, "points": 60}, {"min": 80, "points": 90}]
HOT, WARM, COLD = 95, 60, 10


async def _setup(client: httpx.AsyncClient, **policy: Any) -> dict[str, Any]:
    await create_type(client, "lead")
    await create_field(client, "lead", "rating", "integer")
    await create_field(client, "lead", "company", "string")
    await create_field(
        client, "lead", "priority", "enum", options=[{"value": "high"}, {"value": "normal"}, {"value": "low"}]
    )
    model = await client.post(
        "/scoring/models",
        json={
            "name": "rating",
            "entity_type": "lead",
            "kind": "factors",
            "factors": [{"field": "rating", "kind": "range", "ranges": BANDS}],
        },
    )
    assert (await client.post(f"/scoring/models/{model.json()['id']}/activate")).status_code == 200
    response = await client.post("/routing/policies", json={"name": "default", "entity_type": "lead", **policy})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _route(client: httpx.AsyncClient, element_id: str) -> dict[str, Any]:
    response = await client.post(f"/elements/{element_id}/route")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _leads(client: httpx.AsyncClient, n: int, rating: int) -> list[str]:
    items = [{"op": "create", "data": {"title": f"lead {i}", "values": {"rating": rating}}} for i in range(n)]
    response = await client.post("/entity-types/lead/elements/batch", json={"items": items})
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["items"]]


class TestTiers:
    async def test_default_tiers_assign_by_score_with_priority_stage_and_script(
        self, client: httpx.AsyncClient
    ) -> None:
        policy = await _setup(
            client,
            tiers=[
                {
                    "name": "hot",
                    "min_score": 80,
                    "user_tier": "senior",
                    "priority": {"field": "priority", "value": "high"},
                    "stage_code": "IN_PROGRESS",
                    "script": "Call {{ title }} at {{ company }} today: score {{ score }}, {{ assignee }}.",
                },
                {"name": "warm", "min_score": 50, "user_tier": "regular"},
                {"name": "auto", "min_score": 0},
            ],
        )
        assert [t["min_score"] for t in policy["tiers"]] == [80, 50, 0]
        senior = await create_user(client, "Sam", "senior", capacity=5)
        regular = await create_user(client, "Rita", "regular", capacity=5)
        hot = await create_element(client, "lead", title="ACME", values={"rating": HOT, "company": "Acme Ltd"})
        assert hot["score"] == 100
        decision = await _route(client, hot["id"])
        assert (decision["tier"], decision["assigned_to"], decision["over_capacity"]) == ("hot", senior["id"], False)
        assert decision["script"] == "Call ACME at Acme Ltd today: score 100, Sam."
        element = (await client.get(f"/elements/{hot['id']}")).json()
        assert (element["assigned_to"], element["stage_code"], element["values"]["priority"]) == (
            senior["id"],
            "IN_PROGRESS",
            "high",
        )
        timeline = (await client.get(f"/elements/{hot['id']}/history")).json()["items"]
        assert [e["kind"] for e in timeline][-2:] == ["task_created", "routed"]
        routed = timeline[-1]["data"]
        assert (routed["tier"], routed["task_id"]) == ("hot", decision["task_id"])
        assert any("most free capacity" in r for r in routed["reasons"])
        # The personalised script is a task for the assignee.
        tasks = (await client.get("/tasks", params={"element_id": hot["id"]})).json()["items"]
        assert [(t["id"], t["description"], t["assignee_id"]) for t in tasks] == [
            (decision["task_id"], decision["script"], senior["id"])
        ]

        warm = await create_element(client, "lead", values={"rating": WARM})
        assert (await _route(client, warm["id"]))["assigned_to"] == regular["id"]
        cold = await create_element(client, "lead", values={"rating": COLD})
        cold_decision = await _route(client, cold["id"])
        assert (cold_decision["tier"], cold_decision["assigned_to"]) == ("auto", None)
        assert "automatically" in cold_decision["reasons"][-1]
        users = {u["name"]: u["load"] for u in (await client.get("/users")).json()["items"]}
        assert users == {"Sam": 1, "Rita": 1}

    async def test_explicit_user_list_and_validation(self, client: httpx.AsyncClient) -> None:
        await _setup(client)
        junior = await create_user(client, "Jo", "junior")
        created = await client.post(
            "/routing/policies",
            json={
                "name": "juniors",
                "entity_type": "lead",
                "tiers": [{"name": "all", "min_score": 0, "user_ids": [junior["id"]]}],
            },
        )
        assert created.status_code == 201, created.text
        element = await create_element(client, "lead", values={"rating": HOT})
        response = await client.post(f"/elements/{element['id']}/route", json={"policy_id": created.json()["id"]})
        assert response.json()["assigned_to"] == junior["id"]
        bad = await client.post(
            "/routing/policies",
            json={
                "name": "bad",
                "entity_type": "lead",
                "tiers": [
                    {"name": "a", "min_score": 10, "stage_code": "NOPE", "priority": {"field": "priority", "value": 1}}
                ],
            },
        )
        assert bad.status_code == 422
        assert {e["field"] for e in bad.json()["errors"]} == {
            "tiers",
            "tiers[0].stage_code",
            "tiers[0].priority.value",
        }

    async def test_no_score_and_no_model_is_a_conflict(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        assert (await client.post("/routing/policies", json={"name": "p", "entity_type": "deal"})).status_code == 201
        element = await create_element(client, "deal")
        response = await client.post(f"/elements/{element['id']}/route")
        assert response.status_code == 409
        assert "no score" in response.json()["detail"]


class TestCapacity:
    async def test_most_free_capacity_then_over_capacity_to_least_loaded(self, client: httpx.AsyncClient) -> None:
        await _setup(client)
        small = await create_user(client, "Small", "senior", capacity=1)
        await create_user(client, "Big1", "senior", capacity=2)
        await create_user(client, "Big2", "senior", capacity=2)
        await create_user(client, "Off", "senior", capacity=50, active=False)
        decisions = [await _route(client, element_id) for element_id in await _leads(client, 6, HOT)]
        assert [d["over_capacity"] for d in decisions] == [False] * 5 + [True]
        loads = {u["name"]: u["load"] for u in (await client.get("/users")).json()["items"]}
        assert loads == {"Small": 2, "Big1": 2, "Big2": 2, "Off": 0}
        assert decisions[-1]["assigned_to"] == small["id"]
        assert "over capacity" in decisions[-1]["reasons"][-1]

    async def test_ties_go_round_robin(self, client: httpx.AsyncClient) -> None:
        await _setup(client)
        await create_user(client, "A", "senior", capacity=100)
        await create_user(client, "B", "senior", capacity=100)
        await create_user(client, "C", "senior", capacity=100)
        names = [(await _route(client, e))["assignee_name"] for e in await _leads(client, 9, HOT)]
        assert Counter(names) == {"A": 3, "B": 3, "C": 3}
        assert len(set(names[0:3])) == len(set(names[3:6])) == len(set(names[6:9])) == 3

    async def test_closed_elements_free_capacity(self, client: httpx.AsyncClient) -> None:
        await _setup(client)
        await create_user(client, "Solo", "senior", capacity=1)
        first, second = await _leads(client, 2, HOT)
        assert (await _route(client, first))["over_capacity"] is False
        await client.post(f"/elements/{first}/move", json={"stage_code": "SUCCESS"})
        assert (await _route(client, second))["over_capacity"] is False


class TestConcurrentRouting:
    async def test_100_concurrent_routings_never_overbook(self, client: httpx.AsyncClient) -> None:
        await _setup(client)
        for name, capacity in (("Ten", 10), ("Twenty", 20), ("Thirty", 30)):
            await create_user(client, name, "senior", capacity=capacity)
        elements = await _leads(client, 100, HOT)

        async def route(element_id: str) -> httpx.Response:
            # 100 at once outnumber the test app's connection pool: a request that waits too long for one is refused
            # with 503 and Retry-After (nothing written), and is sent again, as a client would.
            for _ in range(30):
                response = await client.post(f"/elements/{element_id}/route")
                if response.status_code != 503:
                    return response
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")) * random.uniform(0.2, 1))
            return response

        responses = await asyncio.gather(*(route(e) for e in elements))
        assert [r.status_code for r in responses] == [200] * 100
        decisions = [r.json() for r in responses]
        # 60 places: the first 60 routings fill them, the other 40 are flagged and spread to the least loaded.
        assert sum(d["over_capacity"] for d in decisions) == 40
        for d in decisions:
            assert d["over_capacity"] == (d["load"] >= d["capacity"])
        loads = {u["name"]: u["load"] for u in (await client.get("/users")).json()["items"]}
        assert sum(loads.values()) == 100
        assert sorted(loads.values()) == [33, 33, 34]
