"""Activities through REST: logging, reading, changing, completing and deleting; what is refused, and for whom."""

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.activities.models import Activity
from app.outbox.models import OutboxEvent
from tests.conftest import Tenant, make_client
from tests.factories import create_element, create_type, create_user, created


async def log(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    return created(await client.post("/activities", json=body))


def fields(response: httpx.Response) -> set[str]:
    return {e["field"] for e in response.json().get("errors", [])}


async def events(app: FastAPI, activity_id: str) -> list[tuple[str, str]]:
    """(event type, element id) of the activity's outbox events, in order."""
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            select(OutboxEvent.event_type, OutboxEvent.element_id)
            .where(OutboxEvent.payload["activity_id"].astext == activity_id)
            .order_by(OutboxEvent.id)
        )
        return [(event_type, str(element_id)) for event_type, element_id in rows]


async def activity_count(app: FastAPI, workspace_id: uuid.UUID) -> int:
    async with app.state.sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(Activity).where(Activity.workspace_id == workspace_id)
            )
            or 0
        )


async def key_client(app: FastAPI, client: httpx.AsyncClient, role: dict[str, Any]) -> httpx.AsyncClient:
    """A client whose API key acts with a new workspace role."""
    created(await client.post("/roles", json={"level": "viewer", **role}))
    key = created(await client.post("/api-keys", json={"name": role["name"], "role": role["name"]}))
    return make_client(app, key["api_key"])


class TestLogActivity:
    async def test_a_call_is_logged_on_two_elements_with_its_duration_and_events(
        self, app: FastAPI, client: httpx.AsyncClient, lead: dict[str, Any]
    ) -> None:
        other = await create_element(client, "lead", title="Globex")
        ann = await create_user(client, "Ann")
        body = await log(
            client,
            kind="call",
            direction="outgoing",
            subject="Intro call",
            starts_at="2026-12-01T10:00:00",  # no offset: UTC
            ends_at="2026-12-01T10:05:30+00:00",
            outcome="no_answer",
            responsible_user_id=ann["id"],
            participants=[{"user_id": ann["id"]}, {"name": "Bob Buyer", "phone": "+1 555 0100"}],
            payload={"provider": "voip", "call_id": "c-1", "tags": ["cold"]},
            element_ids=[lead["id"], other["id"], lead["id"]],
        )
        assert body["duration_seconds"] == 330
        assert body["starts_at"] == "2026-12-01T10:00:00Z"
        assert (body["status"], body["outcome"]) == ("completed", "no_answer")
        assert body["completed_at"] is not None
        assert body["element_ids"] == sorted([lead["id"], other["id"]])
        assert body["participants"][1] == {"user_id": None, "name": "Bob Buyer", "phone": "+1 555 0100", "email": None}
        assert body["payload"] == {"provider": "voip", "call_id": "c-1", "tags": ["cold"]}
        assert (await client.get(f"/activities/{body['id']}")).json() == body
        # Once per element: a rule of the element's type runs with that element.
        assert sorted(await events(app, body["id"])) == sorted(
            [(t, e) for t in ("activity.created", "activity.completed") for e in (lead["id"], other["id"])]
        )

    async def test_a_planned_meeting_is_completed_once(
        self, app: FastAPI, client: httpx.AsyncClient, lead: dict[str, Any]
    ) -> None:
        planned = await log(
            client, kind="meeting", status="planned", starts_at="2026-12-02T09:00:00Z", element_ids=[lead["id"]]
        )
        assert (planned["status"], planned["completed_at"], planned["ends_at"]) == ("planned", None, None)
        assert await events(app, planned["id"]) == [("activity.created", lead["id"])]
        done = await client.post(f"/activities/{planned['id']}/complete", json={"ends_at": "2026-12-02T10:30:00Z"})
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["duration_seconds"]) == ("completed", 5400)
        again = await client.post(f"/activities/{planned['id']}/complete", json={})
        assert again.status_code == 409
        assert await events(app, planned["id"]) == [
            ("activity.created", lead["id"]),
            ("activity.completed", lead["id"]),
        ]

    async def test_a_duration_sets_the_end(self, client: httpx.AsyncClient, lead: dict[str, Any]) -> None:
        body = await log(
            client, kind="email", starts_at="2026-12-01T08:00:00Z", duration_seconds=90, element_ids=[lead["id"]]
        )
        assert body["ends_at"] == "2026-12-01T08:01:30Z"

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"kind": "fax"}, "kind"),
            ({"outcome": "maybe"}, "outcome"),
            ({"kind": "meeting", "outcome": "answered"}, "outcome"),
            ({"status": "planned", "outcome": "busy"}, "outcome"),
            ({"direction": "sideways"}, "direction"),
            ({"subject": "x" * 501}, "subject"),
            ({"element_ids": []}, "element_ids"),
            ({"element_ids": [str(uuid.uuid4()) for _ in range(51)]}, "element_ids"),
            ({"starts_at": "2026-12-01T10:00:00Z", "ends_at": "2026-12-01T09:00:00Z"}, "ends_at"),
            ({"starts_at": "2026-12-01T10:00:00Z", "ends_at": "2026-12-01T10:01:00Z", "duration_seconds": 5}, None),
            ({"duration_seconds": -1}, "duration_seconds"),
            ({"payload": {"blob": "x" * 70_000}}, "payload"),
            ({"participants": [{}]}, "participants.0"),
            ({"participants": [{"user_id": str(uuid.uuid4()), "name": "Both"}]}, "participants.0"),
            ({"participants": [{"name": f"P{i}"} for i in range(51)]}, "participants"),
            ({"participants": [{"user_id": str(uuid.uuid4())}]}, "participants[0].user_id"),
            ({"responsible_user_id": str(uuid.uuid4())}, "responsible_user_id"),
            ({"surprise": True}, "surprise"),
            ({"starts_at": "0001-01-01T00:00:00+01:00"}, "starts_at"),
            ({"starts_at": "9999-12-31T23:59:00Z", "duration_seconds": 3600}, "duration_seconds"),
        ],
    )
    async def test_bad_input_is_a_422_naming_it_and_writes_nothing(
        self,
        app: FastAPI,
        tenant: Tenant,
        client: httpx.AsyncClient,
        lead: dict[str, Any],
        change: dict[str, Any],
        field: str | None,
    ) -> None:
        response = await client.post("/activities", json={"kind": "call", "element_ids": [lead["id"]], **change})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert field is None or any(f.startswith(field) for f in fields(response)), response.text
        if field is None:
            assert fields(response) == {"duration_seconds"}, response.text
        assert await activity_count(app, tenant.workspace_id) == 0

    async def test_a_payload_nested_too_deep_is_refused(self, client: httpx.AsyncClient, lead: dict[str, Any]) -> None:
        deep: Any = "bottom"
        for _ in range(80):
            deep = {"d": deep}
        response = await client.post("/activities", json={"kind": "call", "element_ids": [lead["id"]], "payload": deep})
        assert response.status_code == 422, response.text

    async def test_an_unknown_element_is_a_404_and_nothing_is_written(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, lead: dict[str, Any]
    ) -> None:
        missing = str(uuid.uuid4())
        response = await client.post("/activities", json={"kind": "call", "element_ids": [lead["id"], missing]})
        assert response.status_code == 404, response.text
        assert fields(response) == {"element_ids[1]"}
        assert await activity_count(app, tenant.workspace_id) == 0


class TestListAndGet:
    async def test_filters_and_cursor_pages(self, client: httpx.AsyncClient, lead: dict[str, Any]) -> None:
        other = await create_element(client, "lead", title="Globex")
        ann = await create_user(client, "Ann")
        first = await log(
            client,
            kind="call",
            starts_at="2026-12-01T09:00:00Z",
            responsible_user_id=ann["id"],
            element_ids=[lead["id"]],
        )
        second = await log(client, kind="email", starts_at="2026-12-01T10:00:00Z", element_ids=[lead["id"]])
        third = await log(
            client,
            kind="call",
            status="planned",
            starts_at="2026-12-01T11:00:00Z",
            element_ids=[lead["id"], other["id"]],
        )

        async def ids(**params: Any) -> list[str]:
            response = await client.get("/activities", params=params)
            assert response.status_code == 200, response.text
            return [a["id"] for a in response.json()["items"]]

        assert await ids(element_id=lead["id"]) == [third["id"], second["id"], first["id"]]
        assert await ids(element_id=other["id"]) == [third["id"]]
        assert await ids(kind="call") == [third["id"], first["id"]]
        assert await ids(kind=["call", "email"], status="completed") == [second["id"], first["id"]]
        assert await ids(responsible_id=ann["id"]) == [first["id"]]
        assert await ids(**{"from": "2026-12-01T10:00:00Z", "to": "2026-12-01T11:00:00Z"}) == [second["id"]]
        page = (await client.get("/activities", params={"limit": 2})).json()
        assert [a["id"] for a in page["items"]] == [third["id"], second["id"]]
        rest = (await client.get("/activities", params={"limit": 2, "cursor": page["next_cursor"]})).json()
        assert ([a["id"] for a in rest["items"]], rest["next_cursor"]) == ([first["id"]], None)

    async def test_bad_cursors_kinds_and_ids(self, client: httpx.AsyncClient, lead: dict[str, Any]) -> None:
        assert (await client.get("/activities", params={"cursor": "not-a-cursor"})).status_code == 422
        assert (await client.get("/activities", params={"kind": "fax"})).status_code == 422
        assert (await client.get("/activities", params={"from": "0001-01-01T00:00:00+01:00"})).status_code == 422
        assert (await client.get(f"/activities/{uuid.uuid4()}")).status_code == 404
        assert (await client.get("/activities", params={"element_id": str(uuid.uuid4())})).status_code == 404


class TestUpdateAndDelete:
    async def test_changes_rebind_and_keep_the_rules_of_the_fields(
        self, app: FastAPI, client: httpx.AsyncClient, lead: dict[str, Any]
    ) -> None:
        other = await create_element(client, "lead", title="Globex")
        call = await log(
            client,
            kind="call",
            outcome="answered",
            starts_at="2026-12-01T09:00:00Z",
            ends_at="2026-12-01T09:10:00Z",
            element_ids=[lead["id"]],
        )
        url = f"/activities/{call['id']}"
        meeting = await client.patch(url, json={"kind": "meeting"})
        assert meeting.status_code == 422  # a meeting has no outcome
        assert fields(meeting) == {"outcome"}
        assert (await client.patch(url, json={"subject": None})).status_code == 422
        moved = await client.patch(
            url, json={"subject": "Rescheduled", "starts_at": "2026-12-01T09:05:00Z", "element_ids": [other["id"]]}
        )
        assert moved.status_code == 200, moved.text
        body = moved.json()
        assert (body["subject"], body["ends_at"], body["duration_seconds"]) == (
            "Rescheduled",
            "2026-12-01T09:10:00Z",
            300,
        )
        assert body["element_ids"] == [other["id"]]
        assert (await client.get("/activities", params={"element_id": lead["id"]})).json()["items"] == []
        assert (await events(app, call["id"]))[-1] == ("activity.updated", other["id"])

        assert (await client.delete(url)).status_code == 204
        assert (await client.get(url)).status_code == 404
        assert (await events(app, call["id"]))[-1] == ("activity.deleted", other["id"])
        assert (await client.get(f"/elements/{other['id']}")).status_code == 200  # the element stays

    async def test_a_purged_element_leaves_its_activity_to_its_other_elements(
        self, client: httpx.AsyncClient, lead: dict[str, Any]
    ) -> None:
        await create_type(client, "scratch")
        scratch = await create_element(client, "scratch", title="Temp")
        call = await log(client, kind="call", element_ids=[lead["id"], scratch["id"]])
        assert (await client.delete("/entity-types/scratch?force=true")).status_code == 204
        assert (await client.get(f"/activities/{call['id']}")).json()["element_ids"] == [lead["id"]]


class TestRoles:
    async def test_a_viewer_reads_but_cannot_write(
        self, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient, lead: dict[str, Any]
    ) -> None:
        call = await log(client, kind="call", status="planned", element_ids=[lead["id"]])
        url = f"/activities/{call['id']}"
        assert (await viewer_client.get(url)).status_code == 200
        assert [a["id"] for a in (await viewer_client.get("/activities")).json()["items"]] == [call["id"]]
        refused = [
            await viewer_client.post("/activities", json={"kind": "call", "element_ids": [lead["id"]]}),
            await viewer_client.patch(url, json={"subject": "No"}),
            await viewer_client.post(f"{url}/complete", json={}),
            await viewer_client.delete(url),
        ]
        assert [r.status_code for r in refused] == [403, 403, 403, 403]
        assert (await client.get(url)).json() == call

    async def test_a_role_without_read_on_the_type_sees_nothing_of_it(
        self, app: FastAPI, client: httpx.AsyncClient, lead: dict[str, Any]
    ) -> None:
        await create_type(client, "company")
        acme = await create_element(client, "company", title="ACME Inc")
        on_lead = await log(client, kind="call", subject="Lead only", element_ids=[lead["id"]])
        on_both = await log(client, kind="meeting", subject="Both", element_ids=[lead["id"], acme["id"]])
        role = {"name": "Companies", "grants": [{"entity_type": "company", "read": "all"}]}
        async with await key_client(app, client, role) as companies:
            assert (await companies.get(f"/activities/{on_lead['id']}")).status_code == 404
            assert [a["id"] for a in (await companies.get("/activities")).json()["items"]] == [on_both["id"]]
            shared = (await companies.get(f"/activities/{on_both['id']}")).json()
            assert shared["element_ids"] == [acme["id"]]  # not the lead it may not read
            assert (await companies.get(f"/elements/{lead['id']}/timeline")).status_code == 404
            assert (await companies.get("/activities", params={"element_id": lead["id"]})).status_code == 404
            refused = await companies.post("/activities", json={"kind": "call", "element_ids": [lead["id"]]})
            assert refused.status_code == 404

    async def test_updating_needs_update_on_every_element(
        self, app: FastAPI, client: httpx.AsyncClient, lead: dict[str, Any]
    ) -> None:
        call = await log(client, kind="call", status="planned", element_ids=[lead["id"]])
        role = {"name": "Lead readers", "grants": [{"entity_type": "lead", "read": "all"}]}
        async with await key_client(app, client, role) as readers:
            assert (await readers.get(f"/activities/{call['id']}")).status_code == 200
            created_ = await readers.post("/activities", json={"kind": "call", "element_ids": [lead["id"]]})
            assert created_.status_code == 403
            assert created_.json()["errors"] == [{"field": "permission", "message": "lead.update"}]
            assert (await readers.post(f"/activities/{call['id']}/complete", json={})).status_code == 403
            assert (await readers.delete(f"/activities/{call['id']}")).status_code == 403
        role = {"name": "Lead editors", "grants": [{"entity_type": "lead", "read": "all", "update": "all"}]}
        async with await key_client(app, client, role) as editors:
            done = await editors.post(f"/activities/{call['id']}/complete", json={"outcome": "busy"})
            assert done.status_code == 200, done.text

    async def test_another_workspace_gets_404s(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient, lead: dict[str, Any]
    ) -> None:
        call = await log(client, kind="call", status="planned", element_ids=[lead["id"]])
        url = f"/activities/{call['id']}"
        answers = [
            await other_client.get(url),
            await other_client.patch(url, json={"subject": "Mine"}),
            await other_client.post(f"{url}/complete", json={}),
            await other_client.delete(url),
            await other_client.post("/activities", json={"kind": "call", "element_ids": [lead["id"]]}),
            await other_client.get("/activities", params={"element_id": lead["id"]}),
            await other_client.get(f"/elements/{lead['id']}/timeline"),
        ]
        assert [a.status_code for a in answers] == [404] * len(answers)
        assert (await other_client.get("/activities")).json()["items"] == []
        assert (await client.get(url)).json() == call
