"""Activities: calls, meetings, e-mails and messages bound to one or more elements.

Reading one needs read access to at least one of its elements; logging, changing, completing or deleting one needs
update access to every element it is (or will be) bound to, as the element's own update does (so the built-in
viewer, which updates nothing, writes no activity). Each change records an outbox event per bound element
(`activity.created`, `activity.completed`, `activity.updated`, `activity.deleted`), typed by that element's entity
type, so automation rules of the type run with the element and see the activity in `payload.activity`.
"""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, insert, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.permissions import PermissionDenied
from app.access.visibility import readable_elements, reads_everything, workspace_metas
from app.activities.models import Activity, ActivityElement, ActivityKind, ActivityStatus, CallOutcome
from app.activities.schemas import (
    MAX_DURATION_SECONDS,
    ActivityComplete,
    ActivityCreate,
    ActivityPage,
    ActivityRead,
    ActivityUpdate,
    Participant,
    ParticipantRead,
)
from app.auth.actor import Actor
from app.elements.meta_cache import cached_type_meta
from app.elements.models import Element
from app.elements.service import load_element_row
from app.entity_types.meta import TypeMeta
from app.errors import Conflict, ErrorCollector, FieldError, Invalid, NotFound
from app.kit.cursor import decode_cursor, encode_cursor
from app.outbox.service import record_event
from app.users.service import check_assignees

INVALID = "The activity is not valid"


@dataclass(frozen=True)
class Bound:
    """An element an activity is bound to, with its type (the events are typed by it)."""

    element: Element
    meta: TypeMeta


# --- the elements ------------------------------------------------------------------------------------------------


async def _elements(session: AsyncSession, actor: Actor, element_ids: Sequence[uuid.UUID], *, new: bool) -> list[Bound]:
    """The elements (repeats dropped) once the actor may update each: a `new` binding to an element that is missing or
    unreadable is 404 (as for the element itself), one the activity has already is 403; in the recycle bin, 409."""
    wanted = list(dict.fromkeys(element_ids))
    rows = {
        e.id: e
        for e in await session.scalars(
            select(Element).where(Element.workspace_id == actor.workspace_id, Element.id.in_(wanted))
        )
    }
    bound: list[Bound] = []
    for element_id in wanted:
        location = f"element_ids[{element_ids.index(element_id)}]"
        missing = NotFound(f"Element {element_id} not found", errors=[FieldError(location, "element not found")])
        element = rows.get(element_id)
        if element is None:
            raise missing
        meta = await cached_type_meta(session, actor.workspace_id, element.entity_type_id)
        access = actor.on(meta)
        owners = (element.pipeline_id, element.assigned_to, element.created_by)
        if new and not access.may("read", *owners):
            raise missing
        if not access.may("update", *owners):
            raise PermissionDenied(
                f"{meta.code}.update", f"Your role does not allow `update` on this {meta.code} element"
            )
        if new and element.deleted_at is not None:
            raise Conflict(
                f"Element {element_id} is in the recycle bin: restore it first",
                errors=[FieldError(location, "element in the recycle bin")],
            )
        bound.append(Bound(element, meta))
    return bound


async def _bound_now(session: AsyncSession, actor: Actor, activity: Activity) -> list[Bound]:
    """The elements the activity is bound to, once the actor may update every one of them (an activity whose
    elements were all purged: once the actor's level may write)."""
    ids = list(
        await session.scalars(
            select(ActivityElement.element_id)
            .where(ActivityElement.activity_id == activity.id)
            .order_by(ActivityElement.element_id)
        )
    )
    if not ids:
        actor.ensure_can_write()
    return await _elements(session, actor, ids, new=False)


async def _rebind(
    session: AsyncSession, actor: Actor, activity: Activity, current: list[Bound], wanted: list[Bound]
) -> None:
    kept = {b.element.id for b in current}
    chosen = {b.element.id for b in wanted}
    if kept - chosen:
        await session.execute(
            delete(ActivityElement).where(
                ActivityElement.activity_id == activity.id, ActivityElement.element_id.in_(kept - chosen)
            )
        )
    added = [
        {"element_id": element_id, "activity_id": activity.id, "workspace_id": actor.workspace_id}
        for element_id in sorted(chosen - kept)
    ]
    if added:
        await session.execute(insert(ActivityElement), added)


# --- rules of the fields -------------------------------------------------------------------------------------------


def _check_outcome(
    kind: ActivityKind, status: ActivityStatus, outcome: CallOutcome | None, errors: ErrorCollector
) -> None:
    if outcome is None:
        return
    if kind is not ActivityKind.call:
        errors.add("outcome", f"only a call has an outcome, not a {kind.value}")
    elif status is not ActivityStatus.completed:
        errors.add("outcome", "a planned call has no outcome yet: complete it with one")


@dataclass
class Timing:
    starts_at: datetime
    ends_at: datetime | None
    duration_seconds: int | None


def _timing(timing: Timing, errors: ErrorCollector, *, ends_sent: bool, duration_sent: bool) -> Timing:
    """The duration comes from the start and the end when both are known; else an end follows from the duration."""
    try:
        return _timed(timing, errors, ends_sent=ends_sent, duration_sent=duration_sent)
    except OverflowError:  # a start near the first or last day, and a duration that goes past it
        errors.add("duration_seconds", "takes the activity out of the range of dates")
        return timing


def _timed(timing: Timing, errors: ErrorCollector, *, ends_sent: bool, duration_sent: bool) -> Timing:
    starts, ends, duration = timing.starts_at, timing.ends_at, timing.duration_seconds
    if ends is not None and (ends_sent or not duration_sent):
        if ends < starts:
            errors.add("ends_at", "is before starts_at")
            return timing
        derived = int((ends - starts).total_seconds())
        if derived > MAX_DURATION_SECONDS:
            errors.add("ends_at", f"an activity lasts at most {MAX_DURATION_SECONDS // 86400} days")
        elif duration_sent and duration is not None and abs(duration - derived) > 1:
            errors.add("duration_seconds", f"is derived from starts_at and ends_at ({derived}): leave it out")
        return Timing(starts, ends, derived)
    if duration is not None:
        return Timing(starts, starts + timedelta(seconds=duration), duration)
    return Timing(starts, None, None)


async def _check_people(
    session: AsyncSession,
    actor: Actor,
    responsible: uuid.UUID | None,
    participants: Sequence[Participant] | None,
    errors: ErrorCollector,
) -> None:
    users = [("responsible_user_id", responsible)]
    users += [(f"participants[{i}].user_id", p.user_id) for i, p in enumerate(participants or [])]
    await check_assignees(session, actor.workspace_id, users, errors)


def _participants(participants: Sequence[Participant]) -> list[dict[str, Any]]:
    return [p.model_dump(mode="json", exclude_none=True) for p in participants]


# --- reads ---------------------------------------------------------------------------------------------------------


def read_of(activity: Activity, element_ids: Iterable[uuid.UUID]) -> ActivityRead:
    return ActivityRead(
        id=activity.id,
        kind=activity.kind,
        direction=activity.direction,
        subject=activity.subject,
        description=activity.description,
        starts_at=activity.starts_at,
        ends_at=activity.ends_at,
        duration_seconds=activity.duration_seconds,
        status=activity.status,
        completed_at=activity.completed_at,
        outcome=activity.outcome,
        responsible_user_id=activity.responsible_user_id,
        participants=[ParticipantRead.model_validate(p) for p in activity.participants],
        payload=activity.payload,
        element_ids=sorted(element_ids),
        created_by=activity.created_by,
        run_id=activity.run_id,
        created_at=activity.created_at,
        updated_at=activity.updated_at,
    )


def snapshot(activity: Activity) -> dict[str, Any]:
    """The activity as automation conditions and templates see it (`activity.*`); its payload and participants stay
    out of the events (they may be large)."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": str(activity.id),
        "kind": activity.kind.value,
        "direction": activity.direction.value if activity.direction else None,
        "status": activity.status.value,
        "outcome": activity.outcome.value if activity.outcome else None,
        "subject": activity.subject,
        "starts_at": iso(activity.starts_at),
        "ends_at": iso(activity.ends_at),
        "duration_seconds": activity.duration_seconds,
        "completed_at": iso(activity.completed_at),
        "responsible_user_id": str(activity.responsible_user_id) if activity.responsible_user_id else None,
    }


def _record(session: AsyncSession, actor: Actor, activity: Activity, bound: list[Bound], event_type: str) -> None:
    """One event per bound element, typed by its entity type, so the type's rules run with that element."""
    data = snapshot(activity)
    for b in bound:
        record_event(
            session,
            actor.workspace_id,
            event_type,
            entity_type_id=b.meta.id,
            element_id=b.element.id,
            payload={
                "element_id": str(b.element.id),
                "entity_type": b.meta.code,
                "activity_id": str(activity.id),
                "activity": data,
            },
        )


async def _readable(session: AsyncSession, actor: Actor) -> ColumnElement[bool] | None:
    """The elements the actor may read, as a condition on `elements`; None when they read every element."""
    if reads_everything(actor):
        return None
    return readable_elements(actor, await workspace_metas(session, actor.workspace_id))


def _visible(readable: ColumnElement[bool] | None, workspace_id: uuid.UUID) -> ColumnElement[bool]:
    """The activities bound to at least one element the actor may read."""
    if readable is None:
        return true()
    return exists(
        select(ActivityElement.element_id)
        .join(Element, Element.id == ActivityElement.element_id)
        .where(ActivityElement.activity_id == Activity.id, Element.workspace_id == workspace_id, readable)
    )


async def _element_ids(
    session: AsyncSession, actor: Actor, activity_ids: Sequence[uuid.UUID], readable: ColumnElement[bool] | None
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Each activity's elements that the actor may read (one query for a page)."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {activity_id: [] for activity_id in activity_ids}
    if not activity_ids:
        return found
    statement = select(ActivityElement.activity_id, ActivityElement.element_id).where(
        ActivityElement.workspace_id == actor.workspace_id, ActivityElement.activity_id.in_(list(activity_ids))
    )
    if readable is not None:
        statement = statement.join(Element, Element.id == ActivityElement.element_id).where(readable)
    for activity_id, element_id in await session.execute(statement):
        found[activity_id].append(element_id)
    return found


async def _get(session: AsyncSession, actor: Actor, activity_id: uuid.UUID, *, lock: bool = False) -> Activity:
    readable = await _readable(session, actor)
    statement = select(Activity).where(
        Activity.workspace_id == actor.workspace_id,
        Activity.id == activity_id,
        _visible(readable, actor.workspace_id),
    )
    activity = await session.scalar(statement.with_for_update(of=Activity) if lock else statement)
    if activity is None:
        raise NotFound(f"Activity {activity_id} not found")
    return activity


async def get_activity(session: AsyncSession, actor: Actor, activity_id: uuid.UUID) -> ActivityRead:
    activity = await _get(session, actor, activity_id)
    element_ids = await _element_ids(session, actor, [activity.id], await _readable(session, actor))
    return read_of(activity, element_ids[activity.id])


def _cursor_position(cursor: str) -> tuple[datetime, uuid.UUID]:
    starts_raw, id_raw = decode_cursor(cursor, 2)
    try:
        return _time(datetime.fromisoformat(starts_raw), "cursor"), uuid.UUID(id_raw)
    except (TypeError, ValueError, Invalid) as exc:  # well-formed base64 JSON, but not one of our cursors
        raise Invalid("The cursor is not valid", errors=[FieldError("cursor", "not a cursor of this list")]) from exc


async def list_activities(
    session: AsyncSession,
    actor: Actor,
    *,
    element_id: uuid.UUID | None = None,
    kinds: Sequence[ActivityKind] | None = None,
    responsible_id: uuid.UUID | None = None,
    status: ActivityStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> ActivityPage:
    """Newest first by start time, keyset-paged on (starts_at, id); `since` inclusive, `until` exclusive."""
    readable = await _readable(session, actor)
    statement = select(Activity).where(
        Activity.workspace_id == actor.workspace_id, _visible(readable, actor.workspace_id)
    )
    if element_id is not None:
        await load_element_row(session, actor, element_id)  # another workspace's, or unreadable: 404
        statement = statement.join(
            ActivityElement,
            (ActivityElement.activity_id == Activity.id) & (ActivityElement.element_id == element_id),
        )
    if kinds:
        statement = statement.where(Activity.kind.in_(list(kinds)))
    if responsible_id is not None:
        statement = statement.where(Activity.responsible_user_id == responsible_id)
    if status is not None:
        statement = statement.where(Activity.status == status)
    if since is not None:
        statement = statement.where(Activity.starts_at >= _time(since, "from"))
    if until is not None:
        statement = statement.where(Activity.starts_at < _time(until, "to"))
    if cursor:
        starts, last_id = _cursor_position(cursor)
        statement = statement.where(
            (Activity.starts_at < starts) | ((Activity.starts_at == starts) & (Activity.id < last_id))
        )
    rows = list(
        await session.scalars(statement.order_by(Activity.starts_at.desc(), Activity.id.desc()).limit(limit + 1))
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1].starts_at.isoformat(), str(rows[-1].id)])
    element_ids = await _element_ids(session, actor, [a.id for a in rows], readable)
    return ActivityPage(items=[read_of(a, element_ids[a.id]) for a in rows], next_cursor=next_cursor)


def _time(value: datetime, location: str) -> datetime:
    """A time to compare with stored ones: without an offset, UTC; one that is no time in UTC, a 422."""
    try:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError as exc:
        raise Invalid("The time is out of range", errors=[FieldError(location, "out of range")]) from exc


async def activities_of_elements(
    session: AsyncSession,
    actor: Actor,
    element_ids: Sequence[uuid.UUID],
    *,
    kinds: Sequence[ActivityKind] | None,
    limit: int,
    after: ColumnElement[bool] | None = None,
) -> dict[uuid.UUID, list[ActivityRead]]:
    """The latest `limit` activities of each element (by start time, newest first; `after`: a condition on
    `activities` where a page ends), in two queries. The elements are ones the caller has checked the actor may
    read: an activity bound to one of them is readable."""
    found: dict[uuid.UUID, list[ActivityRead]] = {element_id: [] for element_id in element_ids}
    if not element_ids:
        return found
    number = (
        func.row_number()
        .over(partition_by=ActivityElement.element_id, order_by=(Activity.starts_at.desc(), Activity.id.desc()))
        .label("number")
    )
    ranked = (
        select(ActivityElement.element_id, ActivityElement.activity_id, number)
        .join(Activity, Activity.id == ActivityElement.activity_id)
        .where(ActivityElement.workspace_id == actor.workspace_id, ActivityElement.element_id.in_(list(element_ids)))
    )
    if kinds:
        ranked = ranked.where(Activity.kind.in_(list(kinds)))
    if after is not None:
        ranked = ranked.where(after)
    page = ranked.subquery()
    rows = (
        await session.execute(
            select(page.c.element_id, Activity)
            .join(Activity, Activity.id == page.c.activity_id)
            .where(page.c.number <= limit)
            .order_by(page.c.element_id, page.c.number)
        )
    ).all()
    bound = await _element_ids(session, actor, list({a.id for _, a in rows}), await _readable(session, actor))
    for element_id, activity in rows:
        found[element_id].append(read_of(activity, bound[activity.id]))
    return found


# --- writes ----------------------------------------------------------------------------------------------------------


async def create_activity(
    session: AsyncSession, actor: Actor, data: ActivityCreate, *, run_id: uuid.UUID | None = None
) -> ActivityRead:
    bound = await _elements(session, actor, data.element_ids, new=True)
    errors = ErrorCollector()
    _check_outcome(data.kind, data.status, data.outcome, errors)
    now = datetime.now(UTC)
    starts = data.starts_at or data.ends_at or now
    if data.starts_at is None and data.ends_at is not None and data.duration_seconds:
        try:
            starts = data.ends_at - timedelta(seconds=data.duration_seconds)
        except OverflowError:
            errors.add("duration_seconds", "takes the activity out of the range of dates")
    timing = _timing(
        Timing(starts, data.ends_at, data.duration_seconds),
        errors,
        ends_sent=data.ends_at is not None,
        duration_sent=data.duration_seconds is not None,
    )
    await _check_people(session, actor, data.responsible_user_id, data.participants, errors)
    errors.raise_if_any(INVALID)
    completed = data.status is ActivityStatus.completed
    activity = Activity(
        id=uuid.uuid4(),
        workspace_id=actor.workspace_id,
        kind=data.kind,
        direction=data.direction,
        subject=data.subject,
        description=data.description,
        starts_at=timing.starts_at,
        ends_at=timing.ends_at,
        duration_seconds=timing.duration_seconds,
        status=data.status,
        completed_at=now if completed else None,
        outcome=data.outcome,
        responsible_user_id=data.responsible_user_id,
        participants=_participants(data.participants),
        payload=data.payload,
        created_by=actor.principal_id,
        run_id=run_id,
        created_at=now,
        updated_at=now,
    )
    session.add(activity)
    await session.flush()  # the bindings' foreign key needs the row
    await _rebind(session, actor, activity, [], bound)
    _record(session, actor, activity, bound, "activity.created")
    if completed:
        _record(session, actor, activity, bound, "activity.completed")
    await session.flush()
    return read_of(activity, [b.element.id for b in bound])


def _not_null(data: ActivityUpdate, names: Iterable[str], errors: ErrorCollector) -> None:
    for name in names:
        if name in data.model_fields_set and getattr(data, name) is None:
            errors.add(name, "cannot be null")


async def update_activity(
    session: AsyncSession, actor: Actor, activity_id: uuid.UUID, data: ActivityUpdate
) -> ActivityRead:
    activity = await _get(session, actor, activity_id, lock=True)
    current = await _bound_now(session, actor, activity)
    sent = data.model_fields_set
    errors = ErrorCollector()
    _not_null(data, ("kind", "subject", "starts_at", "participants", "payload", "element_ids"), errors)
    errors.raise_if_any(INVALID)
    wanted = current
    if data.element_ids is not None:
        known = {b.element.id: b for b in current}
        fresh = await _elements(session, actor, [i for i in data.element_ids if i not in known], new=True)
        by_id = {**known, **{b.element.id: b for b in fresh}}
        wanted = [by_id[i] for i in dict.fromkeys(data.element_ids)]
    kind = data.kind if data.kind is not None else activity.kind
    outcome = data.outcome if "outcome" in sent else activity.outcome
    _check_outcome(kind, activity.status, outcome, errors)
    ends_sent = "ends_at" in sent and data.ends_at is not None
    duration_sent = "duration_seconds" in sent and data.duration_seconds is not None
    ends = data.ends_at if "ends_at" in sent else activity.ends_at
    duration = data.duration_seconds if "duration_seconds" in sent else activity.duration_seconds
    if "ends_at" in sent and data.ends_at is None and not duration_sent:
        duration = None  # no end: no length either
    timing = _timing(
        Timing(data.starts_at or activity.starts_at, ends, duration),
        errors,
        ends_sent=ends_sent,
        duration_sent=duration_sent,
    )
    await _check_people(
        session, actor, data.responsible_user_id if "responsible_user_id" in sent else None, data.participants, errors
    )
    errors.raise_if_any(INVALID)
    for name in ("direction", "description", "responsible_user_id", "payload", "subject"):
        if name in sent:
            setattr(activity, name, getattr(data, name))
    if data.participants is not None:
        activity.participants = _participants(data.participants)
    activity.kind, activity.outcome = kind, outcome
    activity.starts_at, activity.ends_at, activity.duration_seconds = (
        timing.starts_at,
        timing.ends_at,
        timing.duration_seconds,
    )
    activity.updated_at = datetime.now(UTC)
    await session.flush()
    if data.element_ids is not None:
        await _rebind(session, actor, activity, current, wanted)
    _record(session, actor, activity, wanted, "activity.updated")
    await session.flush()
    return read_of(activity, [b.element.id for b in wanted])


async def complete_activity(
    session: AsyncSession, actor: Actor, activity_id: uuid.UUID, data: ActivityComplete
) -> ActivityRead:
    """A planned activity done (with a call's outcome); `activity.completed` fires for each of its elements."""
    activity = await _get(session, actor, activity_id, lock=True)
    bound = await _bound_now(session, actor, activity)
    if activity.status is ActivityStatus.completed:
        raise Conflict(f"Activity {activity_id} is completed already")
    errors = ErrorCollector()
    _check_outcome(activity.kind, ActivityStatus.completed, data.outcome, errors)
    sent = data.model_fields_set
    timing = _timing(
        Timing(
            activity.starts_at,
            data.ends_at if "ends_at" in sent else activity.ends_at,
            data.duration_seconds if "duration_seconds" in sent else activity.duration_seconds,
        ),
        errors,
        ends_sent=data.ends_at is not None,
        duration_sent=data.duration_seconds is not None,
    )
    errors.raise_if_any(INVALID)
    now = datetime.now(UTC)
    activity.status, activity.completed_at, activity.outcome = ActivityStatus.completed, now, data.outcome
    activity.ends_at, activity.duration_seconds = timing.ends_at, timing.duration_seconds
    activity.updated_at = now
    _record(session, actor, activity, bound, "activity.completed")
    await session.flush()
    return read_of(activity, [b.element.id for b in bound])


async def delete_activity(session: AsyncSession, actor: Actor, activity_id: uuid.UUID) -> None:
    activity = await _get(session, actor, activity_id, lock=True)
    bound = await _bound_now(session, actor, activity)
    _record(session, actor, activity, bound, "activity.deleted")
    await session.delete(activity)  # its bindings go with it (ON DELETE CASCADE)
    await session.flush()
