from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import service as auth_service
from app.auth.actor import Actor
from app.auth.ratelimit import RequestLimiter
from app.db import PoolExhausted
from app.errors import FieldError, Invalid
from app.settings import Settings

bearer = HTTPBearer(
    auto_error=False,
    description="An API key (`Authorization: Bearer sf_…`), a person's access token from `POST /api/v1/auth/login`, "
    "or, when configured, an ID token of the OpenID Connect provider",
)


def client_address(request: Request) -> str | None:
    """The client's IP address (behind a proxy: as the server was told to trust its forwarded headers)."""
    return request.client.host if request.client else None


def bearer_tokens(request: Request) -> auth_service.BearerTokens:
    tokens: auth_service.BearerTokens = request.app.state.bearer_tokens
    return tokens


# The dependencies below are `async def` though they never await: FastAPI runs a plain `def` dependency in the
# thread pool, a hop that cost ~7 % of a single create's server CPU.


async def get_session(request: Request) -> AsyncSession:
    """The request's session, opened (and committed) by `TransactionalRoute`."""
    session: AsyncSession = request.state.session
    return session


async def admit(app_state: Any, actor: Actor) -> None:
    """The caller's rate limit (a token bucket in Redis, one round trip), checked once per request wherever a
    request gets its actor: REST (both read paths), GraphQL over HTTP and a subscription's connection."""
    limiter: RequestLimiter | None = getattr(app_state, "request_limiter", None)
    if limiter is not None:
        await limiter.admit(actor)


async def resolve_actor(request: Request) -> Actor:
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is None:
        settings: Settings = request.app.state.settings
        actor = await auth_service.authenticate(
            request.state.session,
            request.headers.get("authorization"),
            touch_seconds=settings.API_KEY_TOUCH_SECONDS,
            tokens=bearer_tokens(request),
            address=client_address(request),
        )
        await admit(request.app.state, actor)
        request.state.actor = actor
    return actor


async def get_actor(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> Actor:
    return await resolve_actor(request)


async def get_read_connection(request: Request) -> AsyncIterator[Any]:
    """A plain asyncpg connection from the read pool, outside any transaction (the lean read path). A pool with none
    free within DB_POOL_TIMEOUT_SECONDS answers 503 rather than queue the request."""
    pool = request.app.state.read_pool
    settings: Settings = request.app.state.settings
    try:
        connection = await pool.acquire(timeout=settings.DB_POOL_TIMEOUT_SECONDS)
    except TimeoutError as exc:
        raise PoolExhausted("no read connection became free in time") from exc
    try:
        yield connection
    finally:
        await pool.release(connection)


ReadConnectionDep = Annotated[Any, Depends(get_read_connection)]


async def get_lean_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    connection: ReadConnectionDep,
) -> Actor:
    """The actor of a lean read: the key from the in-process cache, or one query on the read connection."""
    settings: Settings = request.app.state.settings
    actor = await auth_service.authenticate_raw(
        connection,
        request.headers.get("authorization"),
        touch_seconds=settings.API_KEY_TOUCH_SECONDS,
        tokens=bearer_tokens(request),
        address=client_address(request),
    )
    await admit(request.app.state, actor)
    request.state.actor = actor
    return actor


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


async def get_if_match(
    if_match: Annotated[str | None, Header(description="The element version you last read")] = None,
) -> int | None:
    if if_match is None:
        return None
    raw = if_match.strip().removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise Invalid("If-Match must be an element version", errors=[FieldError("If-Match", "must be an integer")])
    return int(raw)


SessionDep = Annotated[AsyncSession, Depends(get_session)]
ActorDep = Annotated[Actor, Depends(get_actor)]
IfMatchDep = Annotated[int | None, Depends(get_if_match)]
LeanActorDep = Annotated[Actor, Depends(get_lean_actor)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]


def json_body(body: bytes | str) -> Response:
    """A body PostgreSQL built, sent on as it is."""
    return Response(body, media_type="application/json")
