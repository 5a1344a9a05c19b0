import uuid
from typing import Annotated

from fastapi import Query

from app.analytics import dashboards
from app.analytics.schemas import HeadDashboard, ManagerDashboard
from app.api.rest.common import make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.api.rest.problems import problem_responses

router = make_router(tags=["dashboards"])
ERRORS = problem_responses(401, 403, 404, 422)
TypeQuery = Annotated[str, Query(min_length=1, max_length=100, description="The type's code or id")]
DaysQuery = Annotated[int, Query(ge=1, le=dashboards.MAX_DAYS, description="The period: the last N days (UTC)")]


@router.get("/dashboards/manager", responses=ERRORS)
async def get_manager_dashboard(
    session: SessionDep,
    actor: ActorDep,
    entity_type: TypeQuery,
    pipeline_id: uuid.UUID | None = None,
    days: DaysQuery = 30,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ManagerDashboard:
    """The caller's own: my open elements by score, then longest in their stage, and my KPIs against my previous
    period. A person's token only (an API key gets 403)."""
    return await dashboards.manager(session, actor, entity_type, pipeline_id=pipeline_id, days=days, limit=limit)


@router.get("/dashboards/head", responses=ERRORS)
async def get_head_dashboard(
    session: SessionDep,
    actor: ActorDep,
    entity_type: TypeQuery,
    pipeline_id: uuid.UUID | None = None,
    days: DaysQuery = 30,
    department_id: Annotated[uuid.UUID | None, Query(description="The team: this department and those below")] = None,
) -> HeadDashboard:
    """The team's KPIs against the previous period, leaders, stages that slowed down, the funnel and problem areas.
    Needs a read scope of `department` (the caller's department is the team) or `all` on the pipeline."""
    return await dashboards.head(
        session, actor, entity_type, pipeline_id=pipeline_id, days=days, department_id=department_id
    )
