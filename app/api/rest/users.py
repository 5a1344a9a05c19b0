import uuid
from http import HTTPStatus

from fastapi import Response

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.users import service
from app.users.models import UserTier
from app.users.schemas import UserCreate, UserList, UserRead, UserUpdate

router = make_router(tags=["users"])


@router.post("/users", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_user(data: UserCreate, session: SessionDep, actor: ActorDep) -> UserRead:
    return await service.create_user(session, actor, data)


@router.get("/users", responses=READ_ERRORS)
async def list_users(
    session: SessionDep, actor: ActorDep, tier: UserTier | None = None, active: bool | None = None
) -> UserList:
    return UserList(items=await service.list_users(session, actor, tier=tier, active=active))


@router.get("/users/{user_id}", responses=READ_ERRORS)
async def get_user(user_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> UserRead:
    return await service.get_user(session, actor, user_id)


@router.patch("/users/{user_id}", responses=WRITE_ERRORS)
async def update_user(user_id: uuid.UUID, data: UserUpdate, session: SessionDep, actor: ActorDep) -> UserRead:
    return await service.update_user(session, actor, user_id, data)


@router.delete("/users/{user_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_user(user_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_user(session, actor, user_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)
