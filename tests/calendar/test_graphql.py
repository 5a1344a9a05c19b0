"""The calendar through GraphQL: events made by mutations, a user's calendar across Berlin's spring change, working
hours, errors as data, and another workspace's ids."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError

from tests.calendar.conftest import People
from tests.conftest import Tenant, make_tenant
from tests.factories import created
from tests.graphql.conftest import http_client

EVENT_FIELDS = "id ownerId title kind allDay startsAt endsAt localStartsAt startDate endDate timezone owner { name }"
CREATE = f"""mutation($input: CalendarEventCreateInput!) {{
  createCalendarEvent(input: $input) {{
    __typename
    ... on CalendarEvent {{ {EVENT_FIELDS} }}
    ... on ValidationError {{ fields {{ field }} }}
    ... on Forbidden {{ code }}
  }}
}}"""
CALENDAR = """query($user: UUID!, $from: DateTime!, $to: DateTime!) {
  calendar(userId: $user, from: $from, to: $to) {
    timezone startsAt endsAt truncated
    items { kind id title startsAt endsAt localStartsAt allDay eventKind taskStatus }
    workingHours { startsAt localStartsAt }
  }
}"""


async def execute(app: FastAPI, key: str, query: str, **variables: Any) -> dict[str, Any]:
    async with http_client(app, key) as session:
        result: dict[str, Any] = await session.execute(GraphQLRequest(query, variable_values=variables))
    return result


async def test_a_calendar_across_the_spring_change(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, people: People
) -> None:
    ann = people.ann.token
    saturday = (
        await execute(
            app,
            ann,
            CREATE,
            input={"title": "Standup", "startsAt": "2026-03-28T09:00:00", "endsAt": "2026-03-28T09:15:00"},
        )
    )["createCalendarEvent"]
    assert (saturday["__typename"], saturday["startsAt"], saturday["owner"]) == (
        "CalendarEvent",
        "2026-03-28T08:00:00+00:00",
        {"name": "Ann"},
    )
    monday = (
        await execute(
            app,
            ann,
            CREATE,
            input={"title": "Standup", "startsAt": "2026-03-30T09:00:00", "endsAt": "2026-03-30T09:15:00"},
        )
    )["createCalendarEvent"]
    sunday = (await execute(app, ann, CREATE, input={"title": "Offsite", "startDate": "2026-03-29", "kind": "other"}))[
        "createCalendarEvent"
    ]
    created(
        await client.post(
            "/tasks", json={"title": "Call ACME", "assignee_id": people.ann.id, "due_at": "2026-03-30T12:00:00Z"}
        )
    )
    calendar = (
        await execute(
            app, ann, CALENDAR, user=people.ann.id, **{"from": "2026-03-28T00:00:00", "to": "2026-04-01T00:00:00"}
        )
    )["calendar"]
    assert (calendar["timezone"], calendar["startsAt"]) == ("Europe/Berlin", "2026-03-27T23:00:00+00:00")
    assert [(i["kind"], i["id"], i["startsAt"], i["localStartsAt"]) for i in calendar["items"]] == [
        ("event", saturday["id"], "2026-03-28T08:00:00+00:00", "2026-03-28T09:00:00+01:00"),
        ("event", sunday["id"], "2026-03-28T23:00:00+00:00", "2026-03-29T00:00:00+01:00"),
        ("event", monday["id"], "2026-03-30T07:00:00+00:00", "2026-03-30T09:00:00+02:00"),
        ("task", calendar["items"][3]["id"], "2026-03-30T12:00:00+00:00", "2026-03-30T14:00:00+02:00"),
    ]
    assert calendar["items"][1]["endsAt"] == "2026-03-29T22:00:00+00:00"  # a 23-hour day
    assert (calendar["items"][3]["taskStatus"], calendar["items"][3]["eventKind"]) == ("open", None)
    assert [w["startsAt"] for w in calendar["workingHours"]] == [
        "2026-03-30T07:00:00+00:00",
        "2026-03-31T07:00:00+00:00",
    ]
    # Bob may not read Ann's calendar.
    with pytest.raises(TransportQueryError) as refused:
        await execute(app, people.bob.token, CALENDAR, user=people.ann.id, **{"from": "2026-03-28", "to": "2026-04-01"})
    assert refused.value.errors is not None
    assert refused.value.errors[0]["extensions"]["code"] == "forbidden"
    # A year and a day is too long.
    with pytest.raises(TransportQueryError) as too_long:
        await execute(
            app, ann, CALENDAR, user=people.ann.id, **{"from": "2026-01-01T00:00:00", "to": "2027-01-03T00:00:00"}
        )
    assert too_long.value.errors is not None
    assert too_long.value.errors[0]["extensions"]["errors"] == [
        {"field": "to", "message": "at most 366 days after from"}
    ]


async def test_update_delete_and_errors_as_data(app: FastAPI, tenant: Tenant, people: People) -> None:
    ann = people.ann.token
    event = (await execute(app, ann, CREATE, input={"title": "Demo", "startDate": "2026-06-01"}))["createCalendarEvent"]
    bad = (
        await execute(
            app, ann, CREATE, input={"title": "x", "startsAt": "2026-06-01T10:00:00Z", "endsAt": "2026-06-01T09:00:00Z"}
        )
    )["createCalendarEvent"]
    assert bad == {"__typename": "ValidationError", "fields": [{"field": "ends_at"}]}
    zone = await execute(app, ann, CREATE, input={"title": "x", "startDate": "2026-06-01", "timezone": "Mars/Base"})
    assert zone["createCalendarEvent"]["__typename"] == "ValidationError"
    for_ann = await execute(
        app, people.bob.token, CREATE, input={"title": "x", "startDate": "2026-06-01", "ownerId": people.ann.id}
    )
    assert for_ann["createCalendarEvent"] == {"__typename": "Forbidden", "code": "forbidden"}
    update = """mutation($id: UUID!, $input: CalendarEventUpdateInput!) {
      updateCalendarEvent(id: $id, input: $input) { __typename ... on CalendarEvent { title startDate endDate } }
    }"""
    changed = await execute(app, ann, update, id=event["id"], input={"title": "Demo 2", "endDate": "2026-06-03"})
    assert changed["updateCalendarEvent"] == {
        "__typename": "CalendarEvent",
        "title": "Demo 2",
        "startDate": "2026-06-01",
        "endDate": "2026-06-03",
    }
    hidden = await execute(app, people.bob.token, update, id=event["id"], input={"title": "x"})
    assert hidden["updateCalendarEvent"]["__typename"] == "NotFound"
    listed = await execute(app, ann, "{ calendarEvents(first: 10) { items { id title } nextCursor } }")
    assert listed["calendarEvents"] == {"items": [{"id": event["id"], "title": "Demo 2"}], "nextCursor": None}
    delete = "mutation($id: UUID!) { deleteCalendarEvent(id: $id) { __typename } }"
    assert (await execute(app, ann, delete, id=event["id"]))["deleteCalendarEvent"]["__typename"] == "Deleted"
    with pytest.raises(TransportQueryError):
        await execute(app, ann, "query($id: UUID!) { calendarEvent(id: $id) { id } }", id=event["id"])


async def test_working_hours(app: FastAPI, tenant: Tenant, people: People) -> None:
    set_hours = """mutation($user: UUID!, $input: WeekHoursInput) {
      setUserSchedule(userId: $user, input: $input) {
        __typename
        ... on UserSchedule { isDefault timezone schedule { mon tue sat } }
        ... on ValidationError { fields { field } }
        ... on Forbidden { code }
      }
    }"""
    mine = await execute(
        app, people.ann.token, set_hours, user=people.ann.id, input={"mon": [["08:00", "12:00"]], "tue": None}
    )
    assert mine["setUserSchedule"] == {
        "__typename": "UserSchedule",
        "isDefault": False,
        "timezone": "Europe/Berlin",
        "schedule": {"mon": [["08:00", "12:00"]], "tue": [], "sat": []},
    }
    wrong = await execute(app, people.ann.token, set_hours, user=people.ann.id, input={"mon": [["12:00", "08:00"]]})
    assert wrong["setUserSchedule"] == {"__typename": "ValidationError", "fields": [{"field": "mon"}]}
    others = await execute(app, people.bob.token, set_hours, user=people.ann.id, input={"mon": []})
    assert others["setUserSchedule"] == {"__typename": "Forbidden", "code": "forbidden"}
    read = "query($user: UUID!) { userSchedule(userId: $user) { isDefault schedule { mon } } }"
    assert (await execute(app, people.bob.token, read, user=people.ann.id))["userSchedule"] == {
        "isDefault": False,
        "schedule": {"mon": [["08:00", "12:00"]]},
    }
    reset = await execute(app, tenant.admin_key, set_hours, user=people.ann.id, input=None)
    assert reset["setUserSchedule"]["isDefault"] is True


async def test_another_workspace_finds_nothing(app: FastAPI, people: People) -> None:
    event = (await execute(app, people.ann.token, CREATE, input={"title": "x", "startDate": "2026-06-01"}))[
        "createCalendarEvent"
    ]
    other = await make_tenant(app, "other")
    for query, variables in (
        ("query($id: UUID!) { calendarEvent(id: $id) { id } }", {"id": event["id"]}),
        (CALENDAR, {"user": people.ann.id, "from": "2026-06-01", "to": "2026-06-02"}),
        ("query($user: UUID!) { userSchedule(userId: $user) { isDefault } }", {"user": people.ann.id}),
    ):
        with pytest.raises(TransportQueryError) as missing:
            await execute(app, other.admin_key, query, **variables)
        assert missing.value.errors is not None
        assert missing.value.errors[0]["extensions"]["code"] == "not-found"
    foreign_owner = await execute(
        app, other.admin_key, CREATE, input={"title": "x", "startDate": "2026-06-01", "ownerId": people.ann.id}
    )
    assert foreign_owner["createCalendarEvent"] == {"__typename": "ValidationError", "fields": [{"field": "owner_id"}]}
    delete = "mutation($id: UUID!) { deleteCalendarEvent(id: $id) { __typename } }"
    assert (await execute(app, other.admin_key, delete, id=event["id"]))["deleteCalendarEvent"][
        "__typename"
    ] == "NotFound"
