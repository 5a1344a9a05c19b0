"""Best time to call through REST, GraphQL and the automation engine, on a history with a known answer pattern
(tests/calltime/conftest.py): B2B contacts answer 10-12 New York time, B2C contacts 18-20 Berlin time."""

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.settings import Settings
from tests.calltime.conftest import BERLIN, NEW_YORK, World, add_calls, handle_events, past_weekdays
from tests.conftest import Tenant, make_client
from tests.factories import create_element, created


async def best(client: httpx.AsyncClient, element_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/elements/{element_id}/best-call-time", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def local_hours(body: dict[str, Any]) -> set[int]:
    return {slot["hour"] for slot in body["slots"]}


async def new_b2b(client: httpx.AsyncClient, world: World, title: str = "New B2B") -> dict[str, Any]:
    values = {"client_type": "b2b", "region": "us", "timezone": "America/New_York"}
    return await create_element(client, "contact", title=title, assigned_to=world.ann["id"], values=values)


class TestRest:
    async def test_a_new_b2b_contact_gets_the_b2b_hours_in_its_own_time_zone(
        self, client: httpx.AsyncClient, world: World
    ) -> None:
        contact = await new_b2b(client, world)
        body = await best(client, contact["id"], slots=5, days=7, segment="client_type")
        assert (body["timezone"], body["timezone_source"]) == ("America/New_York", "field")
        assert body["assignee_id"] == world.ann["id"]
        assert body["segment_fields"] == ["client_type"]
        assert body["segment_values"] == {"client_type": "b2b"}
        assert body["calls"] == {"contact": 0, "segment": 12 * 12, "workspace": 18 * 12}
        assert len(body["slots"]) == 5
        assert local_hours(body) <= {10, 11}
        probabilities = [s["probability"] for s in body["slots"]]
        assert probabilities == sorted(probabilities, reverse=True)
        for slot in body["slots"]:
            local = datetime.fromisoformat(slot["local_starts_at"])
            assert local.utcoffset() == NEW_YORK.utcoffset(local.replace(tzinfo=None))
            assert datetime.fromisoformat(slot["starts_at"]) == local  # the same instant, in UTC
            assert datetime.fromisoformat(slot["starts_at"]).utcoffset() == timedelta(0)
            assert slot["weekday"] in {"mon", "tue", "wed", "thu", "fri"}
            assert slot["probability"] > 0.6
            explained = slot["explanation"]
            assert explained["contact"] == {"answered": 0, "total": 0, "rate": None, "weight": 0.0}
            assert 0 < explained["segment"]["answered"] == explained["segment"]["total"]
            assert explained["segment"]["weight"] > 0.3
            weights = [explained[k]["weight"] for k in ("contact", "segment", "workspace")]
            assert sum(weights) + explained["base_weight"] == pytest.approx(1, abs=1e-3)
            assert "America/New_York" in explained["text"]
            # Within Ann's working hours: 08-20 in Berlin.
            assert 8 <= local.astimezone(BERLIN).hour < 20

    async def test_the_segment_level_tells_b2c_from_b2b(self, client: httpx.AsyncClient, world: World) -> None:
        contact = await create_element(
            client, "contact", title="New B2C", assigned_to=world.ann["id"], values={"client_type": "b2c"}
        )
        segmented = await best(client, contact["id"], segment="client_type", slots=3)
        assert (segmented["timezone"], segmented["timezone_source"]) == ("Europe/Berlin", "assignee")
        assert local_hours(segmented) <= {18, 19}
        # Without a segment, the workspace's majority (B2B, at 10-12 of its own clock) wins.
        pooled = await best(client, contact["id"], slots=3)
        assert pooled["segment_fields"] == []
        assert pooled["calls"]["segment"] == 0
        assert local_hours(pooled) <= {10, 11}

    async def test_a_long_own_history_outweighs_the_segment_and_a_thin_one_does_not(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, world: World
    ) -> None:
        days = past_weekdays(NEW_YORK, 20)
        thin = await new_b2b(client, world, "Thin")
        await add_calls(app, tenant.workspace_id, thin["id"], [(days[0] + timedelta(hours=13, minutes=5), True)])
        assert local_hours(await best(client, thin["id"], segment="client_type")) <= {10, 11}

        regular = await new_b2b(client, world, "Answers at one")
        calls = [(day + timedelta(hours=13, minutes=5), True) for day in days]
        calls += [(day + timedelta(hours=h, minutes=5), False) for day in days[:10] for h in (10, 11)]
        await add_calls(app, tenant.workspace_id, regular["id"], calls)
        body = await best(client, regular["id"], segment="client_type", slots=3)
        assert local_hours(body) == {13}
        top = body["slots"][0]["explanation"]
        assert top["contact"]["answered"] == top["contact"]["total"] > 0
        assert top["contact"]["weight"] > top["segment"]["weight"]
        assert body["calls"]["contact"] == 40

    async def test_no_history_at_all_gives_the_next_working_hours_at_an_even_rate(
        self, client: httpx.AsyncClient, world: World
    ) -> None:
        lonely = created(await client.post("/entity-types", json={"code": "lonely", "title": "Lonely"}))
        assert lonely["code"] == "lonely"
        element = await create_element(client, "lonely", title="Nobody called", assigned_to=world.ann["id"])
        body = await best(client, element["id"], slots=3)
        assert body["calls"] == {"contact": 0, "segment": 0, "workspace": 0}
        assert [s["probability"] for s in body["slots"]] == [0.5, 0.5, 0.5]
        starts = [s["starts_at"] for s in body["slots"]]
        assert starts == sorted(starts)  # ties: the earliest first

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"segment": "nope"}, "segment[0]"),
            ({"segment": "client_type,client_type"}, "segment[1]"),
            ({"segment": "a,b,c,d,e,f"}, "segment"),
            ({"segment": "x" * 501}, "segment"),
            ({"slots": 0}, "slots"),
            ({"slots": 51}, "slots"),
            ({"days": 32}, "days"),
            ({"days": "soon"}, "days"),
        ],
    )
    async def test_bad_parameters_are_422(
        self, client: httpx.AsyncClient, world: World, params: dict[str, Any], field: str
    ) -> None:
        response = await client.get(f"/elements/{world.b2b[0]['id']}/best-call-time", params=params)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert any(e["field"].endswith(field) for e in response.json()["errors"]), response.json()

    async def test_read_access_is_needed_and_other_workspaces_see_nothing(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        other_client: httpx.AsyncClient,
        viewer_client: httpx.AsyncClient,
        world: World,
    ) -> None:
        url = f"/elements/{world.b2b[0]['id']}/best-call-time"
        assert (await viewer_client.get(url)).status_code == 200  # the viewer reads every element
        missing = await other_client.get(url)
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert "client_type" not in missing.text
        created(await client.post("/entity-types", json={"code": "company", "title": "Company"}))
        role = {"name": "Companies only", "level": "viewer", "grants": [{"entity_type": "company", "read": "all"}]}
        created(await client.post("/roles", json=role))
        key = created(await client.post("/api-keys", json={"name": "companies", "role": role["name"]}))
        async with make_client(app, key["api_key"]) as companies:
            refused = await companies.get(url)
            assert refused.status_code == 404
            assert refused.headers["content-type"] == "application/problem+json"
        assert (await client.get("/elements/00000000-0000-0000-0000-000000000000/best-call-time")).status_code == 404
        # An element in the recycle bin is not found either (and its calls no longer count for the others).
        gone = world.b2c[0]["id"]
        assert (await client.delete(f"/elements/{gone}")).status_code in {200, 204}
        assert (await client.get(f"/elements/{gone}/best-call-time")).status_code == 404
        assert (await best(client, world.b2b[0]["id"]))["calls"]["workspace"] == 17 * 12


async def graphql(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    """A plain POST to /graphql (gql's httpx transport trips over this environment's httpx)."""
    response = await client.post("http://testserver/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_graphql_gives_the_same_known_hours(client: httpx.AsyncClient, world: World) -> None:
    contact = await new_b2b(client, world)
    query = """
        query($id: UUID!) {
          bestCallTime(id: $id, slots: 3, segment: ["client_type"]) {
            timezone timezoneSource segmentValues calls { contact segment workspace }
            slots { startsAt localStartsAt weekday hour probability
                    explanation { segment { answered total weight } contact { weight } text } }
          }
        }"""
    body = await graphql(client, query, id=contact["id"])
    assert "errors" not in body, body
    data = body["data"]["bestCallTime"]
    assert (data["timezone"], data["timezoneSource"]) == ("America/New_York", "field")
    assert data["segmentValues"] == {"client_type": "b2b"}
    assert data["calls"] == {"contact": 0, "segment": 144, "workspace": 216}
    assert len(data["slots"]) == 3
    assert {s["hour"] for s in data["slots"]} <= {10, 11}
    assert all(s["explanation"]["segment"]["answered"] > 0 for s in data["slots"])
    rest = await best(client, contact["id"], slots=3, segment="client_type")
    assert [s["probability"] for s in data["slots"]] == [s["probability"] for s in rest["slots"]]
    refused = await graphql(client, query.replace('["client_type"]', '["nope"]'), id=contact["id"])
    assert refused["data"] is None
    assert refused["errors"][0]["extensions"]["status"] == 422, refused


class TestScheduleCall:
    async def test_the_action_books_the_best_slot_the_assignee_load_allows(
        self, app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient, world: World
    ) -> None:
        rule = created(
            await client.post(
                "/automation/rules",
                json={
                    "name": "Call new contacts",
                    "entity_type": "contact",
                    "trigger": {"type": "element.updated"},
                    "actions": [
                        {
                            "type": "schedule_call",
                            "params": {
                                "within_days": 7,
                                "duration_minutes": 20,
                                "max_calls_per_hour": 1,
                                "title": "Call {{ title }}",
                                "segment": ["client_type"],
                            },
                        }
                    ],
                },
            )
        )
        contact = await new_b2b(client, world, "ACME")
        await handle_events(app, settings, tenant.workspace_id)  # the creations: no rule for them
        ranked = (await best(client, contact["id"], slots=5, segment="client_type"))["slots"]
        # Ann already has a task in the best slot's hour: with at most one a hour, the second best is taken.
        busy = created(
            await client.post(
                "/tasks",
                json={"title": "Other call", "assignee_id": world.ann["id"], "due_at": ranked[0]["starts_at"]},
            )
        )
        assert busy["assignee_id"] == world.ann["id"]
        moved = await client.patch(f"/elements/{contact['id']}", json={"source": "web"})
        assert moved.status_code == 200, moved.text
        await handle_events(app, settings, tenant.workspace_id)

        runs = (await client.get("/automation/runs", params={"rule_id": rule["id"]})).json()["items"]
        assert [(r["element_id"], r["status"]) for r in runs] == [(contact["id"], "succeeded")], runs
        tasks = (await client.get("/tasks", params={"element_id": contact["id"]})).json()["items"]
        assert len(tasks) == 1
        task = tasks[0]
        assert (task["title"], task["assignee_id"]) == ("Call ACME", world.ann["id"])
        assert datetime.fromisoformat(task["due_at"]) == datetime.fromisoformat(ranked[1]["starts_at"])
        assert "rank 2" in task["description"]
        history = (await client.get(f"/elements/{contact['id']}/history")).json()["items"]
        decision = next(e["data"] for e in history if e["kind"] == "call_scheduled")
        assert decision["task_id"] == task["id"]
        assert decision["rank"] == 2
        assert decision["slot"]["hour"] in {10, 11}
        assert decision["slot"]["explanation"]["segment"]["answered"] > 0
        assert [s["starts_at"] for s in decision["skipped_for_load"]] == [
            datetime.fromisoformat(ranked[0]["starts_at"]).isoformat()
        ]
        assert decision["skipped_for_load"][0]["load"] == 1
        assert decision["timezone"] == "America/New_York"

    async def test_no_assignee_fails_the_run_with_the_reason(
        self, app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient, world: World
    ) -> None:
        await handle_events(app, settings, tenant.workspace_id)  # the world's creations, before the rule
        rule = created(
            await client.post(
                "/automation/rules",
                json={
                    "name": "Call",
                    "entity_type": "contact",
                    "trigger": {"type": "element.created"},
                    "actions": [{"type": "schedule_call", "params": {}}],
                },
            )
        )
        await handle_events(app, settings, tenant.workspace_id)
        orphan = await create_element(client, "contact", title="Nobody's", values={"client_type": "b2c"})
        await handle_events(app, settings, tenant.workspace_id)
        runs = (await client.get("/automation/runs", params={"rule_id": rule["id"]})).json()["items"]
        assert [(r["element_id"], r["status"]) for r in runs] == [(orphan["id"], "failed")]
        assert "no assignee" in runs[0]["error"]
        assert (await client.get("/tasks", params={"element_id": orphan["id"]})).json()["items"] == []

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"segment": ["nope"]}, "actions[0].params.segment[0]"),
            ({"segment": ["DROP TABLE elements"]}, "actions[0].params.segment.0"),
            ({"segment": ["region", "region"]}, "actions[0].params.segment"),
            ({"segment": "client_type"}, "actions[0].params.segment"),
            ({"max_calls_per_hour": 0}, "actions[0].params.max_calls_per_hour"),
            ({"within_days": 10_000}, "actions[0].params.within_days"),
            ({"duration_minutes": -5}, "actions[0].params.duration_minutes"),
            ({"duration_minutes": "NaN"}, "actions[0].params.duration_minutes"),
            ({"title": ""}, "actions[0].params.title"),
            ({"when": "now"}, "actions[0].params.when"),
        ],
    )
    async def test_hostile_parameters_are_refused_when_the_rule_is_saved(
        self, client: httpx.AsyncClient, world: World, params: dict[str, Any], field: str
    ) -> None:
        response = await client.post(
            "/automation/rules",
            json={
                "name": "Bad",
                "entity_type": "contact",
                "trigger": {"type": "element.created"},
                "actions": [{"type": "schedule_call", "params": params}],
            },
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert field in {e["field"] for e in response.json()["errors"]}, response.json()
