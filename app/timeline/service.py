import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.activities.models import ActivityKind
from app.activities.schemas import ActivityRead
from app.auth.actor import Actor
from app.errors import FieldError, Invalid
from app.kit.cursor import decode_cursor, encode_cursor
from app.timeline.models import TimelineEntry
from app.timeline.schemas import MAX_FEED_KINDS, TimelineEntryRead, TimelineItem, TimelinePage


def add_entry(
    session: AsyncSession, actor: Actor, kind: str, *, element_id: uuid.UUID | None, data: dict[str, Any]
) -> None:
    session.add(
        TimelineEntry(
            workspace_id=actor.workspace_id, element_id=element_id, kind=kind, actor_id=actor.principal_id, data=data
        )
    )


async def element_timeline(
    session: AsyncSession, actor: Actor, element_id: uuid.UUID, *, limit: int
) -> list[TimelineEntry]:
    from app.elements.service import load_element_row  # the element service records timeline entries itself

    await load_element_row(session, actor, element_id)
    rows = await session.scalars(
        select(TimelineEntry)
        .where(TimelineEntry.workspace_id == actor.workspace_id, TimelineEntry.element_id == element_id)
        .order_by(TimelineEntry.id)
        .limit(limit)
    )
    return list(rows)


async def element_timelines(
    session: AsyncSession, actor: Actor, element_ids: list[uuid.UUID], *, limit: int
) -> dict[uuid.UUID, list[TimelineEntry]]:
    """The first `limit` timeline entries of each element, in one query."""
    number = func.row_number().over(partition_by=TimelineEntry.element_id, order_by=TimelineEntry.id).label("number")
    ranked = (
        select(TimelineEntry.id, number)
        .where(TimelineEntry.workspace_id == actor.workspace_id, TimelineEntry.element_id.in_(element_ids))
        .subquery()
    )
    rows = await session.scalars(
        select(TimelineEntry)
        .join(ranked, ranked.c.id == TimelineEntry.id)
        .where(ranked.c.number <= limit)
        .order_by(TimelineEntry.id)
    )
    grouped: dict[uuid.UUID, list[TimelineEntry]] = {element_id: [] for element_id in element_ids}
    for entry in rows:
        if entry.element_id is not None:
            grouped[entry.element_id].append(entry)
    return grouped


# --- the feed: timeline entries and activities, newest first ------------------------------------------------------

# At the same moment an activity comes before an entry; within a source the later id first.
ENTRY_RANK, ACTIVITY_RANK = 0, 1
Position = tuple[datetime, int, int | uuid.UUID]
MAX_KIND_LENGTH = 50  # timeline_entries.kind


def _position(cursor: str) -> Position:
    at_raw, rank, key = decode_cursor(cursor, 3)
    try:
        at = datetime.fromisoformat(at_raw)
        if at.tzinfo is None:
            raise ValueError("a cursor's time has its offset")
        at = at.astimezone(UTC)
        if rank == ENTRY_RANK and isinstance(key, int) and not isinstance(key, bool):
            return at, rank, key
        if rank == ACTIVITY_RANK and isinstance(key, str):
            return at, rank, uuid.UUID(key)
    except (TypeError, ValueError, OverflowError):
        pass  # well-formed base64 JSON, but not one of our cursors
    raise Invalid("The cursor is not valid", errors=[FieldError("cursor", "not a cursor of this feed")])


def _after(position: Position | None, rank: int, at: Any, key: Any) -> ColumnElement[bool] | None:
    """The rows of one source (`rank`) that come after `position` in the feed's order (at, rank, key), descending."""
    if position is None:
        return None
    last_at, last_rank, last_key = position
    if rank < last_rank:
        return at <= last_at  # type: ignore[no-any-return]
    if rank > last_rank:
        return at < last_at  # type: ignore[no-any-return]
    return (at < last_at) | ((at == last_at) & (key < last_key))  # type: ignore[no-any-return]


def _split_kinds(kinds: Sequence[str] | None) -> tuple[list[str] | None, list[ActivityKind] | None]:
    """The kinds asked for, as entry kinds and activity kinds (empty: that source is not wanted)."""
    if not kinds:
        return None, None
    if len(kinds) > MAX_FEED_KINDS or any(not 0 < len(k) <= MAX_KIND_LENGTH for k in kinds):
        detail = f"at most {MAX_FEED_KINDS} kinds of 1 to {MAX_KIND_LENGTH} characters"
        raise Invalid("The kinds are not valid", errors=[FieldError("kind", detail)])
    activity_kinds = [ActivityKind(k) for k in dict.fromkeys(kinds) if k in ActivityKind.__members__]
    entry_kinds = [k for k in dict.fromkeys(kinds) if k not in ActivityKind.__members__]
    return entry_kinds, activity_kinds


async def _entries(
    session: AsyncSession,
    actor: Actor,
    element_ids: list[uuid.UUID],
    *,
    kinds: list[str] | None,
    limit: int,
    after: ColumnElement[bool] | None,
) -> dict[uuid.UUID, list[TimelineEntry]]:
    """The latest `limit` entries of each element, newest first, in one query."""
    number = (
        func.row_number()
        .over(
            partition_by=TimelineEntry.element_id,
            order_by=(TimelineEntry.created_at.desc(), TimelineEntry.id.desc()),
        )
        .label("number")
    )
    ranked = select(TimelineEntry.id, number).where(
        TimelineEntry.workspace_id == actor.workspace_id, TimelineEntry.element_id.in_(element_ids)
    )
    if kinds:
        ranked = ranked.where(TimelineEntry.kind.in_(kinds))
    if after is not None:
        ranked = ranked.where(after)
    page = ranked.subquery()
    rows = await session.scalars(
        select(TimelineEntry).join(page, page.c.id == TimelineEntry.id).where(page.c.number <= limit)
    )
    grouped: dict[uuid.UUID, list[TimelineEntry]] = {element_id: [] for element_id in element_ids}
    for entry in rows:
        if entry.element_id is not None:
            grouped[entry.element_id].append(entry)
    return grouped


async def element_feed(
    session: AsyncSession,
    actor: Actor,
    element_id: uuid.UUID,
    *,
    kinds: Sequence[str] | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> TimelinePage:
    """One element's timeline entries and activities in one feed, newest first; `kinds` keeps only those kinds
    (entry kinds such as `moved` or `comment`, activity kinds such as `call`). 404 unless the actor may read it."""
    from app.elements.service import load_element_row  # the element service records timeline entries itself

    await load_element_row(session, actor, element_id)
    return (await _feeds(session, actor, [element_id], kinds=kinds, limit=limit, cursor=cursor))[element_id]


async def element_feeds(
    session: AsyncSession,
    actor: Actor,
    element_ids: Sequence[uuid.UUID],
    *,
    kinds: Sequence[str] | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> dict[uuid.UUID, TimelinePage]:
    """`element_feed` for many elements in a few queries (GraphQL's loader); one the actor may not read gets an
    empty page."""
    from app.elements.meta_cache import cached_type_meta
    from app.elements.models import Element

    rows = await session.scalars(
        select(Element).where(Element.workspace_id == actor.workspace_id, Element.id.in_(list(element_ids)))
    )
    readable = []
    for element in rows:
        meta = await cached_type_meta(session, actor.workspace_id, element.entity_type_id)
        if actor.on(meta).may("read", element.pipeline_id, element.assigned_to, element.created_by):
            readable.append(element.id)
    found = await _feeds(session, actor, readable, kinds=kinds, limit=limit, cursor=cursor)
    return {element_id: found.get(element_id, TimelinePage(items=[])) for element_id in element_ids}


async def _feeds(
    session: AsyncSession,
    actor: Actor,
    element_ids: list[uuid.UUID],
    *,
    kinds: Sequence[str] | None,
    limit: int,
    cursor: str | None,
) -> dict[uuid.UUID, TimelinePage]:
    from app.activities import service as activity_service
    from app.activities.models import Activity

    position = _position(cursor) if cursor else None
    entry_kinds, activity_kinds = _split_kinds(kinds)
    entries: dict[uuid.UUID, list[TimelineEntry]] = {}
    activities: dict[uuid.UUID, list[ActivityRead]] = {}
    if element_ids and entry_kinds != []:
        after = _after(position, ENTRY_RANK, TimelineEntry.created_at, TimelineEntry.id)
        entries = await _entries(session, actor, element_ids, kinds=entry_kinds, limit=limit + 1, after=after)
    if element_ids and activity_kinds != []:
        after = _after(position, ACTIVITY_RANK, Activity.starts_at, Activity.id)
        activities = await activity_service.activities_of_elements(
            session, actor, element_ids, kinds=activity_kinds, limit=limit + 1, after=after
        )
    pages = {}
    for element_id in element_ids:
        merged: list[tuple[Position, TimelineItem]] = [
            (
                (e.created_at, ENTRY_RANK, e.id),
                TimelineItem(type="entry", kind=e.kind, at=e.created_at, entry=TimelineEntryRead.model_validate(e)),
            )
            for e in entries.get(element_id, [])
        ]
        merged += [
            (
                (a.starts_at, ACTIVITY_RANK, a.id),
                TimelineItem(type="activity", kind=a.kind.value, at=a.starts_at, activity=a),
            )
            for a in activities.get(element_id, [])
        ]
        merged.sort(key=lambda pair: (pair[0][0], pair[0][1], str(pair[0][2]).zfill(40)), reverse=True)
        next_cursor = None
        if len(merged) > limit:
            merged = merged[:limit]
            at, rank, key = merged[-1][0]
            next_cursor = encode_cursor([at.isoformat(), rank, key if isinstance(key, int) else str(key)])
        pages[element_id] = TimelinePage(items=[item for _, item in merged], next_cursor=next_cursor)
    return pages
