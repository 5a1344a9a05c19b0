"""What the metrics API answers: funnel, time in stage, money and forecast, automation, scoring.

Every report names its type, pipeline and period, lists the pipeline's stages in order (`stages`), and gives one entry
per group (`groups`): one with `key: null` when not grouped, else one per day / week / month (every one of the period,
empty ones included, oldest first), per assignee (`key` = user id, null for nobody), per source or per value of an
enum field (null: none). Durations are in seconds; shares are 0..1 (null where nothing was there to divide by).
"""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class GroupBy(StrEnum):
    none = "none"
    day = "day"
    week = "week"
    month = "month"
    assignee = "assignee"
    source = "source"
    field = "field"


PERIOD_GROUPS = (GroupBy.day, GroupBy.week, GroupBy.month)


class ComputedFrom(StrEnum):
    rollups = "rollups"
    history = "history"


class ProbabilityMode(StrEnum):
    model = "model"
    stage = "stage"


class AlertState(StrEnum):
    ok = "ok"
    firing = "firing"


class AlertEventKind(StrEnum):
    fired = "fired"
    resolved = "resolved"


class ProblemKind(StrEnum):
    conversion_drop = "conversion_drop"
    losses_up = "losses_up"
    slow_stage = "slow_stage"
    overdue = "overdue"


class Period(BaseModel):
    start: date = Field(description="First day (UTC), inclusive")
    end: date = Field(description="Last day (UTC), inclusive")
    days: int


class StageInfo(BaseModel):
    id: uuid.UUID
    code: str
    title: str
    semantic: str = Field(description="process, success or failure")
    sort: int


class ReportHead(BaseModel):
    entity_type: str
    pipeline_id: uuid.UUID
    period: Period
    group_by: GroupBy
    field: str | None = Field(description="The enum field grouped by (`group_by=field`)")
    stages: list[StageInfo] = Field(description="The pipeline's stages in order")


# --- funnel ---------------------------------------------------------------------------------------------------------


class FunnelStage(BaseModel):
    stage_id: uuid.UUID
    code: str
    entered: int = Field(description="Elements that entered the stage for the first time in the period")
    reentered: int = Field(description="Entries of elements that had been in the stage before")
    exited: int = Field(description="Moves out of the stage")
    lost: int = Field(description="Moves out of the stage into a failure stage: the losses of this stage")
    won: int = Field(description="Moves out of the stage straight into a success stage")
    conversion_to_next: float | None = Field(
        description="entered(next stage) / entered(this stage); the next stage of the last process stage is success"
    )
    conversion_to_success: float | None = Field(description="entered(success stages) / entered(this stage)")
    entered_amount: float = Field(description="Sum of `amount` of the elements that entered (at their entry)")


class FunnelGroup(BaseModel):
    key: str | None
    stages: list[FunnelStage]
    created: int = Field(description="Elements created in the period")
    won: int = Field(description="Elements that entered a success stage")
    lost: int = Field(description="Elements that entered a failure stage")
    won_amount: float
    win_rate: float | None = Field(description="won / (won + lost)")
    moves: int = Field(description="Stage moves (creations left out)")
    moves_by_rules: int = Field(description="Moves with no author: made by automation rules")


class FunnelReport(ReportHead):
    computed_from: ComputedFrom = Field(
        description="`rollups` (kept per day as elements move) or `history` (the period's stage history, for "
        "groupings by source or a field)"
    )
    groups: list[FunnelGroup]


# --- time in stage --------------------------------------------------------------------------------------------------


class StageDurations(BaseModel):
    stage_id: uuid.UUID
    code: str
    count: int
    mean_seconds: float | None
    p50_seconds: float | None
    p90_seconds: float | None


class TimeGroup(BaseModel):
    key: str | None
    stages: list[StageDurations] = Field(description="Time spent in each stage, by the moves out of it")
    close: list[StageDurations] = Field(
        description="Time from creation to each success / failure stage, by the elements that reached it"
    )
    time_to_win: StageDurations | None = Field(description="Creation to any success stage")


class TimeInStageReport(ReportHead):
    computed_from: ComputedFrom = Field(
        description="`rollups`: percentiles from per-day histograms (within 4.5 %); `history`: exact, from the "
        "period's stage history (groupings by assignee, source or field, and roles that read only some elements)"
    )
    groups: list[TimeGroup]


# --- money and forecast ---------------------------------------------------------------------------------------------


class MoneyGroup(BaseModel):
    key: str | None
    won_count: int
    won_amount: float
    average_won: float | None


class OpenStage(BaseModel):
    stage_id: uuid.UUID
    code: str
    count: int = Field(description="Open elements in the stage now")
    amount: float
    probability: float | None = Field(description="The stage's chance to win (`probability=stage`)")
    weighted: float = Field(description="Σ amount × probability")


class Forecast(BaseModel):
    period_end: date
    won_to_date: float = Field(description="Amount won in the period so far")
    remaining_days: float = Field(description="Days from now to the period's end (0 once it is over)")
    close_within_share: float = Field(
        description="Share of past wins that took at most `remaining_days` from creation to win (1 with no history)"
    )
    expected_from_open: float = Field(description="weighted pipeline × close_within_share")
    forecast: float = Field(description="won_to_date + expected_from_open")


class MoneyReport(ReportHead):
    probability: ProbabilityMode = Field(
        description="`model`: an element's probability is its score / 100 (the active learned model; unscored "
        "ones take their stage's); `stage`: the stage's conversion to success over the last `lookback_days`"
    )
    lookback_days: int
    groups: list[MoneyGroup]
    won_count: int
    won_amount: float
    average_won: float | None
    open: list[OpenStage]
    open_amount: float
    weighted_pipeline: float
    forecast: Forecast


# --- automation -----------------------------------------------------------------------------------------------------


class RuleRuns(BaseModel):
    rule_id: uuid.UUID
    name: str
    runs: int
    succeeded: int
    failed: int
    skipped: int
    unfinished: int
    p95_duration_ms: float | None = Field(description="Time the actions took")
    p95_latency_ms: float | None = Field(description="From the event to the run's end")


class AutomationReport(BaseModel):
    entity_type: str
    pipeline_id: uuid.UUID
    period: Period
    runs: int = Field(description="Runs of the type's rules created in the period (kept as long as retention says)")
    succeeded: int
    failed: int
    skipped: int
    unfinished: int
    failure_rate: float | None = Field(description="failed / finished")
    p95_duration_ms: float | None
    p95_latency_ms: float | None
    moves: int
    moves_by_rules: int
    moves_by_people: int
    rules_share: float | None = Field(description="moves_by_rules / moves")
    rules: list[RuleRuns]


# --- scoring --------------------------------------------------------------------------------------------------------


class ActiveModel(BaseModel):
    id: uuid.UUID
    name: str
    version: int
    kind: str
    trained_roc_auc: float | None = Field(description="The hold-out ROC AUC measured when it was trained")


class ScoreCalibrationBin(BaseModel):
    low: int = Field(description="Lowest score of the bin")
    high: int
    count: int
    predicted: float | None = Field(description="Mean score / 100")
    observed: float | None = Field(description="Share won")


class TierConversion(BaseModel):
    tier: str
    low: int
    high: int
    closed: int
    won: int
    conversion: float | None


class ScoringReport(BaseModel):
    entity_type: str
    pipeline_id: uuid.UUID
    period: Period
    model: ActiveModel | None
    closed: int = Field(description="Elements that reached a success or failure stage in the period")
    scored: int = Field(description="Of them, those that had a score when they closed")
    won: int
    lost: int
    roc_auc: float | None = Field(description="Of the scores the closed elements had, against their outcome")
    auc_change: float | None = Field(description="roc_auc − the model's trained ROC AUC: is the model still right?")
    calibration: list[ScoreCalibrationBin]
    tiers: list[TierConversion]


# --- alerts ---------------------------------------------------------------------------------------------------------


class AlertMetric(StrEnum):
    entered = "entered"
    conversion_to_next = "conversion_to_next"
    conversion_to_success = "conversion_to_success"
    lost = "lost"
    created = "created"
    won_count = "won_count"
    won_amount = "won_amount"
    win_rate = "win_rate"
    time_in_stage_p50 = "time_in_stage_p50"
    time_in_stage_p90 = "time_in_stage_p90"
    time_to_win_p50 = "time_to_win_p50"


# Metrics of one stage (`stage_id` required); `lost` takes one optionally (else the whole pipeline's losses).
STAGE_METRICS = frozenset(
    {
        AlertMetric.entered,
        AlertMetric.conversion_to_next,
        AlertMetric.conversion_to_success,
        AlertMetric.time_in_stage_p50,
        AlertMetric.time_in_stage_p90,
    }
)


class Threshold(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["threshold"]
    op: Literal["lt", "lte", "gt", "gte"] = Field(description="Fires when `metric op value` holds")
    value: float = Field(ge=-1e15, le=1e15)


class Anomaly(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["anomaly"]
    k: float = Field(default=3.0, ge=0.5, le=20, description="Band: median ± k·MAD (scaled to a standard deviation)")
    periods: int = Field(default=14, ge=3, le=60, description="How many past windows make the band")
    direction: Literal["both", "above", "below"] = "both"


AlertCondition = Annotated[Threshold | Anomaly, Field(discriminator="kind")]


class AlertCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    entity_type: str = Field(min_length=1, max_length=100, description="The type's code or id")
    pipeline_id: uuid.UUID | None = Field(default=None, description="Default: the type's default pipeline")
    stage_id: uuid.UUID | None = Field(default=None, description="For the metrics of one stage")
    metric: AlertMetric
    condition: AlertCondition
    window_days: int = Field(default=7, ge=1, le=90, description="The metric over the last N whole UTC days")
    min_volume: int = Field(
        default=0, ge=0, le=10**9, description="Not judged on less (entries of the stage, closed elements, moves out)"
    )
    check_every_minutes: int = Field(default=60, ge=1, le=10080)
    notify_user_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)
    enabled: bool = True


class AlertUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    stage_id: uuid.UUID | None = None
    metric: AlertMetric | None = None
    condition: AlertCondition | None = None
    window_days: int | None = Field(default=None, ge=1, le=90)
    min_volume: int | None = Field(default=None, ge=0, le=10**9)
    check_every_minutes: int | None = Field(default=None, ge=1, le=10080)
    notify_user_ids: list[uuid.UUID] | None = Field(default=None, max_length=50)
    enabled: bool | None = None


class AlertRead(BaseModel):
    id: uuid.UUID
    name: str
    entity_type: str
    entity_type_id: uuid.UUID
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID | None
    metric: AlertMetric
    condition: AlertCondition
    window_days: int
    min_volume: int
    check_every_minutes: int
    notify_user_ids: list[uuid.UUID]
    enabled: bool
    state: AlertState = Field(description="`firing` from a breach until the metric is back in band")
    last_value: float | None
    last_checked_at: datetime | None
    next_check_at: datetime
    created_at: datetime
    updated_at: datetime


class AlertList(BaseModel):
    items: list[AlertRead]


class AlertEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    rule_id: uuid.UUID
    kind: AlertEventKind
    value: float | None
    low: float | None = Field(description="The band's low end (none: unbounded)")
    high: float | None
    window_start: date
    window_end: date
    notified: int = Field(description="People notified")
    event_id: uuid.UUID = Field(description="The `alert.fired` / `alert.resolved` event webhooks receive")
    at: datetime


class AlertEventList(BaseModel):
    """Newest first."""

    items: list[AlertEventRead]


class AlertCheck(BaseModel):
    alert: AlertRead
    value: float | None = Field(description="The metric over the window (null: too little volume to judge)")
    volume: int
    low: float | None
    high: float | None
    breached: bool | None
    window_start: date
    window_end: date
    event: AlertEventRead | None = Field(description="The state change this check made, if any")


# --- dashboards -----------------------------------------------------------------------------------------------------


class Kpi(BaseModel):
    name: str = Field(
        description="created, won_count, won_amount, lost, win_rate, moves, avg_time_in_stage_seconds, "
        "avg_time_to_close_seconds"
    )
    current: float | None
    previous: float | None
    change: float | None = Field(description="current / previous − 1 (null when previous is 0 or null)")


class PriorityElement(BaseModel):
    id: uuid.UUID
    title: str
    stage_id: uuid.UUID
    stage_code: str
    score: int | None
    amount: float | None
    moved_at: datetime | None
    seconds_in_stage: float
    overdue: bool = Field(description="Longer in its stage than the stage's time limit")


class ManagerDashboard(BaseModel):
    user_id: uuid.UUID
    entity_type: str
    pipeline_id: uuid.UUID
    period: Period
    previous_period: Period
    open_count: int = Field(description="My open elements (in process stages)")
    open_amount: float
    priority: list[PriorityElement] = Field(
        description="My open elements, highest score first, then longest in their stage"
    )
    kpis: list[Kpi] = Field(description="Mine, this period against the previous one of the same length")


class Leader(BaseModel):
    user_id: uuid.UUID | None
    name: str | None
    won_count: int
    won_amount: float
    created: int
    win_rate: float | None
    avg_time_in_stage_seconds: float | None


class SlowStage(BaseModel):
    stage_id: uuid.UUID
    code: str
    current_seconds: float
    previous_seconds: float
    change: float = Field(description="current / previous − 1")


class ProblemArea(BaseModel):
    kind: ProblemKind
    stage_id: uuid.UUID | None
    user_id: uuid.UUID | None
    current: float
    previous: float | None
    detail: str


class HeadDashboard(BaseModel):
    entity_type: str
    pipeline_id: uuid.UUID
    period: Period
    previous_period: Period
    team: list[uuid.UUID] | None = Field(description="The people counted (null: everyone's elements)")
    kpis: list[Kpi]
    leaders: list[Leader] = Field(description="By amount won, then wins (at most 10)")
    slowing_stages: list[SlowStage] = Field(description="Mean time in stage up by more than 20 %")
    funnel: list[FunnelStage] = Field(description="This period's funnel of the team")
    problems: list[ProblemArea]
