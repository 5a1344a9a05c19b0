import uuid

from app.api.rest.common import make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.api.rest.problems import problem_responses
from app.counters import service
from app.counters.schemas import MyCounters, RecountResult

router = make_router(tags=["counters"])


@router.get("/me/counters", responses=problem_responses(401, 403))
async def get_my_counters(session: SessionDep, actor: ActorDep) -> MyCounters:
    """My counters per entity type I may read: new elements, elements past their stage's time limit, overdue tasks.

    Kept current as elements and tasks change (and as time passes): reading them scans nothing. An API key is
    nobody: it gets 403.
    """
    return await service.my_counters(session, actor)


@router.post("/counters/recount", responses=problem_responses(401, 403, 404, 422))
async def recount_counters(session: SessionDep, actor: ActorDep, user_id: uuid.UUID | None = None) -> RecountResult:
    """Admins: rewrite the workspace's counters (or one user's) from the elements and tasks, and list what was wrong.

    Nothing should be: this is the repair and the check of the incremental counters.
    """
    return await service.recount(session, actor, user_id=user_id)
