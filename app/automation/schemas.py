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
    "schedule_call",
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


MAX_VARIANTS = 10
VARIANT_KEY = r"^[A-Za-z0-9_-]{1,40}$"


class RuleVariant(BaseModel):
    """One arm of an A/B rule: its share of the traffic and the actions its elements get."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    key: str = Field(pattern=VARIANT_KEY, description="Unique within the rule, e.g. `A`, `B`, `short-deadline`")
    weight: float = Field(gt=0, le=1_000_000, description="Traffic weight; shares are weight / sum of weights")
    actions: list[Action] = Field(min_length=1, max_length=MAX_ACTIONS)


class RuleExperiment(BaseModel):
    """How the variants are compared, and whether the winner is promoted by itself."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    metric: Literal["success", "time_to_close"] = Field(
        default="success",
        description="`success`: the element reached a success stage (Beta posteriors of the rate); "
        "`time_to_close`: days from assignment to a success stage (exponential model, Gamma posteriors, censored)",
    )
    auto_promote: bool = Field(default=False, description="Promote the winner once P(best) passes `threshold`")
    threshold: float = Field(default=0.99, ge=0.5, le=0.9999, description="P(best) a variant needs to be promoted")
    min_sample: int = Field(default=100, ge=1, le=10_000_000, description="Decided outcomes each variant needs first")
    horizon_days: int | None = Field(
        default=None,
        ge=1,
        le=1830,
        description="Only outcomes within this many days of the assignment count; an element still open after it "
        "counts as a failure",
    )


class RuleExperimentState(RuleExperiment):
    status: Literal["running", "promoted"] = "running"
    winner: str | None = None
    promoted_at: datetime | None = None
    promoted_by: str | None = Field(default=None, description="`auto`, or the user / API key id that promoted it")
    reason: str | None = None


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    entity_type: str = Field(description="The entity type's code or id")
    pipeline_id: uuid.UUID | None = None
    stage_id: uuid.UUID | None = None
    trigger: Trigger
    condition: dict[str, Any] | None = Field(default=None, description="A filter (the common filter language)")
    actions: list[Action] = Field(
        min_length=1,
        max_length=MAX_ACTIONS,
        description="With `variants`: what runs without an element, and what a promoted winner's actions replace",
    )
    variants: list[RuleVariant] | None = Field(
        default=None, min_length=2, max_length=MAX_VARIANTS, description="A/B variants: 2 to 10"
    )
    experiment: RuleExperiment | None = Field(default=None, description="Options of the variants' experiment")
    enabled: bool = True


class RuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    pipeline_id: uuid.UUID | None = None
    stage_id: uuid.UUID | None = None
    trigger: Trigger | None = None
    condition: dict[str, Any] | None = None
    actions: list[Action] | None = Field(default=None, min_length=1, max_length=MAX_ACTIONS)
    variants: list[RuleVariant] | None = Field(
        default=None,
        min_length=2,
        max_length=MAX_VARIANTS,
        description="New variants (a new experiment: running again); null ends the experiment (assignments are kept)",
    )
    experiment: RuleExperiment | None = None
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
    variants: list[RuleVariant] | None = None
    experiment: RuleExperimentState | None = None
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


class VariantOutcome(BaseModel):
    key: str
    weight: float
    active: bool = Field(description="Still one of the rule's variants (false: only assignments of it remain)")
    assigned: int = Field(description="Elements assigned to it")
    successes: int = Field(description="Reached a success stage (within the horizon, if one is set)")
    failures: int = Field(description="Reached a failure stage, or were still open when the horizon ended")
    expired: int = Field(description="Of the failures, those still open when the horizon ended")
    open: int = Field(description="Neither yet")
    rate: float | None = Field(description="successes / (successes + failures); null before any outcome")
    estimate: float = Field(
        description="The posterior mean: the success rate (metric `success`) or the mean days to close "
        "(`time_to_close`)"
    )
    interval: tuple[float, float] = Field(description="95 % credible interval of `estimate`")
    p_best: float = Field(description="Posterior probability that this variant is the best one")
    mean_days_to_close: float | None = Field(description="Over its successes: assignment to success stage")
    median_days_to_close: float | None


class ExperimentReport(BaseModel):
    rule_id: uuid.UUID
    rule: str
    metric: str
    status: Literal["running", "promoted"]
    winner: str | None
    promoted_at: datetime | None
    promoted_by: str | None
    reason: str | None
    auto_promote: bool
    threshold: float
    min_sample: int
    horizon_days: int | None
    ready: bool = Field(description="Every variant has `min_sample` decided outcomes")
    leader: str | None = Field(description="The variant with the highest P(best)")
    variants: list[VariantOutcome]


class VariantPromote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: str = Field(pattern=VARIANT_KEY, description="The key of the variant whose actions become the rule's")
    reason: str | None = Field(default=None, max_length=500)
