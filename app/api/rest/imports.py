import asyncio
import json
import uuid
from http import HTTPStatus
from typing import Annotated

from fastapi import File, Form, UploadFile

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.errors import FieldError, Invalid
from app.imports import service
from app.imports.schemas import ImportRead
from app.kit.jsonlimits import check_depth

router = make_router(tags=["imports"])


def _mapping(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    check_depth(raw, location="mapping")
    try:
        mapping = json.loads(raw)
    except ValueError:
        mapping = None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise Invalid("The mapping is not valid", errors=[FieldError("mapping", "a JSON object column -> field")])
    return mapping


@router.post("/entity-types/{type}/import", status_code=HTTPStatus.ACCEPTED, responses=WRITE_ERRORS)
async def import_elements(
    type: str,
    session: SessionDep,
    actor: ActorDep,
    file: Annotated[UploadFile, File(description="A CSV file with a header line (UTF-8)")],
    mapping: Annotated[str | None, Form(description='JSON {"CSV column": "field code" or "-" to skip}')] = None,
    create_fields: Annotated[bool, Form(description="Create missing fields with inferred types")] = False,
) -> ImportRead:
    """Import a CSV in the background, batch by batch; follow it with `GET /entity-types/{type}/imports/{id}`."""
    content = await file.read(service.MAX_BYTES + 1)
    try:
        text = await asyncio.to_thread(content.decode, "utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid("The file is not UTF-8 text", errors=[FieldError("file", "must be UTF-8 CSV")]) from exc
    return await service.start_job(
        session,
        actor,
        type,
        filename=file.filename or "upload.csv",
        text=text,
        mapping=_mapping(mapping),
        create_fields=create_fields,
    )


@router.get("/entity-types/{type}/imports/{import_id}", responses=READ_ERRORS)
async def get_import(type: str, import_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ImportRead:
    return await service.get_job(session, actor, type, import_id)


@router.post("/entity-types/{type}/imports/{import_id}/resume", status_code=HTTPStatus.ACCEPTED, responses=WRITE_ERRORS)
async def resume_import(type: str, import_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ImportRead:
    """Carry on a failed or interrupted import after its last committed batch."""
    return await service.resume_job(session, actor, type, import_id)
