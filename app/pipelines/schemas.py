import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.kit.types import SortPosition
from app.pipelines.models import MAX_TIME_LIMIT_MINUTES, StageSemantic

STAGE_CODE_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,62}$"
COLOR_PATTERN = r"^#[0-9a-fA-F]{6}$"
TIME_LIMIT_DESCRIPTION = (
    "Minutes an element may stay in the stage; past that it counts as overdue for its assignee "
    "(`GET /me/counters`). null: no limit"
)


def _time_limit() -> Any:
    return Field(default=None, ge=1, le=MAX_TIME_LIMIT_MINUTES, description=TIME_LIMIT_DESCRIPTION, examples=[1440])


class StageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=STAGE_CODE_PATTERN, examples=["IN_PROGRESS"])
    title: str | None = Field(default=None, min_length=1, max_length=200, description="By default the code")
    semantic: StageSemantic = StageSemantic.process
    color: str | None = Field(default=None, pattern=COLOR_PATTERN)
    sort: SortPosition | None = Field(default=None, description="Position; by default after the last stage")
    time_limit_minutes: int | None = _time_limit()


class StageUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str | None = Field(default=None, pattern=STAGE_CODE_PATTERN)
    title: str | None = Field(default=None, min_length=1, max_length=200)
    semantic: StageSemantic | None = None
    color: str | None = Field(default=None, pattern=COLOR_PATTERN)
    sort: SortPosition | None = None
    time_limit_minutes: int | None = _time_limit()


class StageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    pipeline_id: uuid.UUID
    code: str
    title: str
    semantic: StageSemantic
    color: str | None
    sort: int
    time_limit_minutes: int | None = Field(default=None, description=TIME_LIMIT_DESCRIPTION)


class StageList(BaseModel):
    items: list[StageRead]


class StageOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage_ids: list[uuid.UUID] = Field(min_length=1, max_length=200)


class PipelineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    is_default: bool = False
    sort: SortPosition | None = None
    stages: list[StageCreate] | None = Field(default=None, min_length=1, max_length=200)


class PipelineUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    is_default: bool | None = None
    sort: SortPosition | None = None


class PipelineRead(BaseModel):
    id: uuid.UUID
    entity_type: str
    title: str
    is_default: bool
    sort: int
    created_at: datetime
    stages: list[StageRead]


class PipelineList(BaseModel):
    items: list[PipelineRead]


DEFAULT_STAGES = (
    StageCreate(code="NEW", title="New", semantic=StageSemantic.process, color="#3b82f6"),
    StageCreate(code="IN_PROGRESS", title="In progress", semantic=StageSemantic.process, color="#f59e0b"),
    StageCreate(code="SUCCESS", title="Success", semantic=StageSemantic.success, color="#22c55e"),
    StageCreate(code="FAIL", title="Fail", semantic=StageSemantic.failure, color="#ef4444"),
)
