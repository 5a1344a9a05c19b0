import asyncio
import uuid
from collections.abc import Sequence

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import select

from app.events.bus import EventMessage, subscribe
from app.events.sinks import redis_pubsub_sink
from app.outbox.dispatcher import dispatch_pending
from app.outbox.models import OutboxEvent
from tests.conftest import Tenant
from tests.factories import create_element, lead_type


async def test_events_are_published_once_and_marked(app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> None:
    await lead_type(client)
    redis: Redis = app.state.redis
    received: list[EventMessage] = []

    async def listen() -> None:
        async for message in subscribe(redis, tenant.workspace_id):
            received.append(message)
            if message["event_type"] == "element.moved":
                return

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.1)  # let the subscription start
    element = await create_element(client, "lead", title="A")
    await client.post(f"/elements/{element['id']}/move", json={"stage_code": "IN_PROGRESS"})

    collected: list[EventMessage] = []

    async def collect(messages: Sequence[EventMessage]) -> None:
        collected.extend(messages)

    async with app.state.sessionmaker() as session:
        while await dispatch_pending(session, [redis_pubsub_sink(redis), collect]):
            pass
        await session.commit()
    await asyncio.wait_for(listener, timeout=5)

    mine = [m for m in received if m["element_id"] == element["id"]]
    assert [m["event_type"] for m in mine] == ["element.created", "element.moved"]
    assert mine[1]["payload"]["to_stage_code"] == "IN_PROGRESS"
    assert len({m["event_id"] for m in collected}) == len(collected)
    async with app.state.sessionmaker() as session:
        pending = await session.scalar(
            select(OutboxEvent.id).where(
                OutboxEvent.workspace_id == tenant.workspace_id, OutboxEvent.dispatched_at.is_(None)
            )
        )
        rows = (
            await session.execute(
                select(OutboxEvent.event_id, OutboxEvent.dispatched_at)
                .where(OutboxEvent.element_id == uuid.UUID(element["id"]))
                .order_by(OutboxEvent.id)
            )
        ).all()
    assert pending is None
    # What was published is the outbox rows themselves (their event ids, in order), each marked dispatched.
    assert [m["event_id"] for m in mine] == [str(row.event_id) for row in rows]
    assert [row.dispatched_at is not None for row in rows] == [True, True]
    # Marked means never published again.
    again: list[EventMessage] = []

    async def collect_again(messages: Sequence[EventMessage]) -> None:
        again.extend(messages)

    async with app.state.sessionmaker() as session:
        while await dispatch_pending(session, [collect_again]):
            pass
        await session.commit()
    assert {m["event_id"] for m in again}.isdisjoint(m["event_id"] for m in mine)
