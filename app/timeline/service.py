import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.actor import Actor
from app.timeline.models import TimelineEntry


def add_entry(
    session: AsyncSession, actor: Actor, kind: str, *, element_id: uuid.UUID | None, data: dict[str, Any]
) -> None:
    session.add(
        TimelineEntry(
            workspace_id=actor.workspace_id, element_id=element_id, kind=kind, actor_id=actor.api_key_id, data=data
        )
    )


async def element_timeline(
    session: AsyncSession, actor: Actor, element_id: uuid.UUID, *, limit: int
) -> list[TimelineEntry]:
    rows = await session.scalars(
        select(TimelineEntry)
        .where(TimelineEntry.workspace_id == actor.workspace_id, TimelineEntry.element_id == element_id)
        .order_by(TimelineEntry.id)
        .limit(limit)
    )
    return list(rows)
