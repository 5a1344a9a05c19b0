"""A rule is checked against its entity type when saved, and its condition means in memory what it means in SQL."""

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.automation import runner
from app.automation.conditions import matches
from app.automation.engine import record_of
from app.elements.schemas import ElementRead
from app.entity_types.meta import get_type_meta
from app.kit.filters import parse_filter
from app.outbox.models import OutboxEvent
from app.settings import Settings
from tests.conftest import Tenant
from tests.factories import create_element, create_field, default_pipeline, lead_type


class RecordingWaker:
    """The queue, for runs executed in the test's own process."""

    def __init__(self) -> None:
        self.woken: list[tuple[str, Any]] = []

    async def run(self, run_id: uuid.UUID, attempt: int) -> None:
        self.woken.append(("run", run_id))

    async def resume(self, run_id: uuid.UUID, at: datetime) -> None:
        self.woken.append(("resume", run_id))

    async def timer(self, timer_id: uuid.UUID, at: datetime) -> None:
        self.woken.append(("timer", timer_id))

    async def deliver(self, delivery_id: uuid.UUID, at: datetime | None = None) -> None:
        self.woken.append(("deliver", delivery_id))

    async def deliver_many(self, delivery_ids: list[uuid.UUID]) -> None:
        self.woken += [("deliver", delivery_id) for delivery_id in delivery_ids]

    async def deliver_due(self, delivery_id: uuid.UUID, due: datetime) -> None:
        self.woken.append(("deliver", delivery_id))

    async def events(self, event_ids: list[uuid.UUID]) -> None:
        self.woken += [("event", event_id) for event_id in event_ids]


async def handle_new_events(app: FastAPI, settings: Settings, workspace_id: uuid.UUID) -> RecordingWaker:
    """Run the engine on the workspace's outbox events (no worker, no dispatcher): what a worker would do."""
    async with app.state.sessionmaker() as session:
        events = list(
            await session.scalars(
                select(OutboxEvent.event_id)
                .where(OutboxEvent.workspace_id == workspace_id)
                .order_by(OutboxEvent.created_at, OutboxEvent.event_id)
            )
        )
    waker = RecordingWaker()
    for event_id in events:
        await runner.process_event(app.state.sessionmaker, settings, waker, event_id)
    return waker


def rule(condition: Any = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "R",
        "entity_type": "lead",
        "trigger": {"type": "element.created"},
        "actions": [{"type": "add_comment", "params": {"text": "matched"}}],
    }
    if condition is not None:
        body["condition"] = condition
    body.update(overrides)
    return body


def fields_of(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return {e["field"] for e in response.json()["errors"]}


class TestSavedRulesAreTyped:
    async def test_a_condition_naming_unknown_fields_or_wrong_types_is_a_422_naming_each(
        self, client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        condition = {
            "and": [
                {"field": "nope", "op": "eq", "value": 1},
                {"field": "budget", "op": "gte", "value": "a lot"},
                {"field": "is_b2b", "op": "eq", "value": "yes"},
                {"field": "created_on", "op": "lt", "value": "yesterday"},
                {"field": "industry", "op": "in", "value": ["it", "toys"]},
                {"field": "is_b2b", "op": "gt", "value": True},
                {"field": "body.status", "op": "eq", "value": "paid"},
                {"field": "stage_code", "op": "eq", "value": "NO_SUCH_STAGE"},
                {"field": "created_at", "op": "gte", "value": 5},
            ]
        }
        assert fields_of(await client.post("/automation/rules", json=rule(condition))) == {
            "condition.and[0].field",
            "condition.and[1].value",
            "condition.and[2].value",
            "condition.and[3].value",
            "condition.and[4].value",
            "condition.and[5].op",
            "condition.and[6].field",
            "condition.and[7].value",
            "condition.and[8].value",
        }
        # The same checks on update; a number as a string is a number, as in a list filter.
        created = await client.post("/automation/rules", json=rule({"field": "budget", "op": "gte", "value": "100"}))
        assert created.status_code == 201, created.text
        wrong = {"condition": {"field": "budget", "op": "gt", "value": []}}
        patched = await client.patch(f"/automation/rules/{created.json()['id']}", json=wrong)
        assert fields_of(patched) == {"condition.value"}
        # An incoming hook's rule may test its body.
        hook = rule({"field": "body.status", "op": "eq", "value": "paid"}, trigger={"type": "webhook.received"})
        assert (await client.post("/automation/rules", json=hook)).status_code == 201

    async def test_actions_naming_unknown_fields_stages_or_types_or_wrong_values_are_a_422_naming_each(
        self, client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        actions = [
            {"type": "set_fields", "params": {"values": {"nope": 1, "budget": "a lot", "industry": "toys"}}},
            {"type": "set_fields", "params": {"values": {"unknown": "{{ title }}", "company_size": "{{ title }}"}}},
            {"type": "move_to_stage", "params": {"stage_code": "NO_SUCH_STAGE"}},
            {"type": "move_to_stage", "params": {"stage_id": str(uuid.uuid4())}},
            {"type": "move_to_pipeline", "params": {"pipeline_id": str(uuid.uuid4())}},
            {"type": "create_linked_element", "params": {"entity_type": "no_such_type"}},
            {"type": "delay", "params": {"hours": 10**9}},
            {"type": "create_task", "params": {"title": "t", "due_in_hours": 1e12}},
            {"type": "delay", "params": {"minutes": -5}},
        ]
        response = await client.post("/automation/rules", json=rule(actions=actions))
        assert fields_of(response) == {
            "actions[0].params.values.nope",
            "actions[0].params.values.budget",
            "actions[0].params.values.industry",
            "actions[1].params.values.unknown",
            "actions[2].params.stage_code",
            "actions[3].params.stage_id",
            "actions[4].params.pipeline_id",
            "actions[5].params.entity_type",
            "actions[6].params",
            "actions[7].params.due_in_hours",
            "actions[8].params.minutes",
        }

    async def test_a_linked_element_is_checked_against_its_own_type(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        await client.post("/entity-types", json={"code": "deal", "title": "Deal"})
        await create_field(client, "deal", "value", "decimal")
        good = {"type": "create_linked_element", "params": {"entity_type": "deal", "values": {"value": 5}}}
        assert (await client.post("/automation/rules", json=rule(actions=[good]))).status_code == 201
        bad = {
            "type": "create_linked_element",
            "params": {"entity_type": "deal", "stage_code": "NOPE", "values": {"value": "x", "budget": 1}},
        }
        assert fields_of(await client.post("/automation/rules", json=rule(actions=[bad]))) == {
            "actions[0].params.stage_code",
            "actions[0].params.values.value",
            "actions[0].params.values.budget",
        }

    @pytest.mark.parametrize(
        ("trigger", "field"),
        [
            ({"type": "time_in_stage", "hours": -5, "minutes": 600}, "trigger.hours"),
            ({"type": "time_in_stage", "days": 10**9}, "trigger"),
            ({"type": "time_in_stage", "seconds": "soon"}, "trigger.seconds"),
            ({"type": "time_in_stage", "seconds": [1]}, "trigger.seconds"),
            ({"type": "time_in_stage", "hourz": 5}, "trigger.hourz"),
            ({"type": "date_reached", "field": "created_on", "offset_days": 10**12}, "trigger"),
            ({"type": "date_reached", "field": "created_on", "offset_days": "x"}, "trigger.offset_days"),
            ({"type": "element.updated", "fields": ["budget", "nope"]}, "trigger.fields[1]"),
            ({"type": "element.entered_stage", "from_stage_id": str(uuid.uuid4())}, "trigger.from_stage_id"),
            (
                {"type": "webhook.received", "find": {"field": "nope", "op": "eq", "value": "{{ body.x }}"}},
                "trigger.find.field",
            ),
        ],
    )
    async def test_impossible_triggers_are_a_422_naming_the_parameter(
        self, client: httpx.AsyncClient, trigger: dict[str, Any], field: str
    ) -> None:
        await lead_type(client)
        pipeline = await default_pipeline(client, "lead")
        stage = pipeline["stages"][1]["id"] if trigger["type"] in ("time_in_stage", "element.entered_stage") else None
        response = await client.post("/automation/rules", json=rule(trigger=trigger, stage_id=stage))
        assert field in fields_of(response), response.text


# Elements and conditions over every kind of field, system fields and stage codes; each condition is evaluated by
# the SQL filter (a search) and by the engine (a rule whose runs are created in memory).
ELEMENTS: dict[str, dict[str, Any]] = {
    "A": {
        "title": "ACME corp",
        "amount": "99.50",
        "values": {
            "budget": 500,
            "company_size": 20,
            "industry": "it",
            "created_on": "2024-03-01",
            "is_b2b": True,
            "email": "a@acme.example",
            "called_at": "2024-03-01T10:00:00Z",
            "tags": ["x", "y"],
        },
    },
    "B": {
        "title": "Beta",
        "values": {
            "budget": 0.1,
            "company_size": 5,
            "industry": "retail",
            "created_on": "2023-12-31",
            "is_b2b": False,
            "tags": ["y"],
        },
    },
    "C": {"title": "Gamma"},
    "D": {"title": "Delta", "amount": "250.5", "values": {"budget": 100, "called_at": "2024-03-01T09:00:00Z"}},
}
CONDITIONS: list[tuple[dict[str, Any], set[str]]] = [
    ({"field": "budget", "op": "gte", "value": "100"}, {"A", "D"}),
    ({"field": "budget", "op": "lt", "value": "100"}, {"B"}),
    ({"field": "budget", "op": "eq", "value": "0.1"}, {"B"}),
    ({"field": "budget", "op": "between", "value": ["0", "100.0"]}, {"B", "D"}),
    ({"field": "company_size", "op": "in", "value": ["5", 20.0]}, {"A", "B"}),
    ({"field": "company_size", "op": "ne", "value": "5"}, {"A", "C", "D"}),
    ({"field": "created_on", "op": "lt", "value": "2024-01-01"}, {"B"}),
    ({"field": "called_at", "op": "gte", "value": "2024-03-01T12:00:00+02:00"}, {"A"}),
    ({"field": "called_at", "op": "eq", "value": "2024-03-01T11:00:00+02:00"}, {"D"}),
    ({"field": "amount", "op": "gt", "value": "200"}, {"D"}),
    ({"field": "amount", "op": "lte", "value": 99.5}, {"A"}),
    ({"field": "title", "op": "icontains", "value": "ACM"}, {"A"}),
    ({"field": "title", "op": "starts_with", "value": "D"}, {"D"}),
    ({"field": "industry", "op": "nin", "value": ["it"]}, {"B", "C", "D"}),
    ({"field": "tags", "op": "eq", "value": "y"}, {"A", "B"}),
    ({"field": "tags", "op": "ne", "value": "x"}, {"B", "C", "D"}),
    ({"field": "is_b2b", "op": "eq", "value": False}, {"B"}),
    ({"field": "email", "op": "is_null", "value": True}, {"B", "C", "D"}),
    ({"field": "score", "op": "is_null", "value": True}, {"A", "B", "C", "D"}),
    ({"field": "created_at", "op": "gte", "value": "2000-01-01T00:00:00Z"}, {"A", "B", "C", "D"}),
    ({"field": "stage_code", "op": "in", "value": ["NEW"]}, {"A", "B", "C", "D"}),
    ({"not": {"field": "company_size", "op": "lt", "value": "10"}}, {"A", "C", "D"}),
    (
        {"or": [{"field": "budget", "op": "gt", "value": "400"}, {"field": "is_b2b", "op": "eq", "value": False}]},
        {"A", "B"},
    ),
]


async def _typed_lead(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    await lead_type(client)
    await create_field(client, "lead", "called_at", "datetime")
    await create_field(client, "lead", "tags", "string", multiple=True)
    return {name: await create_element(client, "lead", **body) for name, body in ELEMENTS.items()}


async def test_the_in_memory_evaluator_agrees_with_the_sql_filter(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    elements = await _typed_lead(client)
    names = {element["id"]: name for name, element in elements.items()}
    async with app.state.sessionmaker() as session:
        meta = await get_type_meta(session, tenant.workspace_id, "lead")
    for condition, expected in CONDITIONS:
        search = await client.post("/entity-types/lead/elements/search", json={"filter": condition, "limit": 50})
        assert search.status_code == 200, (condition, search.text)
        in_sql = {names[item["id"]] for item in search.json()["items"]}
        node = parse_filter(condition, location="condition")
        in_memory = {
            name for name, element in elements.items() if matches(meta, node, record_of(ElementRead(**element)))
        }
        assert in_sql == expected, condition
        assert in_memory == in_sql, condition


async def test_rule_conditions_fire_for_the_elements_the_sql_filter_finds(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    await lead_type(client)
    await create_field(client, "lead", "called_at", "datetime")
    await create_field(client, "lead", "tags", "string", multiple=True)
    rules = {}
    for index, (condition, _) in enumerate(CONDITIONS):
        created = await client.post("/automation/rules", json=rule(condition, name=f"rule {index}"))
        assert created.status_code == 201, (condition, created.text)
        rules[created.json()["id"]] = index
    elements = {name: await create_element(client, "lead", **body) for name, body in ELEMENTS.items()}
    names = {element["id"]: name for name, element in elements.items()}
    await handle_new_events(app, settings, tenant.workspace_id)
    for rule_id, index in rules.items():
        condition, expected = CONDITIONS[index]
        runs = (await client.get("/automation/runs", params={"rule_id": rule_id})).json()["items"]
        by_status: dict[str, set[str]] = {}
        for run in runs:
            by_status.setdefault(run["status"], set()).add(names[run["element_id"]])
        assert by_status.get("succeeded", set()) == expected, (condition, runs)
        assert by_status.get("skipped", set()) == set(ELEMENTS) - expected, (condition, runs)


async def test_a_condition_that_no_longer_fits_its_type_fails_its_run_clearly(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    await lead_type(client)
    created = await client.post("/automation/rules", json=rule({"field": "budget", "op": "gte", "value": "100"}))
    other = await client.post("/automation/rules", json=rule(name="other"))
    assert (await client.delete("/entity-types/lead/fields/budget")).status_code == 204
    element = await create_element(client, "lead", title="after the field went")
    await handle_new_events(app, settings, tenant.workspace_id)
    (broken,) = (await client.get("/automation/runs", params={"rule_id": created.json()["id"]})).json()["items"]
    assert broken["status"] == "failed", broken
    assert "unknown field 'budget'" in broken["error"], broken
    (fine,) = (await client.get("/automation/runs", params={"rule_id": other.json()["id"]})).json()["items"]
    assert (fine["status"], fine["element_id"]) == ("succeeded", element["id"])
