"""Roles (`/roles`) and who holds them (`PUT /users/{id}/roles`): thin routes over app.access.service."""

import uuid
from http import HTTPStatus

from fastapi import Response

from app.access import service
from app.access.schemas import RoleCreate, RoleIds, RoleList, RoleRead, RoleUpdate
from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.users import service as user_service
from app.users.schemas import UserRead

router = make_router(tags=["roles"])
ADMIN_READ_ERRORS = {**READ_ERRORS, **WRITE_ERRORS}  # only an admin reads roles: 403 for anyone else


@router.get("/roles", responses=ADMIN_READ_ERRORS)
async def list_roles(session: SessionDep, actor: ActorDep) -> RoleList:
    return RoleList(items=await service.list_roles(session, actor))


@router.post("/roles", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_role(data: RoleCreate, session: SessionDep, actor: ActorDep) -> RoleRead:
    return await service.create_role(session, actor, data)


@router.get("/roles/{role_id}", responses=ADMIN_READ_ERRORS)
async def get_role(role_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RoleRead:
    return await service.get_role(session, actor, role_id)


@router.patch("/roles/{role_id}", responses=WRITE_ERRORS)
async def update_role(role_id: uuid.UUID, data: RoleUpdate, session: SessionDep, actor: ActorDep) -> RoleRead:
    return await service.update_role(session, actor, role_id, data)


@router.delete("/roles/{role_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_role(role_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_role(session, actor, role_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.put("/users/{user_id}/roles", tags=["users"], responses=WRITE_ERRORS)
async def set_user_roles(user_id: uuid.UUID, data: RoleIds, session: SessionDep, actor: ActorDep) -> UserRead:
    """Replace the roles the user holds."""
    await service.set_roles_of_user(session, actor, user_id, data.role_ids)
    return await user_service.get_user(session, actor, user_id)
