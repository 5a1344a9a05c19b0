"""Schemas: the generic one (exported to schema/schema.graphql) and one per workspace with its typed types.

A workspace's schema is cached with its metadata version: the entity-type, field and pipeline services bump the
version, so the next request builds a fresh schema with no restart. `WorkspaceSchemas` stands in for the schema
of Strawberry's router and hands each operation to the schema of the caller's workspace.
"""

from __future__ import annotations

import asyncio
import logging
import types
import uuid
import weakref
from collections import OrderedDict
from typing import Any

import strawberry
from graphql import (
    GraphQLArgument,
    GraphQLDefaultInput,
    GraphQLError,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
)
from graphql.utilities import get_default_value_ast
from strawberry.extensions import MaskErrors
from strawberry.printer.ast_from_value import ast_from_value
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from app.api.graphql.analytics import ALERT_CONDITION, AlertConditionJSON
from app.api.graphql.context import Context
from app.api.graphql.errors import DomainErrorExtension, refusal_of
from app.api.graphql.generic import Mutation, Query, Subscription
from app.api.graphql.limits import limit_extensions
from app.api.graphql.typed import BIG_INT, BigInt, TypedBuilder, TypedList, TypedPart
from app.db import session_connection
from app.elements.meta_cache import cached_version
from app.entity_types import service as entity_type_service
from app.entity_types.meta import load_type_meta
from app.settings import Settings

logger = logging.getLogger("stageflow.graphql")


class StageflowSchema(strawberry.Schema):
    def __init__(
        self, *args: Any, settings: Settings, typed_lists: dict[str, TypedList] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        printable_defaults(self._schema)
        self.settings = settings
        # The typed list queries and the plans of documents that ask for one (app.api.graphql.compiled).
        self.typed_lists = typed_lists or {}
        self.compiled_plans: OrderedDict[tuple[str, str | None], Any] = OrderedDict()

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Bad queries and refusals by the services are the caller's mistakes: log only unexpected exceptions."""
        unexpected = [e for e in errors if _unexpected(e)]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def printable_defaults(schema: GraphQLSchema) -> None:
    """Give every default that graphql-core cannot print (a JSON `{}`) a literal, so introspection answers.

    graphql-core prints defaults with its own `ast_from_value`, which knows no object-valued scalar: the standard
    introspection query (graphql-codegen, Apollo, gql) then failed on `BatchItemInput.data`. Strawberry's printer
    knows them (the SDL has always shown `= {}`); its literal is kept as the default, coerced the same way on use.
    """
    holders: list[GraphQLArgument | GraphQLInputField] = [a for d in schema.directives for a in d.args.values()]
    for named in schema.type_map.values():
        if isinstance(named, GraphQLInputObjectType):
            holders.extend(named.fields.values())
        elif isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            holders.extend(arg for field in named.fields.values() for arg in field.args.values())
    for holder in holders:
        try:
            get_default_value_ast(holder)
        except TypeError:
            literal = ast_from_value(holder.default_value, holder.type)
            if literal is not None:
                holder.default = GraphQLDefaultInput(literal=literal)  # type: ignore[arg-type]


def _unexpected(error: GraphQLError) -> bool:
    """An exception the code did not mean to raise: not a refusal by a service or the database, not a bad query."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError) and refusal_of(original) is None


def _schema(
    settings: Settings, query: type, mutation: type, typed_lists: dict[str, TypedList] | None = None
) -> StageflowSchema:
    extensions: list[Any] = [DomainErrorExtension, *limit_extensions(settings)]
    if not settings.is_development:
        # A bug's message may tell too much: outside development the caller only learns that it happened.
        extensions.append(lambda: MaskErrors(should_mask_error=_unexpected, error_message="Internal server error"))
    return StageflowSchema(
        query=query,
        mutation=mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(scalar_map={BigInt: BIG_INT, AlertConditionJSON: ALERT_CONDITION}),
        settings=settings,
        typed_lists=typed_lists,
    )


def generic_schema(settings: Settings) -> StageflowSchema:
    return _schema(settings, Query, Mutation)


def _extend(base: type, name: str, fields: dict[str, Any]) -> type:
    if not fields:
        return base
    cls = types.new_class(name, (base,), {}, lambda ns: ns.update({**fields, "__annotations__": {}}))
    return strawberry.type(cls, name=name)


def workspace_schema(settings: Settings, generic: StageflowSchema, metas: list[Any]) -> StageflowSchema:
    """The generic schema plus, for each entity type, its generated types, queries and mutations."""
    graphql_schema = generic._schema
    query_type, mutation_type = graphql_schema.query_type, graphql_schema.mutation_type
    builder = TypedBuilder(
        taken_types=set(graphql_schema.type_map),
        taken_queries=set(query_type.fields) if query_type else set(),
        taken_mutations=set(mutation_type.fields) if mutation_type else set(),
    )
    query_fields: dict[str, Any] = {}
    mutation_fields: dict[str, Any] = {}
    typed_lists: dict[str, TypedList] = {}
    for meta in metas:
        if not builder.prepare(meta):
            logger.warning("entity type %s left out of the typed schema: its GraphQL names are taken", meta.code)
    for meta in metas:
        part: TypedPart | None = builder.build(meta)
        if part is None:
            continue
        query_fields.update(part.query)
        mutation_fields.update(part.mutation)
        typed_lists.update(part.lists)
    query, mutation = _extend(Query, "Query", query_fields), _extend(Mutation, "Mutation", mutation_fields)
    return _schema(settings, query, mutation, typed_lists)


class SchemaCache:
    """Each workspace's latest schema, the least recently used dropped first (`GRAPHQL_SCHEMA_CACHE_SIZE`).

    A rebuild holds its workspace's lock only: requests of that workspace wait for the one build instead of making
    their own, and every other workspace goes on (from the cache, or with a build of its own) meanwhile.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.size = max(1, settings.GRAPHQL_SCHEMA_CACHE_SIZE)
        self.generic = generic_schema(settings)
        self._schemas: OrderedDict[uuid.UUID, tuple[int, StageflowSchema]] = OrderedDict()
        # A lock lives while someone holds or awaits it, so idle workspaces keep none.
        self._locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = weakref.WeakValueDictionary()

    def __len__(self) -> int:
        return len(self._schemas)

    async def for_context(self, context: Context) -> StageflowSchema:
        if context.actor is None:
            return self.generic  # logging in: nobody's workspace yet
        actor = context.who
        if context.db is not None:
            return await self._get(context.db, context, actor.workspace_id)
        async with context.sessionmaker() as session:
            return await self._get(session, context, actor.workspace_id)

    def _cached(self, workspace_id: uuid.UUID, version: int) -> StageflowSchema | None:
        """The workspace's schema if it is at least as new as the version the request read."""
        entry = self._schemas.get(workspace_id)
        if entry is None or entry[0] < version:
            return None
        self._schemas.move_to_end(workspace_id)
        return entry[1]

    async def _get(self, session: Any, context: Context, workspace_id: uuid.UUID) -> StageflowSchema:
        # The cached version (kept current by NOTIFY): a request costs no query to find its schema.
        version = await cached_version(await session_connection(session), workspace_id) or 0
        schema = self._cached(workspace_id, version)
        if schema is not None:
            return schema
        lock = self._locks.get(workspace_id)
        if lock is None:
            lock = self._locks[workspace_id] = asyncio.Lock()
        async with lock:
            schema = self._cached(workspace_id, version)  # built by the request we waited for
            if schema is not None:
                return schema
            # Every type, whoever asks first: the schema serves the whole workspace.
            rows = await entity_type_service.all_entity_types(session, workspace_id)
            metas = [await load_type_meta(session, row) for row in rows]
            # Building takes ~50 ms per entity type: off the event loop, so other requests go on meanwhile.
            schema = await asyncio.to_thread(self._build, workspace_id, metas)
            self._schemas[workspace_id] = (version, schema)
            self._schemas.move_to_end(workspace_id)
            while len(self._schemas) > self.size:
                self._schemas.popitem(last=False)
        return schema

    def _build(self, workspace_id: uuid.UUID, metas: list[Any]) -> StageflowSchema:
        try:
            return workspace_schema(self.settings, self.generic, metas)
        except Exception:
            # A typed schema that cannot be built must not take the workspace's GraphQL down with it.
            logger.exception(
                "typed GraphQL schema of workspace %s failed to build; serving the generic one", workspace_id
            )
            return self.generic


class WorkspaceSchemas(StageflowSchema):
    """The schema Strawberry's router holds: each operation runs on the caller's workspace schema."""

    def __init__(self, cache: SchemaCache) -> None:
        generic = cache.generic
        super().__init__(
            query=Query,
            mutation=Mutation,
            subscription=Subscription,
            extensions=list(generic.extensions),
            config=generic.config,
            settings=cache.settings,
        )
        self.cache = cache

    async def execute(  # type: ignore[override]  # forwards every argument as given
        self, query: str | None, variable_values: dict[str, Any] | None = None, context_value: Any = None, **kw: Any
    ) -> Any:
        schema = await self.cache.for_context(context_value)
        return await schema.execute(query, variable_values, context_value, **kw)

    async def subscribe(  # type: ignore[override]  # forwards every argument as given
        self, query: str | None, variable_values: dict[str, Any] | None = None, context_value: Any = None, **kw: Any
    ) -> Any:
        schema = await self.cache.for_context(context_value)
        return await schema.subscribe(query, variable_values, context_value, **kw)

    async def stream(  # type: ignore[override]  # forwards every argument as given
        self, query: str | None, variable_values: dict[str, Any] | None = None, context_value: Any = None, **kw: Any
    ) -> Any:
        schema = await self.cache.for_context(context_value)
        return await schema.stream(query, variable_values, context_value, **kw)
