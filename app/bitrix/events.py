"""`event.bind/unbind/get` for smart-process items, and the form-encoded messages sent to the bound handlers.

A binding is a webhook subscription of the `bitrix` format: it is saved with the same URL checks as any webhook,
and its messages go through the automation engine's durable deliveries (retried with backoff, logged per attempt,
replayable), which Bitrix24's own events lack. The message is what Bitrix24 posts: `event`, `data[FIELDS][ID]`,
`data[FIELDS][ENTITY_TYPE_ID]`, `ts` and `auth[...]`, form-encoded.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.bitrix import numbers
from app.bitrix.common import Answer, Call, method
from app.bitrix.errors import BitrixError, invalid
from app.elements.models import Element
from app.entity_types.models import EntityType
from app.webhooks import service as webhook_service
from app.webhooks.models import WebhookSubscription
from app.webhooks.schemas import SubscriptionCreate
from app.webhooks.sender import FORM

# Bitrix24 event (upper case, as event.get answers) -> the Stageflow events it stands for.
EVENTS = {
    "ONCRMDYNAMICITEMADD": ["element.created"],
    "ONCRMDYNAMICITEMUPDATE": ["element.updated", "element.moved"],
    "ONCRMDYNAMICITEMDELETE": ["element.deleted"],
}
BY_STAGEFLOW_EVENT = {stageflow: bitrix for bitrix, names in EVENTS.items() for stageflow in names}
DESCRIPTION = "Bitrix24 event.bind: "


def _event_name(call: Call) -> str:
    name = str(call.get("event") or "").strip().upper()
    if name not in EVENTS:
        raise invalid(f"event must be one of {', '.join(EVENTS)}, not {name[:60]!r}")
    return name


def _handler(call: Call) -> str:
    handler = call.get("handler")
    if not isinstance(handler, str) or not handler.strip():
        raise BitrixError("ERROR_ARGUMENT", "handler (the URL to call) is required")
    return handler.strip()


async def _bindings(call: Call) -> list[WebhookSubscription]:
    rows = await call.session.scalars(
        select(WebhookSubscription)
        .where(WebhookSubscription.workspace_id == call.workspace_id, WebhookSubscription.format == FORM)
        .order_by(WebhookSubscription.created_at)
    )
    return list(rows)


def _event_of(subscription: WebhookSubscription) -> str:
    return (subscription.description or "").removeprefix(DESCRIPTION)


@method("event.bind")
async def bind(call: Call) -> Answer:
    call.actor.ensure_admin()
    name, handler = _event_name(call), _handler(call)
    if any(_event_of(s) == name and s.url == handler for s in await _bindings(call)):
        raise BitrixError("ERROR_EVENT_ALREADY_INSTALLED", f"{name} is already bound to this handler")
    data = SubscriptionCreate.model_validate(
        {"url": handler, "events": EVENTS[name], "description": f"{DESCRIPTION}{name}"}
    )
    await webhook_service.create_subscription(call.session, call.actor, data, body_format=FORM)
    return Answer(True)


@method("event.unbind")
async def unbind(call: Call) -> Answer:
    call.actor.ensure_admin()
    name = _event_name(call)
    handler = call.get("handler")
    removed = 0
    for subscription in await _bindings(call):
        if _event_of(subscription) == name and (not handler or subscription.url == str(handler).strip()):
            await webhook_service.delete_subscription(call.session, call.actor, subscription.id)
            removed += 1
    return Answer({"count": removed})


@method("event.get")
async def get_bindings(call: Call) -> Answer:
    call.actor.ensure_admin()
    return Answer(
        [
            {"event": _event_of(s), "handler": s.url, "auth_type": "0", "offline": 0}
            for s in await _bindings(call)
            if s.enabled
        ]
    )


async def event_form(
    session: AsyncSession, subscription: WebhookSubscription, event_type: str, body: dict[str, Any]
) -> dict[str, Any] | None:
    """The form fields of a Bitrix24 event for one delivery (None: the event is not one this binding sends)."""
    name = BY_STAGEFLOW_EVENT.get(event_type)
    data = body.get("data") or {}
    element_id = data.get("element_id")
    if name is None or _event_of(subscription) != name or not element_id:
        return None
    workspace_id = subscription.workspace_id
    row = (
        await session.execute(
            select(Element.number, Element.entity_type_id).where(
                Element.workspace_id == workspace_id, Element.id == uuid.UUID(str(element_id))
            )
        )
    ).first()
    number, type_id = (row[0], row[1]) if row else (data.get("number"), None)
    if type_id is None:
        type_id = await session.scalar(
            select(EntityType.id).where(
                EntityType.workspace_id == workspace_id, EntityType.code == data.get("entity_type")
            )
        )
    if number is None or type_id is None:
        return None
    type_number = await numbers.number_of(session, workspace_id, numbers.TYPE, type_id)
    token = hashlib.sha256(f"bitrix application token:{subscription.secret}".encode()).hexdigest()[:32]
    return {
        "event": name,
        "event_handler_id": str(subscription.id),
        "data[FIELDS][ID]": str(number),
        "data[FIELDS][ENTITY_TYPE_ID]": str(type_number),
        "ts": str(int(time.time())),
        "auth[domain]": "",
        "auth[client_endpoint]": "",
        "auth[server_endpoint]": "",
        "auth[member_id]": workspace_id.hex,
        "auth[application_token]": token,
    }
