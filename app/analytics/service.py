"""Process metrics for a type's pipeline over a period: funnel, time in stage, money and forecast, automation, scoring.

Where the numbers come from:

- **Rollups** (`analytics_stage_days`, `analytics_distributions`), kept by a trigger on `stage_history` in the
  transaction of every move: a funnel, the won amounts and the time-in-stage histograms of a period cost a sum over a
  few rows per day and stage, whatever the number of elements. Events are counted on their UTC day, for the assignee
  the element had then.
- **The period's stage history** (exact, slower: it reads every move of the period) for what is not rolled up:
  groupings by source or by an enum field, time-in-stage percentiles per assignee, and time in stage for roles that
  read only some elements (their scope's elements, by current assignee).
- **Live totals** for the open pipeline (`stage_totals`, or the open elements when scores or a scope are involved).

Who may ask: whoever may read the pipeline's elements. A type the role cannot see is 404; a pipeline it reads none of
is 403. A role that reads only its own (or its department's) elements gets the events of elements assigned to those
people; automation and scoring reports need a scope of every element of the pipeline.
"""

import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ARRAY, TIMESTAMP, Date, and_, bindparam, cast, func, literal, or_, select, text
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.permissions import PermissionDenied, Scope
from app.access.visibility import ensure_sees_type
from app.analytics import stats
from app.analytics.models import DAY, EVERYONE, MONTH, NOBODY, Distribution, StageDay
from app.analytics.schemas import (
    PERIOD_GROUPS,
    ActiveModel,
    AutomationReport,
    ComputedFrom,
    Forecast,
    FunnelGroup,
    FunnelReport,
    FunnelStage,
    GroupBy,
    MoneyGroup,
    MoneyReport,
    OpenStage,
    Period,
    ProbabilityMode,
    RuleRuns,
    ScoreCalibrationBin,
    ScoringReport,
    StageDurations,
    StageInfo,
    TierConversion,
    TimeGroup,
    TimeInStageReport,
)
from app.auth.actor import Actor
from app.elements.meta_cache import cached_type_meta
from app.elements.models import StageTotal
from app.entity_types.meta import TypeMeta
from app.errors import FieldError, Invalid, NotFound
from app.pipelines.models import Pipeline, Stage, StageSemantic
from app.scoring.models import ScoringModel

MAX_PERIOD_DAYS = 3660
# Days a period may name: far enough for any business, and clear of the calendar's ends (no date overflow).
EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)
MAX_GROUPS = 400
DEFAULT_PERIOD_DAYS = 30
MAX_LOOKBACK_DAYS = 730
KIND_STAY, KIND_CLOSE, KIND_SCORE = 0, 1, 2
# Score tiers, as routing's defaults: 80+ senior, 50–79 regular, below 50 automatic.
TIERS = (("hot", 80, 100), ("warm", 50, 79), ("cold", 0, 49))
UUIDS = ARRAY(PgUUID(as_uuid=True))


# --- what is asked: a type's pipeline, a period, a grouping --------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A type's pipeline as the actor may see it: `owners` None for every element, else the people whose elements
    the actor's read scope covers."""

    meta: TypeMeta
    pipeline: Pipeline
    stages: list[Stage]
    owners: tuple[uuid.UUID, ...] | None

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.pipeline.workspace_id

    def of(self, semantic: StageSemantic) -> list[Stage]:
        return [s for s in self.stages if s.semantic == semantic]

    def stage_infos(self) -> list[StageInfo]:
        return [
            StageInfo(id=s.id, code=s.code, title=s.title, semantic=s.semantic.value, sort=s.sort) for s in self.stages
        ]

    def require_everything(self, what: str) -> None:
        if self.owners is not None:
            raise PermissionDenied(
                f"{self.meta.code}.read", f"{what} need a role that reads every element of the pipeline"
            )


async def resolve_target(
    session: AsyncSession, actor: Actor, type_ref: str, pipeline_id: uuid.UUID | None = None
) -> Target:
    meta = await cached_type_meta(session, actor.workspace_id, type_ref)
    ensure_sees_type(actor, meta.id, meta.code, f"Entity type {type_ref!r} not found")
    pipeline = meta.pipelines.get(pipeline_id) if pipeline_id is not None else meta.default_pipeline()
    if pipeline is None:
        raise NotFound(f"Pipeline {pipeline_id} not found" if pipeline_id else f"{meta.code!r} has no pipeline")
    access = actor.on(meta)
    owners: tuple[uuid.UUID, ...] | None = None
    if not access.full:
        scope = access.scope("read", pipeline.id)
        if scope is Scope.none:
            raise PermissionDenied(f"{meta.code}.read", f"Your role may not read {meta.code} elements of this pipeline")
        owners = access.owner_ids(scope)
    return Target(meta=meta, pipeline=pipeline, stages=meta.stages_of(pipeline.id), owners=owners)


def today() -> date:
    return datetime.now(UTC).date()


def resolve_period(start: date | None, end: date | None, *, now: date | None = None) -> Period:
    for name, value in (("from", start), ("to", end)):
        if value is not None and not EARLIEST <= value <= LATEST:
            raise Invalid(
                "The period is not valid",
                errors=[FieldError(name, f"between {EARLIEST.isoformat()} and {LATEST.isoformat()}")],
            )
    end = end or now or today()
    start = start or end - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if start > end:
        raise Invalid("The period is not valid", errors=[FieldError("from", "must not be after `to`")])
    days = (end - start).days + 1
    if days > MAX_PERIOD_DAYS:
        raise Invalid(
            "The period is not valid", errors=[FieldError("from", f"a period spans {MAX_PERIOD_DAYS} days at most")]
        )
    return Period(start=start, end=end, days=days)


def _truncate(day: date, group_by: GroupBy) -> date:
    if group_by is GroupBy.week:
        return day - timedelta(days=day.weekday())
    if group_by is GroupBy.month:
        return day.replace(day=1)
    return day


def period_keys(period: Period, group_by: GroupBy) -> list[str]:
    """Every group of a period grouping, oldest first (days, Mondays of weeks, firsts of months)."""
    keys: list[str] = []
    day = _truncate(period.start, group_by)
    while day <= period.end:
        keys.append(day.isoformat())
        if len(keys) > MAX_GROUPS:
            raise Invalid(
                "Too many groups",
                errors=[FieldError("group_by", f"at most {MAX_GROUPS} groups: pick a longer step or a shorter period")],
            )
        if group_by is GroupBy.month:
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            day += timedelta(days=7 if group_by is GroupBy.week else 1)
    return keys


def _field_code(target: Target, actor: Actor, group_by: GroupBy, field_code: str | None) -> str | None:
    """The enum field grouped by, checked; None unless grouping by a field."""
    if group_by is not GroupBy.field:
        return None
    hidden = actor.on(target.meta).hidden
    meta_field = target.meta.fields.get(field_code or "")
    problem = None
    if not field_code:
        problem = "`group_by=field` needs `field`, the code of an enum field"
    elif meta_field is None or field_code in hidden:
        problem = f"{target.meta.code!r} has no field {field_code!r}"
    elif meta_field.row.type != "enum" or meta_field.row.multiple:
        problem = "only a single-valued enum field can group"
    if problem:
        raise Invalid("The grouping is not valid", errors=[FieldError("field", problem)])
    return field_code


async def _report_scope(
    session: AsyncSession,
    actor: Actor,
    type_ref: str,
    pipeline_id: uuid.UUID | None,
    period: tuple[date | None, date | None],
    group_by: GroupBy,
    field_code: str | None,
    *,
    now: date | None = None,
) -> tuple[Target, Period, str | None]:
    """What every grouped report checks first: the type and pipeline the actor may read, the period, the grouping
    field, and (for period groupings) that the groups are not too many, before anything is queried."""
    target = await resolve_target(session, actor, type_ref, pipeline_id)
    resolved = resolve_period(*period, now=now)
    code = _field_code(target, actor, group_by, field_code)
    if group_by in PERIOD_GROUPS:
        period_keys(resolved, group_by)
    return target, resolved, code


def _bounds(period: Period) -> tuple[datetime, datetime]:
    return (
        datetime.combine(period.start, time(0), UTC),
        datetime.combine(period.end + timedelta(days=1), time(0), UTC),
    )


# --- rollup sums per group and stage -----------------------------------------------------------------------------


@dataclass
class Sums:
    entered: int = 0
    reentered: int = 0
    created: int = 0
    by_rules: int = 0
    exited: int = 0
    exited_seconds: float = 0.0
    lost: int = 0
    won: int = 0
    entered_amount: float = 0.0
    closed_seconds: float = 0.0

    def add(self, other: "Sums") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


SUM_NAMES = [f.name for f in fields(Sums)]
GroupedSums = dict[str | None, dict[uuid.UUID, Sums]]


def _key_text(value: Any) -> str | None:
    if value is None or value == NOBODY:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _rollup_key(group_by: GroupBy, column: Any) -> Any:
    if group_by is GroupBy.day:
        return column
    if group_by in (GroupBy.week, GroupBy.month):
        return cast(func.date_trunc(group_by.value, cast(column, TIMESTAMP)), Date)
    return None


async def stage_sums(
    session: AsyncSession, target: Target, start: date, end: date, group_by: GroupBy = GroupBy.none
) -> GroupedSums:
    """Rollup sums per group and stage over [start, end] (days, inclusive); groups: none, a period or assignee."""
    c = StageDay.__table__.c
    key = c.assignee_id if group_by is GroupBy.assignee else _rollup_key(group_by, c.day)
    key_column = key if key is not None else literal(None)
    statement = (
        select(key_column.label("key"), c.stage_id, *(func.sum(c[name]).label(name) for name in SUM_NAMES))
        .where(
            c.workspace_id == target.workspace_id,
            c.pipeline_id == target.pipeline.id,
            c.day >= start,
            c.day <= end,
        )
        .group_by(*([key] if key is not None else []), c.stage_id)
    )
    if target.owners is not None:
        statement = statement.where(c.assignee_id.in_(target.owners))
    elif group_by is GroupBy.assignee:
        statement = statement.where(c.assignee_id != EVERYONE)
    else:
        statement = statement.where(c.assignee_id == EVERYONE)  # one row per day and stage (and slot)
    grouped: GroupedSums = defaultdict(dict)
    for row in await session.execute(statement):
        grouped[_key_text(row.key)][row.stage_id] = _sums_of(row)
    return grouped


def _sums_of(row: Any) -> Sums:
    values: dict[str, Any] = {}
    for name in SUM_NAMES:
        raw = getattr(row, name) or 0
        values[name] = float(raw) if "seconds" in name or "amount" in name else int(raw)
    return Sums(**values)


def _history_key(group_by: GroupBy) -> str:
    """The group of a stage_history row `h` of element `e`, as text."""
    utc_day = "(h.moved_at AT TIME ZONE 'UTC')"
    return {
        GroupBy.none: "NULL::text",
        GroupBy.day: f"{utc_day}::date::text",
        GroupBy.week: f"date_trunc('week', {utc_day})::date::text",
        GroupBy.month: f"date_trunc('month', {utc_day})::date::text",
        GroupBy.assignee: "e.assigned_to::text",
        GroupBy.source: "e.source",
        GroupBy.field: 'e."values" ->> :field_code',
    }[group_by]


def _history_rows(group_by: GroupBy, owners: bool) -> str:
    """The period's stage history of the pipeline (entries into it, moves within it), with each row's group, and from
    the element's earlier history (one index probe per row) when it entered the stage it left (`previous_at`) and
    whether it had been in the new stage before (`seen`)."""
    scope = "AND e.assigned_to = ANY(:owners)" if owners else ""
    # Only constants of this module are spliced in; every value is a bound parameter.
    return f"""
        SELECT h.id, h.element_id, h.from_pipeline_id, h.from_stage_id, h.to_stage_id, h.moved_by, h.moved_at,
            e.created_at, coalesce(e.amount, 0) AS amount, {_history_key(group_by)} AS key,
            earlier.previous_at, coalesce(earlier.seen, false) AS seen
        FROM stage_history h
        JOIN elements e ON e.id = h.element_id
        LEFT JOIN LATERAL (
            SELECT max(p.moved_at) AS previous_at, bool_or(p.to_stage_id = h.to_stage_id) AS seen
            FROM stage_history p
            WHERE h.from_stage_id IS NOT NULL AND p.element_id = h.element_id AND p.id < h.id
        ) earlier ON true
        WHERE h.to_pipeline_id = :pipeline_id AND h.moved_at >= :start AND h.moved_at < :end
            AND h.workspace_id = :workspace_id {scope}"""  # noqa: S608


def _history_params(target: Target, period: Period, field_code: str | None) -> dict[str, Any]:
    start, end = _bounds(period)
    params: dict[str, Any] = {
        "workspace_id": target.workspace_id,
        "pipeline_id": target.pipeline.id,
        "start": start,
        "end": end,
    }
    if field_code is not None:
        params["field_code"] = field_code
    if target.owners is not None:
        params["owners"] = list(target.owners)
    return params


async def _without_jit(session: AsyncSession) -> None:
    """The history queries' cost estimates (an index probe per row) talk PostgreSQL into compiling them, which took
    longer than the queries (0.9 s at a million elements): not for this transaction."""
    await session.execute(text("SET LOCAL jit = off"))


def _history_statement(sql: str, target: Target) -> Any:
    statement = text(sql)
    return statement.bindparams(bindparam("owners", type_=UUIDS)) if target.owners is not None else statement


async def history_sums(
    session: AsyncSession, target: Target, period: Period, group_by: GroupBy, field_code: str | None
) -> GroupedSums:
    """What `stage_sums` counts, from the period's stage history (any grouping, elements' current values)."""
    sql = f"""
    WITH h AS MATERIALIZED ({_history_rows(group_by, target.owners is not None)})
    SELECT key, stage_id, sum(entered) AS entered, sum(reentered) AS reentered, sum(created) AS created,
        sum(by_rules) AS by_rules, sum(exited) AS exited, sum(lost) AS lost, sum(won) AS won,
        sum(entered_amount) AS entered_amount
    FROM (
        SELECT key, to_stage_id AS stage_id, (NOT seen)::int AS entered, seen::int AS reentered,
            (from_stage_id IS NULL)::int AS created, (moved_by IS NULL AND from_stage_id IS NOT NULL)::int AS by_rules,
            0 AS exited, 0 AS lost, 0 AS won, CASE WHEN seen THEN 0 ELSE amount END AS entered_amount
        FROM h
        UNION ALL
        SELECT h.key, h.from_stage_id, 0, 0, 0, 0, 1, (ts.semantic = 'failure')::int, (ts.semantic = 'success')::int, 0
        FROM h JOIN stages ts ON ts.id = h.to_stage_id
        WHERE h.from_pipeline_id = :pipeline_id AND h.from_stage_id IS NOT NULL
    ) moves
    GROUP BY key, stage_id"""  # noqa: S608
    grouped: GroupedSums = defaultdict(dict)
    await _without_jit(session)
    rows = await session.execute(_history_statement(sql, target), _history_params(target, period, field_code))
    for row in rows:
        grouped[row.key][row.stage_id] = Sums(
            entered=int(row.entered),
            reentered=int(row.reentered),
            created=int(row.created),
            by_rules=int(row.by_rules),
            exited=int(row.exited),
            lost=int(row.lost),
            won=int(row.won),
            entered_amount=float(row.entered_amount),
        )
    return grouped


async def _grouped_sums(
    session: AsyncSession, target: Target, period: Period, group_by: GroupBy, field_code: str | None
) -> tuple[GroupedSums, bool]:
    """(sums, from rollups?) for any grouping."""
    if group_by in (GroupBy.source, GroupBy.field):
        return await history_sums(session, target, period, group_by, field_code), False
    return await stage_sums(session, target, period.start, period.end, group_by), True


def _group_order(grouped: dict[str | None, Any], period: Period, group_by: GroupBy) -> list[str | None]:
    if group_by is GroupBy.none:
        return [None]
    if group_by in PERIOD_GROUPS:
        return list(period_keys(period, group_by))
    return sorted(grouped, key=lambda k: (k is None, k or ""))


# --- funnel -------------------------------------------------------------------------------------------------------


def funnel_group(target: Target, key: str | None, by_stage: dict[uuid.UUID, Sums]) -> FunnelGroup:
    empty = Sums()
    won_stages, lost_stages = target.of(StageSemantic.success), target.of(StageSemantic.failure)
    won = sum(by_stage.get(s.id, empty).entered for s in won_stages)
    lost = sum(by_stage.get(s.id, empty).entered for s in lost_stages)
    process = target.of(StageSemantic.process)
    stages: list[FunnelStage] = []
    for stage in target.stages:
        sums = by_stage.get(stage.id, empty)
        to_next = to_success = None
        if stage.semantic is StageSemantic.process:
            position = process.index(stage)
            following = [process[position + 1]] if position + 1 < len(process) else won_stages
            to_next = stats.ratio(sum(by_stage.get(s.id, empty).entered for s in following), sums.entered)
            to_success = stats.ratio(won, sums.entered)
        stages.append(
            FunnelStage(
                stage_id=stage.id,
                code=stage.code,
                entered=sums.entered,
                reentered=sums.reentered,
                exited=sums.exited,
                lost=sums.lost,
                won=sums.won,
                conversion_to_next=to_next,
                conversion_to_success=to_success,
                entered_amount=round(sums.entered_amount, 2),
            )
        )
    total = Sums()
    for sums in by_stage.values():
        total.add(sums)
    return FunnelGroup(
        key=key,
        stages=stages,
        created=total.created,
        won=won,
        lost=lost,
        won_amount=round(sum(by_stage.get(s.id, empty).entered_amount for s in won_stages), 2),
        win_rate=stats.ratio(won, won + lost),
        moves=total.entered + total.reentered - total.created,
        moves_by_rules=total.by_rules,
    )


async def funnel(
    session: AsyncSession,
    actor: Actor,
    type_ref: str,
    *,
    pipeline_id: uuid.UUID | None = None,
    start: date | None = None,
    end: date | None = None,
    group_by: GroupBy = GroupBy.none,
    field_code: str | None = None,
) -> FunnelReport:
    target, period, code = await _report_scope(
        session, actor, type_ref, pipeline_id, (start, end), group_by, field_code
    )
    grouped, from_rollups = await _grouped_sums(session, target, period, group_by, code)
    return FunnelReport(
        entity_type=target.meta.code,
        pipeline_id=target.pipeline.id,
        period=period,
        group_by=group_by,
        field=code,
        stages=target.stage_infos(),
        computed_from=ComputedFrom.rollups if from_rollups else ComputedFrom.history,
        groups=[funnel_group(target, key, grouped.get(key, {})) for key in _group_order(grouped, period, group_by)],
    )


# --- time in stage --------------------------------------------------------------------------------------------------

Histograms = dict[str | None, dict[tuple[int, uuid.UUID], dict[int, int]]]


async def distributions(
    session: AsyncSession, target: Target, start: date, end: date, group_by: GroupBy, kinds: Sequence[int]
) -> Histograms:
    """Histogram counts per group, (kind, stage) and bucket over [start, end]; groups: none or a period. Whole
    months inside the period are read from their monthly rows (ungrouped, or by month)."""
    c = Distribution.__table__.c
    ranges = [
        and_(c.grain == grain, c.day >= low, c.day <= high)
        for grain, low, high in _grain_ranges(start, end, monthly=group_by in (GroupBy.none, GroupBy.month))
    ]
    key = _rollup_key(group_by, c.day)
    statement = (
        select(
            (key if key is not None else literal(None)).label("key"),
            c.kind,
            c.stage_id,
            c.bucket,
            func.sum(c["count"]).label("n"),
        )
        .where(
            c.workspace_id == target.workspace_id,
            c.pipeline_id == target.pipeline.id,
            or_(*ranges),
            c.kind.in_(list(kinds)),
        )
        .group_by(*([key] if key is not None else []), c.kind, c.stage_id, c.bucket)
    )
    histograms: Histograms = defaultdict(lambda: defaultdict(dict))
    for row in await session.execute(statement):
        histograms[_key_text(row.key)][(row.kind, row.stage_id)][row.bucket] = int(row.n)
    return histograms


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _grain_ranges(start: date, end: date, *, monthly: bool) -> list[tuple[int, date, date]]:
    """[start, end] as (grain, first, last) ranges of rows: the whole months inside it as monthly rows (dated the
    1st), the days around them as daily rows."""
    first_full = start if start.day == 1 else _next_month(start)
    last_full = first_full
    while _next_month(last_full) - timedelta(days=1) <= end:
        last_full = _next_month(last_full)
    if not monthly or last_full == first_full:
        return [(DAY, start, end)]
    ranges = [(MONTH, first_full, last_full - timedelta(days=1))]
    if start < first_full:
        ranges.append((DAY, start, first_full - timedelta(days=1)))
    if last_full <= end:
        ranges.append((DAY, last_full, end))
    return ranges


def _durations(stage_id: uuid.UUID, code: str, counts: dict[int, int], seconds: float, count: int) -> StageDurations:
    return StageDurations(
        stage_id=stage_id,
        code=code,
        count=count,
        mean_seconds=stats.ratio(seconds, count),
        p50_seconds=stats.histogram_percentile(counts, 0.5),
        p90_seconds=stats.histogram_percentile(counts, 0.9),
    )


def _time_group_from_rollups(
    target: Target,
    key: str | None,
    by_stage: dict[uuid.UUID, Sums],
    histograms: dict[tuple[int, uuid.UUID], dict[int, int]],
) -> TimeGroup:
    empty = Sums()
    stays = [
        _durations(
            s.id,
            s.code,
            histograms.get((KIND_STAY, s.id), {}),
            by_stage.get(s.id, empty).exited_seconds,
            by_stage.get(s.id, empty).exited,
        )
        for s in target.stages
        if s.semantic is StageSemantic.process or (KIND_STAY, s.id) in histograms
    ]
    closing = [s for s in target.stages if s.semantic is not StageSemantic.process]
    close = [
        _durations(
            s.id,
            s.code,
            histograms.get((KIND_CLOSE, s.id), {}),
            by_stage.get(s.id, empty).closed_seconds,
            by_stage.get(s.id, empty).entered,
        )
        for s in closing
    ]
    won_stages = target.of(StageSemantic.success)
    to_win = None
    if won_stages:
        merged = stats.merge_counts(histograms.get((KIND_CLOSE, s.id), {}) for s in won_stages)
        count = sum(by_stage.get(s.id, empty).entered for s in won_stages)
        seconds = sum(by_stage.get(s.id, empty).closed_seconds for s in won_stages)
        to_win = _durations(won_stages[0].id, "success", merged, seconds, count)
    return TimeGroup(key=key, stages=stays, close=close, time_to_win=to_win)


@dataclass
class Exact:
    count: int = 0
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None


async def history_durations(
    session: AsyncSession, target: Target, period: Period, group_by: GroupBy, field_code: str | None
) -> dict[str | None, dict[tuple[int, uuid.UUID | None], Exact]]:
    """Exact durations from the period's history: per group, (KIND_STAY, stage left), (KIND_CLOSE, closing stage)
    and (KIND_CLOSE, None) for creation to any success stage."""
    sql = f"""
    WITH h AS MATERIALIZED ({_history_rows(group_by, target.owners is not None)}),
    points AS MATERIALIZED (
        SELECT h.key, h.from_stage_id AS stage_id, {KIND_STAY} AS kind, NULL::text AS semantic,
            extract(epoch FROM h.moved_at - h.previous_at)::float8 AS seconds
        FROM h
        WHERE h.from_pipeline_id = :pipeline_id AND h.from_stage_id IS NOT NULL AND h.previous_at IS NOT NULL
        UNION ALL
        SELECT h.key, h.to_stage_id, {KIND_CLOSE}, ts.semantic::text,
            extract(epoch FROM h.moved_at - h.created_at)::float8
        FROM h JOIN stages ts ON ts.id = h.to_stage_id AND ts.semantic IN ('success', 'failure')
        WHERE NOT h.seen
    )
    SELECT key, kind, stage_id, count(*) AS n, avg(seconds) AS mean,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90
    FROM points GROUP BY key, kind, stage_id
    UNION ALL
    SELECT key, kind, NULL, count(*), avg(seconds), percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds),
        percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds)
    FROM points WHERE semantic = 'success' GROUP BY key, kind"""  # noqa: S608
    result: dict[str | None, dict[tuple[int, uuid.UUID | None], Exact]] = defaultdict(dict)
    await _without_jit(session)
    rows = await session.execute(_history_statement(sql, target), _history_params(target, period, field_code))
    for row in rows:
        result[row.key][(row.kind, row.stage_id)] = Exact(int(row.n), row.mean, row.p50, row.p90)
    return result


def _time_group_from_history(
    target: Target, key: str | None, exact: dict[tuple[int, uuid.UUID | None], Exact]
) -> TimeGroup:
    def durations(kind: int, stage_id: uuid.UUID | None, stage_code: str, shown_id: uuid.UUID) -> StageDurations:
        found = exact.get((kind, stage_id), Exact())
        return StageDurations(
            stage_id=shown_id,
            code=stage_code,
            count=found.count,
            mean_seconds=found.mean,
            p50_seconds=found.p50,
            p90_seconds=found.p90,
        )

    stays = [
        durations(KIND_STAY, s.id, s.code, s.id)
        for s in target.stages
        if s.semantic is StageSemantic.process or (KIND_STAY, s.id) in exact
    ]
    close = [
        durations(KIND_CLOSE, s.id, s.code, s.id) for s in target.stages if s.semantic is not StageSemantic.process
    ]
    won_stages = target.of(StageSemantic.success)
    to_win = durations(KIND_CLOSE, None, "success", won_stages[0].id) if won_stages else None
    return TimeGroup(key=key, stages=stays, close=close, time_to_win=to_win)


async def time_in_stage(
    session: AsyncSession,
    actor: Actor,
    type_ref: str,
    *,
    pipeline_id: uuid.UUID | None = None,
    start: date | None = None,
    end: date | None = None,
    group_by: GroupBy = GroupBy.none,
    field_code: str | None = None,
) -> TimeInStageReport:
    target, period, code = await _report_scope(
        session, actor, type_ref, pipeline_id, (start, end), group_by, field_code
    )
    from_rollups = target.owners is None and group_by in (GroupBy.none, *PERIOD_GROUPS)
    groups: list[TimeGroup]
    if from_rollups:
        sums = await stage_sums(session, target, period.start, period.end, group_by)
        histograms = await distributions(session, target, period.start, period.end, group_by, (KIND_STAY, KIND_CLOSE))
        groups = [
            _time_group_from_rollups(target, key, sums.get(key, {}), histograms.get(key, {}))
            for key in _group_order(sums, period, group_by)
        ]
    else:
        exact = await history_durations(session, target, period, group_by, code)
        groups = [
            _time_group_from_history(target, key, exact.get(key, {})) for key in _group_order(exact, period, group_by)
        ]
    return TimeInStageReport(
        entity_type=target.meta.code,
        pipeline_id=target.pipeline.id,
        period=period,
        group_by=group_by,
        field=code,
        stages=target.stage_infos(),
        computed_from=ComputedFrom.rollups if from_rollups else ComputedFrom.history,
        groups=groups,
    )


# --- money and forecast ---------------------------------------------------------------------------------------------


def stage_probabilities(target: Target, sums: dict[uuid.UUID, Sums]) -> dict[uuid.UUID, float | None]:
    """Each stage's chance to end in success: its conversion to success over the sums given (1 for success stages,
    0 for failure stages; None for a process stage nothing entered)."""
    empty = Sums()
    won = sum(sums.get(s.id, empty).entered for s in target.of(StageSemantic.success))
    result: dict[uuid.UUID, float | None] = {}
    for stage in target.stages:
        if stage.semantic is StageSemantic.success:
            result[stage.id] = 1.0
        elif stage.semantic is StageSemantic.failure:
            result[stage.id] = 0.0
        else:
            share = stats.ratio(won, sums.get(stage.id, empty).entered)
            result[stage.id] = min(1.0, share) if share is not None else None
    return result


@dataclass
class OpenTotals:
    count: int = 0
    amount: float = 0.0
    weighted: float = 0.0


async def open_totals(
    session: AsyncSession, target: Target, probabilities: dict[uuid.UUID, float | None], *, by_score: bool
) -> dict[uuid.UUID, OpenTotals]:
    """The open elements (in process stages) now: count, amount and amount × probability per stage. With scores, an
    element's probability is its score / 100 (an unscored one takes its stage's)."""
    process = [s.id for s in target.of(StageSemantic.process)]
    result = {stage_id: OpenTotals() for stage_id in process}
    if not process:
        return result
    if not by_score and target.owners is None:
        # The live per-stage totals the board reads: no element is touched.
        rows = await session.execute(
            select(StageTotal.stage_id, func.sum(StageTotal.count), func.sum(StageTotal.amount_sum))
            .where(StageTotal.workspace_id == target.workspace_id, StageTotal.stage_id.in_(process))
            .group_by(StageTotal.stage_id)
        )
        for stage_id, count, amount in rows:
            result[stage_id] = OpenTotals(int(count or 0), float(amount or 0))
    else:
        scope = "AND assigned_to = ANY(:owners)" if target.owners is not None else ""
        weighted = "coalesce(amount * score / 100.0, 0)" if by_score else "0"
        statement = text(
            f"""SELECT stage_id, count(*) AS n, coalesce(sum(amount), 0) AS amount,
                coalesce(sum(amount) FILTER (WHERE score IS NULL), 0) AS unscored, sum({weighted}) AS weighted
            FROM elements
            WHERE workspace_id = :workspace_id AND pipeline_id = :pipeline_id AND stage_id = ANY(:stages)
                AND deleted_at IS NULL {scope}
            GROUP BY stage_id"""  # noqa: S608
        ).bindparams(bindparam("stages", type_=UUIDS))
        params: dict[str, Any] = {
            "workspace_id": target.workspace_id,
            "pipeline_id": target.pipeline.id,
            "stages": process,
        }
        if target.owners is not None:
            statement = statement.bindparams(bindparam("owners", type_=UUIDS))
            params["owners"] = list(target.owners)
        for row in await session.execute(statement, params):
            totals = OpenTotals(int(row.n), float(row.amount))
            if by_score:
                totals.weighted = float(row.weighted) + float(row.unscored) * (probabilities.get(row.stage_id) or 0)
            result[row.stage_id] = totals
    if not by_score:
        for stage_id, totals in result.items():
            totals.weighted = totals.amount * (probabilities.get(stage_id) or 0)
    return result


async def _learned_model(session: AsyncSession, meta: TypeMeta) -> ScoringModel | None:
    if meta.active_scoring_model_id is None:
        return None
    model: ScoringModel | None = await session.get(ScoringModel, meta.active_scoring_model_id)
    return model


async def money(
    session: AsyncSession,
    actor: Actor,
    type_ref: str,
    *,
    pipeline_id: uuid.UUID | None = None,
    start: date | None = None,
    end: date | None = None,
    group_by: GroupBy = GroupBy.none,
    field_code: str | None = None,
    probability: str = "auto",
    lookback_days: int = 90,
    now: datetime | None = None,
) -> MoneyReport:
    moment = now or datetime.now(UTC)
    target, period, code = await _report_scope(
        session, actor, type_ref, pipeline_id, (start, end), group_by, field_code, now=moment.date()
    )
    grouped, _ = await _grouped_sums(session, target, period, group_by, code)
    won_stages = target.of(StageSemantic.success)
    groups: list[MoneyGroup] = []
    empty = Sums()
    for key in _group_order(grouped, period, group_by):
        by_stage = grouped.get(key, {})
        count = sum(by_stage.get(s.id, empty).entered for s in won_stages)
        amount = round(sum(by_stage.get(s.id, empty).entered_amount for s in won_stages), 2)
        groups.append(MoneyGroup(key=key, won_count=count, won_amount=amount, average_won=stats.ratio(amount, count)))
    won_count = sum(g.won_count for g in groups)
    won_amount = round(sum(g.won_amount for g in groups), 2)

    # The stages' chances, and how long wins took, over the lookback window before now.
    lookback_end = moment.date()
    lookback_start = lookback_end - timedelta(days=lookback_days - 1)
    recent = (await stage_sums(session, target, lookback_start, lookback_end)).get(None, {})
    probabilities = stage_probabilities(target, recent)
    model = await _learned_model(session, target.meta)
    mode = probability if probability != "auto" else ("model" if model and model.kind == "learned" else "stage")
    totals = await open_totals(session, target, probabilities, by_score=mode == "model")
    process = target.of(StageSemantic.process)
    open_stages = [
        OpenStage(
            stage_id=s.id,
            code=s.code,
            count=totals[s.id].count,
            amount=round(totals[s.id].amount, 2),
            probability=probabilities.get(s.id),
            weighted=round(totals[s.id].weighted, 2),
        )
        for s in process
    ]
    weighted = sum(totals[s.id].weighted for s in process)
    forecast = await _forecast(session, target, period, moment, lookback_start, lookback_end, weighted, won_amount)
    return MoneyReport(
        entity_type=target.meta.code,
        pipeline_id=target.pipeline.id,
        period=period,
        group_by=group_by,
        field=code,
        stages=target.stage_infos(),
        probability=ProbabilityMode.model if mode == "model" else ProbabilityMode.stage,
        lookback_days=lookback_days,
        groups=groups,
        won_count=won_count,
        won_amount=won_amount,
        average_won=stats.ratio(won_amount, won_count),
        open=open_stages,
        open_amount=round(sum(totals[s.id].amount for s in process), 2),
        weighted_pipeline=round(weighted, 2),
        forecast=forecast,
    )


async def _forecast(
    session: AsyncSession,
    target: Target,
    period: Period,
    moment: datetime,
    lookback_start: date,
    lookback_end: date,
    weighted: float,
    won_amount: float,
) -> Forecast:
    """won so far + weighted open pipeline × the share of past wins that took no longer than the time left."""
    period_end = datetime.combine(period.end + timedelta(days=1), time(0), UTC)
    remaining = max(0.0, (period_end - max(moment, datetime.combine(period.start, time(0), UTC))).total_seconds())
    share = 0.0
    if remaining > 0:
        histograms = await distributions(session, target, lookback_start, lookback_end, GroupBy.none, (KIND_CLOSE,))
        won = stats.merge_counts(
            histograms.get(None, {}).get((KIND_CLOSE, s.id), {}) for s in target.of(StageSemantic.success)
        )
        cdf = stats.histogram_cdf(won, remaining)
        share = 1.0 if cdf is None else cdf
    expected = weighted * share
    return Forecast(
        period_end=period.end,
        won_to_date=won_amount,
        remaining_days=round(remaining / 86400, 3),
        close_within_share=round(share, 4),
        expected_from_open=round(expected, 2),
        forecast=round(won_amount + expected, 2),
    )


# --- automation -----------------------------------------------------------------------------------------------------


async def automation(
    session: AsyncSession,
    actor: Actor,
    type_ref: str,
    *,
    pipeline_id: uuid.UUID | None = None,
    start: date | None = None,
    end: date | None = None,
) -> AutomationReport:
    target = await resolve_target(session, actor, type_ref, pipeline_id)
    target.require_everything("Automation metrics")
    period = resolve_period(start, end)
    since, until = _bounds(period)
    rows = (
        await session.execute(
            text(
                """SELECT r.rule_id, ru.name,
                    count(*) AS runs,
                    count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded,
                    count(*) FILTER (WHERE r.status = 'failed') AS failed,
                    count(*) FILTER (WHERE r.status = 'skipped') AS skipped,
                    count(*) FILTER (WHERE r.status IN ('queued', 'running')) AS unfinished,
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY r.duration_ms) AS p95_duration,
                    percentile_cont(0.95) WITHIN GROUP (
                        ORDER BY extract(epoch FROM r.finished_at - r.created_at) * 1000) AS p95_latency
                FROM automation_rules ru JOIN automation_runs r ON r.rule_id = ru.id
                WHERE ru.workspace_id = :workspace_id AND ru.entity_type_id = :type_id
                    AND (ru.pipeline_id IS NULL OR ru.pipeline_id = :pipeline_id)
                    AND r.created_at >= :since AND r.created_at < :until
                GROUP BY r.rule_id, ru.name ORDER BY ru.name, r.rule_id"""
            ),
            {
                "workspace_id": target.workspace_id,
                "type_id": target.meta.id,
                "pipeline_id": target.pipeline.id,
                "since": since,
                "until": until,
            },
        )
    ).all()
    overall = (
        await session.execute(
            text(
                """SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY r.duration_ms) AS duration,
                    percentile_cont(0.95) WITHIN GROUP (
                        ORDER BY extract(epoch FROM r.finished_at - r.created_at) * 1000) AS latency
                FROM automation_rules ru JOIN automation_runs r ON r.rule_id = ru.id
                WHERE ru.workspace_id = :workspace_id AND ru.entity_type_id = :type_id
                    AND (ru.pipeline_id IS NULL OR ru.pipeline_id = :pipeline_id)
                    AND r.created_at >= :since AND r.created_at < :until"""
            ),
            {
                "workspace_id": target.workspace_id,
                "type_id": target.meta.id,
                "pipeline_id": target.pipeline.id,
                "since": since,
                "until": until,
            },
        )
    ).one()
    rules = [
        RuleRuns(
            rule_id=row.rule_id,
            name=row.name,
            runs=row.runs,
            succeeded=row.succeeded,
            failed=row.failed,
            skipped=row.skipped,
            unfinished=row.unfinished,
            p95_duration_ms=_rounded(row.p95_duration),
            p95_latency_ms=_rounded(row.p95_latency),
        )
        for row in rows
    ]
    sums = (await stage_sums(session, target, period.start, period.end)).get(None, {})
    total = Sums()
    for one in sums.values():
        total.add(one)
    moves = total.entered + total.reentered - total.created
    failed = sum(r.failed for r in rules)
    finished = sum(r.succeeded + r.failed + r.skipped for r in rules)
    return AutomationReport(
        entity_type=target.meta.code,
        pipeline_id=target.pipeline.id,
        period=period,
        runs=sum(r.runs for r in rules),
        succeeded=sum(r.succeeded for r in rules),
        failed=failed,
        skipped=sum(r.skipped for r in rules),
        unfinished=sum(r.unfinished for r in rules),
        failure_rate=stats.ratio(failed, finished),
        p95_duration_ms=_rounded(overall.duration),
        p95_latency_ms=_rounded(overall.latency),
        moves=moves,
        moves_by_rules=total.by_rules,
        moves_by_people=moves - total.by_rules,
        rules_share=stats.ratio(total.by_rules, moves),
        rules=rules,
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 1)


# --- scoring --------------------------------------------------------------------------------------------------------


def score_outcomes(
    target: Target, histograms: dict[tuple[int, uuid.UUID], dict[int, int]]
) -> tuple[dict[int, int], dict[int, int], int]:
    """(wins per score, losses per score, closed unscored) from the score histograms (bucket = score + 1)."""
    wins: dict[int, int] = {}
    losses: dict[int, int] = {}
    unscored = 0
    for stage in target.stages:
        if stage.semantic is StageSemantic.process:
            continue
        into = wins if stage.semantic is StageSemantic.success else losses
        for bucket, count in histograms.get((KIND_SCORE, stage.id), {}).items():
            if bucket == 0:
                unscored += count
            else:
                into[bucket - 1] = into.get(bucket - 1, 0) + count
    return wins, losses, unscored


def _in(counts: dict[int, int], low: int, high: int) -> Iterable[tuple[int, int]]:
    return ((score, n) for score, n in counts.items() if low <= score <= high)


async def scoring(
    session: AsyncSession,
    actor: Actor,
    type_ref: str,
    *,
    pipeline_id: uuid.UUID | None = None,
    start: date | None = None,
    end: date | None = None,
) -> ScoringReport:
    target = await resolve_target(session, actor, type_ref, pipeline_id)
    target.require_everything("Scoring metrics")
    period = resolve_period(start, end)
    histograms = (await distributions(session, target, period.start, period.end, GroupBy.none, (KIND_SCORE,))).get(
        None, {}
    )
    wins, losses, unscored = score_outcomes(target, histograms)
    won, lost = sum(wins.values()), sum(losses.values())
    calibration = []
    for low in range(0, 100, 10):
        high = low + 9 if low < 90 else 100
        in_wins, in_losses = list(_in(wins, low, high)), list(_in(losses, low, high))
        count = sum(n for _, n in in_wins) + sum(n for _, n in in_losses)
        score_sum = sum(s * n for s, n in in_wins) + sum(s * n for s, n in in_losses)
        calibration.append(
            ScoreCalibrationBin(
                low=low,
                high=high,
                count=count,
                predicted=stats.ratio(score_sum / 100, count),
                observed=stats.ratio(sum(n for _, n in in_wins), count),
            )
        )
    tiers = []
    for name, low, high in TIERS:
        tier_won = sum(n for _, n in _in(wins, low, high))
        closed = tier_won + sum(n for _, n in _in(losses, low, high))
        tiers.append(
            TierConversion(
                tier=name, low=low, high=high, closed=closed, won=tier_won, conversion=stats.ratio(tier_won, closed)
            )
        )
    auc = stats.roc_auc(wins, losses)
    model = await _learned_model(session, target.meta)
    active = None
    if model is not None:
        trained = (model.metrics or {}).get("roc_auc")
        active = ActiveModel(
            id=model.id,
            name=model.name,
            version=model.version,
            kind=model.kind,
            trained_roc_auc=float(trained) if isinstance(trained, int | float) else None,
        )
    change = auc - active.trained_roc_auc if auc is not None and active and active.trained_roc_auc is not None else None
    return ScoringReport(
        entity_type=target.meta.code,
        pipeline_id=target.pipeline.id,
        period=period,
        model=active,
        closed=won + lost + unscored,
        scored=won + lost,
        won=won,
        lost=lost,
        roc_auc=auc,
        auc_change=change,
        calibration=calibration,
        tiers=tiers,
    )
