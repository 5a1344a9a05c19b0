"""Where the bytes of uploaded files live, behind a small interface.

`FileStorage` is all the files service needs: write a stream under a key (all or nothing), open a key as a stream,
delete a key, ask whether one exists. Keys are made of our own ids (`<workspace id>/<file id>`), never of a name a
user sent. `LocalFileStorage` keeps them on the local filesystem (FILES_DIR, by default under the data directory of
`stageflow dev`); an S3-compatible store implements the same four methods (a multipart upload, a streamed GET, a
DELETE, a HEAD) and is picked with FILES_STORAGE.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO, Protocol

from anyio import to_thread

from app.settings import Settings, get_settings

WRITE_BUFFER = 1 << 20  # bytes gathered before each write (one thread hop per MiB, not one per network chunk)
READ_CHUNK = 256 * 1024
KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}(/[A-Za-z0-9][A-Za-z0-9_-]{0,127}){0,3}$")


class StoredObjectMissing(LookupError):
    """The storage has nothing under the key."""


class FileStorage(Protocol):
    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        """Store the stream under `key`, all or nothing: if the stream raises, nothing is left under the key (or
        anywhere else), and the exception goes on."""

    async def open(self, key: str) -> AsyncIterator[bytes]:
        """The stored bytes as chunks; StoredObjectMissing (before any chunk) when there is nothing."""

    async def delete(self, key: str) -> None:
        """Remove the key's bytes; nothing under the key is not an error."""

    async def exists(self, key: str) -> bool: ...


class LocalFileStorage:
    """Files under a root directory: `<root>/<workspace id>/<file id>`. A write goes to a temporary file in the same
    directory, is flushed to disk, then renamed into place (atomic on POSIX): a reader never sees half a file, and an
    interrupted write leaves nothing under the key."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        if not KEY.match(key):
            raise ValueError(f"not a storage key: {key!r}")
        return self.root.joinpath(*key.split("/"))

    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        target = self.path(key)
        handle, temporary = await to_thread.run_sync(_create_temporary, target.parent)
        try:
            buffer = bytearray()
            async for chunk in chunks:
                buffer += chunk
                if len(buffer) >= WRITE_BUFFER:
                    await to_thread.run_sync(handle.write, buffer)
                    buffer.clear()
            if buffer:
                await to_thread.run_sync(handle.write, buffer)
            await to_thread.run_sync(_flush, handle)
            handle.close()
            await to_thread.run_sync(os.replace, temporary, target)
        except BaseException:
            handle.close()
            with suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    async def open(self, key: str) -> AsyncIterator[bytes]:
        try:
            handle = await to_thread.run_sync(_open_for_reading, self.path(key))
        except FileNotFoundError as exc:
            raise StoredObjectMissing(key) from exc
        return _chunks(handle)

    async def delete(self, key: str) -> None:
        path = self.path(key)
        await to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    async def exists(self, key: str) -> bool:
        return await to_thread.run_sync(self.path(key).is_file)


def _create_temporary(directory: Path) -> tuple[BinaryIO, str]:
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=directory, prefix=".", suffix=".part")
    return os.fdopen(descriptor, "wb"), name


def _flush(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _open_for_reading(path: Path) -> BinaryIO:
    return path.open("rb")


async def _chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await to_thread.run_sync(handle.read, READ_CHUNK):
            yield chunk
    finally:
        handle.close()


_storages: dict[tuple[str, str], FileStorage] = {}
_active: FileStorage | None = None


def storage_from_settings(settings: Settings) -> FileStorage:
    """The storage FILES_STORAGE names (one per configuration and process)."""
    key = (settings.FILES_STORAGE, settings.files_dir)
    storage = _storages.get(key)
    if storage is None:
        # The only backend so far; an S3-compatible one would be chosen here by FILES_STORAGE.
        storage = _storages[key] = LocalFileStorage(Path(settings.files_dir).resolve())
    return storage


def use_storage(settings: Settings) -> FileStorage:
    """Make the settings' storage the process's (the API and the worker call this at start-up)."""
    global _active
    _active = storage_from_settings(settings)
    return _active


def active_storage() -> FileStorage:
    """The process's storage, for work that runs after a commit, away from any request."""
    return _active or storage_from_settings(get_settings())
