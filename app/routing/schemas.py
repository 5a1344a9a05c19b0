import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.users.models import UserTier


class PrioritySet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1, max_length=63, description="A custom field code")
    value: Any


class TierSpec(BaseModel):
    """Elements scoring at least `min_score` (and below the next tier) land here."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=50)
    min_score: int = Field(ge=0, le=100)
    user_tier: UserTier | None = Field(default=None, description="Eligible users: the active users of this tier")
    user_ids: list[uuid.UUID] | None = Field(default=None, max_length=500, description="Or an explicit list")
    priority: PrioritySet | None = None
    stage_code: str | None = Field(default=None, max_length=63, description="Move the element to this stage")
    script: str | None = Field(
        default=None,
        max_length=5000,
        description="A text template, given to the assignee as a task, e.g. 'Call {{ title }} ({{ score }})'; "
        "placeholders: title, score, tier, assignee and custom field codes",
    )


DEFAULT_TIERS = [
    TierSpec(name="senior", min_score=80, user_tier=UserTier.senior),
    TierSpec(name="regular", min_score=50, user_tier=UserTier.regular),
    TierSpec(name="automatic", min_score=0),
]


class RoutingPolicyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    entity_type: str
    tiers: list[TierSpec] | None = Field(
        default=None, min_length=1, max_length=20, description="Default: 80+ senior, 50-79 regular, below automatic"
    )
    active: bool = True


class RoutingPolicyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    tiers: list[TierSpec] | None = Field(default=None, min_length=1, max_length=20)
    active: bool | None = None


class RoutingPolicyRead(BaseModel):
    id: uuid.UUID
    name: str
    entity_type: str
    tiers: list[TierSpec]
    active: bool
    created_at: datetime
    updated_at: datetime


class RoutingPolicyList(BaseModel):
    items: list[RoutingPolicyRead]


class RouteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy_id: uuid.UUID | None = Field(default=None, description="Default: the type's newest active policy")


class RouteDecision(BaseModel):
    element_id: uuid.UUID
    policy_id: uuid.UUID
    score: int
    tier: str
    assigned_to: uuid.UUID | None
    assignee_name: str | None
    over_capacity: bool = Field(description="Every eligible user was full: the least loaded one got it anyway")
    load: int | None = Field(description="The assignee's open elements before this one")
    capacity: int | None
    priority: Any = None
    stage_code: str | None
    script: str | None = Field(description="The rendered script, given to the assignee as a task")
    task_id: uuid.UUID | None = Field(default=None, description="The task that carries the script")
    reasons: list[str]
