"""Files: upload (streamed to the storage, never held whole), read, signed download links, and pruning.

Who may read a file: anyone of its workspace while no element holds it; once an element's file field holds it, who
may read that element and that field. A file in the recycle bin with its element, or purged, is not found. Uploading
needs a role that adds or changes some elements (a viewer key cannot upload).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from http import HTTPStatus
from typing import Any, Protocol

from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.access.permissions import RANK
from app.auth.actor import Actor
from app.db import make_sessionmaker
from app.elements.meta_cache import cached_type_meta
from app.elements.models import Element
from app.errors import DomainError, Forbidden, NotFound
from app.files import links
from app.files.binding import purge_files, storage_key
from app.files.models import StoredFile
from app.files.names import clean_mime_type, clean_name
from app.files.schemas import FileDownloadUrl, FileRead
from app.files.storage import FileStorage, StoredObjectMissing, storage_from_settings
from app.kit import background
from app.settings import Settings

logger = logging.getLogger("stageflow.files")
DISCARD_ON_ROLLBACK = "files_discard_on_rollback"  # session.info: keys written in this transaction


class FileTooLarge(DomainError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    slug = "payload-too-large"
    title = "Payload too large"


class UploadSource(Protocol):
    """An upload as the service reads it: first what it says about itself, then its bytes as they arrive."""

    async def open(self) -> tuple[str | None, str | None]:
        """The file's name and content type as sent (either may be missing)."""

    def chunks(self) -> AsyncIterator[bytes]: ...


def may_upload(actor: Actor) -> bool:
    """A file only ever goes into an element's value: uploading needs a role that may add or change some elements."""
    grants = actor.grants
    if grants.full:
        return True
    for role in grants.roles:
        scopes = [role.other_types]
        for type_grants in role.types.values():
            scopes.append(type_grants.actions)
            scopes.extend(type_grants.pipelines.values())
        if any(RANK[actions["add"]] or RANK[actions["update"]] for actions in scopes):
            return True
    return False


async def upload_file(
    session: AsyncSession, actor: Actor, storage: FileStorage, source: UploadSource, *, max_bytes: int
) -> FileRead:
    """Stream the upload into the storage, counting and hashing as it goes, then record it. Past `max_bytes` the
    write is abandoned (nothing is left under its key) and the answer is 413."""
    if not may_upload(actor):
        raise Forbidden("Your role adds and changes no elements: it may not upload files")
    raw_name, raw_type = await source.open()
    file_id = uuid.uuid4()
    key = storage_key(actor.workspace_id, file_id)
    digest = hashlib.sha256()
    size = 0

    async def measured() -> AsyncIterator[bytes]:
        nonlocal size
        async for chunk in source.chunks():
            size += len(chunk)
            if size > max_bytes:
                raise FileTooLarge(f"The file is larger than the limit of {max_bytes} bytes")
            digest.update(chunk)
            yield chunk

    await storage.write(key, measured())
    _discard_on_rollback(session, storage, key)
    row = StoredFile(
        id=file_id,
        workspace_id=actor.workspace_id,
        name=clean_name(raw_name),
        mime_type=clean_mime_type(raw_type),
        size=size,
        sha256=digest.hexdigest(),
        created_by=actor.principal_id,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    return FileRead.model_validate(row)


def _discard_on_rollback(session: AsyncSession, storage: FileStorage, key: str) -> None:
    """Bytes written for a row that never commits are removed (the row is the only way to them)."""
    keys: list[str] | None = session.info.get(DISCARD_ON_ROLLBACK)
    if keys is None:
        keys = session.info[DISCARD_ON_ROLLBACK] = []
        written = keys

        def committed(_: Any) -> None:
            written.clear()

        def ended(_: Any, transaction: Any) -> None:
            if transaction.parent is None and written:
                doomed = list(written)
                written.clear()
                for doomed_key in doomed:
                    background.start(partial(storage.delete, doomed_key))

        event.listen(session.sync_session, "after_commit", committed)
        event.listen(session.sync_session, "after_transaction_end", ended)
    keys.append(key)


# --- reading ---------------------------------------------------------------------------------------------------


async def _readable(session: AsyncSession, actor: Actor, file_id: uuid.UUID) -> StoredFile:
    """The workspace's live file once the actor may read it; NotFound otherwise (never telling which)."""
    row = await session.scalar(
        select(StoredFile).where(
            StoredFile.workspace_id == actor.workspace_id, StoredFile.id == file_id, StoredFile.purged_at.is_(None)
        )
    )
    missing = NotFound(f"File {file_id} not found")
    if row is None:
        raise missing
    if row.element_id is None:
        return row
    element = await session.scalar(
        select(Element).where(Element.workspace_id == actor.workspace_id, Element.id == row.element_id)
    )
    if element is None or element.deleted_at is not None:
        raise missing
    meta = await cached_type_meta(session, actor.workspace_id, element.entity_type_id)
    access = actor.on(meta)
    if not access.may("read", element.pipeline_id, element.assigned_to, element.created_by):
        raise missing
    field = meta.fields_by_id.get(row.field_id) if row.field_id else None
    if field is None or field.row.code in access.hidden:
        raise missing
    return row


async def get_file(session: AsyncSession, actor: Actor, file_id: uuid.UUID) -> FileRead:
    return FileRead.model_validate(await _readable(session, actor, file_id))


async def get_files(session: AsyncSession, actor: Actor, file_ids: list[uuid.UUID]) -> dict[uuid.UUID, FileRead]:
    """Live files of the workspace by id, unchecked: for files of elements the caller has read (GraphQL's typed file
    fields, which keep only the files their element holds)."""
    rows = await session.scalars(
        select(StoredFile).where(
            StoredFile.workspace_id == actor.workspace_id,
            StoredFile.id.in_(file_ids),
            StoredFile.purged_at.is_(None),
        )
    )
    return {row.id: FileRead.model_validate(row) for row in rows}


async def download_url(
    session: AsyncSession, actor: Actor, settings: Settings, file_id: uuid.UUID, *, content_url: str
) -> FileDownloadUrl:
    """A link to the file's bytes that works without a key for FILES_URL_SECONDS; `content_url` is the absolute URL
    of the content route for this file (the adapters know the host the caller reached)."""
    await _readable(session, actor, file_id)
    return signed_url(settings, file_id, content_url=content_url)


def signed_url(
    settings: Settings, file_id: uuid.UUID, *, content_url: str, now: datetime | None = None
) -> FileDownloadUrl:
    """The link for a file the caller may read (checked by the caller)."""
    expires_at = (now or datetime.now(UTC)) + timedelta(seconds=settings.FILES_URL_SECONDS)
    expires = int(expires_at.timestamp())
    signed = links.SignedDownload(file_id, expires, links.signature(links.signing_key(settings), file_id, expires))
    return FileDownloadUrl(url=signed.url(content_url), expires_at=datetime.fromtimestamp(expires, UTC))


async def open_download(
    session: AsyncSession,
    settings: Settings,
    storage: FileStorage,
    file_id: uuid.UUID,
    *,
    expires: int,
    signature: str,
    now: datetime | None = None,
) -> tuple[FileRead, AsyncIterator[bytes]]:
    """The file and its bytes for a signed link: 403 for a link that is not ours or has expired, 404 once the file
    went to the recycle bin or was purged."""
    moment = (now or datetime.now(UTC)).timestamp()
    if not links.valid(links.signing_key(settings), file_id, expires, signature, now=moment):
        raise Forbidden("The download link is not valid, or it has expired: ask for a new one")
    row = await session.scalar(select(StoredFile).where(StoredFile.id == file_id, StoredFile.purged_at.is_(None)))
    missing = NotFound(f"File {file_id} not found")
    if row is None:
        raise missing
    if row.element_id is not None:
        element = (
            await session.execute(
                select(Element.deleted_at).where(Element.workspace_id == row.workspace_id, Element.id == row.element_id)
            )
        ).first()
        if element is None or element.deleted_at is not None:
            raise missing
    try:
        chunks = await storage.open(storage_key(row.workspace_id, row.id))
    except StoredObjectMissing as exc:
        logger.warning("file %s has a row but no bytes in the storage", row.id)
        raise missing from exc
    return FileRead.model_validate(row), chunks


# --- pruning (the worker's retention pass, `stageflow prune`) --------------------------------------------------

ABANDON_SQL = text(
    """
    WITH doomed AS (
        SELECT id FROM files
        WHERE workspace_id = :workspace_id AND element_id IS NULL AND purged_at IS NULL AND created_at < :cutoff
        LIMIT :batch FOR UPDATE SKIP LOCKED
    )
    UPDATE files f SET purged_at = now() FROM doomed WHERE f.id = doomed.id
    """
)


async def prune_files(
    engine: AsyncEngine, settings: Settings, workspace_id: uuid.UUID, *, now: datetime, batch: int
) -> int:
    """Purge the uploads no element took within FILES_UNBOUND_HOURS, then remove every purged file's bytes and row
    (also those an API process purged and could not remove: it stopped, or the storage failed). Returns how many."""
    cutoff = now - timedelta(hours=settings.FILES_UNBOUND_HOURS)
    while True:
        async with engine.begin() as connection:
            marked = (
                await connection.execute(ABANDON_SQL, {"workspace_id": workspace_id, "cutoff": cutoff, "batch": batch})
            ).rowcount
        if marked < batch:
            break
    return await purge_files(make_sessionmaker(engine), storage_from_settings(settings), workspace_id)
