"""Activities in automation: the `activity.created` and `activity.completed` triggers, conditions on `activity.*`, and
the `log_activity` action; the engine runs here in batches (`runner.process_events`), as a worker runs it."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.settings import Settings
from tests.activities.conftest import handle_events
from tests.conftest import Tenant
from tests.factories import create_element, create_user, created


async def rule(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    return created(await client.post("/automation/rules", json={"name": "R", "entity_type": "lead", **body}))


async def log(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    return created(await client.post("/activities", json=body))


async def runs(client: httpx.AsyncClient, rule_id: str) -> dict[str, str]:
    """Each run's status by element id."""
    items = (await client.get("/automation/runs", params={"rule_id": rule_id})).json()["items"]
    return {r["element_id"]: r["status"] for r in items}


async def task_titles(client: httpx.AsyncClient, element_id: str) -> list[str]:
    return [t["title"] for t in (await client.get("/tasks", params={"element_id": element_id})).json()["items"]]


async def test_a_call_completed_with_no_answer_makes_a_task_and_moves_the_lead(
    app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient, lead: dict[str, Any]
) -> None:
    missed = await rule(
        client,
        trigger={"type": "activity.completed"},
        condition={"field": "activity.outcome", "op": "eq", "value": "no_answer"},
        actions=[
            {"type": "create_task", "params": {"title": "Call {{ title }} again ({{ activity.subject }})"}},
            {"type": "move_to_stage", "params": {"stage_code": "IN_PROGRESS"}},
        ],
    )
    unanswered = await create_element(client, "lead", title="Globex")
    later = await create_element(client, "lead", title="Initech")
    await log(client, kind="call", subject="First try", outcome="answered", element_ids=[lead["id"]])
    await log(client, kind="call", subject="First try", outcome="no_answer", element_ids=[unanswered["id"]])
    planned = await log(client, kind="call", status="planned", subject="Follow-up", element_ids=[later["id"]])
    # Started: the no_answer call's run (the answered one's is skipped; the planned call completes nothing yet).
    assert await handle_events(app, settings, tenant.workspace_id) == 1
    done = await client.post(f"/activities/{planned['id']}/complete", json={"outcome": "no_answer"})
    assert done.status_code == 200, done.text
    assert await handle_events(app, settings, tenant.workspace_id) == 1

    assert await runs(client, missed["id"]) == {
        lead["id"]: "skipped",
        unanswered["id"]: "succeeded",
        later["id"]: "succeeded",
    }
    assert await task_titles(client, lead["id"]) == []
    assert await task_titles(client, unanswered["id"]) == ["Call Globex again (First try)"]
    assert await task_titles(client, later["id"]) == ["Call Initech again (Follow-up)"]
    stages = {e["id"]: e["stage_code"] for e in (await client.get("/entity-types/lead/elements")).json()["items"]}
    assert stages == {lead["id"]: "NEW", unanswered["id"]: "IN_PROGRESS", later["id"]: "IN_PROGRESS"}


async def test_conditions_see_the_activitys_kind_direction_and_duration(
    app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient, lead: dict[str, Any]
) -> None:
    long_incoming = await rule(
        client,
        trigger={"type": "activity.created"},
        condition={
            "and": [
                {"field": "activity.kind", "op": "eq", "value": "call"},
                {"field": "activity.direction", "op": "eq", "value": "incoming"},
                {"field": "activity.duration_seconds", "op": "gte", "value": "60"},  # typed: compared as numbers
            ]
        },
        actions=[{"type": "add_comment", "params": {"text": "{{ activity.duration_seconds }} s with {{ title }}"}}],
    )
    short = await create_element(client, "lead", title="Short")
    mail = await create_element(client, "lead", title="Mail")
    call = {"kind": "call", "direction": "incoming", "starts_at": "2026-12-01T10:00:00Z"}
    await log(client, **call, ends_at="2026-12-01T10:01:30Z", element_ids=[lead["id"]])
    await log(client, **call, ends_at="2026-12-01T10:00:20Z", element_ids=[short["id"]])
    await log(client, kind="email", direction="incoming", duration_seconds=600, element_ids=[mail["id"]])
    await handle_events(app, settings, tenant.workspace_id)
    assert await runs(client, long_incoming["id"]) == {
        lead["id"]: "succeeded",
        short["id"]: "skipped",
        mail["id"]: "skipped",
    }
    history = (await client.get(f"/elements/{lead['id']}/history")).json()["items"]
    assert [e["data"]["text"] for e in history if e["kind"] == "comment"] == ["90 s with ACME"]


async def test_log_activity_plans_a_call_whose_creation_fires_in_turn(
    app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    ann = await create_user(client, "Ann")
    created(await client.post("/entity-types", json={"code": "lead", "title": "Lead"}))
    pipeline = next(p for p in (await client.get("/entity-types/lead/pipelines")).json()["items"] if p["is_default"])
    working = next(s["id"] for s in pipeline["stages"] if s["code"] == "IN_PROGRESS")
    plan = await rule(
        client,
        stage_id=working,
        trigger={"type": "element.entered_stage"},
        actions=[
            {
                "type": "log_activity",
                "params": {
                    "kind": "call",
                    "status": "planned",
                    "direction": "outgoing",
                    "subject": "Call {{ title }}",
                    "starts_in_minutes": 60,
                    "payload": {"source": "rule"},
                },
            }
        ],
    )
    noticed = await rule(
        client,
        trigger={"type": "activity.created"},
        condition={"field": "activity.status", "op": "eq", "value": "planned"},
        actions=[{"type": "add_comment", "params": {"text": "Planned: {{ activity.subject }}"}}],
    )
    lead = await create_element(client, "lead", title="ACME", assigned_to=ann["id"])
    assert (await client.post(f"/elements/{lead['id']}/move", json={"stage_code": "IN_PROGRESS"})).status_code == 200
    before = datetime.now(UTC)
    await handle_events(app, settings, tenant.workspace_id)

    assert await runs(client, plan["id"]) == {lead["id"]: "succeeded"}
    assert await runs(client, noticed["id"]) == {lead["id"]: "succeeded"}
    logged = (await client.get("/activities", params={"element_id": lead["id"]})).json()["items"]
    assert len(logged) == 1
    call = logged[0]
    assert (call["kind"], call["status"], call["subject"], call["direction"]) == (
        "call",
        "planned",
        "Call ACME",
        "outgoing",
    )
    assert call["responsible_user_id"] == ann["id"]  # the element's assignee
    assert call["payload"] == {"source": "rule"}
    assert call["run_id"] is not None
    starts = datetime.fromisoformat(call["starts_at"])
    assert before + timedelta(minutes=59) < starts < before + timedelta(minutes=61)
    history = (await client.get(f"/elements/{lead['id']}/history")).json()["items"]
    assert [e["data"]["text"] for e in history if e["kind"] == "comment"] == ["Planned: Call ACME"]


async def test_one_activity_on_many_elements_runs_the_rule_for_each_in_batches(
    app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient, lead: dict[str, Any]
) -> None:
    per_element = await rule(
        client,
        trigger={"type": "activity.completed"},
        actions=[{"type": "create_task", "params": {"title": "Minutes for {{ title }}"}}],
    )
    batch = await client.post(
        "/entity-types/lead/elements/batch",
        json={"items": [{"op": "create", "data": {"title": f"L{i}"}} for i in range(39)]},
    )
    assert batch.status_code == 200, batch.text
    ids = [lead["id"], *(e["id"] for e in batch.json()["items"])]
    await log(client, kind="meeting", subject="All hands", element_ids=ids)
    assert await handle_events(app, settings, tenant.workspace_id) == 40  # 41 events: more than one batch of 25
    assert set((await runs(client, per_element["id"])).values()) == {"succeeded"}
    tasks = (await client.get("/tasks", params={"limit": 500})).json()["items"]
    assert sorted(t["element_id"] for t in tasks) == sorted(ids)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "trigger": {"type": "element.created"},
                "condition": {"field": "activity.outcome", "op": "eq", "value": "busy"},
            },
            "condition.field",
        ),
        (
            {
                "trigger": {"type": "activity.completed"},
                "condition": {"field": "activity.outcome", "op": "eq", "value": "maybe"},
            },
            "condition.value",
        ),
        (
            {
                "trigger": {"type": "activity.completed"},
                "condition": {"field": "activity.mood", "op": "eq", "value": "x"},
            },
            "condition.field",
        ),
        (
            {
                "trigger": {"type": "activity.completed"},
                "condition": {"field": "activity.kind", "op": "gt", "value": "call"},
            },
            "condition.op",
        ),
        ({"trigger": {"type": "activity.completed", "kinds": ["call"]}}, "trigger.kinds"),
        ({"actions": [{"type": "log_activity", "params": {"kind": "fax"}}]}, "actions[0].params.kind"),
        ({"actions": [{"type": "log_activity", "params": {}}]}, "actions[0].params.kind"),
        (
            {"actions": [{"type": "log_activity", "params": {"kind": "meeting", "outcome": "busy"}}]},
            "actions[0].params",
        ),
        (
            {"actions": [{"type": "log_activity", "params": {"kind": "call", "subject": "x" * 501}}]},
            "actions[0].params.subject",
        ),
        ({"actions": [{"type": "log_activity", "params": {"kind": "call", "when": "now"}}]}, "actions[0].params.when"),
        (
            {
                "actions": [
                    {
                        "type": "log_activity",
                        "params": {"kind": "call", "responsible_user_id": "0" * 8 + "-0000-0000-0000-" + "0" * 12},
                    }
                ]
            },
            "actions[0].params.responsible_user_id",
        ),
        (
            {"actions": [{"type": "log_activity", "params": {"kind": "call", "starts_in_minutes": -5}}]},
            "actions[0].params.starts_in_minutes",
        ),
    ],
)
async def test_bad_rules_are_refused_when_saved(
    client: httpx.AsyncClient, lead: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    sent = {
        "name": "Bad",
        "entity_type": "lead",
        "trigger": {"type": "activity.created"},
        "actions": [{"type": "add_comment", "params": {"text": "x"}}],
        **body,
    }
    response = await client.post("/automation/rules", json=sent)
    assert response.status_code == 422, response.text
    assert field in {e["field"] for e in response.json()["errors"]}, response.text
