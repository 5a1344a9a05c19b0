"""`/graphql` (HTTP and WebSocket) and `GET /api/v1/graphql/schema.graphql`, with the REST API's Bearer auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from app.api.graphql.context import Context
from app.api.graphql.schema import SchemaCache, WorkspaceSchemas
from app.api.rest.common import make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.api.rest.problems import problem_responses
from app.auth import service as auth_service
from app.errors import DomainError
from app.settings import Settings

sdl_router = make_router(tags=["graphql"])


def _base_context(connection: HTTPConnection) -> Context:
    state = connection.app.state
    return Context(
        settings=state.settings, sessionmaker=state.sessionmaker, redis=state.redis, schemas=state.graphql_schemas
    )


def _is_ide_page(connection: HTTPConnection) -> bool:
    """A GET without a query only fetches GraphiQL (or a 404 outside development): the browser sends no key there."""
    return connection.scope.get("method") == "GET" and "query" not in connection.query_params


async def get_context(connection: HTTPConnection) -> AsyncIterator[Context]:
    """HTTP: one session per request, authenticated like REST. WebSocket: authenticated on connection_init."""
    context = _base_context(connection)
    if connection.scope["type"] == "websocket" or _is_ide_page(connection):
        yield context
        return
    settings: Settings = connection.app.state.settings
    async with context.sessionmaker() as session:
        context.db = session
        context.actor = await auth_service.authenticate(
            session, connection.headers.get("authorization"), touch_seconds=settings.API_KEY_TOUCH_SECONDS
        )
        await session.commit()  # keeps the key's last-used touch
        try:
            yield context
        finally:
            await session.rollback()


class StageflowGraphQLRouter(GraphQLRouter[Context, None]):
    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Browsers cannot set headers on a WebSocket: the key may come in connection_init's payload instead."""
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        async with context.sessionmaker() as session:
            try:
                context.actor = await auth_service.authenticate(
                    session, str(header) if header else context.ws_authorization, touch_seconds=10**9
                )
            except DomainError as exc:
                raise ConnectionRejectionError({"message": exc.detail}) from exc
        return await super().on_ws_connect(context)


async def _ws_context(connection: HTTPConnection) -> AsyncIterator[Context]:
    async for context in get_context(connection):
        context.ws_authorization = connection.headers.get("authorization")
        yield context


def mount_graphql(app: FastAPI, settings: Settings, *, api_prefix: str) -> None:
    cache = SchemaCache(settings)
    app.state.graphql_schemas = cache
    router = StageflowGraphQLRouter(
        WorkspaceSchemas(cache),
        path="/graphql",
        context_getter=_ws_context,  # type: ignore[arg-type]  # FastAPI accepts generator dependencies
        graphql_ide="graphiql" if settings.is_development else None,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        include_in_schema=False,
    )
    app.include_router(router)
    app.include_router(sdl_router, prefix=api_prefix)


@sdl_router.get(
    "/graphql/schema.graphql",
    responses={**problem_responses(401), 200: {"description": "The workspace's GraphQL SDL"}},
    response_class=PlainTextResponse,
)
async def get_graphql_schema(request: Request, session: SessionDep, actor: ActorDep) -> Any:
    """The GraphQL SDL of the caller's workspace: the generic schema plus its typed types, for client codegen."""
    cache: SchemaCache = request.app.state.graphql_schemas
    context = Context(
        settings=cache.settings,
        sessionmaker=request.app.state.sessionmaker,
        redis=None,
        schemas=cache,
        actor=actor,
        db=session,
    )
    schema = await cache.for_context(context)
    return PlainTextResponse(schema.as_str() + "\n")
