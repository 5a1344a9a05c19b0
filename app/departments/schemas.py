import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

DepartmentName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class DepartmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: DepartmentName
    parent_id: uuid.UUID | None = Field(default=None, description="The department this one belongs to; none: a root")


class DepartmentUpdate(BaseModel):
    """What to change: a new name, and/or a move (`parent_id`, null makes it a root)."""

    model_config = ConfigDict(extra="forbid")

    name: DepartmentName | None = None
    parent_id: uuid.UUID | None = Field(
        default=None, description="Move under this department (not itself nor one below it); null: make it a root"
    )


class DepartmentRead(BaseModel):
    id: uuid.UUID
    name: str
    parent_id: uuid.UUID | None
    depth: int = Field(description="0 for a root, 1 for its sub-departments, …")
    path: list[str] = Field(description="The names from the root down to this department")
    user_count: int = Field(description="Users directly in this department")
    created_at: datetime
    updated_at: datetime


class DepartmentList(BaseModel):
    """Every department, in tree order: each parent before its sub-departments, siblings by name."""

    items: list[DepartmentRead]
