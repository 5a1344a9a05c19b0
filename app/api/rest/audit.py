import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Query

from app.api.rest.common import make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.api.rest.problems import problem_responses
from app.audit import service
from app.audit.schemas import AuditPage

router = make_router(tags=["audit"])
ADMIN_READ_ERRORS = problem_responses(401, 403, 404, 422)
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/audit", responses=ADMIN_READ_ERRORS)
async def list_audit(
    session: SessionDep,
    actor: ActorDep,
    element_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    api_key_id: uuid.UUID | None = None,
    action: Annotated[
        str | None, Query(max_length=300, description="e.g. `PATCH /api/v1/elements/{element_id}`, `createLead`")
    ] = None,
    object_type: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[datetime | None, Query(alias="from", description="Inclusive")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="Exclusive")] = None,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> AuditPage:
    """Who changed what, when and from where, newest first (admins only)."""
    return await service.list_entries(
        session,
        actor,
        element_id=element_id,
        user_id=user_id,
        api_key_id=api_key_id,
        action=action,
        object_type=object_type,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@router.get("/elements/{element_id}/audit", responses=ADMIN_READ_ERRORS)
async def get_element_audit(
    element_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> AuditPage:
    """Every write to one element, newest first (admins only)."""
    return await service.element_entries(session, actor, element_id, limit=limit, cursor=cursor)
