import uuid
from contextvars import ContextVar
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.outbox.models import OutboxEvent

# Set by the automation engine while a rule's actions run: the events they cause carry it in their payload, so a
# chain of rules can be followed and stopped at a depth limit.
event_origin: ContextVar[dict[str, Any] | None] = ContextVar("event_origin", default=None)


def origin_payload() -> dict[str, Any]:
    origin = event_origin.get()
    return {"origin": origin} if origin else {}


def record_event(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    event_type: str,
    *,
    entity_type_id: uuid.UUID | None = None,
    element_id: uuid.UUID | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Add the event to the outbox of the current transaction: it is published only if the change commits."""
    session.add(
        OutboxEvent(
            workspace_id=workspace_id,
            event_type=event_type,
            entity_type_id=entity_type_id,
            element_id=element_id,
            payload={**(payload or {}), **origin_payload()},
        )
    )
