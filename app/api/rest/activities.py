import uuid
from datetime import datetime
from http import HTTPStatus
from typing import Annotated

from fastapi import Query, Response

from app.activities import service
from app.activities.models import ActivityKind, ActivityStatus
from app.activities.schemas import (
    MAX_PAGE,
    ActivityComplete,
    ActivityCreate,
    ActivityPage,
    ActivityRead,
    ActivityUpdate,
)
from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep

router = make_router(tags=["activities"])


@router.post("/activities", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_activity(data: ActivityCreate, session: SessionDep, actor: ActorDep) -> ActivityRead:
    """Log a call, meeting, e-mail or message on one or more elements (`activity.created`, and
    `activity.completed` when it is completed, fire for each)."""
    return await service.create_activity(session, actor, data)


@router.get("/activities", responses=READ_ERRORS)
async def list_activities(
    session: SessionDep,
    actor: ActorDep,
    element_id: uuid.UUID | None = None,
    kind: Annotated[list[ActivityKind] | None, Query(max_length=4, description="Repeatable")] = None,
    responsible_id: uuid.UUID | None = None,
    status: ActivityStatus | None = None,
    since: Annotated[datetime | None, Query(alias="from", description="Start time, inclusive")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="Start time, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ActivityPage:
    """Activities you may read (bound to an element you may read), newest start first."""
    return await service.list_activities(
        session,
        actor,
        element_id=element_id,
        kinds=kind,
        responsible_id=responsible_id,
        status=status,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@router.get("/activities/{activity_id}", responses=READ_ERRORS)
async def get_activity(activity_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ActivityRead:
    return await service.get_activity(session, actor, activity_id)


@router.patch("/activities/{activity_id}", responses=WRITE_ERRORS)
async def update_activity(
    activity_id: uuid.UUID, data: ActivityUpdate, session: SessionDep, actor: ActorDep
) -> ActivityRead:
    return await service.update_activity(session, actor, activity_id, data)


@router.post("/activities/{activity_id}/complete", responses=WRITE_ERRORS)
async def complete_activity(
    activity_id: uuid.UUID, data: ActivityComplete, session: SessionDep, actor: ActorDep
) -> ActivityRead:
    """Mark a planned activity completed, with a call's outcome (`activity.completed` fires for each element)."""
    return await service.complete_activity(session, actor, activity_id, data)


@router.delete("/activities/{activity_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_activity(activity_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_activity(session, actor, activity_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)
