import uuid
from http import HTTPStatus
from typing import Annotated

from fastapi import Query, Request, Security
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials

from app.api.rest.common import READ_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep, bearer, resolve_actor
from app.api.rest.problems import problem_responses
from app.api.rest.uploads import MultipartFile
from app.auth.actor import Actor
from app.files import service
from app.files.names import content_disposition
from app.files.schemas import FileDownloadUrl, FileRead
from app.files.storage import FileStorage
from app.settings import Settings

router = make_router(tags=["files"])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary", "description": "The file"}},
                }
            }
        },
    }
}


async def get_uploader(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> Actor:
    """The caller, as `get_actor` finds them. Its own dependency so that the route class does not read the whole
    body for an `Idempotency-Key` (an upload is not replayed: it streams, and a retry uploads anew)."""
    return await resolve_actor(request)


UploaderDep = Annotated[Actor, Security(get_uploader)]


def _storage(request: Request) -> FileStorage:
    storage: FileStorage = request.app.state.file_storage
    return storage


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.post(
    "/files",
    status_code=HTTPStatus.CREATED,
    responses=problem_responses(400, 401, 403, 413, 415, 422),
    openapi_extra=UPLOAD_BODY,
)
async def upload_file(request: Request, session: SessionDep, actor: UploaderDep) -> FileRead:
    """Upload one file (multipart/form-data, one part with a filename), streamed to the storage as it arrives; name
    its `id` in a file field's value to attach it. Up to FILES_MAX_BYTES (413 beyond)."""
    # A long upload must not hold a pooled connection: end the transaction that authenticated the caller.
    await session.commit()
    settings = _settings(request)
    source = MultipartFile(request, max_file_bytes=settings.FILES_MAX_BYTES)
    return await service.upload_file(session, actor, _storage(request), source, max_bytes=settings.FILES_MAX_BYTES)


@router.get("/files/{file_id}", responses=READ_ERRORS)
async def get_file(file_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> FileRead:
    return await service.get_file(session, actor, file_id)


@router.get("/files/{file_id}/url", responses=READ_ERRORS)
async def get_file_download_url(
    file_id: uuid.UUID, request: Request, session: SessionDep, actor: ActorDep
) -> FileDownloadUrl:
    """A short-lived link to the file's bytes that needs no API key (FILES_URL_SECONDS)."""
    content_url = str(request.url_for("download_file_content", file_id=str(file_id)))
    return await service.download_url(session, actor, _settings(request), file_id, content_url=content_url)


@router.get(
    "/files/{file_id}/content",
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        **problem_responses(403, 404, 422),
    },
    response_class=StreamingResponse,
)
async def download_file_content(
    file_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    expires: Annotated[int, Query(ge=0, le=2**40, description="From the signed link")],
    signature: Annotated[str, Query(max_length=200, description="From the signed link")],
) -> StreamingResponse:
    """The file's bytes, for a link from `GET /files/{file_id}/url`: no API key, the signature is the credential."""
    read, chunks = await service.open_download(
        session, _settings(request), _storage(request), file_id, expires=expires, signature=signature
    )
    headers = {
        "Content-Length": str(read.size),
        "Content-Disposition": content_disposition(read.name),
        "X-Content-Type-Options": "nosniff",
        # Whatever the bytes are (an uploaded HTML page…), they run nothing on our origin.
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    }
    return StreamingResponse(chunks, media_type=read.mime_type, headers=headers)
