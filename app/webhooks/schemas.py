import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.kit.shown_once import SHOWN_ONCE
from app.webhooks.models import DeliveryStatus


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https?://", max_length=2000)
    events: list[str] = Field(
        min_length=1, max_length=100, description="Event types, e.g. `element.moved`, or `*` for every event"
    )
    filter: dict[str, Any] | None = Field(default=None, description="Only events whose element matches this filter")
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True


class SubscriptionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, pattern=r"^https?://", max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=100)
    filter: dict[str, Any] | None = None
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class SubscriptionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    events: list[str]
    filter: dict[str, Any] | None
    description: str | None
    enabled: bool
    created_at: datetime


class SubscriptionCreated(SubscriptionRead):
    secret: str = Field(description="The signing secret (`whsec_…`); shown only now", json_schema_extra=SHOWN_ONCE)


class SubscriptionList(BaseModel):
    items: list[SubscriptionRead]


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt: int
    status_code: int | None
    latency_ms: int | None
    error: str | None
    created_at: datetime


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    subscription_id: uuid.UUID | None
    run_id: uuid.UUID | None
    message_id: str
    event_type: str
    url: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    log: list[AttemptRead] = Field(default_factory=list)


class DeliveryList(BaseModel):
    items: list[DeliveryRead]
