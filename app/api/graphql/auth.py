"""Logging in over GraphQL: `login`, `refreshToken`, `logout` (no Authorization needed) and `me`, over app.auth.sessions
as REST uses it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeAlias, TypeVar

import strawberry

from app.api.graphql.context import Info
from app.api.graphql.errors import Error, ValidationError, parse, plain, to_error
from app.auth import sessions
from app.auth.schemas import LoginRequest, MeRead
from app.auth.schemas import TokenPair as TokenPairRead
from app.errors import DomainError, TooManyRequests, Unauthorized

T = TypeVar("T")
UNSET = strawberry.UNSET


@strawberry.type(description="Tokens of a login: send `accessToken` as `Authorization: Bearer …`")
class TokenPair:
    access_token: str
    token_type: str
    expires_in: int = strawberry.field(description="Seconds until the access token lapses")
    refresh_token: str = strawberry.field(
        description="Exchange it with `refreshToken` before the access token lapses; single use"
    )

    @classmethod
    def from_read(cls, read: TokenPairRead) -> TokenPair:
        return cls(**read.model_dump())


@strawberry.type(
    name="AuthenticationError",
    description="Logging in or refreshing was refused: `unauthorized`, or `too-many-requests` (see `retryAfter`)",
)
class AuthenticationError(Error):
    retry_after: int | None = strawberry.field(description="Seconds to wait before trying again (too-many-requests)")


TokenPairResult: TypeAlias = Annotated[
    TokenPair | AuthenticationError | ValidationError, strawberry.union("TokenPairResult")
]


@strawberry.input
class LoginInput:
    email: str
    password: str
    workspace_id: uuid.UUID | None = strawberry.field(
        default=UNSET, description="Optional when the e-mail belongs to a user of one workspace only"
    )


@strawberry.type(description="A role the user holds")
class MeRole:
    id: uuid.UUID
    name: str
    level: str = strawberry.field(description="admin, editor or viewer")
    builtin: bool


@strawberry.type(description="The person acting")
class Me:
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    email: str
    timezone: str
    department_id: uuid.UUID | None
    roles: list[MeRole]
    level: str = strawberry.field(description="The highest level of the user's roles: admin, editor or viewer")

    @classmethod
    def from_read(cls, read: MeRead) -> Me:
        roles = [MeRole(id=r.id, name=r.name, level=r.level.value, builtin=r.builtin) for r in read.roles]
        return cls(**read.model_dump(exclude={"roles", "level"}), roles=roles, level=read.level.value)


async def _authenticating(info: Info, call: Callable[[], Awaitable[T]]) -> T | AuthenticationError | ValidationError:
    """Commit what the call did, or roll back and answer the refusal as data (no audit row: nobody acts yet)."""
    session = info.context.session
    try:
        result = await call()
        await session.commit()
    except DomainError as exc:
        await session.rollback()
        if isinstance(exc, TooManyRequests):
            return AuthenticationError(message=exc.detail, code=exc.slug, retry_after=exc.retry_after)
        if isinstance(exc, Unauthorized):
            return AuthenticationError(message=exc.detail, code=exc.slug, retry_after=None)
        error = to_error(exc)
        if isinstance(error, ValidationError):
            return error
        return ValidationError(message=exc.detail, code=exc.slug, fields=[])
    return result


def _authority(info: Info) -> sessions.Authority:
    authority = info.context.authority
    if authority is None:
        raise RuntimeError("the app's lifespan has not run: no token authority")
    return authority


@strawberry.type
class AuthQuery:
    @strawberry.field(description="The person acting (a user who logged in); an API key gets Forbidden")
    async def me(self, info: Info) -> Me:
        return Me.from_read(await sessions.get_me(info.context.session, info.context.who))


@strawberry.type
class AuthMutation:
    @strawberry.mutation(
        description="Log in with an e-mail and password; works without Authorization. A wrong password and an unknown "
        "e-mail get the same AuthenticationError; repeated failures get `too-many-requests`"
    )
    async def login(self, info: Info, input: LoginInput) -> TokenPairResult:
        async def run() -> TokenPair:
            data = parse(LoginRequest, plain(input))
            pair = await sessions.login(info.context.session, _authority(info), data, address=info.context.address)
            return TokenPair.from_read(pair)

        return await _authenticating(info, run)

    @strawberry.mutation(
        description="A new token pair for a refresh token, which is used up; a used one presented again ends the login"
    )
    async def refresh_token(self, info: Info, refresh_token: str) -> TokenPairResult:
        async def run() -> TokenPair:
            pair = await sessions.refresh(info.context.session, _authority(info), refresh_token[:1000])
            return TokenPair.from_read(pair)

        return await _authenticating(info, run)

    @strawberry.mutation(description="End the login the refresh token belongs to (every token of it); always true")
    async def logout(self, info: Info, refresh_token: str) -> bool:
        await sessions.logout(info.context.session, refresh_token[:1000])
        await info.context.session.commit()
        return True
