"""Element reads: a list page, one element and a board, each one statement whose JSON PostgreSQL builds.

Two ways in, one implementation (app.readmodel.reader):
- the lean path (REST reads) passes a plain asyncpg connection from the read pool: no transaction, no ORM, the key
  and the type metadata from the in-process caches, the body sent on as bytes;
- the service path (GraphQL, automation, other services) passes its session, and gets pydantic models.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.access.permissions import PermissionDenied, TypeAccess
from app.auth.actor import Actor
from app.db import session_connection
from app.elements.meta_cache import cached_type_meta, lean_type_meta
from app.elements.schemas import ElementPage, ElementRead, ElementSearch
from app.entity_types.meta import TypeMeta
from app.errors import Invalid, NotFound
from app.kit.filters import parse_filter
from app.readmodel import reader
from app.readmodel.reader import RawPage

T = TypeVar("T")
Sessionmaker = async_sessionmaker[AsyncSession]

# pipeline id -> (workspace id, entity type id): a pipeline never changes type; a deleted one is missing from the
# type's metadata, which is checked on every read.
_pipeline_types: OrderedDict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = OrderedDict()
PIPELINE_TYPES_SIZE = 10_000


def _loader(sessionmaker: Sessionmaker, actor: Actor, type_ref: str | uuid.UUID) -> Callable[[], Awaitable[TypeMeta]]:
    async def load() -> TypeMeta:
        async with sessionmaker() as session:
            return await cached_type_meta(session, actor.workspace_id, type_ref)

    return load


async def _with_fresh_retry(
    connection: Any,
    load: Callable[[], Awaitable[TypeMeta]],
    actor: Actor,
    type_ref: str | uuid.UUID,
    read: Callable[[TypeMeta], Awaitable[T]],
) -> T:
    """Run a read with the cached metadata; a query it rejects is tried once more against fresh metadata, so a
    field added a moment ago in another process is never refused for a stale cache."""
    meta = await lean_type_meta(connection, load, actor.workspace_id, type_ref)
    try:
        return await read(meta)
    except (Invalid, NotFound):
        fresh = await lean_type_meta(connection, load, actor.workspace_id, type_ref, fresh=True)
        if fresh is meta:
            raise
        return await read(fresh)


def readable(meta: TypeMeta, actor: Actor, action: str = "read") -> tuple[TypeMeta, TypeAccess]:
    """The actor's view of the type and their access to it; PermissionDenied when they may read (or export) none
    of it."""
    access = actor.on(meta)
    if not access.can_read_any(action):
        raise PermissionDenied(f"{meta.code}.{action}", f"Your role may not {action} {meta.code} elements")
    return meta.without(access.hidden), access


async def _page(connection: Any, meta: TypeMeta, actor: Actor, search: ElementSearch, action: str = "read") -> RawPage:
    view, access = readable(meta, actor, action)
    return await reader.list_page(
        connection,
        view,
        actor.workspace_id,
        parse_filter(search.filter),
        sort=search.sort,
        limit=search.limit,
        cursor=search.cursor,
        with_total=search.with_total,
        deleted=search.deleted,
        access=access,
        action=action,
    )


async def list_page(
    connection: Any, sessionmaker: Sessionmaker, actor: Actor, type_ref: str, search: ElementSearch
) -> RawPage:
    return await _with_fresh_retry(
        connection,
        _loader(sessionmaker, actor, type_ref),
        actor,
        type_ref,
        lambda meta: _page(connection, meta, actor, search),
    )


async def export_pages(
    pool: Any, sessionmaker: Sessionmaker, actor: Actor, type_ref: str, search: ElementSearch
) -> AsyncIterator[tuple[TypeMeta, RawPage]]:
    """Every element the actor may export that matches, page by page (keyset, so a long export stays cheap and
    consistent per page); the first page is read before the answer starts, so a bad query is still a 4xx."""
    async with pool.acquire() as connection:
        load = _loader(sessionmaker, actor, type_ref)
        meta = await lean_type_meta(connection, load, actor.workspace_id, type_ref)
        view, _ = readable(meta, actor, "export")
        page = await _page(connection, meta, actor, search, "export")
    yield view, page
    while page.next_cursor:
        async with pool.acquire() as connection:
            search = search.model_copy(update={"cursor": page.next_cursor, "with_total": False})
            page = await _page(connection, meta, actor, search, "export")
        yield view, page


async def get_json(connection: Any, actor: Actor, element_id: uuid.UUID) -> str:
    return await reader.get_json(connection, actor.workspace_id, element_id, actor.grants)


async def _pipeline_type(connection: Any, actor: Actor, pipeline_id: uuid.UUID) -> uuid.UUID:
    known = _pipeline_types.get(pipeline_id)
    if known is None:
        row = await connection.fetchrow(
            "SELECT workspace_id, entity_type_id FROM pipelines WHERE id = $1 AND workspace_id = $2",
            pipeline_id,
            actor.workspace_id,
        )
        if row is None:
            raise NotFound("Pipeline not found")
        known = _pipeline_types[pipeline_id] = (row[0], row[1])
        while len(_pipeline_types) > PIPELINE_TYPES_SIZE:
            _pipeline_types.popitem(last=False)
    if known[0] != actor.workspace_id:
        raise NotFound("Pipeline not found")
    return known[1]


async def _board(
    connection: Any, meta: TypeMeta, actor: Actor, pipeline_id: uuid.UUID, per_stage: int, filter_raw: Any
) -> str:
    if pipeline_id not in meta.pipelines:
        raise NotFound("Pipeline not found")
    view, access = readable(meta, actor)
    return await reader.board_json(
        connection, view, actor.workspace_id, pipeline_id, parse_filter(filter_raw), per_stage=per_stage, access=access
    )


async def board_json(
    connection: Any, sessionmaker: Sessionmaker, actor: Actor, pipeline_id: uuid.UUID, per_stage: int, filter_raw: Any
) -> str:
    type_id = await _pipeline_type(connection, actor, pipeline_id)
    return await _with_fresh_retry(
        connection,
        _loader(sessionmaker, actor, type_id),
        actor,
        type_id,
        lambda meta: _board(connection, meta, actor, pipeline_id, per_stage, filter_raw),
    )


# --- the service path ----------------------------------------------------------------------------------------------


async def list_rows(
    session: AsyncSession, actor: Actor, type_ref: str, search: ElementSearch
) -> tuple[RawPage, dict[uuid.UUID, Any]]:
    """A page as PostgreSQL built it (each row's ElementRead JSON) and the type's stages by id."""
    connection = await session_connection(session)

    async def load() -> TypeMeta:
        return await cached_type_meta(session, actor.workspace_id, type_ref)

    # A session that changed metadata reads its own (uncommitted) version; any other reads the cached one.
    changing = bool(session.info.get("forget_metadata"))
    meta = await (load() if changing else lean_type_meta(connection, load, actor.workspace_id, type_ref))
    return await _page(connection, meta, actor, search), meta.stages


async def list_elements(session: AsyncSession, actor: Actor, type_ref: str, search: ElementSearch) -> ElementPage:
    page, stages = await list_rows(session, actor, type_ref, search)
    return ElementPage(
        items=[ElementRead.model_validate_json(row[0]) for row in page.rows],
        next_cursor=page.next_cursor,
        total=page.total,
        cursors=page.cursors,
        stages=stages,
    )


async def get_element(session: AsyncSession, actor: Actor, element_id: uuid.UUID) -> ElementRead:
    return ElementRead.model_validate_json(await get_json(await session_connection(session), actor, element_id))


async def board(session: AsyncSession, actor: Actor, pipeline_id: uuid.UUID, *, per_stage: int, filter_raw: Any) -> str:
    connection = await session_connection(session)
    type_id = await _pipeline_type(connection, actor, pipeline_id)
    meta = await cached_type_meta(session, actor.workspace_id, type_id)
    return await _board(connection, meta, actor, pipeline_id, per_stage, filter_raw)
