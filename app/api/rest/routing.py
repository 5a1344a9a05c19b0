"""The route class every REST route uses: one session per request, committed before the response leaves."""

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.rest.deps import get_actor, resolve_actor
from app.idempotency import service as idempotency
from app.kit.shown_once import shown_once_fields, withhold
from app.settings import Settings

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
F = TypeVar("F", bound=Callable[..., Any])


def lean_read(endpoint: F) -> F:
    """Mark a read that runs on the read pool (app.elements.reads): the route opens no session for it."""
    endpoint.lean_read = True  # type: ignore[attr-defined]
    return endpoint


class TransactionalRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if getattr(self.endpoint, "lean_read", False):
            # Reads on the lean path hold a read-pool connection, not a session: nothing to open or commit.
            return handler
        secret_fields = shown_once_fields(self.response_model)
        # Idempotency records belong to an API key: a route without one (an incoming hook) ignores the header
        # rather than answer 401 to a sender that happens to send it.
        keyed = any(dependency.call is get_actor for dependency in self.dependant.dependencies)

        async def run(request: Request) -> Response:
            sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
            async with sessionmaker() as session:
                request.state.session = session
                key = request.headers.get("idempotency-key") if request.method == "POST" and keyed else None
                if key:
                    return await _run_idempotent(request, handler, session, sessionmaker, key, secret_fields)
                try:
                    response = await handler(request)
                except BaseException:
                    await session.rollback()
                    raise
                await (session.commit() if response.status_code < 400 else session.rollback())
                return response

        return run


async def _run_idempotent(
    request: Request,
    handler: Handler,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    key: str,
    secret_fields: frozenset[str],
) -> Response:
    settings: Settings = request.app.state.settings
    actor = await resolve_actor(request)
    fingerprint = idempotency.request_fingerprint(request.method, request.url.path, await request.body())
    # The claim commits on its own so a concurrent repeat sees it at once.
    async with sessionmaker() as claim_session:
        stored = await idempotency.claim(
            claim_session, actor, key[:200], fingerprint, ttl_hours=settings.IDEMPOTENCY_TTL_HOURS
        )
        await claim_session.commit()
    if stored is not None:
        return Response(
            stored.body,
            status_code=stored.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        response = await handler(request)
        if response.status_code < 400:
            # A secret shown once is not kept, not even here: the stored copy has it blanked.
            body, withheld = withhold(bytes(response.body), secret_fields)
            await idempotency.complete(
                session, actor.workspace_id, key[:200], response.status_code, body, secret_withheld=bool(withheld)
            )
            await session.commit()
            return response
    except BaseException:
        await session.rollback()
        await _release(sessionmaker, actor.workspace_id, key[:200])
        raise
    await session.rollback()
    await _release(sessionmaker, actor.workspace_id, key[:200])
    return response


async def _release(sessionmaker: async_sessionmaker[AsyncSession], workspace_id: Any, key: str) -> None:
    async with sessionmaker() as session:
        await idempotency.release(session, workspace_id, key)
        await session.commit()
