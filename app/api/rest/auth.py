"""Logging in, refreshing, logging out (no Authorization needed), and `GET /me` for the person acting."""

from http import HTTPStatus

from fastapi import Request, Response

from app.api.rest.common import make_router
from app.api.rest.deps import ActorDep, SessionDep, client_address
from app.api.rest.problems import problem_responses
from app.auth import sessions
from app.auth.schemas import LoginRequest, MeRead, RefreshRequest, TokenPair

router = make_router(tags=["auth"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # tokens are never cached (RFC 6749 5.1)


def _authority(request: Request) -> sessions.Authority:
    authority: sessions.Authority = request.app.state.authority
    return authority


@router.post("/auth/login", responses=problem_responses(400, 401, 422, 429))
async def login(data: LoginRequest, request: Request, response: Response, session: SessionDep) -> TokenPair:
    """An access token and a refresh token for an e-mail and password. A wrong password, an unknown e-mail and an
    inactive user get the same 401; repeated failures per account or per client address get 429 with Retry-After."""
    response.headers.update(NO_STORE)
    return await sessions.login(session, _authority(request), data, address=client_address(request))


@router.post("/auth/refresh", responses=problem_responses(400, 401, 422))
async def refresh_token(data: RefreshRequest, request: Request, response: Response, session: SessionDep) -> TokenPair:
    """A new pair for a refresh token, which is used up. Presenting a used one again revokes the whole login (401)."""
    response.headers.update(NO_STORE)
    return await sessions.refresh(session, _authority(request), data.refresh_token)


@router.post("/auth/logout", status_code=HTTPStatus.NO_CONTENT, responses=problem_responses(400, 422))
async def logout(data: RefreshRequest, session: SessionDep) -> Response:
    """Revoke the login the refresh token belongs to. Its access tokens lapse on their own within minutes."""
    await sessions.logout(session, data.refresh_token)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get("/me", responses=problem_responses(401, 403))
async def get_me(session: SessionDep, actor: ActorDep) -> MeRead:
    """The person acting: their user, roles and level. An API key is not a person: 403."""
    return await sessions.get_me(session, actor)
