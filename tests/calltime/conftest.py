"""A workspace with a call history of a KNOWN pattern: B2B contacts (in New York, by their `timezone` field) answer
at 10:00-12:00 local only, B2C contacts (no time zone of their own: their assignee's, Berlin) at 18:00-20:00 only.
Every contact was called once at each local hour 08-19 on past weekdays. The assignee, Ann, works Mon-Fri 08-20
Berlin time (02-14 in New York)."""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from app.activities.models import Activity, ActivityElement, ActivityKind, ActivityStatus, CallOutcome
from tests.activities.conftest import handle_events
from tests.conftest import Tenant
from tests.factories import create_element, create_field, create_type, create_user
from tests.graphql.conftest import gql_session, run

__all__ = ["gql_session", "handle_events", "run"]

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
ANSWERS = {"b2b": {10, 11}, "b2c": {18, 19}}


@dataclass
class World:
    ann: dict[str, Any]
    b2b: list[dict[str, Any]] = field(default_factory=list)
    b2c: list[dict[str, Any]] = field(default_factory=list)


def past_weekdays(zone: ZoneInfo, count: int) -> list[datetime]:
    """Local midnights of the last `count` weekdays before today."""
    day = datetime.now(zone).date()
    found: list[datetime] = []
    while len(found) < count:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            found.append(datetime(day.year, day.month, day.day, tzinfo=zone))
    return found


async def add_calls(app: FastAPI, workspace_id: uuid.UUID, element_id: str, calls: list[tuple[datetime, bool]]) -> None:
    """Completed calls on the element (written directly: generated history, many rows)."""
    async with app.state.sessionmaker() as session:
        for starts_at, answered in calls:
            activity_id = uuid.uuid4()
            session.add(
                Activity(
                    id=activity_id,
                    workspace_id=workspace_id,
                    kind=ActivityKind.call,
                    subject="Call",
                    starts_at=starts_at.astimezone(UTC),
                    duration_seconds=60 if answered else 0,
                    status=ActivityStatus.completed,
                    completed_at=starts_at.astimezone(UTC),
                    outcome=CallOutcome.answered if answered else CallOutcome.no_answer,
                )
            )
            await session.flush()
            session.add(
                ActivityElement(element_id=uuid.UUID(element_id), activity_id=activity_id, workspace_id=workspace_id)
            )
        await session.commit()


def pattern_calls(kind: str, zone: ZoneInfo, offset: int) -> list[tuple[datetime, bool]]:
    days = past_weekdays(zone, 20)
    return [
        (days[(offset + hour) % len(days)] + timedelta(hours=hour, minutes=20), hour in ANSWERS[kind])
        for hour in range(8, 20)
    ]


@pytest.fixture
async def world(app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> World:
    await create_type(client, "contact")
    await create_field(client, "contact", "client_type", "enum", options=[{"value": "b2b"}, {"value": "b2c"}])
    await create_field(client, "contact", "region", "string")
    await create_field(client, "contact", "timezone", "string")
    ann = await create_user(client, "Ann", timezone="Europe/Berlin")
    week = {day: [["08:00", "20:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    assert (await client.put(f"/users/{ann['id']}/schedule", json=week)).status_code == 200
    made = World(ann=ann)
    for index in range(12):
        element = await create_element(
            client,
            "contact",
            title=f"B2B {index}",
            assigned_to=ann["id"],
            values={"client_type": "b2b", "region": "us", "timezone": "America/New_York"},
        )
        await add_calls(app, tenant.workspace_id, element["id"], pattern_calls("b2b", NEW_YORK, index))
        made.b2b.append(element)
    for index in range(6):
        element = await create_element(
            client, "contact", title=f"B2C {index}", assigned_to=ann["id"], values={"client_type": "b2c"}
        )
        await add_calls(app, tenant.workspace_id, element["id"], pattern_calls("b2c", BERLIN, index))
        made.b2c.append(element)
    return made
