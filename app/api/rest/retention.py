from fastapi import Request

from app.api.rest.common import make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.api.rest.problems import problem_responses
from app.retention import service
from app.retention.schemas import RetentionRead, RetentionUpdate
from app.settings import Settings

router = make_router(tags=["workspace"])
ADMIN_ERRORS = problem_responses(401, 403)
ADMIN_WRITE_ERRORS = problem_responses(400, 401, 403, 422)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.get("/workspace/retention", responses=ADMIN_ERRORS)
async def get_retention(request: Request, session: SessionDep, actor: ActorDep) -> RetentionRead:
    """How long finished runs, deliveries, handled events and timeline entries are kept (admins only)."""
    return await service.get_retention(session, actor, _settings(request))


@router.patch("/workspace/retention", responses=ADMIN_WRITE_ERRORS)
async def update_retention(
    data: RetentionUpdate, request: Request, session: SessionDep, actor: ActorDep
) -> RetentionRead:
    """Set some of them: days, or null to keep forever; the others stay as they are (admins only)."""
    return await service.update_retention(session, actor, _settings(request), data)


@router.delete("/workspace/retention", responses=ADMIN_ERRORS)
async def reset_retention(request: Request, session: SessionDep, actor: ActorDep) -> RetentionRead:
    """Back to the instance's defaults (admins only)."""
    return await service.reset_retention(session, actor, _settings(request))
