import uuid
from http import HTTPStatus
from typing import Annotated

from fastapi import Query, Response

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.tasks import service
from app.tasks.models import TaskStatus
from app.tasks.schemas import NotificationList, TaskCreate, TaskList, TaskRead, TaskUpdate

router = make_router(tags=["tasks"])


@router.post("/tasks", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_task(data: TaskCreate, session: SessionDep, actor: ActorDep) -> TaskRead:
    return await service.create_task(session, actor, data)


@router.get("/tasks", responses=READ_ERRORS)
async def list_tasks(
    session: SessionDep,
    actor: ActorDep,
    element_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
    status: TaskStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TaskList:
    return await service.list_tasks(
        session, actor, element_id=element_id, assignee_id=assignee_id, status=status, limit=limit
    )


@router.get("/tasks/{task_id}", responses=READ_ERRORS)
async def get_task(task_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> TaskRead:
    return await service.get_task(session, actor, task_id)


@router.patch("/tasks/{task_id}", responses=WRITE_ERRORS)
async def update_task(task_id: uuid.UUID, data: TaskUpdate, session: SessionDep, actor: ActorDep) -> TaskRead:
    return await service.update_task(session, actor, task_id, data)


@router.delete("/tasks/{task_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_task(task_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_task(session, actor, task_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get("/notifications", responses=READ_ERRORS)
async def list_notifications(
    session: SessionDep,
    actor: ActorDep,
    user_id: uuid.UUID | None = None,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> NotificationList:
    return await service.list_notifications(session, actor, user_id=user_id, unread=unread, limit=limit)
