import uuid
from http import HTTPStatus

from fastapi import Body

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.scoring import service
from app.scoring.schemas import (
    CloseProbabilityRead,
    ScoreRequest,
    ScoreResult,
    ScoringModelCreate,
    ScoringModelList,
    ScoringModelRead,
)

router = make_router(tags=["scoring"])


@router.post("/scoring/models", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_scoring_model(data: ScoringModelCreate, session: SessionDep, actor: ActorDep) -> ScoringModelRead:
    return await service.create_model(session, actor, data)


@router.get("/scoring/models", responses=READ_ERRORS)
async def list_scoring_models(session: SessionDep, actor: ActorDep, entity_type: str | None = None) -> ScoringModelList:
    return ScoringModelList(items=await service.list_models(session, actor, entity_type=entity_type))


@router.get("/scoring/models/{model_id}", responses=READ_ERRORS)
async def get_scoring_model(model_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ScoringModelRead:
    return await service.get_model(session, actor, model_id)


@router.post("/scoring/models/{model_id}/train", status_code=HTTPStatus.ACCEPTED, responses=WRITE_ERRORS)
async def train_scoring_model(model_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ScoringModelRead:
    """Train in the background; a trained model gets a new version. Poll `GET /scoring/models/{id}` for status."""
    return await service.request_training(session, actor, model_id)


@router.post("/scoring/models/{model_id}/activate", responses=WRITE_ERRORS)
async def activate_scoring_model(model_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ScoringModelRead:
    return await service.activate_model(session, actor, model_id)


@router.post("/elements/{element_id}/score", responses=WRITE_ERRORS)
async def score_element(
    element_id: uuid.UUID, session: SessionDep, actor: ActorDep, data: ScoreRequest | None = Body(default=None)
) -> ScoreResult:
    return await service.score_element(session, actor, element_id, model_id=data.model_id if data is not None else None)


@router.post("/elements/{element_id}/close-probability", responses=WRITE_ERRORS)
async def compute_close_probability(
    element_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> CloseProbabilityRead:
    """The probability that the element reaches a success stage, from its type's active learned model and its stage
    history as of now, explained feature by feature and written on the element's timeline."""
    return await service.explain_close_probability(session, actor, element_id)
