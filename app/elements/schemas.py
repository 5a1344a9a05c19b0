import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_BATCH = 1000
MAX_PAGE = 500


class ElementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="", max_length=500)
    pipeline_id: uuid.UUID | None = None
    stage_id: uuid.UUID | None = None
    stage_code: str | None = Field(default=None, max_length=63)
    assigned_to: uuid.UUID | None = None
    amount: Decimal | None = Field(default=None, max_digits=18, decimal_places=2)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    source: str | None = Field(default=None, max_length=100)
    begin_date: date | None = None
    close_date: date | None = None
    values: dict[str, Any] = Field(default_factory=dict, description="Custom field code -> value")


class ElementUpdate(BaseModel):
    """Only the fields sent change; `values` is merged (a null value clears that field)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=500)
    assigned_to: uuid.UUID | None = None
    amount: Decimal | None = Field(default=None, max_digits=18, decimal_places=2)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    source: str | None = Field(default=None, max_length=100)
    begin_date: date | None = None
    close_date: date | None = None
    values: dict[str, Any] | None = None
    version: int | None = Field(default=None, description="Expected version; a stale one is refused with 412")


class ElementMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage_id: uuid.UUID | None = None
    stage_code: str | None = Field(default=None, max_length=63)
    pipeline_id: uuid.UUID | None = None
    version: int | None = None

    @model_validator(mode="after")
    def _one_stage(self) -> "ElementMove":
        if (self.stage_id is None) == (self.stage_code is None):
            raise ValueError("give exactly one of stage_id and stage_code")
        return self


class ElementRead(BaseModel):
    id: uuid.UUID
    entity_type: str
    pipeline_id: uuid.UUID | None
    stage_id: uuid.UUID | None
    stage_code: str | None
    title: str
    assigned_to: uuid.UUID | None
    amount: float | None
    currency: str | None
    source: str | None
    begin_date: date | None
    close_date: date | None
    score: int | None
    values: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    moved_at: datetime | None
    deleted_at: datetime | None


class ElementPage(BaseModel):
    items: list[ElementRead]
    next_cursor: str | None = None
    total: int | None = None
    # The cursor after each item (Relay edges in GraphQL); not part of the REST body.
    cursors: list[str] = Field(default_factory=list, exclude=True)
    # The type's stages by id (GraphQL resolves an element's stage from them without a query); not in the body.
    stages: dict[uuid.UUID, Any] = Field(default_factory=dict, exclude=True)


class ElementSearch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: dict[str, Any] | None = None
    sort: str | None = Field(default=None, examples=["-budget,created_at"])
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: str | None = None
    with_total: bool = False
    deleted: bool = False


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["create", "update"]
    id: uuid.UUID | None = Field(default=None, description="The element to update (op=update)")
    data: dict[str, Any] = Field(default_factory=dict, description="An ElementCreate or ElementUpdate body")


class ElementBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH)


class ElementBatchResult(BaseModel):
    items: list[ElementRead]
