"""Live domain events over Redis pub/sub, one channel per workspace (fed by the outbox dispatcher)."""

import uuid
from collections.abc import AsyncIterator
from typing import Any, TypedDict

import orjson
from redis.asyncio import Redis


class EventMessage(TypedDict):
    event_id: str
    event_type: str
    workspace_id: str
    entity_type_id: str | None
    element_id: str | None
    payload: dict[str, Any]
    created_at: str


def channel(workspace_id: uuid.UUID | str) -> str:
    return f"stageflow:events:{workspace_id}"


async def publish(redis: Redis, message: EventMessage) -> None:
    await redis.publish(channel(message["workspace_id"]), orjson.dumps(message))


async def subscribe(redis: Redis, workspace_id: uuid.UUID) -> AsyncIterator[EventMessage]:
    """Yield the workspace's events as they are published, until the consumer stops iterating."""
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel(workspace_id))
    try:
        async for raw in pubsub.listen():
            if raw.get("type") == "message":
                yield orjson.loads(raw["data"])
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
