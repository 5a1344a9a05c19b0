import uuid
from http import HTTPStatus

from fastapi import Response

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.workplaces import service
from app.workplaces.schemas import WorkplaceCreate, WorkplaceList, WorkplaceRead, WorkplaceUpdate

router = make_router(tags=["workplaces"])


@router.get("/workplaces", responses=READ_ERRORS)
async def list_workplaces(session: SessionDep, actor: ActorDep) -> WorkplaceList:
    """The workplaces the caller's roles may see, each with the entity types they may read: a frontend's menu."""
    return WorkplaceList(items=await service.list_workplaces(session, actor))


@router.post("/workplaces", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_workplace(data: WorkplaceCreate, session: SessionDep, actor: ActorDep) -> WorkplaceRead:
    return await service.create_workplace(session, actor, data)


@router.get("/workplaces/{workplace_id}", responses=READ_ERRORS)
async def get_workplace(workplace_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> WorkplaceRead:
    return await service.get_workplace(session, actor, workplace_id)


@router.patch("/workplaces/{workplace_id}", responses=WRITE_ERRORS)
async def update_workplace(
    workplace_id: uuid.UUID, data: WorkplaceUpdate, session: SessionDep, actor: ActorDep
) -> WorkplaceRead:
    return await service.update_workplace(session, actor, workplace_id, data)


@router.delete("/workplaces/{workplace_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_workplace(workplace_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_workplace(session, actor, workplace_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)
