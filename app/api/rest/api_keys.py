import uuid
from http import HTTPStatus

from fastapi import Response

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.auth import service
from app.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyRead, ApiKeyUpdate

router = make_router(tags=["api keys"])


@router.post("/api-keys", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_api_key(data: ApiKeyCreate, session: SessionDep, actor: ActorDep) -> ApiKeyCreated:
    api_key, secret = await service.create_api_key(session, actor, data)
    return ApiKeyCreated(**ApiKeyRead.model_validate(api_key).model_dump(), api_key=secret)


@router.get("/api-keys", responses={**READ_ERRORS, **WRITE_ERRORS})
async def list_api_keys(session: SessionDep, actor: ActorDep) -> ApiKeyList:
    return ApiKeyList(items=[ApiKeyRead.model_validate(k) for k in await service.list_api_keys(session, actor)])


@router.patch("/api-keys/{key_id}", responses=WRITE_ERRORS)
async def update_api_key(key_id: uuid.UUID, data: ApiKeyUpdate, session: SessionDep, actor: ActorDep) -> ApiKeyRead:
    """Rename the key or change the role it acts with (at once: its next request has the new role)."""
    return ApiKeyRead.model_validate(await service.update_api_key(session, actor, key_id, data))


@router.delete("/api-keys/{key_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_api_key(key_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await service.revoke_api_key(session, actor, key_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)
