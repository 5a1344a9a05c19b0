"""The iCalendar feed behind a secret URL: parsed with `icalendar`, rotated, revoked, and who may make it."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI
from icalendar import Calendar

from tests.calendar.conftest import People, create_event
from tests.conftest import make_client
from tests.factories import create_user, created


def anonymous(app: FastAPI) -> httpx.AsyncClient:
    """A client with no Authorization header, at the server's root (the feed's URL is absolute)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_the_feed_holds_events_and_due_tasks(app: FastAPI, client: httpx.AsyncClient, people: People) -> None:
    soon = datetime.now(UTC).date() + timedelta(days=10)
    timed = await create_event(
        people.ann.http,
        title="Demo at ACME",
        starts_at=f"{soon}T09:00:00",
        ends_at=f"{soon}T10:00:00",
        description="Bring the slides",
        location="ACME HQ",
    )
    all_day = await create_event(
        people.ann.http, title="Offsite", start_date=str(soon), end_date=str(soon + timedelta(days=1))
    )
    task = created(
        await client.post(
            "/tasks", json={"title": "Send the offer", "assignee_id": people.ann.id, "due_at": f"{soon}T15:00:00Z"}
        )
    )
    await create_event(people.ann.http, title="Long ago", start_date="2020-01-01")  # outside the feed's window
    await create_event(people.bob.http, title="Bob's", start_date=str(soon))  # someone else's

    made = await people.ann.http.post(f"/users/{people.ann.id}/calendar/feed")
    assert made.status_code == 200, made.text
    url = made.json()["url"]
    assert url == f"http://testserver/api/v1/calendar/feeds/{made.json()['secret']}.ics"
    async with anonymous(app) as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"

    calendar = Calendar.from_ical(response.content)
    events = {str(e["summary"]): e for e in calendar.walk("VEVENT")}
    assert set(events) == {"Demo at ACME", "Offsite", "Send the offer"}
    demo = events["Demo at ACME"]
    assert demo.decoded("dtstart") == datetime(soon.year, soon.month, soon.day, 9, tzinfo=ZoneInfo("Europe/Berlin"))
    assert demo["dtstart"].params["TZID"] == "Europe/Berlin"
    assert demo.decoded("dtend") - demo.decoded("dtstart") == timedelta(hours=1)
    assert (str(demo["description"]), str(demo["location"])) == ("Bring the slides", "ACME HQ")
    assert str(demo["uid"]) == f"event-{timed['id']}@stageflow"
    offsite = events["Offsite"]
    # All-day: dates, and iCalendar's end is the day after the last one.
    assert (offsite.decoded("dtstart"), offsite.decoded("dtend")) == (soon, soon + timedelta(days=2))
    assert type(offsite.decoded("dtstart")) is date  # a DATE, not a DATE-TIME
    assert str(offsite["uid"]) == f"event-{all_day['id']}@stageflow"
    due = events["Send the offer"]
    assert due.decoded("dtstart") == datetime(soon.year, soon.month, soon.day, 15, tzinfo=UTC)
    assert str(due["uid"]) == f"task-{task['id']}@stageflow"
    assert [str(tz["tzid"]) for tz in calendar.walk("VTIMEZONE")] == ["Europe/Berlin"]


async def test_rotating_and_revoking(app: FastAPI, people: People) -> None:
    feed = f"/users/{people.ann.id}/calendar/feed"
    first = (await people.ann.http.post(feed)).json()["url"]
    second = (await people.ann.http.post(feed)).json()["url"]
    assert first != second
    async with anonymous(app) as http:
        assert (await http.get(first)).status_code == 404  # the old address stops working
        assert (await http.get(second)).status_code == 200
        assert (await people.ann.http.delete(feed)).status_code == 204
        assert (await http.get(second)).status_code == 404
        assert (await people.ann.http.delete(feed)).status_code == 404  # nothing left to revoke
        for wrong in ("nonsense.ics", "nonsense", "x" * 500 + ".ics", ".ics"):
            answer = await http.get(f"/api/v1/calendar/feeds/{wrong}")
            assert answer.status_code == 404
            assert answer.headers["content-type"] == "application/problem+json"


async def test_an_inactive_users_feed_stops(app: FastAPI, client: httpx.AsyncClient, people: People) -> None:
    url = (await people.ann.http.post(f"/users/{people.ann.id}/calendar/feed")).json()["url"]
    await client.patch(f"/users/{people.ann.id}", json={"active": False})
    async with anonymous(app) as http:
        assert (await http.get(url)).status_code == 404


async def test_who_may_make_a_feed(
    app: FastAPI,
    client: httpx.AsyncClient,
    viewer_client: httpx.AsyncClient,
    other_client: httpx.AsyncClient,
    people: People,
) -> None:
    feed = f"/users/{people.ann.id}/calendar/feed"
    assert (await people.bob.http.post(feed)).status_code == 403
    assert (await viewer_client.post(feed)).status_code == 403
    assert (await other_client.post(feed)).status_code == 404
    made = await client.post(feed)  # an admin
    assert made.status_code == 200
    assert (await people.bob.http.delete(feed)).status_code == 403
    assert (await other_client.delete(feed)).status_code == 404
    stranger = await create_user(other_client, "Stranger")
    assert (await client.post(f"/users/{stranger['id']}/calendar/feed")).status_code == 404
    # The secret is shown once: a repeat with the same Idempotency-Key is refused rather than replayed without it.
    async with make_client(app, None) as nobody:
        assert (await nobody.post(feed)).status_code == 401
    replayed = [await client.post(feed, headers={"Idempotency-Key": "feed-1"}) for _ in range(2)]
    assert replayed[0].json()["secret"]
    assert replayed[1].status_code == 409
    assert replayed[0].json()["secret"] not in replayed[1].text
