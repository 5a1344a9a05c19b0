"""An element's feed: its timeline entries (stage moves, comments, runs…) and its activities, newest first."""

from typing import Any

import httpx
from fastapi import FastAPI

from app.kit.cursor import encode_cursor
from app.settings import Settings
from tests.activities.conftest import handle_events
from tests.conftest import Tenant
from tests.factories import create_element, create_type, created


async def feed(client: httpx.AsyncClient, element_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/elements/{element_id}/timeline", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def kinds(page: dict[str, Any]) -> list[str]:
    return [item["kind"] for item in page["items"]]


async def test_a_call_logged_on_a_lead_shows_on_its_timeline(
    app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    await create_type(client, "lead")
    rule = {
        "name": "Welcome",
        "entity_type": "lead",
        "trigger": {"type": "element.created"},
        "actions": [{"type": "add_comment", "params": {"text": "Welcome, {{ title }}"}}],
    }
    created(await client.post("/automation/rules", json=rule))
    lead = await create_element(client, "lead", title="ACME")
    early = created(
        await client.post(
            "/activities",
            json={
                "kind": "email",
                "subject": "Before it all",
                "starts_at": "2020-01-01T00:00:00Z",
                "element_ids": [lead["id"]],
            },
        )
    )
    assert await handle_events(app, settings, tenant.workspace_id) == 1  # the comment rule's run
    assert (await client.post(f"/elements/{lead['id']}/move", json={"stage_code": "IN_PROGRESS"})).status_code == 200
    call = created(
        await client.post(
            "/activities",
            json={
                "kind": "call",
                "direction": "incoming",
                "subject": "Asked for a demo",
                "outcome": "answered",
                "element_ids": [lead["id"]],
            },
        )
    )

    whole = await feed(client, lead["id"])
    assert kinds(whole) == ["call", "moved", "automation_run", "comment", "created", "email"]
    assert whole["next_cursor"] is None
    first = whole["items"][0]
    assert (first["type"], first["entry"], first["activity"]["id"]) == ("activity", None, call["id"])
    assert first["at"] == call["starts_at"]
    moved = whole["items"][1]
    assert (moved["type"], moved["activity"], moved["entry"]["data"]["to_stage_code"]) == ("entry", None, "IN_PROGRESS")
    assert whole["items"][3]["entry"]["data"]["text"] == "Welcome, ACME"
    assert whole["items"][-1]["activity"]["id"] == early["id"]

    # Pages of two follow each other with the opaque cursor, nothing left out or repeated.
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(4):
        page = await feed(client, lead["id"], limit=2, **({"cursor": cursor} if cursor else {}))
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == whole["items"]

    assert kinds(await feed(client, lead["id"], kind="call")) == ["call"]
    assert kinds(await feed(client, lead["id"], kind=["comment", "moved", "email"])) == ["moved", "comment", "email"]
    filtered = await feed(client, lead["id"], kind=["call", "email", "created"], limit=1)
    assert kinds(filtered) == ["call"]
    rest = await feed(client, lead["id"], kind=["call", "email", "created"], limit=5, cursor=filtered["next_cursor"])
    assert kinds(rest) == ["created", "email"]
    assert kinds(await feed(client, lead["id"], kind="stage_changed")) == []  # a kind nothing has

    # The history keeps its shape and content: the timeline entries, oldest first, no activities.
    history = (await client.get(f"/elements/{lead['id']}/history")).json()["items"]
    assert [e["kind"] for e in history] == ["created", "comment", "automation_run", "moved"]
    assert set(history[0]) == {"id", "kind", "actor_id", "data", "created_at"}


async def test_a_planned_activity_is_placed_by_its_start(client: httpx.AsyncClient, lead: dict[str, Any]) -> None:
    later = created(
        await client.post(
            "/activities",
            json={
                "kind": "meeting",
                "status": "planned",
                "starts_at": "2999-01-01T09:00:00Z",
                "element_ids": [lead["id"]],
            },
        )
    )
    page = await feed(client, lead["id"])
    assert page["items"][0]["activity"]["id"] == later["id"]
    assert kinds(page) == ["meeting", "created"]


async def test_bad_feed_requests_are_422s(client: httpx.AsyncClient, lead: dict[str, Any]) -> None:
    url = f"/elements/{lead['id']}/timeline"
    answers = [
        await client.get(url, params={"cursor": "bm90IG91cnM"}),
        await client.get(url, params={"cursor": "WyJ4IiwwLDFd"}),  # ["x",0,1]: well-formed, not a position
        await client.get(url, params={"cursor": encode_cursor(["0001-01-01T00:00:00+01:00", 0, 1])}),
        await client.get(url, params={"kind": [f"k{i}" for i in range(21)]}),
        await client.get(url, params={"kind": "k" * 51}),
        await client.get(url, params={"limit": 501}),
    ]
    assert [a.status_code for a in answers] == [422] * len(answers), [a.text for a in answers]
