import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.actor import Actor
from app.timeline.models import TimelineEntry


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
