"""`/graphql` (HTTP and WebSocket) and `GET /api/v1/graphql/schema.graphql`, with the REST API's Bearer auth."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketState
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from app.api.graphql import compiled
from app.api.graphql.context import Context
from app.api.graphql.schema import SchemaCache, WorkspaceSchemas
from app.api.rest.common import make_router
from app.api.rest.deps import ActorDep, SessionDep, admit
from app.api.rest.problems import problem_responses
from app.auth import service as auth_service
from app.db import database_unavailable
from app.errors import DomainError, Unauthorized
from app.settings import Settings

sdl_router = make_router(tags=["graphql"])


# Root fields a caller with no (or a lapsed) token may use: logging in and keeping a login going.
ANONYMOUS_FIELDS = frozenset({"login", "refreshToken", "logout", "__typename"})
# The token lapsed: the socket closes with the code Strawberry uses for a refused connection_init (graphql-ws clients
# reconnect after it; with `connectionParams` as a function they send a fresh token).
EXPIRED_CLOSE_CODE = 4403


def _base_context(connection: HTTPConnection) -> Context:
    state = connection.app.state
    return Context(
        settings=state.settings,
        sessionmaker=state.sessionmaker,
        redis=state.redis,
        schemas=state.graphql_schemas,
        authority=getattr(state, "authority", None),
        bearer_tokens=getattr(state, "bearer_tokens", None),
        address=connection.client.host if connection.client else None,
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
        try:
            context.actor = await auth_service.authenticate(
                session,
                connection.headers.get("authorization"),
                touch_seconds=settings.API_KEY_TOUCH_SECONDS,
                tokens=context.bearer_tokens,
                address=context.address,
            )
        except Unauthorized:
            # Logging in, or refreshing with a lapsed access token still attached: no actor, and no other field.
            if not await _anonymous_operation(connection, settings):
                raise
            await session.rollback()
        else:
            await session.commit()  # keeps the key's last-used touch
            await admit(connection.app.state, context.actor)
        try:
            yield context
        finally:
            await session.rollback()


async def _anonymous_operation(connection: HTTPConnection, settings: Settings) -> bool:
    """Whether the request is a POSTed mutation of ANONYMOUS_FIELDS only (what runs is this same operation)."""
    if not isinstance(connection, Request) or connection.method != "POST":
        return False
    try:
        body = await connection.json()
    except ValueError:  # not JSON (a multipart upload, garbage): only signed-in callers get Strawberry's answer
        return False
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return False
    try:
        document = parse(body["query"], max_tokens=settings.GRAPHQL_MAX_TOKENS)
    except GraphQLError:
        return False
    name = body.get("operationName")
    operations = [
        d
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode) and (not name or (d.name is not None and d.name.value == name))
    ]
    if len(operations) != 1 or operations[0].operation is not OperationType.MUTATION:
        return False
    selections = operations[0].selection_set.selections
    return all(isinstance(s, FieldNode) and s.name.value in ANONYMOUS_FIELDS for s in selections)


@dataclass
class PrebuiltResult(ExecutionResult):
    """An operation answered by app.api.graphql.compiled: its response body, already encoded."""

    body: bytes = b""


class PrebuiltResponse(dict[str, Any]):
    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body


class StageflowGraphQLRouter(GraphQLRouter[Context, None]):
    async def execute_operation(
        self,
        request: Request,
        request_adapter: Any,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> Any:
        """A typed list query the compiled path answers skips execution; the rest (and errors) are executed.
        Authentication, the role and the rate limit were checked by get_context; the document's limits by
        the compiled path itself (only a valid document within the cost limit is answered there)."""
        if (
            context.settings.GRAPHQL_COMPILED_LISTS
            and isinstance(request_data, GraphQLRequestData)
            and request_data.protocol == "http"
            and isinstance(request_data.query, str)
            and (request_adapter.method == "POST" or self.allow_queries_via_get)
            and context.actor is not None
        ):
            schema = await self.schema.cache.for_context(context)  # type: ignore[attr-defined]
            body = await compiled.answer(
                schema, context, request_data.query, request_data.variables, request_data.operation_name
            )
            if body is not None:
                return PrebuiltResult(data=None, errors=None, body=body)
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def process_result(self, request: Request, result: ExecutionResult) -> Any:
        if isinstance(result, PrebuiltResult):
            return PrebuiltResponse(result.body)
        return await super().process_result(request, result)

    def encode_json(self, data: object) -> str | bytes:
        if isinstance(data, PrebuiltResponse):
            return data.body
        return super().encode_json(data)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Browsers cannot set headers on a WebSocket: the key may come in connection_init's payload instead."""
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        async with context.sessionmaker() as session:
            try:
                context.actor = await auth_service.authenticate(
                    session,
                    str(header) if header else context.ws_authorization,
                    touch_seconds=10**9,
                    tokens=context.bearer_tokens,
                    address=context.address,
                )
                if context.request is not None:
                    await admit(context.request.app.state, context.actor)
            except DomainError as exc:
                raise ConnectionRejectionError({"message": exc.detail}) from exc
            except Exception as exc:  # the database unreachable or busy: refused like a bad key, not a crash
                unavailable = database_unavailable(exc)
                if unavailable is None:
                    raise
                raise ConnectionRejectionError({"message": unavailable.detail, "code": unavailable.slug}) from exc
        if context.actor.token_expires_at is not None and isinstance(context.request, WebSocket):
            _close_at_expiry(context.request, context.actor.token_expires_at)
        return await super().on_ws_connect(context)


_expiry_tasks: set[asyncio.Task[None]] = set()


def _close_at_expiry(websocket: WebSocket, expires_at: int) -> None:
    """A subscription lives no longer than the token that opened it: a person made inactive, or whose stolen token
    lapses, stops receiving events then; the client reconnects with a fresh token."""

    def open() -> bool:
        connected = WebSocketState.CONNECTED
        return websocket.application_state is connected and websocket.client_state is connected

    async def close_later() -> None:
        # Checked every few seconds, so a socket the client closed first is let go of soon, not at the token's end.
        while open() and (left := expires_at - time.time()) > 0:  # noqa: ASYNC110 (no event tells of a close)
            await asyncio.sleep(min(left, 5.0))
        if open():
            with contextlib.suppress(Exception):  # the client left meanwhile
                await websocket.close(code=EXPIRED_CLOSE_CODE, reason="Token expired")

    task = asyncio.create_task(close_later())
    _expiry_tasks.add(task)
    task.add_done_callback(_expiry_tasks.discard)


async def _ws_context(connection: HTTPConnection) -> AsyncIterator[Context]:
    async for context in get_context(connection):
        context.ws_authorization = connection.headers.get("authorization")
        yield context


def mount_graphql(app: FastAPI, settings: Settings) -> None:
    """The /graphql endpoint (the SDL route, `sdl_router`, is included with the REST routers)."""
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
