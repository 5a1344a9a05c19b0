import uuid
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

from fastapi import Depends, Query

from app.analytics import service
from app.analytics.schemas import (
    AutomationReport,
    FunnelReport,
    GroupBy,
    MoneyReport,
    ScoringReport,
    TimeInStageReport,
)
from app.api.rest.common import make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.api.rest.problems import problem_responses

router = make_router(tags=["analytics"])
METRIC_ERRORS = problem_responses(401, 403, 404, 422)


@dataclass(frozen=True)
class MetricQuery:
    entity_type: str
    pipeline_id: uuid.UUID | None
    start: date | None
    end: date | None


def metric_query(
    entity_type: Annotated[str, Query(min_length=1, max_length=100, description="The type's code or id")],
    pipeline_id: Annotated[uuid.UUID | None, Query(description="Default: the type's default pipeline")] = None,
    start: Annotated[
        date | None, Query(alias="from", description="First day (UTC), inclusive; default: 29 days before `to`")
    ] = None,
    end: Annotated[date | None, Query(alias="to", description="Last day (UTC), inclusive; default: today")] = None,
) -> MetricQuery:
    return MetricQuery(entity_type, pipeline_id, start, end)


MetricDep = Annotated[MetricQuery, Depends(metric_query)]
GroupByQuery = Annotated[
    GroupBy, Query(description="`none`, a period (`day`, `week` from Monday, `month`), `assignee`, `source` or `field`")
]
FieldQuery = Annotated[str | None, Query(max_length=63, description="With `group_by=field`: an enum field's code")]


@router.get("/analytics/funnel", responses=METRIC_ERRORS)
async def get_funnel(
    session: SessionDep, actor: ActorDep, q: MetricDep, group_by: GroupByQuery = GroupBy.none, field: FieldQuery = None
) -> FunnelReport:
    """Elements that entered each stage in the period, conversion to the next stage and to success, losses by stage.

    From the rollups kept as elements move (a few rows per day and stage, at any number of elements); grouped by
    source or a field, from the period's stage history.
    """
    return await service.funnel(
        session,
        actor,
        q.entity_type,
        pipeline_id=q.pipeline_id,
        start=q.start,
        end=q.end,
        group_by=group_by,
        field_code=field,
    )


@router.get("/analytics/time-in-stage", responses=METRIC_ERRORS)
async def get_time_in_stage(
    session: SessionDep, actor: ActorDep, q: MetricDep, group_by: GroupByQuery = GroupBy.none, field: FieldQuery = None
) -> TimeInStageReport:
    """Time spent in each stage (by the moves out of it in the period) and time from creation to close: count, mean,
    p50 and p90, in seconds."""
    return await service.time_in_stage(
        session,
        actor,
        q.entity_type,
        pipeline_id=q.pipeline_id,
        start=q.start,
        end=q.end,
        group_by=group_by,
        field_code=field,
    )


@router.get("/analytics/money", responses=METRIC_ERRORS)
async def get_money(
    session: SessionDep,
    actor: ActorDep,
    q: MetricDep,
    group_by: GroupByQuery = GroupBy.none,
    field: FieldQuery = None,
    probability: Annotated[
        Literal["auto", "model", "stage"],
        Query(
            description="`model`: score / 100; `stage`: the stage's recent conversion to success; `auto`: model "
            "when the type's active model is learned"
        ),
    ] = "auto",
    lookback_days: Annotated[int, Query(ge=7, le=service.MAX_LOOKBACK_DAYS)] = 90,
) -> MoneyReport:
    """Amount won (sum, average) in the period, the open pipeline weighted by probability, and the forecast for the
    period's end."""
    return await service.money(
        session,
        actor,
        q.entity_type,
        pipeline_id=q.pipeline_id,
        start=q.start,
        end=q.end,
        group_by=group_by,
        field_code=field,
        probability=probability,
        lookback_days=lookback_days,
    )


@router.get("/analytics/automation", responses=METRIC_ERRORS)
async def get_automation_metrics(session: SessionDep, actor: ActorDep, q: MetricDep) -> AutomationReport:
    """Runs of the type's rules in the period (successes, failures, p95 duration and latency, per rule) and the share
    of stage moves made by rules rather than people."""
    return await service.automation(session, actor, q.entity_type, pipeline_id=q.pipeline_id, start=q.start, end=q.end)


@router.get("/analytics/scoring", responses=METRIC_ERRORS)
async def get_scoring_metrics(session: SessionDep, actor: ActorDep, q: MetricDep) -> ScoringReport:
    """For the elements that closed in the period: ROC AUC and calibration of the scores they had, and conversion by
    score tier, next to the active model's trained ROC AUC."""
    return await service.scoring(session, actor, q.entity_type, pipeline_id=q.pipeline_id, start=q.start, end=q.end)
