"""Files in elements' values: checked when an element is written, bound to it after, purged when they leave it.

The element service calls these (and nothing here imports it). A file field's value names uploaded files of the same
workspace; each file belongs to at most one element and field. Writing a value checks every named file (there, not
purged, not in the recycle bin with another element, not another element's, within the field's size and MIME
limits) with the rows locked, so two writes cannot both take one file. After the write the files are bound; the ones
the new value leaves out are purged, their bytes removed once the transaction commits.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import delete, event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import make_sessionmaker
from app.elements.models import Element
from app.elements.values import ParsedValues
from app.entity_types.meta import FieldMeta, TypeMeta
from app.errors import ErrorCollector
from app.files.models import StoredFile
from app.files.names import mime_allowed
from app.files.storage import FileStorage, active_storage
from app.kit import background

logger = logging.getLogger("stageflow.files")
PURGE_BATCH = 200
PURGE_PENDING = "files_purge_pending"  # session.info: this transaction purged files of these workspaces


def storage_key(workspace_id: uuid.UUID, file_id: uuid.UUID) -> str:
    return f"{workspace_id}/{file_id}"


@dataclass(frozen=True)
class FileUse:
    """A file named by a value being written: where (the error path), in which field, for which element (None for
    a new one), and which of that element's file fields the write replaces."""

    path: str
    file_id: uuid.UUID
    field_meta: FieldMeta
    element_id: uuid.UUID | None
    replaced: frozenset[uuid.UUID] = field(default_factory=frozenset)


def file_uses(meta: TypeMeta, parsed: ParsedValues, prefix: str, element_id: uuid.UUID | None = None) -> list[FileUse]:
    replaced = frozenset(meta.fields[code].row.id for code in parsed.by_code if meta.fields[code].row.type == "file")
    uses = []
    for code, items in parsed.by_code.items():
        field_meta = meta.fields[code]
        if field_meta.row.type != "file":
            continue
        for index, file_id in enumerate(items):
            path = f"{prefix}values.{code}" + (f"[{index}]" if field_meta.row.multiple else "")
            uses.append(FileUse(path, file_id, field_meta, element_id, replaced))
    return uses


async def check_files(
    session: AsyncSession, workspace_id: uuid.UUID, uses: list[FileUse], errors: ErrorCollector
) -> None:
    """Every named file may go where the write puts it (one query; the rows stay locked until the write commits)."""
    if not uses:
        return
    rows = await session.execute(
        select(
            StoredFile.id,
            StoredFile.size,
            StoredFile.mime_type,
            StoredFile.element_id,
            StoredFile.field_id,
            Element.deleted_at,
        )
        .outerjoin(Element, Element.id == StoredFile.element_id)
        .where(
            StoredFile.workspace_id == workspace_id,
            StoredFile.id.in_({use.file_id for use in uses}),
            StoredFile.purged_at.is_(None),
        )
        .with_for_update(of=StoredFile)
    )
    found = {row.id: row for row in rows}
    seen: set[uuid.UUID] = set()
    for use in uses:
        row = found.get(use.file_id)
        if use.file_id in seen:
            errors.add(use.path, f"file {use.file_id} is named more than once")
        elif row is None:
            errors.add(use.path, f"file {use.file_id} not found")
        else:
            problem = _placement_problem(use, row) or _limits_problem(use, row)
            if problem:
                errors.add(use.path, f"file {use.file_id} {problem}")
        seen.add(use.file_id)


def _placement_problem(use: FileUse, row: Any) -> str | None:
    if row.element_id is None:
        return None
    if row.deleted_at is not None:
        return "is in the recycle bin with its element"
    if row.element_id != use.element_id:
        return "belongs to another element"
    if row.field_id != use.field_meta.row.id and row.field_id not in use.replaced:
        return "is in another field of this element"
    return None


def _limits_problem(use: FileUse, row: Any) -> str | None:
    validation = use.field_meta.row.validation
    limit = validation.get("max_size_bytes")
    if limit is not None and row.size > limit:
        return f"has {row.size} bytes, over the field's limit of {limit}"
    allowed = validation.get("allowed_mime_types")
    if not mime_allowed(row.mime_type, allowed):
        return f"is {row.mime_type}, not one of the field's types ({', '.join(allowed or [])})"
    return None


BIND_SQL = text(
    """
    UPDATE files f SET element_id = b.element_id, field_id = b.field_id
    FROM unnest(CAST(:ids AS uuid[]), CAST(:elements AS uuid[]), CAST(:fields AS uuid[])) AS b(id, element_id, field_id)
    WHERE f.id = b.id AND f.workspace_id = :workspace_id
    """
)
# The files of the replaced (element, field) values that the new values leave out.
RELEASE_SQL = text(
    """
    UPDATE files f SET purged_at = now()
    FROM unnest(CAST(:elements AS uuid[]), CAST(:fields AS uuid[])) AS w(element_id, field_id)
    WHERE f.workspace_id = :workspace_id AND f.element_id = w.element_id AND f.field_id = w.field_id
      AND f.purged_at IS NULL AND NOT (f.id = ANY(CAST(:kept AS uuid[])))
    RETURNING f.id
    """
)


async def bind_files(
    session: AsyncSession,
    meta: TypeMeta,
    workspace_id: uuid.UUID,
    written: list[tuple[uuid.UUID, ParsedValues]],
    *,
    replacing: bool,
) -> None:
    """After checked values are written: their files now belong to their element and field. `replacing` (an
    update): the files the replaced values held and the new ones leave out are purged."""
    replaced: list[tuple[uuid.UUID, uuid.UUID]] = []
    bound: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]] = []
    for element_id, parsed in written:
        for code, items in parsed.by_code.items():
            field_meta = meta.fields[code]
            if field_meta.row.type == "file":
                replaced.append((element_id, field_meta.row.id))
                bound.extend((file_id, element_id, field_meta.row.id) for file_id in items)
    if not replaced:
        return
    if replacing:
        released = await session.execute(
            RELEASE_SQL,
            {
                "workspace_id": workspace_id,
                "elements": [element_id for element_id, _ in replaced],
                "fields": [field_id for _, field_id in replaced],
                "kept": [file_id for file_id, _, _ in bound],
            },
        )
        if released.first() is not None:
            purge_after_commit(session, workspace_id)
    if bound:
        await session.execute(
            BIND_SQL,
            {
                "workspace_id": workspace_id,
                "ids": [file_id for file_id, _, _ in bound],
                "elements": [element_id for _, element_id, _ in bound],
                "fields": [field_id for _, _, field_id in bound],
            },
        )


# --- purging ---------------------------------------------------------------------------------------------------


def purge_after_commit(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    """Once this transaction commits, remove the bytes and rows of the workspace's purged files (the worker's
    retention pass does it too, for what a lost process left)."""
    engine = session.bind
    if not isinstance(engine, AsyncEngine):
        return  # a session on a bare connection (tests of the pure logic): the retention pass will do it
    pending: set[uuid.UUID] | None = session.info.get(PURGE_PENDING)
    if pending is None:
        pending = session.info[PURGE_PENDING] = set()

        def forget(_: Any) -> None:
            pending.clear()

        event.listen(session.sync_session, "after_commit", forget)
        event.listen(session.sync_session, "after_rollback", forget)
    if workspace_id in pending:
        return
    pending.add(workspace_id)
    background.after_commit(session, partial(purge_files, make_sessionmaker(engine), active_storage(), workspace_id))


async def purge_files(
    sessionmaker: async_sessionmaker[AsyncSession], storage: FileStorage, workspace_id: uuid.UUID
) -> int:
    """Remove the bytes, then the rows, of the workspace's purged files, a batch per transaction. Rows another pass
    holds are skipped; bytes already gone are no error. Returns the files removed."""
    removed = 0
    while True:
        async with sessionmaker() as session:
            ids = list(
                await session.scalars(
                    select(StoredFile.id)
                    .where(StoredFile.workspace_id == workspace_id, StoredFile.purged_at.is_not(None))
                    .order_by(StoredFile.purged_at)
                    .limit(PURGE_BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            for file_id in ids:
                await storage.delete(storage_key(workspace_id, file_id))
            if ids:
                await session.execute(delete(StoredFile).where(StoredFile.id.in_(ids)))
            await session.commit()
        removed += len(ids)
        if len(ids) < PURGE_BATCH:
            return removed
