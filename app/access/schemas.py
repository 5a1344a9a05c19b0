import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.access.permissions import Scope
from app.auth.models import Role

MAX_RULES = 1_000


class GrantIn(BaseModel):
    """The scope of each action on one entity type, or on one of its pipelines (which then overrides the type's)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    entity_type: str = Field(min_length=1, max_length=100, description="The entity type's code or id")
    pipeline_id: uuid.UUID | None = Field(default=None, description="Only this pipeline of the type")
    read: Scope = Scope.none
    add: Scope = Scope.none
    update: Scope = Scope.none
    delete: Scope = Scope.none
    export: Scope = Scope.none
    import_: Scope = Field(default=Scope.none, alias="import")


class Grant(GrantIn):
    entity_type_id: uuid.UUID


class StageRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage_id: uuid.UUID
    move_into: bool = Field(default=False, description="Whether the role may move elements into the stage")


class StageRule(StageRuleIn):
    entity_type_id: uuid.UUID


class FieldRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_type: str = Field(min_length=1, max_length=100, description="The entity type's code or id")
    field: str = Field(min_length=1, max_length=100, description="The custom field's code")
    access: Literal["hidden", "read_only"]


class FieldRule(FieldRuleIn):
    entity_type_id: uuid.UUID


class RoleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=1000)
    level: Role = Field(
        default=Role.viewer,
        description="Outside elements: `admin` manages keys, users and roles and may do everything; `editor` "
        "changes configuration (types, fields, pipelines, rules); `viewer` only reads it",
    )
    grants: list[GrantIn] = Field(default_factory=list, max_length=MAX_RULES)
    stage_rules: list[StageRuleIn] = Field(default_factory=list, max_length=MAX_RULES)
    field_rules: list[FieldRuleIn] = Field(default_factory=list, max_length=MAX_RULES)


class RoleUpdate(BaseModel):
    """What to change; lists given replace the stored ones."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    level: Role | None = None
    grants: list[GrantIn] | None = Field(default=None, max_length=MAX_RULES)
    stage_rules: list[StageRuleIn] | None = Field(default=None, max_length=MAX_RULES)
    field_rules: list[FieldRuleIn] | None = Field(default=None, max_length=MAX_RULES)


class RoleRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    builtin: bool = Field(description="admin, editor and viewer: every workspace has them; they cannot be changed")
    level: Role
    grants: list[Grant]
    stage_rules: list[StageRule]
    field_rules: list[FieldRule]
    created_at: datetime
    updated_at: datetime


class RoleList(BaseModel):
    items: list[RoleRead]


class RoleIds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role_ids: list[uuid.UUID] = Field(max_length=100)
