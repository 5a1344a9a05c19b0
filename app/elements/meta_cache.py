"""A per-process cache of type metadata for the element hot paths.

Loading a `TypeMeta` takes six queries and builds ~70 ORM objects; element reads and writes need it on every request.
Every change to types, fields, pipelines or stages bumps `workspaces.metadata_version` in the same transaction, so a
cached entry is valid exactly while that number is unchanged: one primary-key lookup replaces the six queries.
Cached objects are expunged from the loading session, so a later rollback there cannot expire them; callers only
read them.
"""

import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.db import session_connection
from app.entity_types.meta import TypeMeta, get_type_meta
from app.kit.invalidation import TimedCache

MAX_ENTRIES = 512
VERSIONS_KEY = "metadata_versions"  # session.info: the versions this transaction has read


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_versions(session: Session) -> None:
    """A session that goes on after its transaction asks again in the next one."""
    session.info.pop(VERSIONS_KEY, None)


_cache: OrderedDict[tuple[uuid.UUID, str], tuple[int, TypeMeta]] = OrderedDict()


def _detach(session: AsyncSession, meta: TypeMeta) -> None:
    objects: list[object] = [meta.entity_type, *meta.pipelines.values(), *meta.stages.values()]
    for field_meta in meta.fields.values():
        objects.append(field_meta.row)
        objects.extend(field_meta.options)
    for obj in objects:
        if obj in session:
            session.expunge(obj)


# The lean read path does not even ask for the version: it is cached too, dropped by a NOTIFY when it changes.
_versions: TimedCache[uuid.UUID, int] = TimedCache("meta", 10_000, uuid.UUID)
VERSION_SQL = "SELECT metadata_version FROM workspaces WHERE id = $1"


async def cached_version(connection: Any, workspace_id: uuid.UUID, *, fresh: bool = False) -> int | None:
    """The workspace's metadata version, from the cache while nothing changed (`fresh` asks the database)."""
    version = None if fresh else _versions.get(workspace_id)
    if version is None:
        loaded_at = time.monotonic()
        version = await connection.fetchval(VERSION_SQL, workspace_id)
        if version is not None:
            _versions.put(workspace_id, version, loaded_at=loaded_at)
    return version


async def lean_type_meta(
    connection: Any,
    load: Callable[[], Awaitable[TypeMeta]],
    workspace_id: uuid.UUID,
    ref: str | uuid.UUID,
    *,
    fresh: bool = False,
) -> TypeMeta:
    """The type's metadata for a read: no query at all while nothing changed; `load` (cached_type_meta on some
    session) on a miss."""
    version = await cached_version(connection, workspace_id, fresh=fresh)
    return _hit(workspace_id, str(ref), version) or await load()


def _hit(workspace_id: uuid.UUID, ref: str, version: int | None) -> TypeMeta | None:
    """The cached metadata of `ref` if it was loaded at `version`."""
    key = (workspace_id, ref)
    hit = _cache.get(key)
    if hit is None or version is None or hit[0] != version:
        return None
    _cache.move_to_end(key)
    return hit[1]


async def cached_type_meta(session: AsyncSession, workspace_id: uuid.UUID, ref: str | uuid.UUID) -> TypeMeta:
    """`get_type_meta`, served from the cache while the workspace's metadata version is unchanged.

    Writes ask for the version in their own transaction, so they never validate against metadata older than it.
    """
    ref = str(ref)
    # Asked once per transaction (a change made in it forgets the answer: see bump_metadata_version).
    versions: dict[uuid.UUID, int | None] = session.info.setdefault(VERSIONS_KEY, {})
    if workspace_id in versions:
        version = versions[workspace_id]
    else:
        connection = await session_connection(session)
        version = versions[workspace_id] = await connection.fetchval(VERSION_SQL, workspace_id)
    hit = _hit(workspace_id, ref, version)
    if hit is not None:
        return hit
    # Read the version before the metadata: an entry can only be newer than its version, never older.
    meta = await get_type_meta(session, workspace_id, ref)
    if version is not None:
        _detach(session, meta)
        _cache[(workspace_id, ref)] = (version, meta)
        _cache.move_to_end((workspace_id, ref))
        while len(_cache) > MAX_ENTRIES:
            _cache.popitem(last=False)
    return meta


def clear() -> None:
    _cache.clear()
