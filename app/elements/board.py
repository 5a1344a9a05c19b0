"""The kanban of one pipeline: each stage in order with its count, amount sum and first elements (one statement)."""

import uuid
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.actor import Actor
from app.elements import reads
from app.elements.schemas import ElementRead
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
    body = await reads.board(session, actor, pipeline_id, per_stage=per_stage, filter_raw=filter_raw)
    return Board.model_validate_json(body)
