import uuid
from http import HTTPStatus

from fastapi import Response

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.relations import service
from app.relations.schemas import RelationCreate, RelationList, RelationRead

router = make_router(tags=["relations"])


@router.post("/relations", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_relation(data: RelationCreate, session: SessionDep, actor: ActorDep) -> RelationRead:
    return await service.create_relation(session, actor, data)


@router.get("/relations", responses=READ_ERRORS)
async def list_relations(session: SessionDep, actor: ActorDep) -> RelationList:
    return RelationList(items=await service.list_relations(session, actor))


@router.delete("/relations/{relation_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_relation(relation_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_relation(session, actor, relation_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)
