import uuid
from http import HTTPStatus

from fastapi import Response

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.departments import service
from app.departments.schemas import DepartmentCreate, DepartmentList, DepartmentRead, DepartmentUpdate

router = make_router(tags=["departments"])


@router.get("/departments", responses=READ_ERRORS)
async def list_departments(session: SessionDep, actor: ActorDep) -> DepartmentList:
    """The whole tree as a flat list: each parent before its sub-departments."""
    return DepartmentList(items=await service.list_departments(session, actor))


@router.post("/departments", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_department(data: DepartmentCreate, session: SessionDep, actor: ActorDep) -> DepartmentRead:
    return await service.create_department(session, actor, data)


@router.get("/departments/{department_id}", responses=READ_ERRORS)
async def get_department(department_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> DepartmentRead:
    return await service.get_department(session, actor, department_id)


@router.patch("/departments/{department_id}", responses=WRITE_ERRORS)
async def update_department(
    department_id: uuid.UUID, data: DepartmentUpdate, session: SessionDep, actor: ActorDep
) -> DepartmentRead:
    """Rename, or move under another department (`parent_id`; null makes it a root). A move under itself or one of
    its sub-departments is refused."""
    return await service.update_department(session, actor, department_id, data)


@router.delete("/departments/{department_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_department(department_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    """Refused (409) while the department has sub-departments or users."""
    await service.delete_department(session, actor, department_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)
