import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.auth.models import Role
from app.kit.shown_once import SHOWN_ONCE


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(
        default=Role.editor.value,
        min_length=1,
        max_length=100,
        description="The role the key acts with: `admin`, `editor`, `viewer` or the name of a workspace role",
    )
    role_id: uuid.UUID | None = Field(default=None, description="A workspace role by id (instead of `role`)")


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    role: str
    role_id: uuid.UUID
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    api_key: str = Field(description="The secret. It is shown in this answer only.", json_schema_extra=SHOWN_ONCE)


class ApiKeyList(BaseModel):
    items: list[ApiKeyRead]
