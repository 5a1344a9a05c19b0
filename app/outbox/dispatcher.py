"""Hands outbox events on: claims pending rows with FOR UPDATE SKIP LOCKED, gives each to every sink, marks them.

Several dispatchers may run at once (one per worker process); SKIP LOCKED keeps them from taking the same rows. A
sink that raises leaves the batch undispatched, so it is retried: sinks must be idempotent per event id.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.bus import EventMessage
from app.outbox.models import OutboxEvent

logger = logging.getLogger("stageflow.outbox")
Sink = Callable[[Sequence[EventMessage]], Awaitable[None]]
BATCH_SIZE = 500


def to_message(event: OutboxEvent) -> EventMessage:
    return EventMessage(
        event_id=str(event.event_id),
        event_type=event.event_type,
        workspace_id=str(event.workspace_id),
        entity_type_id=str(event.entity_type_id) if event.entity_type_id else None,
        element_id=str(event.element_id) if event.element_id else None,
        payload=event.payload,
        created_at=event.created_at.isoformat(),
    )


async def dispatch_pending(session: AsyncSession, sinks: Sequence[Sink], *, limit: int = BATCH_SIZE) -> int:
    """Dispatch up to `limit` pending events in order; returns how many. The caller commits."""
    events = list(
        await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.dispatched_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not events:
        return 0
    messages = [to_message(e) for e in events]
    for sink in sinks:
        await sink(messages)
    await session.execute(
        update(OutboxEvent).where(OutboxEvent.id.in_([e.id for e in events])).values(dispatched_at=datetime.now(UTC))
    )
    return len(events)


async def run_dispatcher(
    sessionmaker: async_sessionmaker[AsyncSession],
    sinks: Sequence[Sink],
    *,
    stop: asyncio.Event,
    idle_seconds: float = 0.1,
) -> None:
    """Dispatch until `stop` is set; sleeps only when the outbox is empty."""
    while not stop.is_set():
        try:
            async with sessionmaker() as session:
                count = await dispatch_pending(session, sinks)
                await session.commit()
        except Exception:
            logger.exception("outbox dispatch failed; retrying")
            count = 0
            await asyncio.sleep(1)
        if count == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=idle_seconds)
