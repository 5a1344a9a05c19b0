import uuid
from datetime import datetime
from typing import Any
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from app.users.models import UserTier

WRITE_ONLY: dict[str, Any] = {"writeOnly": True}  # a request field never answered back
_TIMEZONES = frozenset(available_timezones()) | {"UTC"}


def _check_timezone(value: str | None) -> str | None:
    if value is not None and value not in _TIMEZONES:
        raise ValueError("must be an IANA time zone such as Europe/Berlin")
    return value


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    tier: UserTier = UserTier.regular
    capacity: int = Field(default=20, ge=0, le=100_000, description="How many open elements the user can hold")
    timezone: str = Field(default="UTC", max_length=64)
    active: bool = True
    password: str | None = Field(
        default=None,
        min_length=8,
        max_length=200,
        description="Lets the user log in; stored as an argon2 hash",
        json_schema_extra=WRITE_ONLY,
    )
    department_id: uuid.UUID | None = None
    role_ids: list[uuid.UUID] = Field(default_factory=list, max_length=100, description="Roles the user holds")

    _tz = field_validator("timezone")(_check_timezone)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: EmailStr | None = None
    tier: UserTier | None = None
    capacity: int | None = Field(default=None, ge=0, le=100_000)
    timezone: str | None = Field(default=None, max_length=64)
    active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=200, json_schema_extra=WRITE_ONLY)
    department_id: uuid.UUID | None = Field(default=None, description="null takes the user out of any department")
    role_ids: list[uuid.UUID] | None = Field(default=None, max_length=100, description="Replaces the roles held")

    _tz = field_validator("timezone")(_check_timezone)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str
    tier: UserTier
    capacity: int
    timezone: str
    active: bool
    department_id: uuid.UUID | None
    role_ids: list[uuid.UUID]
    has_password: bool
    load: int = Field(description="Open elements (stage semantic `process`) assigned to the user")
    created_at: datetime
    updated_at: datetime


class UserList(BaseModel):
    items: list[UserRead]
