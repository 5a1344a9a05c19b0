import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.actor import Actor
from app.auth.models import ApiKey, Role
from app.auth.schemas import ApiKeyCreate
from app.errors import NotFound, Unauthorized

KEY_PREFIX = "sf"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key_material() -> tuple[str, str, str]:
    """Return (full key, visible prefix, hash of the key)."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, _hash(key)


async def issue_key(session: AsyncSession, workspace_id: uuid.UUID, *, name: str, role: Role) -> tuple[ApiKey, str]:
    key, prefix, digest = new_key_material()
    api_key = ApiKey(workspace_id=workspace_id, name=name, role=role, prefix=prefix, secret_hash=digest)
    session.add(api_key)
    await session.flush()
    return api_key, key


async def create_api_key(session: AsyncSession, actor: Actor, data: ApiKeyCreate) -> tuple[ApiKey, str]:
    actor.ensure_admin()
    return await issue_key(session, actor.workspace_id, name=data.name, role=data.role)


async def list_api_keys(session: AsyncSession, actor: Actor) -> list[ApiKey]:
    actor.ensure_admin()
    rows = await session.scalars(
        select(ApiKey)
        .where(ApiKey.workspace_id == actor.workspace_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at)
    )
    return list(rows)


async def revoke_api_key(session: AsyncSession, actor: Actor, key_id: uuid.UUID) -> None:
    actor.ensure_admin()
    api_key = await session.scalar(
        select(ApiKey).where(
            ApiKey.workspace_id == actor.workspace_id, ApiKey.id == key_id, ApiKey.revoked_at.is_(None)
        )
    )
    if api_key is None:
        raise NotFound("API key not found")
    api_key.revoked_at = datetime.now(UTC)
    await session.flush()


async def authenticate(session: AsyncSession, authorization: str | None, *, touch_seconds: int = 60) -> Actor:
    """Resolve a `Bearer sf_<prefix>_<secret>` header to an actor, or raise Unauthorized."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("Send the API key as `Authorization: Bearer <key>`")
    key = authorization[7:].strip()
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        raise Unauthorized("The API key is not valid")
    api_key = await session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1], ApiKey.revoked_at.is_(None)))
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, _hash(key)):
        raise Unauthorized("The API key is not valid")
    now = datetime.now(UTC)
    # Record use at most once a minute per key: a write on every request would serialise hot keys.
    if api_key.last_used_at is None or now - api_key.last_used_at > timedelta(seconds=touch_seconds):
        await session.execute(update(ApiKey).where(ApiKey.id == api_key.id).values(last_used_at=now))
    return Actor(workspace_id=api_key.workspace_id, role=api_key.role, api_key_id=api_key.id)
