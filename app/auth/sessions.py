"""People who log in: an e-mail and a password give a short-lived access token (app.auth.tokens) and a refresh token.

A refresh token is an opaque random secret, stored as its SHA-256 (it has 256 bits of entropy: no salt or slow hash
needed). Each refresh exchanges it for a new pair and marks it used; every token of one login shares a family. A used
token presented again means two holders (one of them a thief): the whole family is revoked and both are logged out.
Logging out revokes the family too. An access token already handed out stays valid until it lapses (minutes); a user
made inactive is refused at once, through the access snapshot.

Logging in without `workspace_id` finds the user by e-mail across workspaces, and only when exactly one user has it;
otherwise (or with a wrong password, an unknown e-mail, an inactive user) the answer is the same 401, and the same work
is done (one password verification), so the answer tells nothing about which accounts exist.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.models import AccessRole, UserRole
from app.access.snapshot import load_snapshot
from app.auth.actor import Actor
from app.auth.models import RefreshToken
from app.auth.passwords import verify_password
from app.auth.ratelimit import LoginLimiter
from app.auth.schemas import LoginRequest, MeRead, MeRole, TokenPair
from app.auth.tokens import AccessTokens
from app.db import session_connection
from app.errors import Forbidden, NotFound, Unauthorized
from app.kit.invalidation import listener
from app.settings import Settings
from app.users.models import User

WRONG_LOGIN = (
    "The e-mail or password is wrong (when the e-mail belongs to users of several workspaces, give `workspace_id`)"
)
WRONG_REFRESH = "The refresh token is not valid: log in again"
REUSED_REFRESH = "The refresh token was already used: every token of this login is revoked, log in again"


@dataclass(frozen=True)
class Authority:
    """What issuing tokens needs: the access-token signer, the login limiter, the refresh tokens' lifetime."""

    tokens: AccessTokens
    limiter: LoginLimiter
    refresh_ttl: timedelta

    @classmethod
    def from_settings(cls, settings: Settings, tokens: AccessTokens, redis: Redis | None) -> Authority:
        return cls(tokens, LoginLimiter.from_settings(settings, redis), timedelta(days=settings.REFRESH_TOKEN_DAYS))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def login(session: AsyncSession, authority: Authority, data: LoginRequest, *, address: str | None) -> TokenPair:
    email = data.email.strip().lower()
    # The account counted is the e-mail alone: naming one workspace or another, or none, gives no fresh guesses.
    account = email
    await authority.limiter.check(account, address)
    statement = select(User.id, User.workspace_id, User.password_hash, User.active).where(
        func.lower(User.email) == email
    )
    if data.workspace_id is not None:
        statement = statement.where(User.workspace_id == data.workspace_id)
    found = (await session.execute(statement.limit(2))).all()
    user = found[0] if len(found) == 1 else None  # none, or several workspaces' users: nobody in particular
    # Verified even when nobody matched (against a dummy hash): the answer takes as long either way.
    verified = await verify_password(user.password_hash if user is not None else None, data.password)
    if user is None or not verified or not user.active:
        await authority.limiter.failed(account, address)
        raise Unauthorized(WRONG_LOGIN)
    await authority.limiter.succeeded(account)
    await _make_known(session, user.workspace_id, user.id)
    # Tokens of this user that lapsed have nothing left to guard: tidy them away on the way in.
    await session.execute(
        delete(RefreshToken).where(RefreshToken.user_id == user.id, RefreshToken.expires_at < func.now())
    )
    pair, _ = await _issue(session, authority, user.workspace_id, user.id, family_id=uuid.uuid4())
    return pair


async def _make_known(session: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """A user created or reactivated a moment ago may be missing from this process's cached access snapshot (the
    change's NOTIFY is on its way): forget the snapshot, so the first request with the new token finds them."""
    snapshot = await load_snapshot(await session_connection(session), workspace_id)
    if snapshot.for_user(user_id) is None:
        listener.forget("access", str(workspace_id))


async def _issue(
    session: AsyncSession, authority: Authority, workspace_id: uuid.UUID, user_id: uuid.UUID, *, family_id: uuid.UUID
) -> tuple[TokenPair, RefreshToken]:
    secret = secrets.token_urlsafe(32)
    row = RefreshToken(
        workspace_id=workspace_id,
        user_id=user_id,
        family_id=family_id,
        token_hash=_hash(secret),
        expires_at=datetime.now(UTC) + authority.refresh_ttl,
    )
    session.add(row)
    await session.flush()
    access = authority.tokens.issue(user_id, workspace_id)
    return TokenPair(access_token=access.token, expires_in=access.expires_in, refresh_token=secret), row


async def refresh(session: AsyncSession, authority: Authority, refresh_token: str) -> TokenPair:
    """A new pair for a refresh token, which is used up. A token used before revokes its family: that revocation is
    committed here, since the request itself fails."""
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == _hash(refresh_token)).with_for_update()
    )
    if row is None or row.revoked_at is not None:
        raise Unauthorized(WRONG_REFRESH)
    now = datetime.now(UTC)
    if row.used_at is not None:
        await _revoke_family(session, row.family_id, now)
        await session.commit()  # the revocation must stand although this request is refused
        raise Unauthorized(REUSED_REFRESH)
    if row.expires_at <= now:
        raise Unauthorized(WRONG_REFRESH)
    active = await session.scalar(select(User.active).where(User.id == row.user_id))
    if not active:
        await _revoke_family(session, row.family_id, now)
        await session.commit()
        raise Unauthorized(WRONG_REFRESH)
    pair, successor = await _issue(session, authority, row.workspace_id, row.user_id, family_id=row.family_id)
    row.used_at = now
    row.replaced_by = successor.id
    await session.flush()
    return pair


async def logout(session: AsyncSession, refresh_token: str) -> None:
    """Revoke the login the refresh token belongs to (every token of its family). An unknown token changes nothing."""
    family_id = await session.scalar(
        select(RefreshToken.family_id).where(RefreshToken.token_hash == _hash(refresh_token))
    )
    if family_id is not None:
        await _revoke_family(session, family_id, datetime.now(UTC))


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_user_sessions(session: AsyncSession, user_id: uuid.UUID) -> None:
    """End every login of a user (their password changed, or they were made inactive)."""
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )


async def get_me(session: AsyncSession, actor: Actor) -> MeRead:
    """The person acting. An API key is nobody: Forbidden (its role is in GET /api-keys)."""
    if actor.user_id is None:
        raise Forbidden("An API key is not a person: /me answers for a user who logged in")
    user = await session.scalar(select(User).where(User.workspace_id == actor.workspace_id, User.id == actor.user_id))
    if user is None:
        raise NotFound("User not found")
    rows: Any = await session.execute(
        select(AccessRole.id, AccessRole.name, AccessRole.level, AccessRole.builtin)
        .join(UserRole, UserRole.role_id == AccessRole.id)
        .where(UserRole.user_id == user.id, AccessRole.workspace_id == actor.workspace_id)
        .order_by(AccessRole.name)
    )
    return MeRead(
        id=user.id,
        workspace_id=user.workspace_id,
        name=user.name,
        email=user.email,
        timezone=user.timezone,
        department_id=user.department_id,
        roles=[MeRole(id=r.id, name=r.name, level=r.level, builtin=r.builtin) for r in rows],
        level=actor.role,
    )
