"""Calendar events through REST: create, read, list, change, delete; validation; who may; another workspace."""

import httpx
from fastapi import FastAPI

from tests.calendar.conftest import People, access_token, create_event, fields_of
from tests.conftest import Tenant, make_client
from tests.factories import create_element, create_user, lead_type


class TestCreate:
    async def test_a_person_creates_in_their_own_calendar_and_zone(self, people: People) -> None:
        event = await create_event(
            people.ann.http, starts_at="2026-03-28T09:00:00", ends_at="2026-03-28T10:30:00", kind="call"
        )
        assert event["owner_id"] == people.ann.id
        assert event["timezone"] == "Europe/Berlin"  # Ann's, by default
        # A time without an offset is a wall-clock time in the event's zone.
        assert event["starts_at"] == "2026-03-28T08:00:00Z"
        assert event["local_starts_at"] == "2026-03-28T09:00:00+01:00"
        assert (event["all_day"], event["kind"], event["start_date"]) == (False, "call", None)
        fetched = await people.ann.http.get(f"/calendar/events/{event['id']}")
        assert fetched.status_code == 200
        assert fetched.json() == event

    async def test_an_all_day_event_on_the_change_day_is_23_hours(self, people: People) -> None:
        event = await create_event(people.ann.http, start_date="2026-03-29", kind="deadline")
        assert (event["all_day"], event["start_date"], event["end_date"]) == (True, "2026-03-29", "2026-03-29")
        assert (event["starts_at"], event["ends_at"]) == ("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z")
        autumn = await create_event(people.ann.http, start_date="2026-10-25", end_date="2026-10-25")
        assert (autumn["starts_at"], autumn["ends_at"]) == ("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z")

    async def test_an_admin_key_names_the_owner_element_and_attendees(
        self, client: httpx.AsyncClient, people: People
    ) -> None:
        await lead_type(client)
        element = await create_element(client, "lead", title="ACME")
        event = await create_event(
            client,
            owner_id=people.bob.id,
            starts_at="2026-05-04T15:00:00+00:00",
            ends_at="2026-05-04T16:00:00+00:00",
            timezone="Asia/Tokyo",
            element_id=element["id"],
            attendee_ids=[people.ann.id, people.ann.id],
            description="Agenda",
            location="Room 1",
        )
        assert event["owner_id"] == people.bob.id
        assert event["local_starts_at"] == "2026-05-05T00:00:00+09:00"
        assert (event["element_id"], event["attendee_ids"]) == (element["id"], [people.ann.id])
        # Ann attends: she sees it; the list of her events (owned or attended) has it.
        assert (await people.ann.http.get(f"/calendar/events/{event['id']}")).status_code == 200
        listed = (await client.get("/calendar/events", params={"user_id": people.ann.id})).json()
        assert [e["id"] for e in listed["items"]] == [event["id"]]
        by_element = (await client.get("/calendar/events", params={"element_id": element["id"]})).json()
        assert [e["id"] for e in by_element["items"]] == [event["id"]]

    async def test_bad_input_is_422_naming_the_fields(self, client: httpx.AsyncClient, people: People) -> None:
        owner = {"owner_id": people.ann.id}
        # An API key acts for nobody: it must name the owner.
        assert fields_of(await client.post("/calendar/events", json={"title": "x", "start_date": "2026-01-01"})) == {
            "owner_id"
        }
        bad_zone = await client.post(
            "/calendar/events", json={"title": "x", "start_date": "2026-01-01", "timezone": "Mars/Base", **owner}
        )
        assert fields_of(bad_zone) == {"timezone"}
        backwards = {"title": "x", "starts_at": "2026-01-01T10:00:00Z", "ends_at": "2026-01-01T09:00:00Z", **owner}
        assert fields_of(await client.post("/calendar/events", json=backwards)) == {"ends_at"}
        both = {**backwards, "ends_at": "2026-01-01T11:00:00Z", "start_date": "2026-01-01"}
        assert fields_of(await client.post("/calendar/events", json=both)) == {"start_date"}
        half = {"title": "x", "starts_at": "2026-01-01T10:00:00Z", **owner}
        assert fields_of(await client.post("/calendar/events", json=half)) == {"ends_at"}
        skipped = {"title": "x", "starts_at": "2026-03-29T02:30:00", "ends_at": "2026-03-29T04:00:00", **owner}
        assert fields_of(await client.post("/calendar/events", json=skipped)) == {"starts_at"}
        dates = {"title": "x", "start_date": "2026-01-05", "end_date": "2026-01-04", **owner}
        assert fields_of(await client.post("/calendar/events", json=dates)) == {"end_date"}
        too_long = {"title": "x", "start_date": "2026-01-01", "end_date": "2027-06-01", **owner}
        assert fields_of(await client.post("/calendar/events", json=too_long)) == {"end_date"}
        ancient = {"title": "x", "start_date": "0001-01-01", **owner}
        assert fields_of(await client.post("/calendar/events", json=ancient)) == {"start_date"}
        huge = {"title": "x" * 501, "description": "d" * 10001, "start_date": "2026-01-01", **owner}
        assert fields_of(await client.post("/calendar/events", json=huge)) == {"title", "description"}
        crowd = {"title": "x", "start_date": "2026-01-01", "attendee_ids": [people.bob.id] * 101, **owner}
        assert fields_of(await client.post("/calendar/events", json=crowd)) == {"attendee_ids"}
        kind = {"title": "x", "start_date": "2026-01-01", "kind": "party", **owner}
        assert fields_of(await client.post("/calendar/events", json=kind)) == {"kind"}
        assert (await client.get("/calendar/events")).json()["items"] == []  # nothing half-written

    async def test_another_workspaces_ids_in_a_body_are_refused(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient, people: People
    ) -> None:
        stranger = await create_user(other_client, "Stranger")
        await lead_type(other_client)
        foreign_element = await create_element(other_client, "lead", title="theirs")
        body = {"title": "x", "start_date": "2026-01-01"}
        assert fields_of(await client.post("/calendar/events", json={**body, "owner_id": stranger["id"]})) == {
            "owner_id"
        }
        with_refs = {**body, "owner_id": people.ann.id, "attendee_ids": [stranger["id"]]}
        assert fields_of(
            await client.post("/calendar/events", json={**with_refs, "element_id": foreign_element["id"]})
        ) == {"attendee_ids[0]", "element_id"}


class TestChange:
    async def test_moving_keeps_the_length_and_switching_forms(self, people: People) -> None:
        http = people.ann.http
        event = await create_event(http, starts_at="2026-03-27T09:00:00", ends_at="2026-03-27T10:00:00")
        moved = (await http.patch(f"/calendar/events/{event['id']}", json={"starts_at": "2026-03-30T09:00:00"})).json()
        # An hour long still; 09:00 local is now 07:00 UTC (summer time).
        assert (moved["starts_at"], moved["ends_at"]) == ("2026-03-30T07:00:00Z", "2026-03-30T08:00:00Z")
        all_day = await http.patch(f"/calendar/events/{event['id']}", json={"start_date": "2026-03-29"})
        assert all_day.status_code == 200, all_day.text
        assert (all_day.json()["all_day"], all_day.json()["ends_at"]) == (True, "2026-03-29T22:00:00Z")
        # A new zone keeps an all-day event's local days.
        tokyo = (await http.patch(f"/calendar/events/{event['id']}", json={"timezone": "Asia/Tokyo"})).json()
        assert (tokyo["start_date"], tokyo["starts_at"]) == ("2026-03-29", "2026-03-28T15:00:00Z")
        renamed = await http.patch(f"/calendar/events/{event['id']}", json={"title": "Renamed", "kind": "other"})
        assert (renamed.json()["title"], renamed.json()["kind"]) == ("Renamed", "other")
        assert fields_of(await http.patch(f"/calendar/events/{event['id']}", json={"title": None})) == {"title"}
        assert fields_of(
            await http.patch(f"/calendar/events/{event['id']}", json={"starts_at": "2026-03-29T10:00:00Z"})
        ) == {"ends_at"}
        assert fields_of(await http.patch(f"/calendar/events/{event['id']}", json={"timezone": "Nowhere"})) == {
            "timezone"
        }
        assert (await http.get(f"/calendar/events/{event['id']}")).json()["title"] == "Renamed"
        assert (await http.delete(f"/calendar/events/{event['id']}")).status_code == 204
        assert (await http.get(f"/calendar/events/{event['id']}")).status_code == 404


class TestWhoMay:
    async def test_people_see_and_change_their_own_only(self, client: httpx.AsyncClient, people: People) -> None:
        anns = await create_event(people.ann.http, start_date="2026-06-01")
        # Bob neither sees Ann's event nor can put one in her calendar.
        assert (await people.bob.http.get(f"/calendar/events/{anns['id']}")).status_code == 404
        assert (await people.bob.http.patch(f"/calendar/events/{anns['id']}", json={"title": "x"})).status_code == 404
        assert (await people.bob.http.delete(f"/calendar/events/{anns['id']}")).status_code == 404
        assert (await people.bob.http.get("/calendar/events")).json()["items"] == []
        for_ann = await people.bob.http.post(
            "/calendar/events", json={"title": "x", "start_date": "2026-06-02", "owner_id": people.ann.id}
        )
        assert for_ann.status_code == 403
        # Invited, Bob sees it but still may not change it.
        await client.patch(f"/calendar/events/{anns['id']}", json={"attendee_ids": [people.bob.id]})
        assert (await people.bob.http.get(f"/calendar/events/{anns['id']}")).status_code == 200
        assert (await people.bob.http.patch(f"/calendar/events/{anns['id']}", json={"title": "x"})).status_code == 403
        # Nor hand it over to himself.
        assert (
            await people.ann.http.patch(f"/calendar/events/{anns['id']}", json={"owner_id": people.bob.id})
        ).status_code == 403

    async def test_a_person_of_level_viewer_changes_not_even_their_own(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        rolf = await create_user(client, "Rolf")  # no role: level viewer
        async with make_client(app, access_token(app, tenant, rolf["id"])) as http:
            refused = await http.post("/calendar/events", json={"title": "x", "start_date": "2026-06-02"})
            assert refused.status_code == 403
            assert (
                await http.get(f"/users/{rolf['id']}/calendar", params={"from": "2026-06-01", "to": "2026-06-03"})
            ).status_code == 200
        assert (await client.get("/calendar/events")).json()["items"] == []

    async def test_a_viewer_key_reads_but_changes_nothing(
        self, viewer_client: httpx.AsyncClient, people: People
    ) -> None:
        event = await create_event(people.ann.http, start_date="2026-06-01")
        assert (await viewer_client.get(f"/calendar/events/{event['id']}")).status_code == 200
        assert (await viewer_client.patch(f"/calendar/events/{event['id']}", json={"title": "x"})).status_code == 403
        assert (await viewer_client.delete(f"/calendar/events/{event['id']}")).status_code == 403
        created = await viewer_client.post(
            "/calendar/events", json={"title": "x", "start_date": "2026-06-02", "owner_id": people.ann.id}
        )
        assert created.status_code == 403

    async def test_another_workspace_finds_nothing(self, other_client: httpx.AsyncClient, people: People) -> None:
        event = await create_event(people.ann.http, start_date="2026-06-01")
        assert (await other_client.get(f"/calendar/events/{event['id']}")).status_code == 404
        assert (await other_client.patch(f"/calendar/events/{event['id']}", json={"title": "x"})).status_code == 404
        assert (await other_client.delete(f"/calendar/events/{event['id']}")).status_code == 404
        assert (await other_client.get("/calendar/events")).json()["items"] == []


async def test_the_list_pages_by_start(people: People) -> None:
    http = people.ann.http
    ids = [(await create_event(http, start_date=f"2026-07-0{day}"))["id"] for day in (3, 1, 2)]
    first = (await http.get("/calendar/events", params={"limit": 2})).json()
    assert [e["start_date"] for e in first["items"]] == ["2026-07-01", "2026-07-02"]
    second = (await http.get("/calendar/events", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert ([e["id"] for e in second["items"]], second["next_cursor"]) == ([ids[0]], None)
    ranged = (
        await http.get("/calendar/events", params={"from": "2026-07-02T12:00:00Z", "to": "2026-07-02T21:00:00Z"})
    ).json()
    assert [e["start_date"] for e in ranged["items"]] == ["2026-07-02"]
    assert (await http.get("/calendar/events", params={"cursor": "nonsense"})).status_code == 422
