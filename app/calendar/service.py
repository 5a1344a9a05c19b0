"""The calendar: users' events, their weekly working hours, a user's merged calendar (events and due tasks) and the
iCalendar feed behind a secret URL.

Who may do what (besides the workspace: another workspace's user or event is not found):
- read a user's calendar (its events and due tasks, the feed's contents): the user themselves, and every role that
  reads every element (the built-in admin, editor and viewer: they see every task already, app/access/visibility);
  a person with custom roles reads only their own. An event is also shown to its attendees.
- add, change or delete a user's events: the user themselves, and the roles that read every element; either at the
  admin or editor level: a viewer changes nothing (as for tasks), its own calendar neither.
- set a user's working hours, create, rotate or revoke their feed: the user themselves and admins (as for the rest of
  a user, app/users).
- read working hours: everyone in the workspace, as users are (routing and scheduling need them).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.visibility import reads_everything
from app.auth.actor import Actor
from app.auth.models import Role
from app.calendar import hours, ics
from app.calendar.models import CalendarEvent, CalendarFeed
from app.calendar.schemas import (
    CalendarItem,
    EventCreate,
    EventPage,
    EventRead,
    EventUpdate,
    ScheduleRead,
    UserCalendar,
    WeekSchedule,
    WorkingInterval,
)
from app.elements.service import load_element_row
from app.errors import ErrorCollector, FieldError, Forbidden, Invalid, NotFound
from app.kit.cursor import decode_cursor, encode_cursor
from app.kit.rows import workspace_row
from app.tasks.models import Task, TaskStatus
from app.users.models import User
from app.users.service import check_assignees

MAX_LIST = 500
MAX_ITEMS = 2000  # of one calendar answer (and of each kind in a feed)
MAX_EVENT_LENGTH = timedelta(days=hours.MAX_SPAN_DAYS)
MAX_RANGE = timedelta(days=hours.MAX_SPAN_DAYS)
FEED_DAYS_BACK = 30
FEED_DAYS_AHEAD = 183
FEED_SUFFIX = ".ics"
INVALID_EVENT = "The event is not valid"


# --- who may ------------------------------------------------------------------------------------------------------


def reads_calendar_of(actor: Actor, user_id: uuid.UUID) -> bool:
    return actor.user_id == user_id or reads_everything(actor)


def manages_calendar_of(actor: Actor, user_id: uuid.UUID) -> bool:
    return actor.role != Role.viewer and (actor.user_id == user_id or reads_everything(actor))


def _ensure_manages(actor: Actor, user_id: uuid.UUID) -> None:
    actor.ensure_can_write()  # a viewer changes nothing, its own calendar neither (as for tasks)
    if not manages_calendar_of(actor, user_id):
        raise Forbidden("Only the user, or an admin or editor who reads every element, may change this calendar")


def _ensure_self_or_admin(actor: Actor, user_id: uuid.UUID, what: str) -> None:
    if actor.user_id != user_id and actor.role != Role.admin:
        raise Forbidden(f"Only the user or an admin may change the user's {what}")


async def _user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    return await workspace_row(session, User, actor.workspace_id, user_id, "User")


async def _readable_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    user = await _user(session, actor, user_id)
    if not reads_calendar_of(actor, user.id):
        raise Forbidden("Your role may read your own calendar only")
    return user


def _shown(actor: Actor) -> ColumnElement[bool]:
    """The events the actor may see: every one for the roles that read everything, else theirs and those they attend."""
    if reads_everything(actor):
        return true()
    if actor.user_id is None:
        return false()
    return or_(CalendarEvent.owner_id == actor.user_id, CalendarEvent.attendee_ids.contains([actor.user_id]))


def _of_user(user_id: uuid.UUID) -> ColumnElement[bool]:
    return or_(CalendarEvent.owner_id == user_id, CalendarEvent.attendee_ids.contains([user_id]))


# --- times --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    all_day: bool
    starts_at: datetime
    ends_at: datetime
    start_date: date | None = None
    end_date: date | None = None


def _instant(value: datetime, tz: ZoneInfo, path: str, errors: ErrorCollector) -> datetime | None:
    try:
        return hours.wall_time_instant(value, tz)
    except ValueError as exc:
        errors.add(path, str(exc))
        return None


def _timed(starts_at: datetime | None, ends_at: datetime | None, tz: ZoneInfo, errors: ErrorCollector) -> Span | None:
    for path, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if value is None:
            errors.add(path, "required: give starts_at and ends_at, or start_date for an all-day event")
    if starts_at is None or ends_at is None:
        return None
    start, end = _instant(starts_at, tz, "starts_at", errors), _instant(ends_at, tz, "ends_at", errors)
    if start is None or end is None:
        return None
    if end <= start:
        errors.add("ends_at", "must be after starts_at")
    elif end - start > MAX_EVENT_LENGTH:
        errors.add("ends_at", f"an event lasts at most {MAX_EVENT_LENGTH.days} days")
    return Span(False, start, end)


def _dated(start_date: date | None, end_date: date | None, tz: ZoneInfo, errors: ErrorCollector) -> Span | None:
    if start_date is None:
        errors.add("start_date", "required for an all-day event")
        return None
    end_date = end_date or start_date
    for path, value in (("start_date", start_date), ("end_date", end_date)):
        try:
            hours.check_year(value)
        except ValueError as exc:
            errors.add(path, str(exc))
            return None
    if end_date < start_date:
        errors.add("end_date", "must not be before start_date (it is inclusive)")
        return None
    if (end_date - start_date).days >= MAX_EVENT_LENGTH.days:
        errors.add("end_date", f"an event lasts at most {MAX_EVENT_LENGTH.days} days")
        return None
    start, end = hours.day_span(start_date, end_date, tz)
    return Span(True, start, end, start_date, end_date)


def _new_span(data: EventCreate, tz: ZoneInfo, errors: ErrorCollector) -> Span | None:
    timed = data.starts_at is not None or data.ends_at is not None
    dated = data.start_date is not None or data.end_date is not None
    if timed and dated:
        errors.add("start_date", "give starts_at and ends_at (a timed event) or start_date (all-day), not both")
        return None
    if dated:
        return _dated(data.start_date, data.end_date, tz, errors)
    return _timed(data.starts_at, data.ends_at, tz, errors)


def _changed_span(event: CalendarEvent, changes: dict[str, Any], tz: ZoneInfo, errors: ErrorCollector) -> Span:
    """The event's span after an update: given times alone keep its length; a new time zone alone keeps a timed
    event's instants and an all-day event's days."""
    current = Span(event.all_day, event.starts_at, event.ends_at, event.start_date, event.end_date)
    timed = {"starts_at", "ends_at"} & changes.keys()
    dated = {"start_date", "end_date"} & changes.keys()
    for path in sorted(timed | dated):
        if changes[path] is None:
            errors.add(path, "cannot be null")
    if errors.errors:
        return current
    span: Span | None = current
    if timed and dated:
        errors.add("start_date", "give times (a timed event) or dates (all-day), not both")
    elif timed:
        span = _moved_times(current, changes.get("starts_at"), changes.get("ends_at"), tz, errors)
    elif dated:
        span = _moved_dates(current, changes.get("start_date"), changes.get("end_date"), tz, errors)
    elif current.all_day and "timezone" in changes:
        span = _dated(current.start_date, current.end_date, tz, errors)
    return span or current


def _moved_times(
    current: Span, starts_at: datetime | None, ends_at: datetime | None, tz: ZoneInfo, errors: ErrorCollector
) -> Span | None:
    if not current.all_day:  # one end given alone keeps the other, or (the start) the length
        if starts_at is None:
            starts_at = current.starts_at
        elif ends_at is None:
            start = _instant(starts_at, tz, "starts_at", errors)
            ends_at = start + (current.ends_at - current.starts_at) if start else None
    return _timed(starts_at, ends_at, tz, errors)


def _moved_dates(
    current: Span, start_date: date | None, end_date: date | None, tz: ZoneInfo, errors: ErrorCollector
) -> Span | None:
    if current.start_date is not None and current.end_date is not None:  # all-day already: as for times
        if start_date is None:
            start_date = current.start_date
        elif end_date is None:
            end_date = start_date + (current.end_date - current.start_date)
    return _dated(start_date, end_date, tz, errors)


def _calendar_range(starts_at: datetime, ends_at: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """`from` and `to` as UTC instants (without an offset: in the user's time zone), at most MAX_RANGE apart."""
    errors = ErrorCollector()
    start, end = _instant(starts_at, tz, "from", errors), _instant(ends_at, tz, "to", errors)
    if start is not None and end is not None:
        if end <= start:
            errors.add("to", "must be after from")
        elif end - start > MAX_RANGE:
            errors.add("to", f"at most {MAX_RANGE.days} days after from")
    if start is None or end is None or errors.errors:
        raise Invalid("The range is not valid", errors=errors.errors)
    return start, end


# --- events -------------------------------------------------------------------------------------------------------


def to_read(event: CalendarEvent) -> EventRead:
    tz = hours.zone(event.timezone)
    return EventRead(
        id=event.id,
        owner_id=event.owner_id,
        title=event.title,
        description=event.description,
        location=event.location,
        kind=event.kind,
        all_day=event.all_day,
        starts_at=event.starts_at.astimezone(UTC),
        ends_at=event.ends_at.astimezone(UTC),
        local_starts_at=event.starts_at.astimezone(tz),
        local_ends_at=event.ends_at.astimezone(tz),
        start_date=event.start_date,
        end_date=event.end_date,
        timezone=event.timezone,
        element_id=event.element_id,
        attendee_ids=list(event.attendee_ids),
        created_at=event.created_at,
        updated_at=event.updated_at,
    )


async def _check_element(
    session: AsyncSession, actor: Actor, element_id: uuid.UUID | None, errors: ErrorCollector
) -> None:
    """An element the actor may read in their workspace (else a field error, as for a task's element)."""
    if element_id is None:
        return
    try:
        await load_element_row(session, actor, element_id)
    except NotFound:
        errors.add("element_id", f"element {element_id} not found")


async def _check_owner(
    session: AsyncSession, actor: Actor, owner_id: uuid.UUID | None, errors: ErrorCollector
) -> User | None:
    if owner_id is None:
        errors.add("owner_id", "required when no person is acting (an API key): whose calendar is it?")
        return None
    owner = await session.scalar(select(User).where(User.workspace_id == actor.workspace_id, User.id == owner_id))
    if owner is None:
        errors.add("owner_id", f"user {owner_id} not found in this workspace")
        return None
    _ensure_manages(actor, owner.id)
    return owner


async def _check_attendees(
    session: AsyncSession, actor: Actor, attendee_ids: Sequence[uuid.UUID], errors: ErrorCollector
) -> list[uuid.UUID]:
    unique = list(dict.fromkeys(attendee_ids))
    await check_assignees(
        session, actor.workspace_id, [(f"attendee_ids[{i}]", u) for i, u in enumerate(unique)], errors
    )
    return unique


async def create_event(session: AsyncSession, actor: Actor, data: EventCreate) -> EventRead:
    errors = ErrorCollector()
    owner = await _check_owner(session, actor, data.owner_id or actor.user_id, errors)
    timezone = data.timezone or (owner.timezone if owner else "UTC")
    span = _new_span(data, hours.zone(timezone), errors)
    await _check_element(session, actor, data.element_id, errors)
    attendees = await _check_attendees(session, actor, data.attendee_ids, errors)
    if owner is None or span is None or errors.errors:
        raise Invalid(INVALID_EVENT, errors=errors.errors)
    now = datetime.now(UTC)
    event = CalendarEvent(
        id=uuid.uuid4(),
        workspace_id=actor.workspace_id,
        owner_id=owner.id,
        title=data.title,
        description=data.description,
        location=data.location,
        kind=data.kind,
        all_day=span.all_day,
        starts_at=span.starts_at,
        ends_at=span.ends_at,
        start_date=span.start_date,
        end_date=span.end_date,
        timezone=timezone,
        element_id=data.element_id,
        attendee_ids=attendees,
        created_by=actor.principal_id,
        created_at=now,
        updated_at=now,
    )
    session.add(event)
    await session.flush()
    return to_read(event)


async def _get(session: AsyncSession, actor: Actor, event_id: uuid.UUID, *, lock: bool = False) -> CalendarEvent:
    statement = select(CalendarEvent).where(
        CalendarEvent.workspace_id == actor.workspace_id, CalendarEvent.id == event_id, _shown(actor)
    )
    event = await session.scalar(statement.with_for_update() if lock else statement)
    if event is None:
        raise NotFound(f"Event {event_id} not found")
    return event


async def get_event(session: AsyncSession, actor: Actor, event_id: uuid.UUID) -> EventRead:
    return to_read(await _get(session, actor, event_id))


async def update_event(session: AsyncSession, actor: Actor, event_id: uuid.UUID, data: EventUpdate) -> EventRead:
    event = await _get(session, actor, event_id, lock=True)
    _ensure_manages(actor, event.owner_id)
    changes = data.model_dump(exclude_unset=True)
    errors = ErrorCollector()
    for name in ("title", "kind", "owner_id", "timezone", "attendee_ids"):
        if name in changes and changes[name] is None:
            errors.add(name, "cannot be null")
            changes.pop(name)
    if "owner_id" in changes:
        await _check_owner(session, actor, changes["owner_id"], errors)
    span = _changed_span(event, changes, hours.zone(changes.get("timezone") or event.timezone), errors)
    if "element_id" in changes:
        await _check_element(session, actor, changes["element_id"], errors)
    if "attendee_ids" in changes:
        changes["attendee_ids"] = await _check_attendees(session, actor, changes["attendee_ids"], errors)
    errors.raise_if_any(INVALID_EVENT)
    for name in ("title", "description", "location", "kind", "owner_id", "timezone", "element_id", "attendee_ids"):
        if name in changes:
            setattr(event, name, changes[name])
    event.all_day, event.starts_at, event.ends_at = span.all_day, span.starts_at, span.ends_at
    event.start_date, event.end_date = span.start_date, span.end_date
    event.updated_at = datetime.now(UTC)
    await session.flush()
    return to_read(event)


async def delete_event(session: AsyncSession, actor: Actor, event_id: uuid.UUID) -> None:
    event = await _get(session, actor, event_id, lock=True)
    _ensure_manages(actor, event.owner_id)
    await session.delete(event)
    await session.flush()


def _overlapping(start: datetime, end: datetime) -> tuple[ColumnElement[bool], ...]:
    # No event is longer than MAX_EVENT_LENGTH: the lower bound keeps the index scan on `starts_at` short.
    return (
        CalendarEvent.starts_at < end,
        CalendarEvent.ends_at > start,
        CalendarEvent.starts_at > start - MAX_EVENT_LENGTH,
    )


async def list_events(
    session: AsyncSession,
    actor: Actor,
    *,
    user_id: uuid.UUID | None = None,
    element_id: uuid.UUID | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> EventPage:
    """The events the actor may see, by start: optionally a user's (owned or attended), an element's, or those
    overlapping [from, to)."""
    statement = select(CalendarEvent).where(CalendarEvent.workspace_id == actor.workspace_id, _shown(actor))
    if user_id is not None:
        statement = statement.where(_of_user(user_id))
    if element_id is not None:
        statement = statement.where(CalendarEvent.element_id == element_id)
    if starts_at is not None:
        statement = statement.where(CalendarEvent.ends_at > _as_utc(starts_at, "from"))
    if ends_at is not None:
        statement = statement.where(CalendarEvent.starts_at < _as_utc(ends_at, "to"))
    if cursor is not None:
        statement = _after(statement, cursor)
    limit = max(1, min(limit, MAX_LIST))
    rows = list(await session.scalars(statement.order_by(CalendarEvent.starts_at, CalendarEvent.id).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1].starts_at.isoformat(), str(rows[-1].id)])
    return EventPage(items=[to_read(e) for e in rows], next_cursor=next_cursor)


def _as_utc(value: datetime, path: str) -> datetime:
    """A list filter's time: one without an offset is UTC (a list mixes everyone's time zones)."""
    try:
        hours.check_year(value)
    except ValueError as exc:
        raise Invalid("The range is not valid", errors=[FieldError(path, str(exc))]) from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _after(statement: Select[CalendarEvent], cursor: str) -> Select[CalendarEvent]:
    raw_start, raw_id = decode_cursor(cursor, 2)
    try:
        start, last_id = datetime.fromisoformat(str(raw_start)), uuid.UUID(str(raw_id))
    except ValueError as exc:
        raise Invalid("The cursor is not valid", errors=[FieldError("cursor", "not a cursor of this list")]) from exc
    return statement.where(
        or_(CalendarEvent.starts_at > start, (CalendarEvent.starts_at == start) & (CalendarEvent.id > last_id))
    )


# --- working hours ------------------------------------------------------------------------------------------------


def _schedule_read(user: User) -> ScheduleRead:
    week = hours.parse_week(user.working_hours)
    return ScheduleRead(
        user_id=user.id,
        timezone=user.timezone,
        is_default=user.working_hours is None,
        schedule=WeekSchedule.model_validate(hours.format_week(week)),
    )


async def get_schedule(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> ScheduleRead:
    return _schedule_read(await _user(session, actor, user_id))


async def set_schedule(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, schedule: WeekSchedule | None
) -> ScheduleRead:
    """Replace the user's working hours; None goes back to the default week."""
    user = await _user(session, actor, user_id)
    _ensure_self_or_admin(actor, user.id, "working hours")
    user.working_hours = schedule.model_dump() if schedule is not None else None
    user.updated_at = datetime.now(UTC)
    await session.flush()
    return _schedule_read(user)


def _interval(start: datetime, end: datetime, tz: ZoneInfo) -> WorkingInterval:
    return WorkingInterval(
        starts_at=start, ends_at=end, local_starts_at=start.astimezone(tz), local_ends_at=end.astimezone(tz)
    )


async def working_intervals(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, *, starts_at: datetime, ends_at: datetime
) -> list[WorkingInterval]:
    """When the user works within [starts_at, ends_at) (at most a year), in UTC with the local times: their week of
    working hours laid on their time zone day by day, right across daylight-saving changes."""
    user = await _user(session, actor, user_id)
    tz = hours.zone(user.timezone)
    start, end = _calendar_range(starts_at, ends_at, tz)
    found = hours.working_intervals(hours.parse_week(user.working_hours), tz, start, end)
    return [_interval(s, e, tz) for s, e in found]


# --- a user's calendar --------------------------------------------------------------------------------------------


def events_where(
    workspace_id: uuid.UUID, user_id: uuid.UUID, start: datetime, end: datetime
) -> tuple[ColumnElement[bool], ...]:
    """The events a user owns or attends that overlap [start, end)."""
    return (CalendarEvent.workspace_id == workspace_id, _of_user(user_id), *_overlapping(start, end))


def tasks_due_where(
    workspace_id: uuid.UUID, user_id: uuid.UUID, start: datetime, end: datetime
) -> tuple[ColumnElement[bool], ...]:
    """The user's tasks due in [start, end) that still count (open or done; cancelled ones are left out)."""
    return (
        Task.workspace_id == workspace_id,
        Task.assignee_id == user_id,
        Task.status != TaskStatus.cancelled,
        Task.due_at >= start,
        Task.due_at < end,
    )


async def _events_of(
    session: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID, start: datetime, end: datetime
) -> list[CalendarEvent]:
    statement = (
        select(CalendarEvent)
        .where(*events_where(workspace_id, user_id, start, end))
        .order_by(CalendarEvent.starts_at, CalendarEvent.id)
        .limit(MAX_ITEMS + 1)
    )
    return list(await session.scalars(statement))


async def _tasks_due(
    session: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID, start: datetime, end: datetime
) -> list[Task]:
    statement = (
        select(Task)
        .where(*tasks_due_where(workspace_id, user_id, start, end))
        .order_by(Task.due_at, Task.id)
        .limit(MAX_ITEMS + 1)
    )
    return list(await session.scalars(statement))


def _event_item(event: CalendarEvent, tz: ZoneInfo) -> CalendarItem:
    return CalendarItem(
        kind="event",
        id=event.id,
        title=event.title,
        starts_at=event.starts_at.astimezone(UTC),
        ends_at=event.ends_at.astimezone(UTC),
        local_starts_at=event.starts_at.astimezone(tz),
        local_ends_at=event.ends_at.astimezone(tz),
        all_day=event.all_day,
        start_date=event.start_date,
        end_date=event.end_date,
        timezone=event.timezone,
        event_kind=event.kind,
        task_status=None,
        owner_id=event.owner_id,
        element_id=event.element_id,
    )


def _task_item(task: Task, tz: ZoneInfo) -> CalendarItem:
    assert task.due_at is not None  # noqa: S101  (only tasks due in the range are read)
    due = task.due_at.astimezone(UTC)
    return CalendarItem(
        kind="task",
        id=task.id,
        title=task.title,
        starts_at=due,
        ends_at=due,
        local_starts_at=due.astimezone(tz),
        local_ends_at=due.astimezone(tz),
        all_day=False,
        start_date=None,
        end_date=None,
        timezone=tz.key,
        event_kind=None,
        task_status=task.status,
        owner_id=None,
        element_id=task.element_id,
    )


async def user_calendar(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, *, starts_at: datetime, ends_at: datetime
) -> UserCalendar:
    """The user's events (owned or attended) overlapping [from, to) and their tasks due in it, by start, with the
    working intervals of the range. `from`/`to` without an offset are in the user's time zone."""
    user = await _readable_user(session, actor, user_id)
    tz = hours.zone(user.timezone)
    start, end = _calendar_range(starts_at, ends_at, tz)
    events = await _events_of(session, actor.workspace_id, user.id, start, end)
    tasks = await _tasks_due(session, actor.workspace_id, user.id, start, end)
    items = [_event_item(e, tz) for e in events] + [_task_item(t, tz) for t in tasks]
    # Each list is cut after MAX_ITEMS + 1 rows in this same order: the first MAX_ITEMS merged are exact.
    items.sort(key=lambda item: (item.starts_at, item.kind, item.id))
    working = hours.working_intervals(hours.parse_week(user.working_hours), tz, start, end)
    return UserCalendar(
        user_id=user.id,
        timezone=user.timezone,
        starts_at=start,
        ends_at=end,
        items=items[:MAX_ITEMS],
        truncated=len(items) > MAX_ITEMS,
        working_hours=[_interval(s, e, tz) for s, e in working],
    )


# --- the iCalendar feed -------------------------------------------------------------------------------------------


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def rotate_feed(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> tuple[CalendarFeed, str]:
    """Give the user's feed a new secret (made now if there was none): the old address stops working at once. The
    secret is returned here only; its SHA-256 is stored."""
    user = await _user(session, actor, user_id)
    _ensure_self_or_admin(actor, user.id, "calendar feed")
    feed = await session.scalar(
        select(CalendarFeed)
        .where(CalendarFeed.workspace_id == actor.workspace_id, CalendarFeed.user_id == user.id)
        .with_for_update()
    )
    if feed is None:
        feed = CalendarFeed(id=uuid.uuid4(), workspace_id=actor.workspace_id, user_id=user.id)
        session.add(feed)
    secret = secrets.token_urlsafe(32)
    feed.secret_hash = _secret_hash(secret)
    feed.created_at = datetime.now(UTC)
    await session.flush()
    return feed, secret


async def revoke_feed(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> None:
    user = await _user(session, actor, user_id)
    _ensure_self_or_admin(actor, user.id, "calendar feed")
    feed = await session.scalar(
        select(CalendarFeed).where(CalendarFeed.workspace_id == actor.workspace_id, CalendarFeed.user_id == user.id)
    )
    if feed is None:
        raise NotFound(f"User {user_id} has no calendar feed")
    await session.delete(feed)
    await session.flush()


async def feed_document(session: AsyncSession, token: str, *, now: datetime | None = None) -> bytes:
    """The iCalendar document of the feed whose secret `token` is (`<secret>.ics`): the user's events and due tasks
    from FEED_DAYS_BACK days ago to FEED_DAYS_AHEAD days ahead. NotFound for an unknown or revoked secret, and for
    a user made inactive."""
    secret = token.removesuffix(FEED_SUFFIX)
    if not token.endswith(FEED_SUFFIX) or not 0 < len(secret) <= 200:
        raise NotFound("No calendar feed at this address")
    row = (
        await session.execute(
            select(User)
            .join(CalendarFeed, CalendarFeed.user_id == User.id)
            .where(CalendarFeed.secret_hash == _secret_hash(secret), User.active.is_(True))
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("No calendar feed at this address")
    now = now or datetime.now(UTC)
    start, end = now - timedelta(days=FEED_DAYS_BACK), now + timedelta(days=FEED_DAYS_AHEAD)
    events = (await _events_of(session, row.workspace_id, row.id, start, end))[:MAX_ITEMS]
    tasks = (await _tasks_due(session, row.workspace_id, row.id, start, end))[:MAX_ITEMS]
    return ics.feed(name=row.name, timezone=row.timezone, events=events, tasks=tasks)
