import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.activities.models import ActivityDirection, ActivityKind, ActivityStatus, CallOutcome
from app.kit.jsonlimits import MAX_JSON_DEPTH, too_deep

MAX_ELEMENTS = 50
MAX_PARTICIPANTS = 50
MAX_PAYLOAD_BYTES = 64 * 1024
# The longest activity whose duration is recorded: a month (a multi-day meeting fits, a typo of a year does not).
MAX_DURATION_SECONDS = 31 * 86400
MAX_PAGE = 500


def _utc(value: datetime) -> datetime:
    """A time without an offset is read as UTC (as the database would store it); it must stay a time in UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+01:00 is before the first day
        raise ValueError("is out of range") from exc


def _bounded_payload(value: dict[str, Any]) -> dict[str, Any]:
    """The payload is stored and shown as it is: bounded in bytes and in depth like every JSON input."""
    try:
        raw = orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError) as exc:  # orjson refuses anything nested 255 levels deep
        raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels") from exc
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"at most {MAX_PAYLOAD_BYTES} bytes of JSON")
    if too_deep(raw):
        raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels")
    return value


Time = Annotated[datetime, AfterValidator(_utc)]
Payload = Annotated[dict[str, Any], AfterValidator(_bounded_payload)]


class Participant(BaseModel):
    """A user of the workspace (`user_id`), or someone outside it (`name`, `phone`, `email`: at least one)."""

    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    phone: str | None = Field(default=None, min_length=1, max_length=50)
    email: str | None = Field(default=None, min_length=3, max_length=320)

    @model_validator(mode="after")
    def _one_kind(self) -> "Participant":
        external = any(v is not None for v in (self.name, self.phone, self.email))
        if self.user_id is not None and external:
            raise ValueError("a participant is a user (user_id) or an outside contact (name, phone, email), not both")
        if self.user_id is None and not external:
            raise ValueError("give user_id, or an outside contact's name, phone or email")
        return self


class ActivityCreate(BaseModel):
    """An activity bound to one or more elements. `status` is `completed` unless `planned` is sent; an `outcome`
    is for a completed call only. With `starts_at` and `ends_at` the duration is derived from them."""

    model_config = ConfigDict(extra="forbid")

    kind: ActivityKind
    direction: ActivityDirection | None = None
    subject: str = Field(default="", max_length=500)
    description: str | None = Field(default=None, max_length=10000)
    starts_at: Time | None = Field(default=None, description="Default: `ends_at` less the duration, else now")
    ends_at: Time | None = None
    duration_seconds: int | None = Field(default=None, ge=0, le=MAX_DURATION_SECONDS)
    status: ActivityStatus = ActivityStatus.completed
    outcome: CallOutcome | None = Field(default=None, description="A completed call's: answered, no_answer, …")
    responsible_user_id: uuid.UUID | None = None
    participants: list[Participant] = Field(default_factory=list, max_length=MAX_PARTICIPANTS)
    payload: Payload = Field(default_factory=dict, description="Free JSON for integrations (at most 64 KiB)")
    element_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_ELEMENTS)


class ActivityUpdate(BaseModel):
    """Only the fields sent change; `element_ids` replaces the list. The status changes through `complete`."""

    model_config = ConfigDict(extra="forbid")

    kind: ActivityKind | None = None
    direction: ActivityDirection | None = None
    subject: str | None = Field(default=None, max_length=500)
    description: str | None = Field(default=None, max_length=10000)
    starts_at: Time | None = None
    ends_at: Time | None = None
    duration_seconds: int | None = Field(default=None, ge=0, le=MAX_DURATION_SECONDS)
    outcome: CallOutcome | None = None
    responsible_user_id: uuid.UUID | None = None
    participants: list[Participant] | None = Field(default=None, max_length=MAX_PARTICIPANTS)
    payload: Payload | None = None
    element_ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=MAX_ELEMENTS)


class ActivityComplete(BaseModel):
    """Mark a planned activity done: a call's outcome, and when it ended (or how long it took)."""

    model_config = ConfigDict(extra="forbid")

    outcome: CallOutcome | None = None
    ends_at: Time | None = None
    duration_seconds: int | None = Field(default=None, ge=0, le=MAX_DURATION_SECONDS)


class ParticipantRead(BaseModel):
    user_id: uuid.UUID | None = None
    name: str | None = None
    phone: str | None = None
    email: str | None = None


class ActivityRead(BaseModel):
    id: uuid.UUID
    kind: ActivityKind
    direction: ActivityDirection | None
    subject: str
    description: str | None
    starts_at: datetime
    ends_at: datetime | None
    duration_seconds: int | None
    status: ActivityStatus
    completed_at: datetime | None
    outcome: CallOutcome | None
    responsible_user_id: uuid.UUID | None
    participants: list[ParticipantRead]
    payload: dict[str, Any]
    element_ids: list[uuid.UUID] = Field(description="The elements it is bound to (those you may read)")
    created_by: uuid.UUID | None
    run_id: uuid.UUID | None = Field(description="The automation run that logged it, if one did")
    created_at: datetime
    updated_at: datetime


class ActivityPage(BaseModel):
    items: list[ActivityRead]
    next_cursor: str | None = None
