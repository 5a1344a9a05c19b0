import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.automation.models import RunStatus
from app.kit.shown_once import SHOWN_ONCE

TriggerType = Literal[
    "element.created",
    "element.updated",
    "element.entered_stage",
    "element.deleted",
    "element.linked",
    "webhook.received",
    "schedule",
    "time_in_stage",
    "date_reached",
    "element.scored",
    "activity.created",
    "activity.completed",
]
ActionType = Literal[
    "set_fields",
    "move_to_stage",
    "move_to_pipeline",
    "assign",
    "score",
    "create_task",
    "add_comment",
    "webhook",
    "create_linked_element",
    "delay",
    "notify",
    "score",
    "log_activity",
    "triage",
]
MAX_ACTIONS = 30


class Trigger(BaseModel):
    """`type` plus the trigger's parameters (e.g. `fields`, `from_stage_id`, `minutes`, `cron`, `field`)."""

    model_config = ConfigDict(extra="allow")

    type: TriggerType


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: ActionType
    params: dict[str, Any] = Field(default_factory=dict)


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    entity_type: str = Field(description="The entity type's code or id")
    pipeline_id: uuid.UUID | None = None
    stage_id: uuid.UUID | None = None
    trigger: Trigger
    condition: dict[str, Any] | None = Field(default=None, description="A filter (the common filter language)")
    actions: list[Action] = Field(min_length=1, max_length=MAX_ACTIONS)
    enabled: bool = True


class RuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    pipeline_id: uuid.UUID | None = None
    stage_id: uuid.UUID | None = None
    trigger: Trigger | None = None
    condition: dict[str, Any] | None = None
    actions: list[Action] | None = Field(default=None, min_length=1, max_length=MAX_ACTIONS)
    enabled: bool | None = None


class RuleRead(BaseModel):
    id: uuid.UUID
    name: str
    entity_type: str
    pipeline_id: uuid.UUID | None
    stage_id: uuid.UUID | None
    trigger: dict[str, Any]
    condition: dict[str, Any] | None
    actions: list[Action]
    enabled: bool
    sort: int
    hook_url: str | None = Field(
        default=None,
        description="The incoming URL of a `webhook.received` rule, with its secret token. Returned once: when the "
        "rule gets it (created, or its trigger changed to `webhook.received`) and when it is rotated "
        "(`POST /automation/rules/{rule_id}/rotate-hook`); null in every other answer",
        json_schema_extra=SHOWN_ONCE,
    )
    webhook_secrets: dict[str, str] | None = Field(
        default=None,
        description="Signing secrets of new `webhook` actions by action index; returned once, when created",
        json_schema_extra=SHOWN_ONCE,
    )
    created_at: datetime
    updated_at: datetime


class RuleList(BaseModel):
    items: list[RuleRead]


class RuleOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[uuid.UUID] = Field(min_length=1, max_length=1000, description="Rule ids in the order they run")


class RunRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    rule_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    element_id: uuid.UUID | None
    status: RunStatus
    depth: int
    step: int
    attempts: int
    error: str | None
    resume_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None


class RunPage(BaseModel):
    items: list[RunRead]
    next_cursor: str | None = None


class HookAccepted(BaseModel):
    event_id: uuid.UUID
