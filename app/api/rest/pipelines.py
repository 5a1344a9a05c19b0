import uuid
from http import HTTPStatus

from fastapi import Query, Response

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, LeanActorDep, ReadConnectionDep, SessionDep, SessionmakerDep, json_body
from app.api.rest.routing import lean_read
from app.elements import reads
from app.elements.board import MAX_PER_STAGE, Board
from app.pipelines import service
from app.pipelines.schemas import (
    PipelineCreate,
    PipelineList,
    PipelineRead,
    PipelineUpdate,
    StageCreate,
    StageList,
    StageOrder,
    StageRead,
    StageUpdate,
)

router = make_router(tags=["pipelines"])


@router.post("/entity-types/{type}/pipelines", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_pipeline(type: str, data: PipelineCreate, session: SessionDep, actor: ActorDep) -> PipelineRead:
    return await service.create_pipeline(session, actor, type, data)


@router.get("/entity-types/{type}/pipelines", responses=READ_ERRORS)
async def list_pipelines(type: str, session: SessionDep, actor: ActorDep) -> PipelineList:
    return PipelineList(items=await service.list_pipelines(session, actor, type))


@router.get("/pipelines/{pipeline_id}", responses=READ_ERRORS)
async def get_pipeline(pipeline_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> PipelineRead:
    return await service.get_pipeline(session, actor, pipeline_id)


@router.patch("/pipelines/{pipeline_id}", responses=WRITE_ERRORS)
async def update_pipeline(
    pipeline_id: uuid.UUID, data: PipelineUpdate, session: SessionDep, actor: ActorDep
) -> PipelineRead:
    return await service.update_pipeline(session, actor, pipeline_id, data)


@router.delete("/pipelines/{pipeline_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_pipeline(
    pipeline_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,
    move_to: uuid.UUID | None = Query(default=None, description="Pipeline that takes the elements"),
) -> Response:
    await service.delete_pipeline(session, actor, pipeline_id, move_to=move_to)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.post("/pipelines/{pipeline_id}/stages", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_stage(pipeline_id: uuid.UUID, data: StageCreate, session: SessionDep, actor: ActorDep) -> StageRead:
    return StageRead.model_validate(await service.create_stage(session, actor, pipeline_id, data))


@router.get("/pipelines/{pipeline_id}/stages", responses=READ_ERRORS)
async def list_stages(pipeline_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> StageList:
    stages = await service.list_stages(session, actor, pipeline_id)
    return StageList(items=[StageRead.model_validate(s) for s in stages])


@router.put("/pipelines/{pipeline_id}/stages/order", responses=WRITE_ERRORS)
async def reorder_stages(pipeline_id: uuid.UUID, data: StageOrder, session: SessionDep, actor: ActorDep) -> StageList:
    stages = await service.reorder_stages(session, actor, pipeline_id, data)
    return StageList(items=[StageRead.model_validate(s) for s in stages])


@router.patch("/stages/{stage_id}", responses=WRITE_ERRORS)
async def update_stage(stage_id: uuid.UUID, data: StageUpdate, session: SessionDep, actor: ActorDep) -> StageRead:
    return StageRead.model_validate(await service.update_stage(session, actor, stage_id, data))


@router.delete("/stages/{stage_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_stage(
    stage_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,
    move_to: uuid.UUID | None = Query(default=None, description="Stage of the same pipeline that takes the elements"),
) -> Response:
    await service.delete_stage(session, actor, stage_id, move_to=move_to)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get("/pipelines/{pipeline_id}/board", response_model=Board, responses=READ_ERRORS)
@lean_read
async def get_board(
    pipeline_id: uuid.UUID,
    connection: ReadConnectionDep,
    sessionmaker: SessionmakerDep,
    actor: LeanActorDep,
    per_stage: int = Query(default=20, ge=0, le=MAX_PER_STAGE),
    filter: str | None = Query(default=None, description="A JSON filter (see the filter language)"),
) -> Response:
    return json_body(await reads.board_json(connection, sessionmaker, actor, pipeline_id, per_stage, filter))
