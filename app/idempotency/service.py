"""Idempotency-Key: the first answer to a POST is stored with the write it made and replayed for repeats."""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, Invalid
from app.idempotency.models import IdempotencyKey


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: bytes


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).hexdigest()


async def claim(
    session: AsyncSession, workspace_id: uuid.UUID, key: str, fingerprint: str, *, ttl_hours: int
) -> StoredResponse | None:
    """Claim the key for this request; return the stored answer when the same request already ran."""
    await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.workspace_id == workspace_id,
            IdempotencyKey.key == key,
            IdempotencyKey.created_at < datetime.now(UTC) - timedelta(hours=ttl_hours),
        )
    )
    inserted = await session.scalar(
        insert(IdempotencyKey)
        .values(workspace_id=workspace_id, key=key, request_hash=fingerprint)
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
    if row.request_hash != fingerprint:
        raise Invalid("This Idempotency-Key was used for a different request")
    if row.status_code is None or row.response_body is None:
        raise Conflict("A request with this Idempotency-Key is in progress; retry later")
    return StoredResponse(row.status_code, row.response_body)


async def complete(session: AsyncSession, workspace_id: uuid.UUID, key: str, status_code: int, body: bytes) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.workspace_id == workspace_id, IdempotencyKey.key == key)
        .values(status_code=status_code, response_body=body)
    )


async def release(session: AsyncSession, workspace_id: uuid.UUID, key: str) -> None:
    await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.workspace_id == workspace_id,
            IdempotencyKey.key == key,
            IdempotencyKey.status_code.is_(None),
        )
    )
