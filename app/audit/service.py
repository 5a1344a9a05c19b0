"""The audit log: every write that committed through the API, with who (person or key), from where, what and when.

Rows are added at the edges only (app.api.rest.routing for REST, app.api.graphql.errors.mutate for GraphQL), one
INSERT in the transaction of the change itself: a committed write always has its row, a refused one has none.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.audit.schemas import AuditEntryRead, AuditPage
from app.auth.actor import Actor
from app.elements.models import Element
from app.errors import FieldError, Invalid, NotFound
from app.kit.cursor import decode_cursor, encode_cursor

MAX_KEYS = 100  # field codes kept per list in `details`
MAX_KEY_LENGTH = 100

# Raw SQL: the write path adds one statement, with no ORM object to build, track and flush.
INSERT_SQL = text(
    "INSERT INTO audit_log (workspace_id, user_id, api_key_id, address, action, object_type, object_id, element_id, "
    "status, details) VALUES (:workspace_id, :user_id, :api_key_id, :address, :action, :object_type, :object_id, "
    ":element_id, :status, CAST(:details AS jsonb))"
)


@dataclass
class Change:
    """What an edge knows about one write."""

    action: str
    object_type: str
    object_id: str | None = None
    element_id: uuid.UUID | None = None
    status: int = 200
    details: dict[str, Any] = field(default_factory=dict)


def as_uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and len(value) <= 36:
        try:
            return uuid.UUID(value)
        except ValueError:
            return None
    return None


def object_type_of(operation: str) -> str:
    """`create_element` / `createElement` -> `element`: an operation's name without its verb."""
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")
    verb, _, rest = snake.partition("_")
    return (rest or verb)[:100]


def field_codes(body: Any) -> dict[str, list[str]]:
    """The names of the fields a write sent (and of its custom `values`), never their values."""
    if not isinstance(body, Mapping):
        return {}
    found = {"fields": _keys(body)}
    values = body.get("values")
    if isinstance(values, Mapping) and values:
        found["values"] = _keys(values)
    return found


def _keys(mapping: Mapping[Any, Any]) -> list[str]:
    return sorted(str(key)[:MAX_KEY_LENGTH] for key in list(mapping)[:MAX_KEYS])


async def record(session: AsyncSession, actor: Actor, address: str | None, change: Change) -> None:
    """Add the audit row of a write to its transaction (call it just before the commit)."""
    address = actor.address or address
    await session.execute(
        INSERT_SQL,
        {
            "workspace_id": actor.workspace_id,
            "user_id": actor.user_id,
            "api_key_id": actor.api_key_id,
            "address": address[:100] if address else None,
            "action": change.action[:300],
            "object_type": change.object_type[:100],
            "object_id": change.object_id[:200] if change.object_id else None,
            "element_id": change.element_id,
            "status": change.status,
            "details": orjson.dumps(change.details).decode(),
        },
    )


# --- reading ---------------------------------------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


async def list_entries(
    session: AsyncSession,
    actor: Actor,
    *,
    element_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    api_key_id: uuid.UUID | None = None,
    action: str | None = None,
    object_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> AuditPage:
    """Newest first, keyset-paged on (at, id); `since` is inclusive, `until` exclusive."""
    actor.ensure_admin()
    statement = select(AuditEntry).where(AuditEntry.workspace_id == actor.workspace_id)
    if element_id is not None:
        statement = statement.where(AuditEntry.element_id == element_id)
    if user_id is not None:
        statement = statement.where(AuditEntry.user_id == user_id)
    if api_key_id is not None:
        statement = statement.where(AuditEntry.api_key_id == api_key_id)
    if action is not None:
        statement = statement.where(AuditEntry.action == action)
    if object_type is not None:
        statement = statement.where(AuditEntry.object_type == object_type)
    if since is not None:
        statement = statement.where(AuditEntry.at >= _utc(since))
    if until is not None:
        statement = statement.where(AuditEntry.at < _utc(until))
    if cursor:
        at_raw, id_raw = decode_cursor(cursor, 2)
        try:
            at, last_id = datetime.fromisoformat(at_raw), uuid.UUID(id_raw)
        except (TypeError, ValueError) as exc:  # well-formed base64 JSON, but not one of our cursors
            not_ours = [FieldError("cursor", "not a cursor of this list")]
            raise Invalid("The cursor is not valid", errors=not_ours) from exc
        statement = statement.where((AuditEntry.at < at) | ((AuditEntry.at == at) & (AuditEntry.id < last_id)))
    statement = statement.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit + 1)
    rows = list(await session.scalars(statement))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1].at.isoformat(), str(rows[-1].id)])
    return AuditPage(items=[_read(row) for row in rows], next_cursor=next_cursor)


def _read(row: AuditEntry) -> AuditEntryRead:
    return AuditEntryRead(
        id=row.id,
        at=row.at,
        user_id=row.user_id,
        api_key_id=row.api_key_id,
        address=row.address,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        element_id=row.element_id,
        status=row.status,
        details=row.details,
    )


async def element_entries(
    session: AsyncSession, actor: Actor, element_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None
) -> AuditPage:
    """One element's trail (a deleted one's too). Another workspace's element is not found."""
    page = await list_entries(session, actor, element_id=element_id, limit=limit, cursor=cursor)
    # Rows are the workspace's own, so a non-empty page proves the element was ours: only an empty one costs a check.
    if not page.items and cursor is None:
        found = await session.scalar(
            select(Element.id).where(Element.workspace_id == actor.workspace_id, Element.id == element_id)
        )
        if found is None:
            raise NotFound(f"Element {element_id} not found")
    return page
