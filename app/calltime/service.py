"""Best time to call: the next slots at which an element's contact is most likely to answer, and the `schedule_call`
automation action that books the best one the assignee's load allows.

The estimate (app/calltime/estimator.py) learns from the completed calls with an outcome (`answered` counts as an
answer; `no_answer`, `busy` and `voicemail` do not) bound to elements of the element's type, over the last
HISTORY_DAYS: the element's own calls, those of its segment (the elements whose values of the named segment fields
equal its own; no segment fields, no segment level) and those of every element of the type. Only elements the caller
may read count (a rule runs with the system actor: every element), and elements in the recycle bin do not.

Each call's hour-of-week is taken in ITS element's contact time zone, chosen by one rule:
1. the element's `timezone` field, when its type has a field with that code holding a valid IANA name;
2. else the time zone of the element's assignee;
3. else UTC (the workspace has no time zone of its own).

The slots lie within the assignee's working hours (their weekly schedule in their own time zone, as
`GET /users/{id}/working-hours` gives it); an element with no assignee gets the default week (Mon-Fri 09:00-18:00)
in the contact's time zone. A slot is one hour of the contact's local clock (cut to the working part of it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.visibility import readable_elements
from app.activities.models import Activity, ActivityElement, ActivityKind, ActivityStatus, CallOutcome
from app.auth.actor import Actor
from app.calendar import hours
from app.calendar import service as calendar_service
from app.calendar.models import CalendarEvent
from app.calltime import estimator
from app.calltime.schemas import (
    MAX_SEGMENT_FIELDS,
    BestCallTimeRead,
    CallHistorySize,
    CallLevelEvidence,
    CallSlot,
    CallSlotExplanation,
    TimezoneSource,
)
from app.elements.meta_cache import cached_type_meta
from app.elements.models import Element
from app.elements.service import load_element_row
from app.entity_types.meta import TypeMeta
from app.errors import Conflict, ErrorCollector, NotFound
from app.tasks import service as task_service
from app.tasks.models import Task
from app.tasks.schemas import TaskCreate, TaskRead
from app.timeline.service import add_entry
from app.users.models import User

TIMEZONE_FIELD = "timezone"
HISTORY_DAYS = 365
MAX_HISTORY_CALLS = 200_000
MAX_LOAD_ITEMS = 5000
WEEKDAYS = hours.DAYS


# --- inputs --------------------------------------------------------------------------------------------------------


def check_segment(meta: TypeMeta, hidden: frozenset[str], codes: list[str], errors: ErrorCollector, path: str) -> None:
    """Segment fields must be custom fields of the type that the caller may see, each named once."""
    if len(codes) > MAX_SEGMENT_FIELDS:
        errors.add(path, f"at most {MAX_SEGMENT_FIELDS} segment fields")
        return
    for index, code in enumerate(codes):
        if code not in meta.fields or code in hidden:
            errors.add(f"{path}[{index}]", f"{code[:100]!r} is not a field of {meta.code!r}")
        elif code in codes[:index]:
            errors.add(f"{path}[{index}]", f"{code!r} is named twice")


def parse_segment(raw: str | None) -> list[str]:
    """`client_type,region` → ["client_type", "region"] (blanks dropped)."""
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def valid_zone(name: Any) -> ZoneInfo | None:
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


# --- the estimate --------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    element: Element
    meta: TypeMeta
    zone: ZoneInfo
    zone_source: TimezoneSource
    assignee: User | None
    segment: list[str]
    segment_values: dict[str, Any]
    blend: estimator.Blend
    raw: tuple[estimator.Counts, estimator.Counts, estimator.Counts]  # as recorded: contact, segment, workspace
    sizes: CallHistorySize
    slots: list[estimator.Slot]  # ranked, best first
    now: datetime


def _contact_zone(meta: TypeMeta, values: dict[str, Any], assignee: User | None) -> tuple[ZoneInfo, TimezoneSource]:
    if TIMEZONE_FIELD in meta.fields and (zone := valid_zone(values.get(TIMEZONE_FIELD))) is not None:
        return zone, "field"
    if assignee is not None and (zone := valid_zone(assignee.timezone)) is not None:
        return zone, "assignee"
    return ZoneInfo("UTC"), "default"


async def _history(
    session: AsyncSession, actor: Actor, meta: TypeMeta, element: Element, segment: list[str], now: datetime
) -> tuple[estimator.Counts, estimator.Counts, estimator.Counts]:
    """The recorded calls (contact, segment, workspace) per hour-of-week, each in its element's contact time zone."""
    has_zone_field = TIMEZONE_FIELD in meta.fields
    zone_value = Element.values[TIMEZONE_FIELD].astext if has_zone_field else literal(None)
    statement = (
        select(
            Activity.starts_at,
            Activity.outcome,
            Element.id,
            zone_value,
            User.timezone,
            *(Element.values[code] for code in segment),
        )
        .select_from(Activity)
        .join(ActivityElement, ActivityElement.activity_id == Activity.id)
        .join(Element, Element.id == ActivityElement.element_id)
        .outerjoin(User, and_(User.id == Element.assigned_to, User.workspace_id == Element.workspace_id))
        .where(
            Activity.workspace_id == actor.workspace_id,
            ActivityElement.workspace_id == actor.workspace_id,
            Element.workspace_id == actor.workspace_id,
            Element.entity_type_id == meta.id,
            Element.deleted_at.is_(None),
            readable_elements(actor, [meta]),
            Activity.kind == ActivityKind.call,
            Activity.status == ActivityStatus.completed,
            Activity.outcome.is_not(None),
            Activity.starts_at >= now - timedelta(days=HISTORY_DAYS),
            Activity.starts_at <= now,
        )
        .order_by(Activity.starts_at.desc())
        .limit(MAX_HISTORY_CALLS)
    )
    wanted = [element.values.get(code) for code in segment]
    zones: dict[str | None, ZoneInfo] = {}
    contact, peers, everyone = estimator.Counts(), estimator.Counts(), estimator.Counts()
    for row in await session.execute(statement):
        starts_at, outcome, element_id, field_zone, user_zone = row[:5]
        key = f"{field_zone}\0{user_zone}"
        zone = zones.get(key)
        if zone is None:
            zone = zones[key] = valid_zone(field_zone) or valid_zone(user_zone) or ZoneInfo("UTC")
        hour = estimator.hour_of_week(starts_at, zone)
        answered = outcome == CallOutcome.answered
        everyone.add(hour, answered)
        if segment and list(row[5:]) == wanted:
            peers.add(hour, answered)
        if element_id == element.id:
            contact.add(hour, answered)
    return contact, peers, everyone


async def _plan(
    session: AsyncSession,
    actor: Actor,
    element: Element,
    *,
    segment: list[str],
    days: int,
    min_minutes: int = 15,
    now: datetime | None = None,
) -> Plan:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    meta = await cached_type_meta(session, actor.workspace_id, element.entity_type_id)
    errors = ErrorCollector()
    check_segment(meta, actor.on(meta).hidden, segment, errors, "segment")
    errors.raise_if_any("The segment fields are not valid")
    assignee = None
    if element.assigned_to is not None:
        assignee = await session.scalar(
            select(User).where(User.workspace_id == actor.workspace_id, User.id == element.assigned_to)
        )
    zone, source = _contact_zone(meta, element.values, assignee)
    raw = await _history(session, actor, meta, element, segment, now)
    blend = estimator.estimate(*raw)
    until = now + timedelta(days=days)
    if assignee is not None:
        week = hours.parse_week(assignee.working_hours)
        working = hours.working_intervals(week, hours.zone(assignee.timezone), now, until)
    else:
        working = hours.working_intervals(hours.DEFAULT_WEEK, zone, now, until)
    candidates = estimator.candidate_slots(
        working, zone, blend.probability, now=now, until=until, min_minutes=min_minutes
    )
    contact, peers, everyone = raw
    return Plan(
        element=element,
        meta=meta,
        zone=zone,
        zone_source=source,
        assignee=assignee,
        segment=segment,
        segment_values={code: element.values.get(code) for code in segment},
        blend=blend,
        raw=raw,
        sizes=CallHistorySize(
            contact=int(contact.total.sum()), segment=int(peers.total.sum()), workspace=int(everyone.total.sum())
        ),
        slots=estimator.rank(candidates),
        now=now,
    )


def _evidence(raw: estimator.Counts, smoothed: estimator.Counts, weight: float, hour: int) -> CallLevelEvidence:
    total = float(smoothed.total[hour])
    return CallLevelEvidence(
        answered=int(raw.answered[hour]),
        total=int(raw.total[hour]),
        rate=round(float(smoothed.answered[hour]) / total, 4) if total > 0 else None,
        weight=round(weight, 4),
    )


def _level_text(name: str, evidence: CallLevelEvidence) -> str:
    return f"{name} {evidence.answered}/{evidence.total} answered (weight {evidence.weight:.0%})"


def slot_read(plan: Plan, slot: estimator.Slot) -> CallSlot:
    b, h = plan.blend, slot.hour
    contact, peers, everyone = plan.raw
    explanation = CallSlotExplanation(
        contact=_evidence(contact, b.contact, float(b.weight_contact[h]), h),
        segment=_evidence(peers, b.segment, float(b.weight_segment[h]), h),
        workspace=_evidence(everyone, b.workspace, float(b.weight_workspace[h]), h),
        base_rate=round(b.base_rate, 4),
        base_weight=round(float(b.weight_base[h]), 4),
        text="",
    )
    local = slot.starts_at.astimezone(plan.zone)
    parts = [
        _level_text("own calls", explanation.contact),
        _level_text("segment", explanation.segment),
        _level_text("workspace", explanation.workspace),
        f"overall rate {explanation.base_rate:.0%} (weight {explanation.base_weight:.0%})",
    ]
    explanation.text = (
        f"{WEEKDAYS[local.weekday()]} {local.hour:02d}:00 {plan.zone.key}: {slot.probability:.0%} estimated; "
        + "; ".join(parts)
    )
    return CallSlot(
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        local_starts_at=local,
        local_ends_at=slot.ends_at.astimezone(plan.zone),
        weekday=WEEKDAYS[local.weekday()],
        hour=local.hour,
        probability=round(slot.probability, 4),
        explanation=explanation,
    )


async def _element(session: AsyncSession, actor: Actor, element_id: uuid.UUID) -> Element:
    element = await load_element_row(session, actor, element_id)
    if element.deleted_at is not None:
        raise NotFound(f"Element {element_id} not found")
    return element


async def best_call_time(
    session: AsyncSession,
    actor: Actor,
    element_id: uuid.UUID,
    *,
    slots: int = 5,
    days: int = 7,
    segment: list[str] | None = None,
    now: datetime | None = None,
) -> BestCallTimeRead:
    """The next `slots` best hours to call the element's contact within `days`, explained (read-only: a look, not a
    decision, so nothing is written; `schedule_call` writes its decision on the timeline)."""
    element = await _element(session, actor, element_id)
    plan = await _plan(session, actor, element, segment=segment or [], days=days, now=now)
    return BestCallTimeRead(
        element_id=element.id,
        timezone=plan.zone.key,
        timezone_source=plan.zone_source,
        assignee_id=plan.assignee.id if plan.assignee else None,
        segment_fields=plan.segment,
        segment_values=plan.segment_values,
        calls=plan.sizes,
        slots=[slot_read(plan, s) for s in plan.slots[:slots]],
        computed_at=plan.now,
    )


# --- schedule_call -------------------------------------------------------------------------------------------------


async def _load(
    session: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID, start: datetime, end: datetime
) -> tuple[list[datetime], list[tuple[datetime, datetime]]]:
    """The user's tasks due (open or done) and events (owned or attended) within [start, end)."""
    due = list(
        await session.scalars(
            select(Task.due_at)
            .where(*calendar_service.tasks_due_where(workspace_id, user_id, start, end))
            .limit(MAX_LOAD_ITEMS)
        )
    )
    events = list(
        await session.execute(
            select(CalendarEvent.starts_at, CalendarEvent.ends_at)
            .where(
                *calendar_service.events_where(workspace_id, user_id, start, end),
                CalendarEvent.all_day.is_(False),  # an all-day event (a deadline, a reminder) takes no particular hour
            )
            .limit(MAX_LOAD_ITEMS)
        )
    )
    return [d for d in due if d is not None], [(s, e) for s, e in events]


def _hour_window(slot: estimator.Slot, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The local clock hour the slot lies in, in UTC."""
    start = slot.starts_at.astimezone(zone).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return start, start + timedelta(hours=1)


async def schedule_call(
    session: AsyncSession,
    actor: Actor,
    element_id: uuid.UUID,
    *,
    within_days: int,
    duration_minutes: int,
    max_calls_per_hour: int,
    title: str | None = None,
    segment: list[str] | None = None,
    run_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> TaskRead:
    """Create a call task for the element's assignee, due at the best slot whose hour holds fewer than
    `max_calls_per_hour` of their tasks and events; the decision, explained, goes on the element's timeline
    (`call_scheduled`). Conflict when the element has no assignee or no slot within the days is free enough."""
    element = await _element(session, actor, element_id)
    if element.assigned_to is None:
        raise Conflict("The element has no assignee to schedule a call for")
    plan = await _plan(
        session, actor, element, segment=segment or [], days=within_days, min_minutes=min(duration_minutes, 60), now=now
    )
    assert plan.assignee is not None  # noqa: S101  (assignees are users of the workspace)
    due, events = await _load(
        session,
        actor.workspace_id,
        plan.assignee.id,
        plan.now - timedelta(hours=1),
        plan.now + timedelta(days=within_days, hours=1),
    )
    busy: list[dict[str, Any]] = []
    chosen: estimator.Slot | None = None
    load = 0
    for slot in plan.slots:
        start, end = _hour_window(slot, plan.zone)
        load = sum(1 for d in due if start <= d < end) + sum(1 for s, e in events if s < end and e > start)
        if load < max_calls_per_hour:
            chosen = slot
            break
        if len(busy) < 10:
            busy.append(
                {"starts_at": slot.starts_at.isoformat(), "probability": round(slot.probability, 4), "load": load}
            )
    if chosen is None:
        raise Conflict(
            f"No slot within {within_days} days of the assignee's working hours has fewer than "
            f"{max_calls_per_hour} tasks and events in its hour"
        )
    read = slot_read(plan, chosen)
    rank = plan.slots.index(chosen) + 1
    reason = (
        f"Call scheduled for {read.local_starts_at.isoformat()} (rank {rank} of {len(plan.slots)} slots; "
        f"the assignee has {load} of at most {max_calls_per_hour - 1} other tasks and events that hour). "
        f"{read.explanation.text}"
    )
    task = await task_service.create_task(
        session,
        actor,
        TaskCreate(
            title=(title or f"Call: {element.title or 'contact'}")[:500],
            description=reason,
            element_id=element.id,
            assignee_id=plan.assignee.id,
            due_at=chosen.starts_at,
        ),
        run_id=run_id,
    )
    add_entry(
        session,
        actor,
        "call_scheduled",
        element_id=element.id,
        data={
            "task_id": str(task.id),
            "assignee_id": str(plan.assignee.id),
            "slot": read.model_dump(mode="json"),
            "rank": rank,
            "timezone": plan.zone.key,
            "timezone_source": plan.zone_source,
            "segment_fields": plan.segment,
            "calls": plan.sizes.model_dump(),
            "skipped_for_load": busy,
            "duration_minutes": duration_minutes,
            "reason": reason,
            **({"run_id": str(run_id)} if run_id else {}),
        },
    )
    return task
