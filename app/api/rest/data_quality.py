import uuid
from typing import Annotated

from fastapi import Query

from app.api.rest.common import make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.api.rest.problems import problem_responses
from app.dataquality import service
from app.dataquality.schemas import MAX_EXAMPLES, MAX_GROUPS, MergeRequest, MergeResult, QualityReport

router = make_router(tags=["data quality"])


@router.get("/data-quality/report", responses=problem_responses(401, 403, 404, 422))
async def get_data_quality_report(
    session: SessionDep,
    actor: ActorDep,
    entity_type: Annotated[str, Query(min_length=1, max_length=100, description="The type's code or id")],
    examples: Annotated[int, Query(ge=1, le=MAX_EXAMPLES, description="Example elements per broken rule")] = 5,
    groups: Annotated[int, Query(ge=1, le=MAX_GROUPS, description="Duplicate groups listed per reason")] = 20,
) -> QualityReport:
    """Fill rate per field, stored values today's field rules refuse, and likely duplicates (same e-mail, phone or
    title), over the elements of the type you may read; fields your roles hide are left out."""
    return await service.report(session, actor, entity_type, examples=examples, groups=groups)


@router.post("/elements/{element_id}/merge", responses=problem_responses(400, 401, 403, 404, 409, 412, 422))
async def merge_element(element_id: uuid.UUID, data: MergeRequest, session: SessionDep, actor: ActorDep) -> MergeResult:
    """Merge duplicates into this element, all or nothing: it takes the chosen (or its missing) values, their links,
    tasks and comments; they go to the recycle bin (deleted where it is off). Both histories say so."""
    return await service.merge(session, actor, element_id, data)
