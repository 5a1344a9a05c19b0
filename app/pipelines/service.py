import uuid

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.service import close_new_pipeline
from app.access.visibility import ensure_sees_type
from app.auth.actor import Actor
from app.elements import service as element_service
from app.elements.models import Element
from app.entity_types.meta import get_entity_type
from app.entity_types.models import EntityType
from app.entity_types.schemas import EntityTypeSettings
from app.errors import Conflict, ErrorCollector, FieldError, Invalid, NotFound
from app.outbox.service import record_event
from app.pipelines.models import Pipeline, Stage
from app.pipelines.schemas import (
    DEFAULT_STAGES,
    PipelineCreate,
    PipelineRead,
    PipelineUpdate,
    StageCreate,
    StageOrder,
    StageRead,
    StageUpdate,
)
from app.workspaces.service import bump_metadata_version

SORT_STEP = 10


# --- reading ---------------------------------------------------------------------------------------------------


async def _stages_by_pipeline(session: AsyncSession, pipeline_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Stage]]:
    grouped: dict[uuid.UUID, list[Stage]] = {pid: [] for pid in pipeline_ids}
    if pipeline_ids:
        for stage in await session.scalars(
            select(Stage).where(Stage.pipeline_id.in_(pipeline_ids)).order_by(Stage.sort, Stage.code)
        ):
            grouped[stage.pipeline_id].append(stage)
    return grouped


def _read(pipeline: Pipeline, type_code: str, stages: list[Stage]) -> PipelineRead:
    return PipelineRead(
        id=pipeline.id,
        entity_type=type_code,
        title=pipeline.title,
        is_default=pipeline.is_default,
        sort=pipeline.sort,
        created_at=pipeline.created_at,
        stages=[StageRead.model_validate(s) for s in stages],
    )


async def _pipeline_read(session: AsyncSession, pipeline: Pipeline) -> PipelineRead:
    type_code = await session.scalar(select(EntityType.code).where(EntityType.id == pipeline.entity_type_id))
    stages = await _stages_by_pipeline(session, [pipeline.id])
    return _read(pipeline, type_code or "", stages[pipeline.id])


async def _get_pipeline(session: AsyncSession, actor: Actor, pipeline_id: uuid.UUID, *, lock: bool = False) -> Pipeline:
    statement = select(Pipeline).where(Pipeline.workspace_id == actor.workspace_id, Pipeline.id == pipeline_id)
    pipeline = await session.scalar(statement.with_for_update() if lock else statement)
    if pipeline is None:
        raise NotFound("Pipeline not found")
    return pipeline


async def _get_stage(session: AsyncSession, actor: Actor, stage_id: uuid.UUID) -> Stage:
    stage = await session.scalar(select(Stage).where(Stage.workspace_id == actor.workspace_id, Stage.id == stage_id))
    if stage is None:
        raise NotFound("Stage not found")
    return stage


async def _shown_pipeline(session: AsyncSession, actor: Actor, pipeline_id: uuid.UUID) -> tuple[Pipeline, str]:
    """A pipeline and its type's code, for someone who may see the type (app.access.visibility)."""
    pipeline = await _get_pipeline(session, actor, pipeline_id)
    type_code = await session.scalar(select(EntityType.code).where(EntityType.id == pipeline.entity_type_id))
    ensure_sees_type(actor, pipeline.entity_type_id, type_code or "", "Pipeline not found")
    return pipeline, type_code or ""


async def list_pipelines(session: AsyncSession, actor: Actor, type_ref: str) -> list[PipelineRead]:
    entity_type = await get_entity_type(session, actor.workspace_id, type_ref)
    ensure_sees_type(actor, entity_type.id, entity_type.code, f"Entity type {type_ref!r} not found")
    pipelines = list(
        await session.scalars(
            select(Pipeline)
            .where(Pipeline.entity_type_id == entity_type.id)
            .order_by(Pipeline.sort, Pipeline.created_at)
        )
    )
    stages = await _stages_by_pipeline(session, [p.id for p in pipelines])
    return [_read(p, entity_type.code, stages[p.id]) for p in pipelines]


async def get_pipeline(session: AsyncSession, actor: Actor, pipeline_id: uuid.UUID) -> PipelineRead:
    pipeline, type_code = await _shown_pipeline(session, actor, pipeline_id)
    return _read(pipeline, type_code, (await _stages_by_pipeline(session, [pipeline.id]))[pipeline.id])


async def count_stages(session: AsyncSession, actor: Actor, pipeline_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Stages per pipeline of the actor's workspace (a GraphQL board costs one page per stage); others count 0."""
    counts = dict.fromkeys(pipeline_ids, 0)
    if pipeline_ids:
        rows = await session.execute(
            select(Stage.pipeline_id, func.count())
            .where(Stage.workspace_id == actor.workspace_id, Stage.pipeline_id.in_(pipeline_ids))
            .group_by(Stage.pipeline_id)
        )
        counts.update({pipeline_id: int(count) for pipeline_id, count in rows})
    return counts


async def list_stages(session: AsyncSession, actor: Actor, pipeline_id: uuid.UUID) -> list[Stage]:
    pipeline, _ = await _shown_pipeline(session, actor, pipeline_id)
    return (await _stages_by_pipeline(session, [pipeline.id]))[pipeline.id]


# --- writing ---------------------------------------------------------------------------------------------------


def _check_stage_codes(stages: list[StageCreate]) -> None:
    errors = ErrorCollector()
    seen: set[str] = set()
    for index, stage in enumerate(stages):
        if stage.code in seen:
            errors.add(f"stages[{index}].code", f"duplicate stage code {stage.code!r}")
        seen.add(stage.code)
    errors.raise_if_any("The stages are not valid")


async def add_pipeline(
    session: AsyncSession,
    entity_type: EntityType,
    *,
    title: str,
    is_default: bool,
    sort: int,
    stages: list[StageCreate] | None,
) -> Pipeline:
    """Insert a pipeline and its stages (the default four when none are given); no checks, no events."""
    stage_specs = list(stages or DEFAULT_STAGES)
    _check_stage_codes(stage_specs)
    pipeline = Pipeline(
        workspace_id=entity_type.workspace_id,
        entity_type_id=entity_type.id,
        title=title,
        is_default=is_default,
        sort=sort,
    )
    session.add(pipeline)
    await session.flush()
    for index, spec in enumerate(stage_specs):
        session.add(
            Stage(
                workspace_id=entity_type.workspace_id,
                pipeline_id=pipeline.id,
                code=spec.code,
                title=spec.title or spec.code,
                semantic=spec.semantic,
                color=spec.color,
                sort=spec.sort if spec.sort is not None else (index + 1) * SORT_STEP,
                time_limit_minutes=spec.time_limit_minutes,
            )
        )
    await session.flush()
    return pipeline


def _ensure_stages_enabled(entity_type: EntityType) -> EntityTypeSettings:
    settings = EntityTypeSettings.model_validate(entity_type.settings)
    if not settings.stages_enabled:
        raise Conflict(f"Stages are turned off for entity type {entity_type.code!r}")
    return settings


async def create_pipeline(session: AsyncSession, actor: Actor, type_ref: str, data: PipelineCreate) -> PipelineRead:
    actor.ensure_can_write()
    entity_type = await get_entity_type(session, actor.workspace_id, type_ref)
    settings = _ensure_stages_enabled(entity_type)
    existing = list(
        await session.scalars(select(Pipeline).where(Pipeline.entity_type_id == entity_type.id).with_for_update())
    )
    if existing and not settings.pipelines_enabled:
        raise Conflict(f"Entity type {entity_type.code!r} has one pipeline only: turn on pipelines_enabled first")
    make_default = data.is_default or not existing
    if make_default:
        for other in existing:
            other.is_default = False
        await session.flush()
    sort = data.sort if data.sort is not None else (max((p.sort for p in existing), default=0) + SORT_STEP)
    pipeline = await add_pipeline(
        session, entity_type, title=data.title, is_default=make_default, sort=sort, stages=data.stages
    )
    if existing and not settings.open_new_pipelines:
        await close_new_pipeline(session, entity_type.id, actor.workspace_id, pipeline.id)
    await _metadata_changed(session, actor, "pipeline.created", pipeline.id)
    return await _pipeline_read(session, pipeline)


async def update_pipeline(
    session: AsyncSession, actor: Actor, pipeline_id: uuid.UUID, data: PipelineUpdate
) -> PipelineRead:
    actor.ensure_can_write()
    pipeline = await _get_pipeline(session, actor, pipeline_id, lock=True)
    if data.title is not None:
        pipeline.title = data.title
    if data.sort is not None:
        pipeline.sort = data.sort
    if data.is_default is False and pipeline.is_default:
        raise Conflict("A type needs a default pipeline: make another pipeline the default instead")
    if data.is_default and not pipeline.is_default:
        await session.execute(
            update(Pipeline)
            .where(Pipeline.entity_type_id == pipeline.entity_type_id, Pipeline.is_default.is_(True))
            .values(is_default=False)
        )
        await session.flush()
        pipeline.is_default = True
    await session.flush()
    await _metadata_changed(session, actor, "pipeline.updated", pipeline.id)
    return await _pipeline_read(session, pipeline)


async def delete_pipeline(
    session: AsyncSession, actor: Actor, pipeline_id: uuid.UUID, *, move_to: uuid.UUID | None
) -> None:
    actor.ensure_can_write()
    pipeline = await _get_pipeline(session, actor, pipeline_id, lock=True)
    if pipeline.is_default:
        raise Conflict("The default pipeline cannot be deleted: make another pipeline the default first")
    holds_elements = await session.scalar(select(exists().where(Element.pipeline_id == pipeline.id)))
    if holds_elements:
        if move_to is None:
            raise Conflict("The pipeline holds elements: pass ?move_to=<pipeline id> to move them first")
        target = await _get_pipeline(session, actor, move_to)
        if target.id == pipeline.id or target.entity_type_id != pipeline.entity_type_id:
            raise Invalid("move_to must be another pipeline of the same entity type")
        await _move_pipeline_elements(session, actor, pipeline, target)
    await session.delete(pipeline)
    await session.flush()
    await _metadata_changed(session, actor, "pipeline.deleted", pipeline.id)


async def _move_pipeline_elements(session: AsyncSession, actor: Actor, source: Pipeline, target: Pipeline) -> None:
    """Move every element of `source` into `target`: to the stage with the same code, else the first stage."""
    stages = await _stages_by_pipeline(session, [source.id, target.id])
    target_by_code = {s.code: s for s in stages[target.id]}
    first = stages[target.id][0]
    for stage in stages[source.id]:
        destination = target_by_code.get(stage.code, first)
        await element_service.move_stage_elements(session, actor, stage, destination)


async def create_stage(session: AsyncSession, actor: Actor, pipeline_id: uuid.UUID, data: StageCreate) -> Stage:
    actor.ensure_can_write()
    pipeline = await _get_pipeline(session, actor, pipeline_id, lock=True)
    stages = (await _stages_by_pipeline(session, [pipeline.id]))[pipeline.id]
    if any(s.code == data.code for s in stages):
        raise Conflict(f"Stage code {data.code!r} is already used in this pipeline")
    sort = data.sort if data.sort is not None else max((s.sort for s in stages), default=0) + SORT_STEP
    stage = Stage(
        workspace_id=actor.workspace_id,
        pipeline_id=pipeline.id,
        code=data.code,
        title=data.title or data.code,
        semantic=data.semantic,
        color=data.color,
        sort=sort,
        time_limit_minutes=data.time_limit_minutes,
    )
    session.add(stage)
    await session.flush()
    await _metadata_changed(session, actor, "stage.created", stage.id)
    return stage


async def update_stage(session: AsyncSession, actor: Actor, stage_id: uuid.UUID, data: StageUpdate) -> Stage:
    actor.ensure_can_write()
    stage = await _get_stage(session, actor, stage_id)
    await _get_pipeline(session, actor, stage.pipeline_id, lock=True)
    if data.code is not None and data.code != stage.code:
        taken = await session.scalar(
            select(exists().where(Stage.pipeline_id == stage.pipeline_id, Stage.code == data.code))
        )
        if taken:
            raise Conflict(f"Stage code {data.code!r} is already used in this pipeline")
    for name, value in data.model_dump(exclude_unset=True).items():
        # A null clears the time limit; for the other fields it means "unchanged".
        if value is not None or name == "time_limit_minutes":
            setattr(stage, name, value)
    # Triggers re-derive which of the stage's elements are overdue under a new limit (migration 20261130_counters).
    await session.flush()
    await _metadata_changed(session, actor, "stage.updated", stage.id)
    return stage


async def delete_stage(session: AsyncSession, actor: Actor, stage_id: uuid.UUID, *, move_to: uuid.UUID | None) -> None:
    actor.ensure_can_write()
    stage = await _get_stage(session, actor, stage_id)
    await _get_pipeline(session, actor, stage.pipeline_id, lock=True)
    siblings = await session.scalar(select(func.count()).where(Stage.pipeline_id == stage.pipeline_id))
    if (siblings or 0) <= 1:
        raise Conflict("A pipeline keeps at least one stage")
    if await session.scalar(select(exists().where(Element.stage_id == stage.id))):
        if move_to is None:
            raise Conflict("The stage holds elements: pass ?move_to=<stage id> to move them first")
        target = await _get_stage(session, actor, move_to)
        if target.id == stage.id or target.pipeline_id != stage.pipeline_id:
            raise Invalid("move_to must be another stage of the same pipeline")
        await element_service.move_stage_elements(session, actor, stage, target)
    await session.delete(stage)
    await session.flush()
    await _metadata_changed(session, actor, "stage.deleted", stage.id)


async def reorder_stages(session: AsyncSession, actor: Actor, pipeline_id: uuid.UUID, data: StageOrder) -> list[Stage]:
    actor.ensure_can_write()
    pipeline = await _get_pipeline(session, actor, pipeline_id, lock=True)
    stages = (await _stages_by_pipeline(session, [pipeline.id]))[pipeline.id]
    by_id = {s.id: s for s in stages}
    if len(data.stage_ids) != len(set(data.stage_ids)) or set(data.stage_ids) != set(by_id):
        raise Invalid(
            "stage_ids must list every stage of the pipeline exactly once",
            errors=[FieldError("stage_ids", "must be a permutation of the pipeline's stage ids")],
        )
    for index, stage_id in enumerate(data.stage_ids):
        by_id[stage_id].sort = (index + 1) * SORT_STEP
    await session.flush()
    await _metadata_changed(session, actor, "stages.reordered", pipeline.id)
    return [by_id[i] for i in data.stage_ids]


async def _metadata_changed(session: AsyncSession, actor: Actor, event_type: str, object_id: uuid.UUID) -> None:
    await bump_metadata_version(session, actor.workspace_id)
    record_event(session, actor.workspace_id, event_type, payload={"id": str(object_id)})


# --- batch reads (GraphQL DataLoaders) -------------------------------------------------------------------------


async def get_stages(session: AsyncSession, actor: Actor, stage_ids: list[uuid.UUID]) -> list[StageRead]:
    """The workspace's stages among `stage_ids`, in one query."""
    rows = await session.scalars(select(Stage).where(Stage.workspace_id == actor.workspace_id, Stage.id.in_(stage_ids)))
    return [StageRead.model_validate(s) for s in rows]


async def get_pipelines(session: AsyncSession, actor: Actor, pipeline_ids: list[uuid.UUID]) -> list[PipelineRead]:
    """The workspace's pipelines among `pipeline_ids` with their stages, in three queries."""
    pipelines = list(
        await session.scalars(
            select(Pipeline).where(Pipeline.workspace_id == actor.workspace_id, Pipeline.id.in_(pipeline_ids))
        )
    )
    type_ids = {p.entity_type_id for p in pipelines}
    codes = {
        row.id: row.code
        for row in await session.execute(select(EntityType.id, EntityType.code).where(EntityType.id.in_(type_ids)))
    }
    stages = await _stages_by_pipeline(session, [p.id for p in pipelines])
    return [_read(p, codes.get(p.entity_type_id, ""), stages[p.id]) for p in pipelines]


async def pipelines_by_type(
    session: AsyncSession, actor: Actor, type_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[PipelineRead]]:
    """The pipelines (with stages) of several entity types in three queries (GraphQL DataLoaders)."""
    pipelines = list(
        await session.scalars(
            select(Pipeline)
            .where(Pipeline.workspace_id == actor.workspace_id, Pipeline.entity_type_id.in_(type_ids))
            .order_by(Pipeline.sort, Pipeline.created_at)
        )
    )
    codes = {
        row.id: row.code
        for row in await session.execute(select(EntityType.id, EntityType.code).where(EntityType.id.in_(type_ids)))
    }
    stages = await _stages_by_pipeline(session, [p.id for p in pipelines])
    grouped: dict[uuid.UUID, list[PipelineRead]] = {type_id: [] for type_id in type_ids}
    for p in pipelines:
        grouped[p.entity_type_id].append(_read(p, codes.get(p.entity_type_id, ""), stages[p.id]))
    return grouped
