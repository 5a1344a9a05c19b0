"""The route class every REST route uses: one session per request, committed before the response leaves."""

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.rest.deps import get_actor, resolve_actor
from app.audit import service as audit
from app.auth.actor import Actor
from app.idempotency import service as idempotency
from app.kit.shown_once import shown_once_fields, withhold
from app.observability import SECRET_PATH_PARAMS
from app.settings import Settings

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
F = TypeVar("F", bound=Callable[..., Any])
READS = frozenset({"GET", "HEAD", "OPTIONS"})
CREATED_BODY_LIMIT = 65_536  # a created object's id is read from its answer only when that is small


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
        trail = AuditTrail(self)

        async def run(request: Request) -> Response:
            sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
            async with sessionmaker() as session:
                request.state.session = session
                key = request.headers.get("idempotency-key") if request.method == "POST" and keyed else None
                if key:
                    return await _run_idempotent(request, handler, session, sessionmaker, key, secret_fields, trail)
                try:
                    response = await handler(request)
                    if response.status_code < 400:
                        await trail.record(request, response, session)
                except BaseException:
                    await session.rollback()
                    raise
                await (session.commit() if response.status_code < 400 else session.rollback())
                return response

        return run


class AuditTrail:
    """Adds a successful write's audit row to its transaction: one place for every REST write (app.audit)."""

    def __init__(self, route: APIRoute) -> None:
        self.route = route
        self.object_type = audit.object_type_of(route.name)
        self.has_body = route.body_field is not None

    async def record(self, request: Request, response: Response, session: AsyncSession) -> None:
        actor = getattr(request.state, "actor", None)
        if request.method in READS or not isinstance(actor, Actor):
            return  # a read, or a route no key acts on (an incoming hook)
        params = {k: str(v) for k, v in request.path_params.items() if k not in SECRET_PATH_PARAMS}
        created_id = _created_id(response)
        object_id = created_id or (list(params.values())[-1] if params else None)
        element_id = audit.as_uuid(params.get("element_id"))
        if element_id is None and self.object_type == "element":
            element_id = audit.as_uuid(object_id)
        details: dict[str, Any] = {"params": params} if params else {}
        if self.has_body and request.headers.get("content-type", "").startswith("application/json"):
            details.update(audit.field_codes(await request.json()))  # parsed once already: Starlette keeps it
        change = audit.Change(
            action=f"{request.method} {self._template(request)}",
            object_type=self.object_type,
            object_id=object_id,
            element_id=element_id,
            status=response.status_code,
            details=details,
        )
        await audit.record(session, actor, request.client.host if request.client else None, change)

    def _template(self, request: Request) -> str:
        """The route's path as declared, under the prefix it was included with: `/api/v1/elements/{element_id}`."""
        path: str = self.route.path_format
        segments = request.url.path.split("/")
        prefix = "/".join(segments[: len(segments) - path.count("/")])
        return prefix + path


def _created_id(response: Response) -> str | None:
    raw = getattr(response, "body", b"")  # a streamed answer has none
    if response.status_code != 201 or not raw or len(raw) > CREATED_BODY_LIMIT:
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    created = body.get("id") if isinstance(body, dict) else None
    return str(created) if created is not None else None


async def _run_idempotent(
    request: Request,
    handler: Handler,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    key: str,
    secret_fields: frozenset[str],
    trail: AuditTrail,
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
            await trail.record(request, response, session)
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
