import uuid

from fastapi import Body

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.triage import service
from app.triage.schemas import (
    TriageConfigRead,
    TriageConfigWrite,
    TriageElementRequest,
    TriageResultRead,
    TriageTrainRequest,
)

router = make_router(tags=["triage"])


@router.get("/entity-types/{type}/triage", responses=READ_ERRORS)
async def get_triage_config(type: str, session: SessionDep, actor: ActorDep) -> TriageConfigRead:
    return await service.get_config(session, actor, type)


@router.put("/entity-types/{type}/triage", responses=WRITE_ERRORS)
async def put_triage_config(
    type: str, data: TriageConfigWrite, session: SessionDep, actor: ActorDep
) -> TriageConfigRead:
    """Which text fields are read, and which enum fields hold the category and the urgency."""
    return await service.put_config(session, actor, type, data)


@router.post("/entity-types/{type}/triage/train", responses=WRITE_ERRORS)
async def train_triage(
    type: str, session: SessionDep, actor: ActorDep, data: TriageTrainRequest | None = Body(default=None)
) -> TriageConfigRead:
    """Learn the category and urgency from the type's labelled elements; the answer carries hold-out accuracy and
    macro-F1, the encoder used, and the training's steps and timings."""
    return await service.train(session, actor, type, data)


@router.post("/elements/{element_id}/triage", responses=WRITE_ERRORS)
async def triage_element(
    element_id: uuid.UUID, session: SessionDep, actor: ActorDep, data: TriageElementRequest | None = Body(default=None)
) -> TriageResultRead:
    """Category and urgency with probabilities and an explanation, and the most similar solved requests you may read;
    written on the element's timeline (`apply`: the fields are set too)."""
    return await service.triage_element(session, actor, element_id, data)
