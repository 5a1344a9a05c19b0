"""Alerts: a metric of a type's pipeline, checked on a schedule against a threshold or the band of its recent past.

A rule names a metric (a stage's conversion, entries, time in stage; the pipeline's wins, losses…), a window (the
last N whole UTC days before the check) and a condition: a threshold (`lt` 0.2) or an anomaly (outside median ± k·MAD
of the previous `periods` windows of the same length). The worker's `analytics.check_alerts` cron claims due rules
(`FOR UPDATE SKIP LOCKED`) every minute and checks each on its own schedule.

A breach fires once: the rule turns `firing` and stays silent while the metric stays out of its band; when it is
back in band the rule resolves. Each change is an `AlertEvent` (the history), a notification for each person listed,
and an outbox event (`alert.fired` / `alert.resolved`) that the webhook subscriptions asking for it receive through
the engine's durable, signed deliveries. A window with less volume than `min_volume` is not judged (no change).

Who may do what: the rules of a type's pipeline are shown to whoever reads every element of it (their values are
the whole pipeline's); creating, changing, deleting and checking them also takes a level that configures (editor,
admin).
"""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pydantic import TypeAdapter
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.permissions import Scope
from app.access.snapshot import load_snapshot
from app.access.visibility import configures
from app.analytics import service, stats
from app.analytics.models import AlertEvent, AlertRule
from app.analytics.schemas import (
    STAGE_METRICS,
    AlertCheck,
    AlertCondition,
    AlertCreate,
    AlertEventList,
    AlertEventRead,
    AlertList,
    AlertMetric,
    AlertRead,
    AlertState,
    AlertUpdate,
    Anomaly,
    GroupBy,
    Threshold,
)
from app.auth.actor import Actor, system_actor
from app.db import session_connection
from app.elements.meta_cache import cached_type_meta
from app.entity_types.models import EntityType
from app.errors import DomainError, FieldError, Forbidden, Invalid, NotFound
from app.outbox.models import OutboxEvent
from app.pipelines.models import StageSemantic
from app.tasks.models import Notification
from app.users.models import User

logger = logging.getLogger("stageflow.alerts")
CONDITION: TypeAdapter[Threshold | Anomaly] = TypeAdapter(AlertCondition)
# How far back an anomaly's band may reach: (periods + 1) windows of data.
MAX_BAND_DAYS = 732
DUE_BATCH = 100
TIME_METRICS = {
    AlertMetric.time_in_stage_p50: (service.KIND_STAY, 0.5),
    AlertMetric.time_in_stage_p90: (service.KIND_STAY, 0.9),
    AlertMetric.time_to_win_p50: (service.KIND_CLOSE, 0.5),
}
LABELS = {
    AlertMetric.entered: "entries",
    AlertMetric.conversion_to_next: "conversion to the next stage",
    AlertMetric.conversion_to_success: "conversion to success",
    AlertMetric.lost: "losses",
    AlertMetric.created: "new elements",
    AlertMetric.won_count: "wins",
    AlertMetric.won_amount: "amount won",
    AlertMetric.win_rate: "win rate",
    AlertMetric.time_in_stage_p50: "median time in stage (s)",
    AlertMetric.time_in_stage_p90: "p90 time in stage (s)",
    AlertMetric.time_to_win_p50: "median time to win (s)",
}


# --- rules ----------------------------------------------------------------------------------------------------------


def _read(rule: AlertRule, type_code: str) -> AlertRead:
    return AlertRead(
        id=rule.id,
        name=rule.name,
        entity_type=type_code,
        entity_type_id=rule.entity_type_id,
        pipeline_id=rule.pipeline_id,
        stage_id=rule.stage_id,
        metric=AlertMetric(rule.metric),
        condition=CONDITION.validate_python(rule.condition),
        window_days=rule.window_days,
        min_volume=rule.min_volume,
        check_every_minutes=rule.check_every_minutes,
        notify_user_ids=[uuid.UUID(u) for u in rule.notify_user_ids],
        enabled=rule.enabled,
        state=AlertState.firing if rule.state == "firing" else AlertState.ok,
        last_value=rule.last_value,
        last_checked_at=rule.last_checked_at,
        next_check_at=rule.next_check_at,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


def _check_shape(target: service.Target, metric: AlertMetric, stage_id: uuid.UUID | None) -> None:
    errors: list[FieldError] = []
    stage = next((s for s in target.stages if s.id == stage_id), None)
    if stage_id is not None and stage is None:
        errors.append(FieldError("stage_id", f"not a stage of pipeline {target.pipeline.id}"))
    elif metric in STAGE_METRICS and stage is None:
        errors.append(FieldError("stage_id", f"`{metric.value}` is a stage's metric: name the stage"))
    elif stage is not None and metric not in STAGE_METRICS and metric is not AlertMetric.lost:
        errors.append(FieldError("stage_id", f"`{metric.value}` is the whole pipeline's: leave the stage out"))
    elif (
        stage is not None
        and stage.semantic is not StageSemantic.process
        and metric not in (AlertMetric.entered, AlertMetric.lost)
    ):
        errors.append(FieldError("stage_id", f"`{metric.value}` needs a process stage"))
    if errors:
        raise Invalid("The alert is not valid", errors=errors)


def _check_band_reach(condition: Threshold | Anomaly, window_days: int) -> None:
    if isinstance(condition, Anomaly) and (condition.periods + 1) * window_days > MAX_BAND_DAYS:
        raise Invalid(
            "The alert is not valid",
            errors=[FieldError("condition.periods", f"(periods + 1) × window_days may reach {MAX_BAND_DAYS} days")],
        )


async def _check_people(session: AsyncSession, actor: Actor, user_ids: Sequence[uuid.UUID]) -> list[str]:
    unique = list(dict.fromkeys(user_ids))
    if unique:
        found = set(
            await session.scalars(select(User.id).where(User.workspace_id == actor.workspace_id, User.id.in_(unique)))
        )
        missing = [u for u in unique if u not in found]
        if missing:
            raise Invalid(
                "The alert is not valid",
                errors=[FieldError("notify_user_ids", f"no user {u} in this workspace") for u in missing],
            )
    return [str(u) for u in unique]


def _ensure_configures(actor: Actor) -> None:
    if not configures(actor):
        raise Forbidden("Alerts are configuration: an editor or an admin sets them")


async def create_alert(
    session: AsyncSession, actor: Actor, data: AlertCreate, *, now: datetime | None = None
) -> AlertRead:
    _ensure_configures(actor)
    target = await service.resolve_target(session, actor, data.entity_type, data.pipeline_id)
    target.require_everything("Alerts")
    _check_shape(target, data.metric, data.stage_id)
    _check_band_reach(data.condition, data.window_days)
    moment = now or datetime.now(UTC)
    rule = AlertRule(
        id=uuid.uuid4(),
        workspace_id=actor.workspace_id,
        entity_type_id=target.meta.id,
        pipeline_id=target.pipeline.id,
        stage_id=data.stage_id,
        name=data.name,
        metric=data.metric.value,
        condition=data.condition.model_dump(mode="json"),
        window_days=data.window_days,
        min_volume=data.min_volume,
        check_every_minutes=data.check_every_minutes,
        notify_user_ids=await _check_people(session, actor, data.notify_user_ids),
        enabled=data.enabled,
        state="ok",
        next_check_at=moment,
        created_by=actor.principal_id,
        created_at=moment,
        updated_at=moment,
    )
    session.add(rule)
    await session.flush()
    return _read(rule, target.meta.code)


async def _rule(
    session: AsyncSession, actor: Actor, alert_id: uuid.UUID, *, lock: bool = False
) -> tuple[AlertRule, service.Target]:
    """The workspace's rule once the actor may see it (reads every element of its pipeline); else 404."""
    statement = select(AlertRule).where(AlertRule.workspace_id == actor.workspace_id, AlertRule.id == alert_id)
    rule = await session.scalar(statement.with_for_update() if lock else statement)
    if rule is None:
        raise NotFound(f"Alert {alert_id} not found")
    try:
        target = await service.resolve_target(session, actor, str(rule.entity_type_id), rule.pipeline_id)
        target.require_everything("Alerts")
    except (NotFound, Forbidden) as exc:
        raise NotFound(f"Alert {alert_id} not found") from exc
    return rule, target


async def get_alert(session: AsyncSession, actor: Actor, alert_id: uuid.UUID) -> AlertRead:
    rule, target = await _rule(session, actor, alert_id)
    return _read(rule, target.meta.code)


async def list_alerts(session: AsyncSession, actor: Actor, *, entity_type: str | None = None) -> AlertList:
    statement = select(AlertRule, EntityType.code).join(EntityType, EntityType.id == AlertRule.entity_type_id)
    statement = statement.where(AlertRule.workspace_id == actor.workspace_id)
    if entity_type is not None:
        meta = await cached_type_meta(session, actor.workspace_id, entity_type)
        statement = statement.where(AlertRule.entity_type_id == meta.id)
    items = []
    for rule, code in await session.execute(statement.order_by(AlertRule.created_at, AlertRule.id)):
        try:
            target = await service.resolve_target(session, actor, str(rule.entity_type_id), rule.pipeline_id)
        except (NotFound, Forbidden):
            continue
        if target.owners is None:
            items.append(_read(rule, code))
    return AlertList(items=items)


async def update_alert(
    session: AsyncSession, actor: Actor, alert_id: uuid.UUID, data: AlertUpdate, *, now: datetime | None = None
) -> AlertRead:
    _ensure_configures(actor)
    rule, target = await _rule(session, actor, alert_id, lock=True)
    changes = data.model_dump(exclude_unset=True)
    metric = AlertMetric(changes.get("metric") or rule.metric)
    stage_id = changes.get("stage_id", rule.stage_id)
    condition = data.condition if data.condition is not None else CONDITION.validate_python(rule.condition)
    window_days = data.window_days or rule.window_days
    _check_shape(target, metric, stage_id)
    _check_band_reach(condition, window_days)
    judged = (metric.value, stage_id, condition.model_dump(mode="json"), window_days)
    if judged != (rule.metric, rule.stage_id, rule.condition, rule.window_days):
        # Another question: judged afresh at the next check, from no breach.
        rule.state = "ok"
        rule.last_value = None
        rule.next_check_at = now or datetime.now(UTC)
    rule.metric, rule.stage_id, rule.condition, rule.window_days = judged
    for name in ("name", "min_volume", "check_every_minutes", "enabled"):
        if changes.get(name) is not None:
            setattr(rule, name, changes[name])
    if data.notify_user_ids is not None:
        rule.notify_user_ids = await _check_people(session, actor, data.notify_user_ids)
    rule.updated_at = now or datetime.now(UTC)
    await session.flush()
    return _read(rule, target.meta.code)


async def delete_alert(session: AsyncSession, actor: Actor, alert_id: uuid.UUID) -> None:
    _ensure_configures(actor)
    rule, _ = await _rule(session, actor, alert_id, lock=True)
    await session.delete(rule)
    await session.flush()


async def list_events(session: AsyncSession, actor: Actor, alert_id: uuid.UUID, *, limit: int = 50) -> AlertEventList:
    await _rule(session, actor, alert_id)
    rows = await session.scalars(
        select(AlertEvent)
        .where(AlertEvent.workspace_id == actor.workspace_id, AlertEvent.rule_id == alert_id)
        .order_by(AlertEvent.id.desc())
        .limit(min(max(limit, 1), 500))
    )
    return AlertEventList(items=[AlertEventRead.model_validate(r) for r in rows])


async def check_alert(
    session: AsyncSession, actor: Actor, alert_id: uuid.UUID, *, now: datetime | None = None
) -> AlertCheck:
    """Check one rule now (as the worker would), whatever its schedule."""
    _ensure_configures(actor)
    rule, target = await _rule(session, actor, alert_id, lock=True)
    return await _check(session, rule, target, now or datetime.now(UTC))


# --- judging ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    value: float | None
    volume: int


def read_metric(
    target: service.Target,
    metric: AlertMetric,
    stage_id: uuid.UUID | None,
    sums: dict[uuid.UUID, service.Sums],
    histograms: dict[tuple[int, uuid.UUID], dict[int, int]],
) -> Reading:
    """A metric from one window's sums and histograms (None when there is nothing to divide by)."""
    group = service.funnel_group(target, None, sums)
    stages = {s.stage_id: s for s in group.stages}
    if metric in TIME_METRICS:
        kind, q = TIME_METRICS[metric]
        ids = [stage_id] if kind == service.KIND_STAY and stage_id else [s.id for s in target.of(StageSemantic.success)]
        counts = stats.merge_counts(histograms.get((kind, i), {}) for i in ids)
        return Reading(stats.histogram_percentile(counts, q), sum(counts.values()))
    if metric in (AlertMetric.conversion_to_next, AlertMetric.conversion_to_success) and stage_id is not None:
        one = stages[stage_id]
        value = one.conversion_to_next if metric is AlertMetric.conversion_to_next else one.conversion_to_success
        return Reading(value, one.entered)
    if metric is AlertMetric.entered and stage_id is not None:
        return Reading(float(stages[stage_id].entered), stages[stage_id].entered)
    if metric is AlertMetric.lost:
        lost = stages[stage_id].lost if stage_id is not None else group.lost
        return Reading(float(lost), lost)
    closed = group.won + group.lost
    simple: dict[AlertMetric, tuple[float | None, int]] = {
        AlertMetric.created: (float(group.created), group.created),
        AlertMetric.won_count: (float(group.won), group.won),
        AlertMetric.won_amount: (group.won_amount, group.won),
        AlertMetric.win_rate: (group.win_rate, closed),
    }
    value, volume = simple[metric]
    return Reading(value, volume)


def windows(end: date, window_days: int, count: int) -> list[tuple[date, date]]:
    """`count` windows of `window_days` days, the latest ending on `end`, newest first."""
    return [
        (end - timedelta(days=(n + 1) * window_days - 1), end - timedelta(days=n * window_days)) for n in range(count)
    ]


def band_of(condition: Threshold | Anomaly, history: list[float]) -> tuple[float | None, float | None] | None:
    """(low, high) of the band the metric should stay in; None when an anomaly has too little history."""
    if isinstance(condition, Threshold):
        # `lt 0.2` fires below 0.2: the band starts there (the ends themselves are judged by `op`).
        return (condition.value, None) if condition.op in ("lt", "lte") else (None, condition.value)
    band = stats.anomaly_band(history, condition.k)
    if band is None:
        return None
    low, high = band
    return (None if condition.direction == "above" else low, None if condition.direction == "below" else high)


def breached(condition: Threshold | Anomaly, value: float, band: tuple[float | None, float | None]) -> bool:
    if isinstance(condition, Threshold):
        return {
            "lt": value < condition.value,
            "lte": value <= condition.value,
            "gt": value > condition.value,
            "gte": value >= condition.value,
        }[condition.op]
    low, high = band
    return (low is not None and value < low) or (high is not None and value > high)


async def _check(session: AsyncSession, rule: AlertRule, target: service.Target, now: datetime) -> AlertCheck:
    condition = CONDITION.validate_python(rule.condition)
    metric = AlertMetric(rule.metric)
    count = condition.periods + 1 if isinstance(condition, Anomaly) else 1
    spans = windows(now.date() - timedelta(days=1), rule.window_days, count)
    first_day, last_day = spans[-1][0], spans[0][1]
    daily = await service.stage_sums(session, target, first_day, last_day, GroupBy.day)
    daily_histograms: service.Histograms = {}
    if metric in TIME_METRICS:
        kind = TIME_METRICS[metric][0]
        daily_histograms = await service.distributions(session, target, first_day, last_day, GroupBy.day, (kind,))
    readings = []
    for start, end in spans:
        sums: dict[uuid.UUID, service.Sums] = {}
        histograms: dict[tuple[int, uuid.UUID], dict[int, int]] = {}
        day = start
        while day <= end:
            key = day.isoformat()
            for stage_id, one in daily.get(key, {}).items():
                sums.setdefault(stage_id, service.Sums()).add(one)
            for hist_key, counts in daily_histograms.get(key, {}).items():
                histograms[hist_key] = stats.merge_counts([histograms.get(hist_key, {}), counts])
            day += timedelta(days=1)
        readings.append(read_metric(target, metric, rule.stage_id, sums, histograms))
    current = readings[0]
    judged = current.value is not None and current.volume >= rule.min_volume
    history = [r.value for r in readings[1:] if r.value is not None and r.volume >= rule.min_volume]
    band = band_of(condition, history)
    low, high = band if band is not None else (None, None)
    verdict = (
        breached(condition, current.value, band) if judged and band is not None and current.value is not None else None
    )
    event = None
    if verdict is True and rule.state != "firing":
        rule.state = "firing"
        event = await _record(session, rule, target, "fired", current.value, low, high, spans[0])
    elif verdict is False and rule.state == "firing":
        rule.state = "ok"
        event = await _record(session, rule, target, "resolved", current.value, low, high, spans[0])
    rule.last_value = current.value
    rule.last_checked_at = now
    rule.next_check_at = now + timedelta(minutes=rule.check_every_minutes)
    await session.flush()
    return AlertCheck(
        alert=_read(rule, target.meta.code),
        value=current.value,
        volume=current.volume,
        low=low,
        high=high,
        breached=verdict,
        window_start=spans[0][0],
        window_end=spans[0][1],
        event=AlertEventRead.model_validate(event) if event else None,
    )


async def _readers_of(session: AsyncSession, rule: AlertRule, target: service.Target) -> list[uuid.UUID]:
    """The listed people who are active and whose roles read every element of the pipeline today: an alert's message
    carries the pipeline's metrics, and a role may have been narrowed since the alert was set."""
    snapshot = await load_snapshot(await session_connection(session), rule.workspace_id)
    readers: list[uuid.UUID] = []
    for user_id in map(uuid.UUID, rule.notify_user_ids):
        access = snapshot.for_user(user_id)
        if access is None:
            continue
        on_type = access.on(target.meta.id, target.meta.code)
        if on_type.full or on_type.scope("read", target.pipeline.id) is Scope.all:
            readers.append(user_id)
    return readers


async def _record(
    session: AsyncSession,
    rule: AlertRule,
    target: service.Target,
    kind: str,
    value: float | None,
    low: float | None,
    high: float | None,
    window: tuple[date, date],
) -> AlertEvent:
    """The state change: its history row, a notification per person listed, and the outbox event for webhooks."""
    event_id = uuid.uuid4()
    stage = next((s for s in target.stages if s.id == rule.stage_id), None)
    band = f"[{'-∞' if low is None else f'{low:g}'}, {'∞' if high is None else f'{high:g}'}]"
    label = LABELS[AlertMetric(rule.metric)] + (f" of {stage.code}" if stage else "")
    message = (
        f"Alert {rule.name!r} {kind}: {label} is {value:g} (band {band}), {target.meta.code} "
        f"{window[0].isoformat()}..{window[1].isoformat()}"
        if value is not None
        else f"Alert {rule.name!r} {kind}"
    )
    people = await _readers_of(session, rule, target)
    notified = 0
    for user_id in people:
        session.add(
            Notification(id=uuid.uuid4(), workspace_id=rule.workspace_id, user_id=user_id, message=message[:2000])
        )
        notified += 1
    session.add(
        OutboxEvent(
            event_id=event_id,
            workspace_id=rule.workspace_id,
            event_type=f"alert.{kind}",
            entity_type_id=rule.entity_type_id,
            payload={
                "alert_id": str(rule.id),
                "name": rule.name,
                "entity_type": target.meta.code,
                "pipeline_id": str(rule.pipeline_id),
                "stage_id": str(rule.stage_id) if rule.stage_id else None,
                "stage_code": stage.code if stage else None,
                "metric": rule.metric,
                "value": value,
                "low": low,
                "high": high,
                "window_start": window[0].isoformat(),
                "window_end": window[1].isoformat(),
                "message": message,
            },
        )
    )
    event = AlertEvent(
        workspace_id=rule.workspace_id,
        rule_id=rule.id,
        kind=kind,
        value=value,
        low=low,
        high=high,
        window_start=window[0],
        window_end=window[1],
        notified=notified,
        event_id=event_id,
        at=datetime.now(UTC),
    )
    session.add(event)
    await session.flush()
    return event


# --- the schedule -----------------------------------------------------------------------------------------------------


async def check_due(session: AsyncSession, *, now: datetime | None = None, limit: int = DUE_BATCH) -> int:
    """Check the enabled rules whose time has come (claimed with SKIP LOCKED: several workers share them), each in a
    savepoint: one that fails is put off to its next check and the others go on. Returns how many were checked."""
    moment = now or datetime.now(UTC)
    rules = list(
        await session.scalars(
            select(AlertRule)
            .where(AlertRule.enabled.is_(True), AlertRule.next_check_at <= moment)
            .order_by(AlertRule.next_check_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    checked = 0
    for rule in rules:
        try:
            async with session.begin_nested():
                actor = system_actor(rule.workspace_id)
                target = await service.resolve_target(session, actor, str(rule.entity_type_id), rule.pipeline_id)
                await _check(session, rule, target, moment)
                checked += 1
        except DomainError as exc:
            logger.warning("alert %s could not be checked: %s", rule.id, exc.detail)
            await _put_off(session, rule.id, moment + timedelta(minutes=rule.check_every_minutes))
        except Exception:
            logger.exception("alert %s could not be checked", rule.id)
            await _put_off(session, rule.id, moment + timedelta(minutes=rule.check_every_minutes))
    return checked


async def _put_off(session: AsyncSession, rule_id: uuid.UUID, until: datetime) -> None:
    await session.execute(update(AlertRule).where(AlertRule.id == rule_id).values(next_check_at=until))
