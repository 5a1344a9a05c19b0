import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

WorkplaceName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
TypeRef = Annotated[str, StringConstraints(min_length=1, max_length=100)]
MAX_TYPES = 200
MAX_ROLES = 100


class WorkplaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: WorkplaceName
    description: str = Field(default="", max_length=1000)
    sort: int = Field(default=0, ge=-1_000_000, le=1_000_000, description="Menu order: lower first, then by name")
    entity_types: list[TypeRef] = Field(
        default_factory=list, max_length=MAX_TYPES, description="Entity type codes or ids, in menu order"
    )
    role_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=MAX_ROLES, description="Roles that see the workplace; empty: every role"
    )


class WorkplaceUpdate(BaseModel):
    """What to change; lists given replace the stored ones."""

    model_config = ConfigDict(extra="forbid")

    name: WorkplaceName | None = None
    description: str | None = Field(default=None, max_length=1000)
    sort: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    entity_types: list[TypeRef] | None = Field(default=None, max_length=MAX_TYPES)
    role_ids: list[uuid.UUID] | None = Field(default=None, max_length=MAX_ROLES)


class WorkplaceEntityType(BaseModel):
    id: uuid.UUID
    code: str
    title: str


class WorkplaceRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    sort: int
    entity_types: list[WorkplaceEntityType] = Field(
        description="In menu order; for a reader, only the types their roles may read"
    )
    role_ids: list[uuid.UUID] = Field(description="Roles that see the workplace; empty: every role")
    created_at: datetime
    updated_at: datetime


class WorkplaceList(BaseModel):
    """The workplaces the caller may see, by `sort` then name."""

    items: list[WorkplaceRead]
