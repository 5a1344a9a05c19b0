"""Generic input types; each is validated by the service's Pydantic model (`errors.parse`)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import strawberry
from strawberry.scalars import JSON

from app.api.graphql.scalars import BigInt
from app.api.graphql.types import StageSemantic
from app.pipelines.models import StageSemantic as SemanticEnum
from app.pipelines.schemas import TIME_LIMIT_DESCRIPTION

UNSET = strawberry.UNSET


@strawberry.input
class EntityTypeSettingsInput:
    pipelines_enabled: bool | None = UNSET
    stages_enabled: bool | None = UNSET
    automation_enabled: bool | None = UNSET
    recycle_bin_enabled: bool | None = UNSET
    observers_enabled: bool | None = UNSET
    begin_close_dates_enabled: bool | None = UNSET
    client_enabled: bool | None = UNSET
    source_enabled: bool | None = UNSET
    products_enabled: bool | None = UNSET
    open_new_pipelines: bool | None = UNSET


@strawberry.input
class EntityTypeCreateInput:
    code: str
    title: str
    preset: str = "blank"
    settings: EntityTypeSettingsInput | None = UNSET


@strawberry.input
class EntityTypeUpdateInput:
    title: str | None = UNSET
    settings: EntityTypeSettingsInput | None = UNSET


@strawberry.input
class FieldOptionInput:
    value: str
    label: str | None = UNSET


@strawberry.input
class FieldCreateInput:
    code: str
    type: str
    label: str | None = UNSET
    required: bool = False
    multiple: bool = False
    default: JSON | None = UNSET
    options: list[FieldOptionInput] | None = UNSET
    min: float | None = UNSET
    max: float | None = UNSET
    max_length: int | None = UNSET
    pattern: str | None = UNSET
    target_type: str | None = UNSET
    sort: int | None = UNSET
    indexed: bool | None = UNSET
    max_size_bytes: BigInt | None = UNSET
    allowed_mime_types: list[str] | None = UNSET


@strawberry.input
class FieldUpdateInput:
    label: str | None = UNSET
    type: str | None = UNSET
    required: bool | None = UNSET
    multiple: bool | None = UNSET
    default: JSON | None = UNSET
    options: list[FieldOptionInput] | None = UNSET
    min: float | None = UNSET
    max: float | None = UNSET
    max_length: int | None = UNSET
    pattern: str | None = UNSET
    target_type: str | None = UNSET
    sort: int | None = UNSET
    indexed: bool | None = UNSET
    max_size_bytes: BigInt | None = UNSET
    allowed_mime_types: list[str] | None = UNSET


@strawberry.input
class StageCreateInput:
    code: str
    title: str
    semantic: StageSemantic = SemanticEnum.process  # type: ignore[valid-type]
    color: str | None = UNSET
    sort: int | None = UNSET
    time_limit_minutes: int | None = strawberry.field(default=UNSET, description=TIME_LIMIT_DESCRIPTION)


@strawberry.input
class StageUpdateInput:
    code: str | None = UNSET
    title: str | None = UNSET
    semantic: StageSemantic | None = UNSET  # type: ignore[valid-type]
    color: str | None = UNSET
    sort: int | None = UNSET
    time_limit_minutes: int | None = strawberry.field(default=UNSET, description=TIME_LIMIT_DESCRIPTION)


@strawberry.input
class PipelineCreateInput:
    title: str
    is_default: bool = False
    sort: int | None = UNSET
    stages: list[StageCreateInput] | None = UNSET


@strawberry.input
class PipelineUpdateInput:
    title: str | None = UNSET
    is_default: bool | None = UNSET
    sort: int | None = UNSET


@strawberry.input
class ElementCreateInput:
    title: str = ""
    pipeline_id: uuid.UUID | None = UNSET
    stage_id: uuid.UUID | None = UNSET
    stage_code: str | None = UNSET
    assigned_to: uuid.UUID | None = UNSET
    amount: Decimal | None = UNSET
    currency: str | None = UNSET
    source: str | None = UNSET
    begin_date: date | None = UNSET
    close_date: date | None = UNSET
    values: JSON | None = UNSET


@strawberry.input
class ElementUpdateInput:
    title: str | None = UNSET
    assigned_to: uuid.UUID | None = UNSET
    amount: Decimal | None = UNSET
    currency: str | None = UNSET
    source: str | None = UNSET
    begin_date: date | None = UNSET
    close_date: date | None = UNSET
    values: JSON | None = UNSET


@strawberry.input
class BatchItemInput:
    op: str = strawberry.field(description="create or update")
    id: uuid.UUID | None = UNSET
    data: JSON = strawberry.field(default_factory=dict, description="An element create or update input, snake_case")
