from http import HTTPStatus

from fastapi import Query, Response

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.entity_types import service
from app.entity_types.schemas import (
    EntityTypeCreate,
    EntityTypeList,
    EntityTypeRead,
    EntityTypeUpdate,
    FieldCreate,
    FieldList,
    FieldRead,
    FieldUpdate,
)

router = make_router(tags=["entity types"])


@router.post("/entity-types", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_entity_type(data: EntityTypeCreate, session: SessionDep, actor: ActorDep) -> EntityTypeRead:
    return EntityTypeRead.model_validate(await service.create_entity_type(session, actor, data))


@router.get("/entity-types", responses=READ_ERRORS)
async def list_entity_types(session: SessionDep, actor: ActorDep) -> EntityTypeList:
    types = await service.list_entity_types(session, actor)
    return EntityTypeList(items=[EntityTypeRead.model_validate(t) for t in types])


@router.get("/entity-types/{type}", responses=READ_ERRORS)
async def get_entity_type(type: str, session: SessionDep, actor: ActorDep) -> EntityTypeRead:
    return EntityTypeRead.model_validate(await service.get_entity_type_by_ref(session, actor, type))


@router.patch("/entity-types/{type}", responses=WRITE_ERRORS)
async def update_entity_type(type: str, data: EntityTypeUpdate, session: SessionDep, actor: ActorDep) -> EntityTypeRead:
    return EntityTypeRead.model_validate(await service.update_entity_type(session, actor, type, data))


@router.delete("/entity-types/{type}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_entity_type(
    type: str,
    session: SessionDep,
    actor: ActorDep,
    force: bool = Query(default=False, description="Delete the type's elements with it"),
) -> Response:
    await service.delete_entity_type(session, actor, type, force=force)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.post("/entity-types/{type}/fields", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_field(type: str, data: FieldCreate, session: SessionDep, actor: ActorDep) -> FieldRead:
    return await service.create_field(session, actor, type, data)


@router.get("/entity-types/{type}/fields", responses=READ_ERRORS)
async def list_fields(type: str, session: SessionDep, actor: ActorDep) -> FieldList:
    return FieldList(items=await service.list_fields(session, actor, type))


@router.get("/entity-types/{type}/fields/{code}", responses=READ_ERRORS)
async def get_field(type: str, code: str, session: SessionDep, actor: ActorDep) -> FieldRead:
    return await service.get_field(session, actor, type, code)


@router.patch("/entity-types/{type}/fields/{code}", responses=WRITE_ERRORS)
async def update_field(type: str, code: str, data: FieldUpdate, session: SessionDep, actor: ActorDep) -> FieldRead:
    return await service.update_field(session, actor, type, code, data)


@router.delete("/entity-types/{type}/fields/{code}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_field(type: str, code: str, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_field(session, actor, type, code)
    return Response(status_code=HTTPStatus.NO_CONTENT)
