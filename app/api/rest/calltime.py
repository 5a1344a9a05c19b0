import uuid
from typing import Annotated

from fastapi import Query

from app.api.rest.common import READ_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.calltime import service
from app.calltime.schemas import MAX_DAYS, MAX_SLOTS, BestCallTimeRead

router = make_router(tags=["calltime"])


@router.get("/elements/{element_id}/best-call-time", responses=READ_ERRORS)
async def best_call_time(
    element_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,
    slots: Annotated[int, Query(ge=1, le=MAX_SLOTS, description="How many slots, best first")] = 5,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="How far ahead to look")] = 7,
    segment: Annotated[
        str | None,
        Query(
            max_length=500,
            description="Comma-separated field codes that define similar contacts, e.g. "
            "`client_type,region`; default: none (contact and workspace levels only)",
        ),
    ] = None,
) -> BestCallTimeRead:
    """The next hours to call the element's contact, ranked by the estimated probability of an answer (its own calls,
    similar contacts' and the whole type's, per hour-of-week in the contact's time zone), within the assignee's
    working hours, each explained. Read-only."""
    return await service.best_call_time(
        session, actor, element_id, slots=slots, days=days, segment=service.parse_segment(segment)
    )
