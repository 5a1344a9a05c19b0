from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as auth_service
from app.auth.actor import Actor
from app.errors import FieldError, Invalid
from app.settings import Settings

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sf_…`")


def get_session(request: Request) -> AsyncSession:
    """The request's session, opened (and committed) by `TransactionalRoute`."""
    session: AsyncSession = request.state.session
    return session


async def resolve_actor(request: Request) -> Actor:
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is None:
        settings: Settings = request.app.state.settings
        actor = await auth_service.authenticate(
            request.state.session,
            request.headers.get("authorization"),
            touch_seconds=settings.API_KEY_TOUCH_SECONDS,
        )
        request.state.actor = actor
    return actor


async def get_actor(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> Actor:
    return await resolve_actor(request)


def get_if_match(
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
