"""A user's events and due tasks as an iCalendar (RFC 5545) document, written with the `icalendar` library.

Timed events keep their own time zone (`DTSTART;TZID=Europe/Berlin:…`, with the VTIMEZONE it needs), all-day ones
are dates (`VALUE=DATE`, DTEND the day after the last: iCalendar's end is exclusive), and a due task is a VEVENT at
its due time with no end (RFC 5545: it then ends when it starts), since calendar apps show subscribed VTODOs rarely.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, timedelta

from icalendar import Calendar, Event

from app.calendar import hours
from app.calendar.models import CalendarEvent
from app.tasks.models import Task

PRODID = "-//Stageflow//Calendar//EN"
UID_DOMAIN = "stageflow"


def _event(event: CalendarEvent) -> Event:
    component = Event()
    component.add("uid", f"event-{event.id}@{UID_DOMAIN}")
    component.add("dtstamp", event.updated_at.astimezone(UTC))
    component.add("last-modified", event.updated_at.astimezone(UTC))
    component.add("summary", event.title)
    if event.description:
        component.add("description", event.description)
    if event.location:
        component.add("location", event.location)
    component.add("categories", [event.kind.value])
    if event.all_day and event.start_date is not None and event.end_date is not None:
        component.add("dtstart", event.start_date)
        component.add("dtend", event.end_date + timedelta(days=1))
    else:
        tz = hours.zone(event.timezone)
        component.add("dtstart", event.starts_at.astimezone(tz))
        component.add("dtend", event.ends_at.astimezone(tz))
    return component


def _task(task: Task, timezone: str) -> Event:
    assert task.due_at is not None  # noqa: S101  (only tasks with a due time are in a feed)
    component = Event()
    component.add("uid", f"task-{task.id}@{UID_DOMAIN}")
    component.add("dtstamp", task.updated_at.astimezone(UTC))
    component.add("summary", task.title)
    if task.description:
        component.add("description", task.description)
    component.add("categories", ["task", task.status.value])
    component.add("dtstart", task.due_at.astimezone(hours.zone(timezone)))
    return component


def feed(*, name: str, timezone: str, events: Sequence[CalendarEvent], tasks: Sequence[Task]) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", f"Stageflow: {name}")
    calendar.add("x-wr-timezone", timezone)
    days: list[date] = []
    for event in events:
        calendar.add_component(_event(event))
        days += [event.starts_at.date(), event.ends_at.date()]
    for task in tasks:
        if task.due_at is not None:
            calendar.add_component(_task(task, timezone))
            days.append(task.due_at.date())
    if days:
        # The VTIMEZONEs the TZIDs need, with their changes over the feed's days only (a day either side for the
        # offsets) rather than from 1970 on.
        calendar.add_missing_timezones(
            first_date=min(days) - timedelta(days=2), last_date=max(days) + timedelta(days=2)
        )
    document: bytes = calendar.to_ical()
    return document
