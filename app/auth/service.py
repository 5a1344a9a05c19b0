from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.service import find_role
from app.access.snapshot import load_snapshot
from app.auth.actor import Actor
from app.auth.models import ApiKey, Role
from app.auth.oidc import OidcVerifier
from app.auth.schemas import ApiKeyCreate, ApiKeyUpdate
from app.auth.tokens import AccessClaims, AccessTokens, unverified_issuer
from app.db import session_connection
from app.errors import Conflict, FieldError, Invalid, NotFound, Unauthorized
from app.kit.invalidation import TimedCache, listener
from app.settings import Settings

KEY_PREFIX = "sf"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key_material() -> tuple[str, str, str]:
    """Return (full key, visible prefix, hash of the key)."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, _hash(key)


async def issue_key(
    session: AsyncSession, workspace_id: uuid.UUID, *, name: str, role: Role | str | uuid.UUID
) -> tuple[ApiKey, str]:
    """A new key acting with a role: a built-in one, or a role of the workspace by name or id."""
    role_row = await find_role(session, workspace_id, role)
    key, prefix, digest = new_key_material()
    api_key = ApiKey(workspace_id=workspace_id, name=name, access_role=role_row, prefix=prefix, secret_hash=digest)
    session.add(api_key)
    await session.flush()
    return api_key, key


async def create_api_key(session: AsyncSession, actor: Actor, data: ApiKeyCreate) -> tuple[ApiKey, str]:
    actor.ensure_admin()
    return await issue_key(session, actor.workspace_id, name=data.name, role=data.role_id or data.role)


async def list_api_keys(session: AsyncSession, actor: Actor) -> list[ApiKey]:
    actor.ensure_admin()
    rows = await session.scalars(
        select(ApiKey)
        .where(ApiKey.workspace_id == actor.workspace_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at)
    )
    return list(rows)


async def _active_key(session: AsyncSession, actor: Actor, key_id: uuid.UUID) -> ApiKey:
    api_key = await session.scalar(
        select(ApiKey).where(
            ApiKey.workspace_id == actor.workspace_id, ApiKey.id == key_id, ApiKey.revoked_at.is_(None)
        )
    )
    if api_key is None:
        raise NotFound("API key not found")
    return api_key


async def update_api_key(session: AsyncSession, actor: Actor, key_id: uuid.UUID, data: ApiKeyUpdate) -> ApiKey:
    """Rename a key or give it another role; its requests act with the new role at once."""
    actor.ensure_admin()
    if data.role is not None and data.role_id is not None:
        raise Invalid("Give `role` or `role_id`, not both", errors=[FieldError("role_id", "give role or role_id")])
    api_key = await _active_key(session, actor, key_id)
    if data.name is not None:
        api_key.name = data.name
    role = data.role_id or data.role
    if role is not None:
        if api_key.id == actor.api_key_id:
            # With no key left to act as admin, nobody could give the role back.
            raise Conflict("A key cannot change its own role: change it with another admin key")
        api_key.access_role = await find_role(session, actor.workspace_id, role)
    await session.flush()
    # The auth cache holds the key's role: this process forgets it now, the others on the update's NOTIFY.
    listener.forget("key", api_key.prefix)
    return api_key


async def revoke_api_key(session: AsyncSession, actor: Actor, key_id: uuid.UUID) -> None:
    actor.ensure_admin()
    api_key = await _active_key(session, actor, key_id)
    api_key.revoked_at = datetime.now(UTC)
    await session.flush()
    listener.forget("key", api_key.prefix)


@dataclass(frozen=True)
class KeyEntry:
    id: uuid.UUID
    workspace_id: uuid.UUID
    role_id: uuid.UUID
    secret_hash: str
    last_used_at: datetime | None


# Active keys by prefix, so a request costs no query for its key; revocation drops the entry (NOTIFY).
_keys: TimedCache[str, KeyEntry] = TimedCache("key", 10_000, str)
_touched: dict[uuid.UUID, datetime] = {}
KEY_COLUMNS = "id, workspace_id, role_id, secret_hash, last_used_at"


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.lower().startswith("bearer ") or not authorization[7:].strip():
        raise Unauthorized("Send an API key or an access token as `Authorization: Bearer <token>`")
    return authorization[7:].strip()


def _key_prefix(key: str) -> str:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        raise Unauthorized("The API key is not valid")
    return parts[1]


def _touch_due(entry: KeyEntry, now: datetime, touch_seconds: int) -> bool:
    """Record use at most once a minute per key: a write on every request would serialise hot keys."""
    last = _touched.get(entry.id) or entry.last_used_at
    if last is not None and now - last <= timedelta(seconds=touch_seconds):
        return False
    _touched[entry.id] = now
    if len(_touched) > 10_000:
        _touched.clear()
    return True


class BearerTokens:
    """The Bearer values that are not API keys: Stageflow's access tokens, and the OpenID Connect provider's ID
    tokens when one is configured (told apart by their `iss`, then verified by the issuer's own rules)."""

    def __init__(self, access: AccessTokens, oidc: OidcVerifier | None = None) -> None:
        self.access = access
        self.oidc = oidc

    @classmethod
    def from_settings(cls, settings: Settings) -> BearerTokens:
        """Raises RuntimeError in production without JWT_SECRET: the server does not start."""
        access = AccessTokens(settings.jwt_secret, settings.ACCESS_TOKEN_MINUTES * 60)
        return cls(access, OidcVerifier.from_settings(settings))

    async def claims(self, connection: Any, token: str) -> AccessClaims:
        if self.oidc is not None and unverified_issuer(token) == self.oidc.issuer:
            return await self.oidc.claims(connection, token)
        return self.access.verify(token)


async def person_actor(connection: Any, claims: AccessClaims, address: str | None = None) -> Actor:
    """The actor of a person: their roles merged (from the cached access snapshot), or 401 once they are inactive."""
    snapshot = await load_snapshot(connection, claims.workspace_id)
    access = snapshot.for_user(claims.user_id)
    if access is None:
        raise Unauthorized("The token's user is not an active user of this workspace")
    return Actor(
        workspace_id=claims.workspace_id,
        role=access.level,
        user_id=claims.user_id,
        access=access,
        address=address,
        token_expires_at=claims.expires_at,
    )


async def _authenticate(
    connection: Any,
    authorization: str | None,
    load: Callable[[str], Awaitable[KeyEntry | None]],
    touch: Callable[[uuid.UUID, datetime], Awaitable[None]],
    touch_seconds: int,
    tokens: BearerTokens | None,
    address: str | None,
) -> Actor:
    token = _bearer(authorization)
    if tokens is not None and not token.startswith(f"{KEY_PREFIX}_"):
        return await person_actor(connection, await tokens.claims(connection, token), address)
    prefix = _key_prefix(token)
    entry = _keys.get(prefix)
    if entry is None:
        loaded_at = time.monotonic()
        entry = await load(prefix)
        if entry is not None:
            _keys.put(prefix, entry, loaded_at=loaded_at)
    if entry is None or not hmac.compare_digest(entry.secret_hash, _hash(token)):
        raise Unauthorized("The API key is not valid")
    now = datetime.now(UTC)
    if _touch_due(entry, now, touch_seconds):
        await touch(entry.id, now)
    snapshot = await load_snapshot(connection, entry.workspace_id)
    role = snapshot.roles.get(entry.role_id)
    if role is None:  # the role was deleted a moment ago
        raise Unauthorized("The API key is not valid")
    return Actor(
        workspace_id=entry.workspace_id,
        role=role.level,
        api_key_id=entry.id,
        access=snapshot.for_key(entry.id, entry.role_id),
        address=address,
    )


async def authenticate(
    session: AsyncSession,
    authorization: str | None,
    *,
    touch_seconds: int = 60,
    tokens: BearerTokens | None = None,
    address: str | None = None,
) -> Actor:
    """Resolve `Authorization: Bearer …` to an actor, or raise Unauthorized: an API key (`sf_<prefix>_<secret>`), or
    with `tokens`, a person's access token (or the OpenID Connect provider's token). `address`: the client's."""

    async def load(prefix: str) -> KeyEntry | None:
        api_key = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None)))
        if api_key is None:
            return None
        return KeyEntry(api_key.id, api_key.workspace_id, api_key.role_id, api_key.secret_hash, api_key.last_used_at)

    async def touch(key_id: uuid.UUID, now: datetime) -> None:
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))

    connection = await session_connection(session)
    return await _authenticate(connection, authorization, load, touch, touch_seconds, tokens, address)


async def authenticate_raw(
    connection: Any,
    authorization: str | None,
    *,
    touch_seconds: int = 60,
    tokens: BearerTokens | None = None,
    address: str | None = None,
) -> Actor:
    """`authenticate` on a plain asyncpg connection (the lean read path, outside any transaction). A person's token
    costs no query beyond the workspace's access snapshot, which is cached."""

    async def load(prefix: str) -> KeyEntry | None:
        row = await connection.fetchrow(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL",  # noqa: S608
            prefix,
        )
        return None if row is None else KeyEntry(row[0], row[1], row[2], row[3], row[4])

    async def touch(key_id: uuid.UUID, now: datetime) -> None:
        await connection.execute("UPDATE api_keys SET last_used_at = $1 WHERE id = $2", now, key_id)

    return await _authenticate(connection, authorization, load, touch, touch_seconds, tokens, address)
