"""Element events for subscriptions, read from the workspace's Redis channel (fed by the outbox dispatcher)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from app.api.graphql.context import Context
from app.elements import service as element_service
from app.elements.meta_cache import cached_type_meta
from app.entity_types import service as entity_type_service
from app.errors import DomainError, NotFound
from app.events.bus import EventMessage, subscribe

PIPELINE_KEYS = ("pipeline_id", "to_pipeline_id", "from_pipeline_id")


async def _pipeline_of(context: Context, message: EventMessage) -> str | None:
    """The pipeline an event concerns: from its payload, else the element's current pipeline."""
    payload = message["payload"]
    if any(payload.get(key) for key in PIPELINE_KEYS):
        return next(str(payload[key]) for key in PIPELINE_KEYS if payload.get(key))
    if not message["element_id"]:
        return None
    async with context.sessionmaker() as session:
        try:
            element = await element_service.get_element(session, context.who, uuid.UUID(message["element_id"]))
        except NotFound:
            return None
    return str(element.pipeline_id) if element.pipeline_id else None


async def _as_seen(context: Context, message: EventMessage) -> EventMessage | None:
    """The event as the subscriber may see it: None for an element they may not read; hidden fields' names taken
    out of the changes it lists."""
    who = context.who
    if who.grants.full or not message["entity_type_id"]:
        return message
    async with context.sessionmaker() as session:
        try:
            meta = await cached_type_meta(session, context.workspace_id, message["entity_type_id"])
        except NotFound:
            return None
        access = who.on(meta)
        if access.read_groups(meta.pipelines) is not None and message["element_id"]:
            try:
                await element_service.get_element(session, who, uuid.UUID(message["element_id"]))
            except NotFound:
                return None
        elif not access.can_read_any():
            return None
    changed = message["payload"].get("changed")
    if access.hidden and isinstance(changed, list):
        hidden = {f"values.{code}" for code in access.hidden}
        message = {**message, "payload": {**message["payload"], "changed": [c for c in changed if c not in hidden]}}
    return message


async def element_events(
    context: Context, *, type_ref: str | None, pipeline_id: uuid.UUID | None
) -> AsyncIterator[EventMessage]:
    if context.redis is None:
        raise DomainError("Subscriptions need Redis (REDIS_URL)")
    type_id: str | None = None
    if type_ref is not None:
        async with context.sessionmaker() as session:
            entity_type = await entity_type_service.get_entity_type_by_ref(session, context.who, type_ref)
            type_id = str(entity_type.id)
    async for message in subscribe(context.redis, context.workspace_id):
        if not message["event_type"].startswith("element."):
            continue
        if type_id is not None and message["entity_type_id"] != type_id:
            continue
        if pipeline_id is not None:
            payload = message["payload"]
            moved = {str(payload[k]) for k in ("to_pipeline_id", "from_pipeline_id") if payload.get(k)}
            pipelines = moved or {p for p in [await _pipeline_of(context, message)] if p}
            if str(pipeline_id) not in pipelines:
                continue
        seen = await _as_seen(context, message)
        if seen is not None:
            yield seen
