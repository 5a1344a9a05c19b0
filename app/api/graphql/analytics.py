"""Analytics, dashboards and alerts in GraphQL: the same reports as REST (types generated from the same Pydantic
models), thin resolvers over app/analytics."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, NewType, TypeAlias

import strawberry
from pydantic import BaseModel, Field
from strawberry.experimental.pydantic import type as pydantic_type
from strawberry.scalars import JSON

from app.analytics import alerts, dashboards, service
from app.analytics import schemas as s
from app.api.graphql.context import Info
from app.api.graphql.errors import ErrorTypes, mutate, parse
from app.api.graphql.types import Deleted, DeleteResult

GroupBy = strawberry.enum(s.GroupBy, name="AnalyticsGroupBy")
strawberry.enum(s.ComputedFrom, name="AnalyticsSource")
strawberry.enum(s.ProbabilityMode, name="ProbabilityMode")
strawberry.enum(s.AlertMetric, name="AlertMetric")
strawberry.enum(s.AlertState, name="AlertState")
strawberry.enum(s.AlertEventKind, name="AlertEventKind")
strawberry.enum(s.ProblemKind, name="ProblemKind")


def _condition_out(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


AlertConditionJSON = NewType("AlertConditionJSON", object)
# Registered through the schema's scalar_map (StrawberryConfig), as Strawberry recommends.
ALERT_CONDITION = strawberry.scalar(
    name="AlertConditionJSON",
    serialize=_condition_out,
    parse_value=lambda value: value,
    description='An alert\'s condition: {"kind": "threshold", "op": "lt", "value": 0.2} or {"kind": "anomaly", '
    '"k": 3, "periods": 14, "direction": "both"}',
)


@pydantic_type(model=s.Period, all_fields=True, name="AnalyticsPeriod")
class Period:
    pass


@pydantic_type(model=s.StageInfo, all_fields=True, name="AnalyticsStage")
class StageInfo:
    pass


@pydantic_type(model=s.FunnelStage, all_fields=True)
class FunnelStage:
    pass


@pydantic_type(model=s.FunnelGroup, all_fields=True)
class FunnelGroup:
    pass


@pydantic_type(model=s.FunnelReport, all_fields=True)
class FunnelReport:
    pass


@pydantic_type(model=s.StageDurations, all_fields=True)
class StageDurations:
    pass


@pydantic_type(model=s.TimeGroup, all_fields=True, name="TimeInStageGroup")
class TimeGroup:
    pass


@pydantic_type(model=s.TimeInStageReport, all_fields=True)
class TimeInStageReport:
    pass


@pydantic_type(model=s.MoneyGroup, all_fields=True)
class MoneyGroup:
    pass


@pydantic_type(model=s.OpenStage, all_fields=True)
class OpenStage:
    pass


@pydantic_type(model=s.Forecast, all_fields=True)
class Forecast:
    pass


@pydantic_type(model=s.MoneyReport, all_fields=True)
class MoneyReport:
    pass


@pydantic_type(model=s.RuleRuns, all_fields=True)
class RuleRuns:
    pass


@pydantic_type(model=s.AutomationReport, all_fields=True, name="AutomationMetrics")
class AutomationReport:
    pass


@pydantic_type(model=s.ActiveModel, all_fields=True, name="ScoredModel")
class ActiveModel:
    pass


@pydantic_type(model=s.ScoreCalibrationBin, all_fields=True, name="ScoreCalibration")
class ScoreCalibrationBin:
    pass


@pydantic_type(model=s.TierConversion, all_fields=True)
class TierConversion:
    pass


@pydantic_type(model=s.ScoringReport, all_fields=True, name="ScoringReport")
class ScoringReport:
    pass


@pydantic_type(model=s.Kpi, all_fields=True)
class Kpi:
    pass


@pydantic_type(model=s.PriorityElement, all_fields=True)
class PriorityElement:
    pass


@pydantic_type(model=s.ManagerDashboard, all_fields=True)
class ManagerDashboard:
    pass


@pydantic_type(model=s.Leader, all_fields=True)
class Leader:
    pass


@pydantic_type(model=s.SlowStage, all_fields=True)
class SlowStage:
    pass


@pydantic_type(model=s.ProblemArea, all_fields=True, name="ProblemArea")
class ProblemArea:
    pass


@pydantic_type(model=s.HeadDashboard, all_fields=True)
class HeadDashboard:
    pass


@pydantic_type(model=s.AlertRead, all_fields=True, name="Alert")
class Alert:
    condition: AlertConditionJSON


@pydantic_type(model=s.AlertEventRead, all_fields=True, name="AlertEvent")
class AlertEvent:
    pass


@pydantic_type(model=s.AlertCheck, all_fields=True)
class AlertCheck:
    pass


AlertResult: TypeAlias = Annotated[Alert | ErrorTypes, strawberry.union("AlertResult")]
AlertCheckResult: TypeAlias = Annotated[AlertCheck | ErrorTypes, strawberry.union("AlertCheckResult")]


@strawberry.input(description="As REST's body of POST /alerts; `condition` in the REST shape")
class AlertCreateInput:
    name: str
    entity_type: str
    metric: s.AlertMetric
    condition: JSON
    pipeline_id: uuid.UUID | None = None
    stage_id: uuid.UUID | None = None
    window_days: int = 7
    min_volume: int = 0
    check_every_minutes: int = 60
    notify_user_ids: list[uuid.UUID] = strawberry.field(default_factory=list)
    enabled: bool = True


@strawberry.input
class AlertUpdateInput:
    name: str | None = strawberry.UNSET
    stage_id: uuid.UUID | None = strawberry.UNSET
    metric: s.AlertMetric | None = strawberry.UNSET
    condition: JSON | None = strawberry.UNSET
    window_days: int | None = strawberry.UNSET
    min_volume: int | None = strawberry.UNSET
    check_every_minutes: int | None = strawberry.UNSET
    notify_user_ids: list[uuid.UUID] | None = strawberry.UNSET
    enabled: bool | None = strawberry.UNSET


def _input(value: Any) -> dict[str, Any]:
    """A strawberry input as plain data (unset fields left out)."""
    data = {k: v for k, v in vars(value).items() if v is not strawberry.UNSET}
    return {k: (v.value if isinstance(v, s.AlertMetric) else v) for k, v in data.items()}


FromArg = Annotated[date | None, strawberry.argument(name="from", description="First day (UTC), inclusive")]
ToArg = Annotated[date | None, strawberry.argument(name="to", description="Last day (UTC), inclusive")]


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(description="The funnel of a type's pipeline over a period (REST: GET /analytics/funnel)")
    async def analytics_funnel(
        self,
        info: Info,
        entity_type: str,
        pipeline_id: uuid.UUID | None = None,
        start: FromArg = None,
        end: ToArg = None,
        group_by: s.GroupBy = s.GroupBy.none,
        field: str | None = None,
    ) -> FunnelReport:
        report = await service.funnel(
            info.context.session,
            info.context.who,
            entity_type,
            pipeline_id=pipeline_id,
            start=start,
            end=end,
            group_by=s.GroupBy(group_by),
            field_code=field,
        )
        return FunnelReport.from_pydantic(report)

    @strawberry.field(description="Time in stage and time to close (REST: GET /analytics/time-in-stage)")
    async def analytics_time_in_stage(
        self,
        info: Info,
        entity_type: str,
        pipeline_id: uuid.UUID | None = None,
        start: FromArg = None,
        end: ToArg = None,
        group_by: s.GroupBy = s.GroupBy.none,
        field: str | None = None,
    ) -> TimeInStageReport:
        report = await service.time_in_stage(
            info.context.session,
            info.context.who,
            entity_type,
            pipeline_id=pipeline_id,
            start=start,
            end=end,
            group_by=s.GroupBy(group_by),
            field_code=field,
        )
        return TimeInStageReport.from_pydantic(report)

    @strawberry.field(
        description="Amount won, the weighted open pipeline and the forecast for the period's end (REST: GET "
        "/analytics/money); `probability`: auto, model or stage"
    )
    async def analytics_money(
        self,
        info: Info,
        entity_type: str,
        pipeline_id: uuid.UUID | None = None,
        start: FromArg = None,
        end: ToArg = None,
        group_by: s.GroupBy = s.GroupBy.none,
        field: str | None = None,
        probability: str = "auto",
        lookback_days: int = 90,
    ) -> MoneyReport:
        checked = parse(_MoneyOptions, {"probability": probability, "lookback_days": lookback_days})
        report = await service.money(
            info.context.session,
            info.context.who,
            entity_type,
            pipeline_id=pipeline_id,
            start=start,
            end=end,
            group_by=s.GroupBy(group_by),
            field_code=field,
            probability=checked.probability,
            lookback_days=checked.lookback_days,
        )
        return MoneyReport.from_pydantic(report)

    @strawberry.field(description="Automation runs and the share of moves made by rules (REST: /analytics/automation)")
    async def analytics_automation(
        self,
        info: Info,
        entity_type: str,
        pipeline_id: uuid.UUID | None = None,
        start: FromArg = None,
        end: ToArg = None,
    ) -> AutomationReport:
        report = await service.automation(
            info.context.session, info.context.who, entity_type, pipeline_id=pipeline_id, start=start, end=end
        )
        return AutomationReport.from_pydantic(report)

    @strawberry.field(
        description="ROC AUC, calibration and conversion by tier of closed elements (REST: /analytics/scoring)"
    )
    async def analytics_scoring(
        self,
        info: Info,
        entity_type: str,
        pipeline_id: uuid.UUID | None = None,
        start: FromArg = None,
        end: ToArg = None,
    ) -> ScoringReport:
        report = await service.scoring(
            info.context.session, info.context.who, entity_type, pipeline_id=pipeline_id, start=start, end=end
        )
        return ScoringReport.from_pydantic(report)

    @strawberry.field(description="My open elements by score and my KPIs against my previous period (a person's only)")
    async def manager_dashboard(
        self, info: Info, entity_type: str, pipeline_id: uuid.UUID | None = None, days: int = 30, limit: int = 50
    ) -> ManagerDashboard:
        checked = parse(_DashboardOptions, {"days": days, "limit": limit})
        board = await dashboards.manager(
            info.context.session,
            info.context.who,
            entity_type,
            pipeline_id=pipeline_id,
            days=checked.days,
            limit=checked.limit,
        )
        return ManagerDashboard.from_pydantic(board)

    @strawberry.field(
        description="The team's KPIs, leaders, slowing stages and problem areas (scope department or all)"
    )
    async def head_dashboard(
        self,
        info: Info,
        entity_type: str,
        pipeline_id: uuid.UUID | None = None,
        days: int = 30,
        department_id: uuid.UUID | None = None,
    ) -> HeadDashboard:
        checked = parse(_DashboardOptions, {"days": days})
        board = await dashboards.head(
            info.context.session,
            info.context.who,
            entity_type,
            pipeline_id=pipeline_id,
            days=checked.days,
            department_id=department_id,
        )
        return HeadDashboard.from_pydantic(board)

    @strawberry.field(description="The alerts of the pipelines whose every element the caller reads")
    async def alerts(self, info: Info, entity_type: str | None = None) -> list[Alert]:
        found = await alerts.list_alerts(info.context.session, info.context.who, entity_type=entity_type)
        return [Alert.from_pydantic(a) for a in found.items]

    @strawberry.field
    async def alert(self, info: Info, id: uuid.UUID) -> Alert:
        return Alert.from_pydantic(await alerts.get_alert(info.context.session, info.context.who, id))

    @strawberry.field(description="An alert's history, newest first")
    async def alert_events(self, info: Info, id: uuid.UUID, limit: int = 50) -> list[AlertEvent]:
        checked = parse(_DashboardOptions, {"limit": limit})
        found = await alerts.list_events(info.context.session, info.context.who, id, limit=checked.limit)
        return [AlertEvent.from_pydantic(e) for e in found.items]


class _MoneyOptions(BaseModel):
    probability: str = Field(pattern="^(auto|model|stage)$")
    lookback_days: int = Field(ge=7, le=service.MAX_LOOKBACK_DAYS)


class _DashboardOptions(BaseModel):
    days: int = Field(default=30, ge=1, le=dashboards.MAX_DAYS)
    limit: int = Field(default=50, ge=1, le=500)


@strawberry.type
class AnalyticsMutation:
    @strawberry.mutation(description="A rule on a metric, checked on a schedule by the worker (REST: POST /alerts)")
    async def create_alert(self, info: Info, input: AlertCreateInput) -> AlertResult:
        async def run() -> Alert:
            data = parse(s.AlertCreate, _input(input))
            read = await alerts.create_alert(info.context.session, info.context.who, data)
            return Alert.from_pydantic(read)

        return await mutate(info, run)

    @strawberry.mutation
    async def update_alert(self, info: Info, id: uuid.UUID, input: AlertUpdateInput) -> AlertResult:
        async def run() -> Alert:
            data = parse(s.AlertUpdate, _input(input))
            read = await alerts.update_alert(info.context.session, info.context.who, id, data)
            return Alert.from_pydantic(read)

        return await mutate(info, run)

    @strawberry.mutation
    async def delete_alert(self, info: Info, id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await alerts.delete_alert(info.context.session, info.context.who, id)
            return Deleted(ref=str(id))

        return await mutate(info, run)

    @strawberry.mutation(description="Check an alert now, as the worker would")
    async def check_alert(self, info: Info, id: uuid.UUID) -> AlertCheckResult:
        async def run() -> AlertCheck:
            read = await alerts.check_alert(info.context.session, info.context.who, id)
            return AlertCheck.from_pydantic(read)

        return await mutate(info, run)
