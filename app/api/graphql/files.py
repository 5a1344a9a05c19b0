"""Files in GraphQL: `file(id)`, `fileDownloadUrl(id)`, and the `File` a typed file field resolves to.

Uploads stay REST-only (`POST /api/v1/files`, multipart): GraphQL carries the ids they answer.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from fastapi import Request

from app.api.graphql.context import Info
from app.api.graphql.scalars import BigInt
from app.errors import DomainError
from app.files import service
from app.files.schemas import FileDownloadUrl as FileDownloadUrlRead
from app.files.schemas import FileRead


class NoRequest(DomainError):
    title = "No request"
    slug = "no-request"


def content_url(info: Info, file_id: uuid.UUID) -> str:
    """The absolute URL of the file's content route, on the host the caller reached."""
    request = info.context.request
    if not isinstance(request, Request):
        raise NoRequest("Download links are made over HTTP")
    return str(request.url_for("download_file_content", file_id=str(file_id)))


@strawberry.type(description="A link to a file's bytes that needs no API key until it expires")
class FileDownloadUrl:
    url: str
    expires_at: datetime

    @classmethod
    def from_read(cls, read: FileDownloadUrlRead) -> FileDownloadUrl:
        return cls(url=read.url, expires_at=read.expires_at)


@strawberry.type(description="An uploaded file (upload with REST: `POST /api/v1/files`)")
class File:
    id: uuid.UUID
    name: str
    size: BigInt = strawberry.field(description="Bytes")
    mime_type: str
    sha256: str
    created_at: datetime
    element_id: uuid.UUID | None = strawberry.field(description="The element whose file field holds it, if any")

    @classmethod
    def from_read(cls, read: FileRead) -> File:
        return cls(
            id=read.id,
            name=read.name,
            size=BigInt(read.size),
            mime_type=read.mime_type,
            sha256=read.sha256,
            created_at=read.created_at,
            element_id=read.element_id,
        )

    @strawberry.field(description="A short-lived signed link to the bytes (FILES_URL_SECONDS)")
    def download_url(self, info: Info) -> FileDownloadUrl:
        # A File is only ever built for a caller who may read it (`file`, or an element they read).
        link = service.signed_url(info.context.settings, self.id, content_url=content_url(info, self.id))
        return FileDownloadUrl.from_read(link)


@strawberry.type
class FilesQuery:
    @strawberry.field(description="A file's metadata: its workspace's while no element holds it, else its element's")
    async def file(self, info: Info, id: uuid.UUID) -> File:
        return File.from_read(await service.get_file(info.context.session, info.context.who, id))

    @strawberry.field(description="A short-lived signed link to a file's bytes, as `GET /files/{id}/url` gives")
    async def file_download_url(self, info: Info, id: uuid.UUID) -> FileDownloadUrl:
        read = await service.download_url(
            info.context.session, info.context.who, info.context.settings, id, content_url=content_url(info, id)
        )
        return FileDownloadUrl.from_read(read)
