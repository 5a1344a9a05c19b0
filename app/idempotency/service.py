"""Idempotency-Key: the first answer to a POST is stored with the write it made and replayed for repeats.

A record belongs to the API key (or the person) that made it: another key or person (even of the same workspace) is
refused, never answered with the stored body, and the role must be the one it had. An answer that carried a secret
shown once (a new API key, a webhook secret, a hook URL: fields marked `SHOWN_ONCE`) is stored with the secret blanked,
and a replay of it is refused with 409: the write happened, but its secret is not kept anywhere to be shown again.
"""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.actor import Actor
from app.errors import Conflict, FieldError, Forbidden, Invalid
from app.idempotency.models import IdempotencyKey

HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: bytes


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).hexdigest()


def _withheld_detail(row: IdempotencyKey) -> str:
    detail = "A request with this Idempotency-Key already succeeded"
    try:
        first = orjson.loads(row.response_body or b"")
    except orjson.JSONDecodeError:
        first = None
    if isinstance(first, dict) and first.get("id"):
        detail += f" (id {first['id']})"
    return detail + (
        "; its answer carried a secret that is shown only once and is not kept, so it cannot be replayed. "
        "Read the resource, or revoke/rotate it and ask again with a new key"
    )


async def claim(
    session: AsyncSession, actor: Actor, key: str, fingerprint: str, *, ttl_hours: int
) -> StoredResponse | None:
    """Claim the key for this request; return the stored answer when the same key already ran the same request."""
    workspace_id = actor.workspace_id
    await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.workspace_id == workspace_id,
            IdempotencyKey.key == key,
            IdempotencyKey.created_at < datetime.now(UTC) - timedelta(hours=ttl_hours),
        )
    )
    inserted = await session.scalar(
        insert(IdempotencyKey)
        .values(
            workspace_id=workspace_id, key=key, request_hash=fingerprint, api_key_id=actor.principal_id, role=actor.role
        )
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    )
    if inserted is not None:
        return None
    row = await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.workspace_id == workspace_id, IdempotencyKey.key == key)
    )
    if row is None:  # claimed and released in between: treat as new next time
        raise Conflict("A request with this Idempotency-Key is in progress; retry later")
    # Ownership first: another key learns nothing about the record (not even whether it is the same request).
    if row.api_key_id is None or row.api_key_id != actor.principal_id:
        raise Invalid(
            "This Idempotency-Key was used by another API key",
            errors=[FieldError(HEADER, "belongs to another API key; use a key of your own")],
        )
    if row.role != actor.role:
        raise Forbidden("This Idempotency-Key was used with another role; the answer is not replayed")
    if row.request_hash != fingerprint:
        raise Invalid("This Idempotency-Key was used for a different request")
    if row.status_code is None or row.response_body is None:
        raise Conflict("A request with this Idempotency-Key is in progress; retry later")
    if row.secret_withheld:
        raise Conflict(_withheld_detail(row), errors=[FieldError(HEADER, "the first answer held a secret shown once")])
    return StoredResponse(row.status_code, row.response_body)


async def complete(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    key: str,
    status_code: int,
    body: bytes,
    *,
    secret_withheld: bool = False,
) -> None:
    """Store the answer; `body` must already have any secret blanked (`app.kit.shown_once.withhold`)."""
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.workspace_id == workspace_id, IdempotencyKey.key == key)
        .values(status_code=status_code, response_body=body, secret_withheld=secret_withheld)
    )


async def release(session: AsyncSession, workspace_id: uuid.UUID, key: str) -> None:
    await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.workspace_id == workspace_id,
            IdempotencyKey.key == key,
            IdempotencyKey.status_code.is_(None),
        )
    )
