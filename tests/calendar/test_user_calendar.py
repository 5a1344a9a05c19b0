"""A user's calendar (events and due tasks merged) and working hours through REST, across Berlin's spring change
(Sunday 2026-03-29: 02:00 CET becomes 03:00 CEST)."""

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.auth.actor import system_actor
from app.calendar import service as calendar_service
from app.db import unit_of_work
from app.errors import Invalid
from tests.calendar.conftest import People, create_event, fields_of
from tests.conftest import Tenant
from tests.factories import create_user, created

WEEK = {"from": "2026-03-28", "to": "2026-04-01"}  # local days in Ann's zone: 2026-03-27T23:00Z .. 2026-03-31T22:00Z


async def make_task(client: httpx.AsyncClient, assignee: str, due_at: str, **body: Any) -> dict[str, Any]:
    return created(
        await client.post("/tasks", json={"title": "Call back", "assignee_id": assignee, "due_at": due_at, **body})
    )


@pytest.fixture
async def anns_week(client: httpx.AsyncClient, people: People) -> dict[str, str]:
    """Ann's events around the change, one of Bob's she attends, and tasks due in and out of the week."""
    ann = people.ann.http
    ids = {
        "saturday": (await create_event(ann, starts_at="2026-03-28T09:00:00", ends_at="2026-03-28T10:00:00"))["id"],
        "sunday": (await create_event(ann, title="Offsite", start_date="2026-03-29", kind="other"))["id"],
        "monday": (await create_event(ann, starts_at="2026-03-30T09:00:00", ends_at="2026-03-30T10:00:00"))["id"],
        "bobs": (
            await create_event(
                people.bob.http,
                starts_at="2026-03-31T08:00:00",  # New York: 12:00 UTC
                ends_at="2026-03-31T08:30:00",
                attendee_ids=[people.ann.id],
                kind="call",
            )
        )["id"],
        "task": (await make_task(client, people.ann.id, "2026-03-29T10:00:00+02:00"))["id"],
    }
    await create_event(ann, starts_at="2026-04-02T09:00:00", ends_at="2026-04-02T10:00:00")  # after the week
    await make_task(client, people.ann.id, "2026-04-10T10:00:00Z")  # due later
    await make_task(client, people.bob.id, "2026-03-30T10:00:00Z")  # Bob's
    cancelled = await make_task(client, people.ann.id, "2026-03-30T11:00:00Z")
    await client.patch(f"/tasks/{cancelled['id']}", json={"status": "cancelled"})
    return ids


class TestUserCalendar:
    async def test_events_and_due_tasks_merge_across_the_change(
        self, client: httpx.AsyncClient, people: People, anns_week: dict[str, str]
    ) -> None:
        response = await people.ann.http.get(f"/users/{people.ann.id}/calendar", params=WEEK)
        assert response.status_code == 200, response.text
        calendar = response.json()
        assert (calendar["starts_at"], calendar["ends_at"]) == ("2026-03-27T23:00:00Z", "2026-03-31T22:00:00Z")
        rows = [(i["kind"], i["id"], i["starts_at"], i["ends_at"], i["local_starts_at"]) for i in calendar["items"]]
        assert rows == [
            # 09:00 local the day before the change is 08:00 UTC...
            (
                "event",
                anns_week["saturday"],
                "2026-03-28T08:00:00Z",
                "2026-03-28T09:00:00Z",
                "2026-03-28T09:00:00+01:00",
            ),
            # ...the change day itself is 23 hours long...
            ("event", anns_week["sunday"], "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", "2026-03-29T00:00:00+01:00"),
            ("task", anns_week["task"], "2026-03-29T08:00:00Z", "2026-03-29T08:00:00Z", "2026-03-29T10:00:00+02:00"),
            # ...and 09:00 local the day after is 07:00 UTC.
            ("event", anns_week["monday"], "2026-03-30T07:00:00Z", "2026-03-30T08:00:00Z", "2026-03-30T09:00:00+02:00"),
            # Bob's call in New York, which Ann attends, in Ann's local time.
            ("event", anns_week["bobs"], "2026-03-31T12:00:00Z", "2026-03-31T12:30:00Z", "2026-03-31T14:00:00+02:00"),
        ]
        sunday = calendar["items"][1]
        assert (sunday["all_day"], sunday["start_date"], sunday["end_date"], sunday["event_kind"]) == (
            True,
            "2026-03-29",
            "2026-03-29",
            "other",
        )
        task = calendar["items"][2]
        assert (task["task_status"], task["event_kind"], task["title"]) == ("open", None, "Call back")
        assert calendar["items"][4]["owner_id"] == people.bob.id
        # Working hours (the default week): Monday and Tuesday, 09:00-18:00 CEST.
        assert [(w["starts_at"], w["local_starts_at"]) for w in calendar["working_hours"]] == [
            ("2026-03-30T07:00:00Z", "2026-03-30T09:00:00+02:00"),
            ("2026-03-31T07:00:00Z", "2026-03-31T09:00:00+02:00"),
        ]
        assert calendar["truncated"] is False
        # An admin reads it the same.
        assert (await client.get(f"/users/{people.ann.id}/calendar", params=WEEK)).json() == calendar

    async def test_the_autumn_change_day_is_25_hours(self, people: People) -> None:
        await create_event(people.ann.http, start_date="2026-10-25")
        items = (
            await people.ann.http.get(
                f"/users/{people.ann.id}/calendar", params={"from": "2026-10-25", "to": "2026-10-26"}
            )
        ).json()["items"]
        assert [(i["starts_at"], i["ends_at"]) for i in items] == [("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z")]

    async def test_the_range_is_checked(self, client: httpx.AsyncClient, people: People) -> None:
        url = f"/users/{people.ann.id}/calendar"
        assert fields_of(await client.get(url, params={"from": "2026-01-01", "to": "2027-01-03"})) == {"to"}
        assert fields_of(await client.get(url, params={"from": "2026-01-02", "to": "2026-01-01"})) == {"to"}
        assert fields_of(await client.get(url, params={"from": "2026-03-29T02:30:00", "to": "2026-04-01"})) == {"from"}
        assert fields_of(await client.get(url, params={"from": "soon", "to": "2026-01-01"})) == {"from"}
        assert (await client.get(url, params={"from": "2026-01-01"})).status_code == 422
        # A full year (366 days) is fine.
        assert (await client.get(url, params={"from": "2028-01-01", "to": "2029-01-01"})).status_code == 200

    async def test_who_may_read_whose_calendar(
        self,
        client: httpx.AsyncClient,
        viewer_client: httpx.AsyncClient,
        other_client: httpx.AsyncClient,
        people: People,
    ) -> None:
        url = f"/users/{people.ann.id}/calendar"
        assert (await people.bob.http.get(url, params=WEEK)).status_code == 403
        assert (await viewer_client.get(url, params=WEEK)).status_code == 200  # reads everything, as for tasks
        assert (await other_client.get(url, params=WEEK)).status_code == 404
        missing = await client.get("/users/00000000-0000-0000-0000-000000000000/calendar", params=WEEK)
        assert missing.status_code == 404


class TestSchedule:
    async def test_default_set_and_reset(self, client: httpx.AsyncClient, people: People) -> None:
        url = f"/users/{people.ann.id}/schedule"
        default = (await people.bob.http.get(url)).json()  # anyone in the workspace reads working hours
        assert (default["is_default"], default["timezone"]) == (True, "Europe/Berlin")
        assert default["schedule"]["mon"] == [["09:00", "18:00"]]
        assert default["schedule"]["sat"] == []
        week = {"mon": [["14:00", "18:00"], ["08:00", "12:00"]], "sat": [["10:00", "24:00"]]}
        saved = await people.ann.http.put(url, json=week)
        assert saved.status_code == 200, saved.text
        assert saved.json()["is_default"] is False
        assert saved.json()["schedule"] == {
            "mon": [["08:00", "12:00"], ["14:00", "18:00"]],
            "tue": [],
            "wed": [],
            "thu": [],
            "fri": [],
            "sat": [["10:00", "24:00"]],
            "sun": [],
        }
        # The calendar's working hours follow: Saturday 2026-03-28 10:00 CET to midnight, Monday in CEST.
        calendar = (await client.get(f"/users/{people.ann.id}/calendar", params=WEEK)).json()
        assert [(w["starts_at"], w["ends_at"]) for w in calendar["working_hours"]] == [
            ("2026-03-28T09:00:00Z", "2026-03-28T23:00:00Z"),
            ("2026-03-30T06:00:00Z", "2026-03-30T10:00:00Z"),
            ("2026-03-30T12:00:00Z", "2026-03-30T16:00:00Z"),
        ]
        reset = await client.delete(url)
        assert (reset.status_code, reset.json()["is_default"]) == (200, True)

    async def test_bad_weeks_are_422(self, client: httpx.AsyncClient, people: People) -> None:
        url = f"/users/{people.ann.id}/schedule"
        assert fields_of(await client.put(url, json={"mon": [["18:00", "09:00"]]})) == {"mon"}
        assert fields_of(await client.put(url, json={"tue": [["09:00", "12:00"], ["11:00", "13:00"]]})) == {"tue"}
        assert fields_of(await client.put(url, json={"mon": [["9", "10", "11"]]})) == {"mon.0"}
        assert fields_of(await client.put(url, json={"funday": []})) == {"funday"}
        assert fields_of(await client.put(url, json={"wed": [["09:00", "10:00"]] * 13})) == {"wed"}
        assert (await client.get(url)).json()["is_default"] is True

    async def test_who_may_set_them(
        self,
        client: httpx.AsyncClient,
        viewer_client: httpx.AsyncClient,
        other_client: httpx.AsyncClient,
        people: People,
    ) -> None:
        url = f"/users/{people.ann.id}/schedule"
        week = {"mon": [["10:00", "11:00"]]}
        assert (await people.bob.http.put(url, json=week)).status_code == 403
        assert (await viewer_client.put(url, json=week)).status_code == 403
        assert (await other_client.put(url, json=week)).status_code == 404
        assert (await other_client.get(url)).status_code == 404
        assert (await client.put(url, json=week)).status_code == 200  # an admin
        stranger = await create_user(other_client, "Stranger")
        assert (await client.get(f"/users/{stranger['id']}/schedule")).status_code == 404


async def test_the_service_gives_working_intervals_in_utc_across_the_autumn_change(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, people: People
) -> None:
    """What the smart layer calls to place calls within working hours: a UTC range in, UTC intervals out."""
    await client.put(
        f"/users/{people.ann.id}/schedule", json={"fri": [["09:00", "17:00"]], "mon": [["09:00", "17:00"]]}
    )
    async with unit_of_work(app.state.sessionmaker) as session:
        found = await calendar_service.working_intervals(
            session,
            system_actor(tenant.workspace_id),
            uuid.UUID(people.ann.id),
            starts_at=datetime(2026, 10, 23, tzinfo=UTC),
            ends_at=datetime(2026, 10, 27, tzinfo=UTC),
        )
    # Friday in CEST (+2), Monday in CET (+1): the same local hours, an hour apart in UTC.
    assert [(w.starts_at, w.ends_at) for w in found] == [
        (datetime(2026, 10, 23, 7, tzinfo=UTC), datetime(2026, 10, 23, 15, tzinfo=UTC)),
        (datetime(2026, 10, 26, 8, tzinfo=UTC), datetime(2026, 10, 26, 16, tzinfo=UTC)),
    ]
    assert [w.local_starts_at.hour for w in found] == [9, 9]
    async with unit_of_work(app.state.sessionmaker) as session:
        with pytest.raises(Invalid):
            await calendar_service.working_intervals(
                session,
                system_actor(tenant.workspace_id),
                uuid.UUID(people.ann.id),
                starts_at=datetime(2026, 1, 1, tzinfo=UTC),
                ends_at=datetime(2027, 6, 1, tzinfo=UTC),
            )
