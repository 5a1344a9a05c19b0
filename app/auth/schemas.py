import uuid
from datetime import datetime
from typing import Literal

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


class ApiKeyUpdate(BaseModel):
    """What to change on a key; the secret stays the same."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The role the key acts with from now on: `admin`, `editor`, `viewer` or a workspace role's name",
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


# --- people who log in --------------------------------------------------------------------------------------------


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: uuid.UUID | None = Field(
        default=None,
        description="The workspace to log in to. Optional when the e-mail belongs to a user of one workspace only",
    )
    email: str = Field(min_length=1, max_length=320, description="Matched ignoring case")
    password: str = Field(min_length=1, max_length=1024, json_schema_extra={"writeOnly": True})


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=200, json_schema_extra={"writeOnly": True})


class TokenPair(BaseModel):
    access_token: str = Field(description="A JWT for `Authorization: Bearer …`; it lapses after `expires_in` seconds")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth 2 token type, not a secret)
    expires_in: int = Field(description="Seconds until the access token lapses")
    refresh_token: str = Field(
        description="Exchange it at /auth/refresh for a new pair before the access token lapses. Single use: a reused "
        "refresh token ends the whole login"
    )


class MeRole(BaseModel):
    id: uuid.UUID
    name: str
    level: Role
    builtin: bool


class MeRead(BaseModel):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    email: str
    timezone: str
    department_id: uuid.UUID | None
    roles: list[MeRole] = Field(description="The roles the user holds; their permissions add up")
    level: Role = Field(description="What the user may do outside elements: the highest level of their roles")
