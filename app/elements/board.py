"""The kanban of one pipeline: each stage in order with its count, amount sum and first elements (3 queries)."""

import uuid
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.auth.actor import Actor
from app.elements.meta_cache import cached_type_meta
from app.elements.models import Element, StageTotal
from app.elements.query import compile_filter
from app.elements.schemas import ElementRead
from app.elements.service import to_read
from app.errors import NotFound
from app.kit.filters import parse_filter
from app.pipelines.models import Pipeline, Stage
from app.pipelines.schemas import StageRead

MAX_PER_STAGE = 100


class BoardColumn(BaseModel):
    stage: StageRead
    count: int
    amount_sum: float
    elements: list[ElementRead]


class Board(BaseModel):
    pipeline_id: uuid.UUID
    entity_type: str
    stages: list[BoardColumn]


async def get_board(
    session: AsyncSession, actor: Actor, pipeline_id: uuid.UUID, *, per_stage: int, filter_raw: Any
) -> Board:
    pipeline = await session.scalar(
        select(Pipeline).where(Pipeline.workspace_id == actor.workspace_id, Pipeline.id == pipeline_id)
    )
    if pipeline is None:
        raise NotFound("Pipeline not found")
    meta = await cached_type_meta(session, actor.workspace_id, pipeline.entity_type_id)
    node = parse_filter(filter_raw)
    where = and_(
        Element.workspace_id == actor.workspace_id,
        Element.deleted_at.is_(None),
        compile_filter(meta, node),
    )
    totals_query: Select[Any, Any, Any]
    if node is None:
        # The unfiltered board reads the totals the triggers keep: a few rows instead of every element.
        totals_query = (
            select(
                StageTotal.stage_id,
                func.sum(StageTotal.count).label("count"),
                func.sum(StageTotal.amount_sum).label("amount_sum"),
            )
            .where(StageTotal.workspace_id == actor.workspace_id, StageTotal.pipeline_id == pipeline.id)
            .group_by(StageTotal.stage_id)
        )
    else:
        totals_query = (
            select(
                Element.stage_id,
                func.count().label("count"),
                func.coalesce(func.sum(Element.amount), 0).label("amount_sum"),
            )
            .where(Element.pipeline_id == pipeline.id, where)
            .group_by(Element.stage_id)
        )
    totals: dict[uuid.UUID | None, tuple[int, Any]] = {
        stage_id: (int(count), amount or 0) for stage_id, count, amount in await session.execute(totals_query)
    }
    stages = meta.stages_of(pipeline.id)
    firsts: dict[uuid.UUID, list[Element]] = {s.id: [] for s in stages}
    if per_stage > 0 and stages:
        stage_ids = select(Stage.id.label("stage_id")).where(Stage.pipeline_id == pipeline.id).subquery()
        newest = (
            select(Element)
            .where(Element.stage_id == stage_ids.c.stage_id, where)
            .order_by(Element.created_at.desc(), Element.id.desc())
            .limit(per_stage)
            .lateral()
        )
        element = aliased(Element, newest)
        for row in await session.scalars(select(element).select_from(stage_ids).join(newest, true())):
            if row.stage_id is not None:
                firsts[row.stage_id].append(row)
    return Board(
        pipeline_id=pipeline.id,
        entity_type=meta.code,
        stages=[
            BoardColumn(
                stage=StageRead.model_validate(stage),
                count=totals.get(stage.id, (0, 0))[0],
                amount_sum=float(totals.get(stage.id, (0, 0))[1]),
                elements=[to_read(e, meta) for e in firsts[stage.id]],
            )
            for stage in stages
        ],
    )
