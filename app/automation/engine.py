"""The automation engine: turns outbox events into rule runs and runs their actions through the domain services.

PostgreSQL holds every run's state; a queue (arq, in `workers/`) only wakes workers up. A run is created already
claimed (status `running`, a lease) in the transaction that marks its event handled. Its actions then run in ONE
transaction that also marks the run finished, so a worker killed mid-run leaves nothing half-done: the transaction
rolls back, the lease expires and the sweeper hands the run to another worker. A `delay` commits the steps before
it and parks the run (`queued`, `resume_at`); webhooks are queued as delivery rows in the same transaction and sent
after it commits. Each function here takes a session and flushes; the caller (a job) owns the transaction.
"""

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.activities import service as activity_service
from app.activities.schemas import ActivityCreate
from app.auth.actor import Actor, system_actor
from app.automation import actions as action_params
from app.automation import experiments
from app.automation.conditions import SYSTEM_FIELDS, matches
from app.automation.models import AutomationRule, AutomationRun, AutomationTimer, HandledEvent, RunStatus
from app.automation.service import _schedule_next, duration_seconds
from app.automation.templates import render
from app.calltime import service as calltime_service
from app.elements import service as element_service
from app.elements.meta_cache import cached_type_meta
from app.elements.models import Element
from app.elements.schemas import ElementCreate, ElementMove, ElementRead, ElementSearch, ElementUpdate
from app.entity_types.meta import TypeMeta, get_type_meta_by_id
from app.entity_types.models import EntityType
from app.entity_types.schemas import EntityTypeSettings
from app.errors import DomainError, Invalid, NotFound
from app.kit.failures import describe_failure
from app.kit.filters import parse_filter
from app.outbox.models import OutboxEvent
from app.outbox.service import event_origin
from app.pipelines.models import Stage
from app.relations import service as relation_service
from app.routing import service as routing_service
from app.scoring import service as scoring_service
from app.settings import Settings
from app.tasks import service as task_service
from app.tasks.schemas import TaskCreate
from app.timeline.service import add_entry
from app.triage import service as triage_service
from app.triage.schemas import TriageElementRequest
from app.webhooks import service as webhook_service

# Which rule triggers an event type can fire (or arm, for the time-based ones).
TRIGGERS_FOR_EVENT: dict[str, tuple[str, ...]] = {
    "element.created": ("element.created", "element.entered_stage", "time_in_stage", "date_reached"),
    "element.updated": ("element.updated", "date_reached"),
    "element.moved": ("element.entered_stage", "time_in_stage"),
    "element.deleted": ("element.deleted",),
    "element.linked": ("element.linked",),
    "webhook.received": ("webhook.received",),
    "element.scored": ("element.scored",),
    "activity.created": ("activity.created",),
    "activity.completed": ("activity.completed",),
}
# Rules whose start does more than insert a run (arm a timer, find the element an incoming hook is about).
RULES_THAT_MAY_FAIL_TO_START = ("time_in_stage", "date_reached", "webhook.received")
TIMER_BATCH = 100
SCHEDULE_MAX_ELEMENTS = 500
EVENT_SWEEP_WINDOW = timedelta(minutes=15)
TIMER_NAMESPACE = uuid.UUID("5f1c9a52-8d7e-4a0b-9a55-3b1f0c2d7e11")
RECORD_FIELDS = tuple(SYSTEM_FIELDS)


# SQLSTATE classes a retry may cure: connection, transaction rollback (deadlock, serialization), resources, operator
# intervention (statement timeout, shutdown), system errors. Anything else fails the same way again.
TRANSIENT_SQLSTATES = ("08", "40", "53", "57", "58")
logger = logging.getLogger("stageflow.automation")


class ChainTooDeep(Exception):
    pass


def is_transient(exc: BaseException) -> bool:
    """An error another attempt may not meet (the database or the network), as opposed to one the data causes."""
    if isinstance(exc, OSError | asyncio.TimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
        return sqlstate[:2] in TRANSIENT_SQLSTATES
    return False


@dataclass
class Followups:
    """What a transaction left for after its commit: runs to execute, webhooks to send, wake-ups to schedule."""

    runs: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    deliveries: list[uuid.UUID] = field(default_factory=list)
    due_deliveries: list[tuple[uuid.UUID, datetime]] = field(default_factory=list)
    timers: list[tuple[uuid.UUID, datetime]] = field(default_factory=list)
    resumes: list[tuple[uuid.UUID, datetime]] = field(default_factory=list)
    events: list[uuid.UUID] = field(default_factory=list)

    def extend(self, other: "Followups") -> None:
        self.runs += other.runs
        self.deliveries += other.deliveries
        self.due_deliveries += other.due_deliveries
        self.timers += other.timers
        self.resumes += other.resumes
        self.events += other.events


class Waker(Protocol):
    """Schedules the follow-up work on the queue (implemented with arq in `workers/`)."""

    async def run(self, run_id: uuid.UUID, attempt: int) -> None: ...
    async def resume(self, run_id: uuid.UUID, at: datetime) -> None: ...
    async def timer(self, timer_id: uuid.UUID, at: datetime) -> None: ...
    async def deliver(self, delivery_id: uuid.UUID, at: datetime | None = None) -> None: ...
    async def deliver_many(self, delivery_ids: list[uuid.UUID]) -> None: ...
    async def deliver_due(self, delivery_id: uuid.UUID, due: datetime) -> None: ...
    async def events(self, event_ids: list[uuid.UUID]) -> None: ...


def record_of(
    element: ElementRead | None, body: dict[str, Any] | None = None, activity: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What conditions see: custom values by code, the system fields, `body.*` of an incoming hook and `activity.*`
    of an activity's event."""
    record: dict[str, Any] = {}
    if element is not None:
        record.update(element.values)
        # Every system field the SQL filter knows (conditions type them as it does), and the stage's code.
        for name in (*RECORD_FIELDS, "stage_code", "entity_type"):
            value = getattr(element, name)
            record[name] = str(value) if isinstance(value, uuid.UUID) else value
    for key, value in (body or {}).items():
        record[f"body.{key}"] = value
    for key, value in (activity or {}).items():
        record[f"activity.{key}"] = value
    return record


def template_context(element: ElementRead | None, run: AutomationRun, rule: AutomationRule) -> dict[str, Any]:
    data = element.model_dump(mode="json") if element else {}
    return {
        **data,
        "values": data.get("values", {}),
        "element": data,
        "event": run.context.get("event", {}),
        "body": run.context.get("body", {}),
        "activity": run.context.get("event", {}).get("activity") or {},
        "rule": {"id": str(rule.id), "name": rule.name},
        "run_id": str(run.id),
        "variant": run.context.get("variant"),
    }


# --- from events to runs ---------------------------------------------------------------------------------------


async def _element_or_none(session: AsyncSession, actor: Actor, element_id: uuid.UUID | None) -> ElementRead | None:
    return await load_element(session, actor.workspace_id, element_id)


def _placed(rule: AutomationRule, element: ElementRead | None) -> bool:
    """A rule attached to a pipeline or stage only sees elements there."""
    if rule.stage_id is not None:
        return element is not None and element.stage_id == rule.stage_id
    if rule.pipeline_id is not None:
        return element is not None and element.pipeline_id == rule.pipeline_id
    return True


def _entered_stage(event_type: str, payload: dict[str, Any]) -> str | None:
    """The stage an event put the element in: a move's target, or the stage it was created in."""
    if event_type == "element.moved":
        return payload.get("to_stage_id")
    if event_type == "element.created":
        return payload.get("stage_id")
    return None


def _fires(rule: AutomationRule, event_type: str, payload: dict[str, Any], element: ElementRead | None) -> bool:
    trigger = rule.trigger
    kind = rule.trigger_type
    if kind == "element.entered_stage":
        entered = _entered_stage(event_type, payload)
        from_stage = trigger.get("from_stage_id")
        if from_stage is not None and payload.get("from_stage_id") != str(from_stage):
            return False
        return entered is not None and entered == str(rule.stage_id)
    if kind == "element.updated":
        fields = trigger.get("fields")
        changed = set(payload.get("changed", []))
        if fields and not any(f in changed or f"values.{f}" in changed for f in fields):
            return False
    if kind == "webhook.received":
        return payload.get("rule_id") == str(rule.id)
    return kind == event_type and _placed(rule, element)


async def _create_run(
    session: AsyncSession,
    settings: Settings,
    rule: AutomationRule,
    *,
    event_id: uuid.UUID,
    event_type: str,
    element: ElementRead | None,
    depth: int,
    context: dict[str, Any],
    missing_element: str | None = "the element no longer exists",
    failure: str | None = None,
    deferred: list[dict[str, Any]] | None = None,
) -> tuple[uuid.UUID, int] | None:
    """Insert the (event, rule) run: claimed, skipped (condition false) or failed (chain too deep, or `failure`: the
    rule could not even start). With `deferred`, its row is added there for one insert of many (`_insert_runs`).

    None when the run exists already (a redelivered event) or needs no work.
    """
    now = datetime.now(UTC)
    status, error, attempts = RunStatus.running, None, 1
    if failure is not None:
        status, error, attempts = RunStatus.failed, failure[:4000], 0
    elif depth > settings.AUTOMATION_MAX_DEPTH:
        status, attempts = RunStatus.failed, 0
        origin = context.get("event", {}).get("origin", {})
        error = (
            f"chain depth limit reached: this event was caused by rule {origin.get('rule_id')} "
            f"(run {origin.get('run_id')}) at depth {depth - 1}; the limit is {settings.AUTOMATION_MAX_DEPTH}"
        )
    elif rule.condition and (problem := await _condition_problem(session, rule, element, context)) is not None:
        status, error, attempts = problem
    elif element is None and missing_element:
        status, error, attempts = RunStatus.skipped, missing_element, 0
    finished = status in (RunStatus.failed, RunStatus.skipped)
    new_id = uuid.uuid4()
    row: dict[str, Any] = {
        "id": new_id,
        "workspace_id": rule.workspace_id,
        "rule_id": rule.id,
        "event_id": event_id,
        "event_type": event_type,
        "element_id": element.id if element else None,
        "status": status,
        "depth": depth,
        "step": 0,
        "attempts": attempts,
        "error": error,
        "context": context,
        "lease_until": None if finished else now + timedelta(seconds=settings.AUTOMATION_LEASE_SECONDS),
        "created_at": now,
        "started_at": None if status == RunStatus.skipped else now,
        "finished_at": now if finished else None,
        "duration_ms": 0 if finished else None,
    }
    if deferred is not None:
        deferred.append(row)
        run_id: uuid.UUID | None = new_id
    else:
        run_id = await session.scalar(
            pg_insert(AutomationRun).values(row).on_conflict_do_nothing().returning(AutomationRun.id)
        )
    if run_id is None:
        return None
    if status == RunStatus.failed and element is not None:
        _record_run_outcome(session, rule, run_id, element.id, status, error)
    return (run_id, 1) if status == RunStatus.running else None


async def _condition_problem(
    session: AsyncSession, rule: AutomationRule, element: ElementRead | None, context: dict[str, Any]
) -> tuple[RunStatus, str, int] | None:
    """None when the condition holds; else the run's end: skipped, or failed when it no longer fits the type."""
    # An event's rules share their type: its metadata is read once per transaction (and served from the process's
    # cache while the workspace's metadata version is unchanged).
    metas: dict[uuid.UUID, TypeMeta] = session.info.setdefault("automation_type_metas", {})
    meta = metas.get(rule.entity_type_id)
    if meta is None:
        meta = metas[rule.entity_type_id] = await cached_type_meta(session, rule.workspace_id, rule.entity_type_id)
    try:
        node = parse_filter(rule.condition, location="condition")
        activity = context.get("event", {}).get("activity")
        if matches(meta, node, record_of(element, context.get("body"), activity)):
            return None
    except Invalid as exc:
        details = "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
        return RunStatus.failed, f"{exc.detail}{f' ({details})' if details else ''}", 0
    return RunStatus.skipped, "the condition did not match", 0


async def _hook_element(
    session: AsyncSession, actor: Actor, rule: AutomationRule, body: dict[str, Any]
) -> ElementRead | None:
    """The element an incoming hook is about: `element_id` or the first match of `find` (templates over `body`)."""
    trigger = render({k: v for k, v in rule.trigger.items() if k in ("element_id", "find")}, {"body": body})
    if trigger.get("element_id"):
        try:
            return await _element_or_none(session, actor, uuid.UUID(str(trigger["element_id"])))
        except ValueError:
            return None
    if trigger.get("find"):
        meta = await get_type_meta_by_id(session, actor.workspace_id, rule.entity_type_id)
        page = await element_service.list_elements(
            session, actor, meta.code, ElementSearch(filter=trigger["find"], limit=1)
        )
        return page.items[0] if page.items else None
    return None


def _time_key(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


async def _arm_timer(
    session: AsyncSession, rule: AutomationRule, element: ElementRead, event_type: str, payload: dict[str, Any]
) -> tuple[uuid.UUID, datetime] | None:
    """time_in_stage: on entering the stage; date_reached: when the date field is set or changes."""
    if rule.trigger_type == "time_in_stage":
        if _entered_stage(event_type, payload) != str(rule.stage_id):
            return None
        anchor = element.moved_at.isoformat() if element.moved_at else ""
        due = (element.moved_at or datetime.now(UTC)) + timedelta(seconds=duration_seconds(rule.trigger))
        key = f"tis:{rule.id}:{element.id}:{anchor}"
    else:
        code = str(rule.trigger.get("field"))
        if event_type == "element.updated" and f"values.{code}" not in payload.get("changed", []):
            return None
        moment = _time_key(element.values.get(code))
        if moment is None:
            return None
        anchor = str(element.values.get(code))
        offset = {k.removeprefix("offset_"): v for k, v in rule.trigger.items() if k.startswith("offset_")}
        due = moment + timedelta(seconds=duration_seconds(offset))
        key = f"date:{rule.id}:{element.id}:{anchor}"
    timer_id = await session.scalar(
        pg_insert(AutomationTimer)
        .values(
            id=uuid.uuid4(),
            workspace_id=rule.workspace_id,
            rule_id=rule.id,
            element_id=element.id,
            key=key,
            due_at=due,
            anchor=anchor,
        )
        .on_conflict_do_nothing()
        .returning(AutomationTimer.id)
    )
    return (timer_id, due) if timer_id else None


async def _rules_for(session: AsyncSession, event: OutboxEvent) -> list[AutomationRule]:
    """The enabled rules an event may fire, in order; none when the type has automation turned off. Read once per
    transaction for each (type, event type): the events of one batch share them."""
    triggers = TRIGGERS_FOR_EVENT.get(event.event_type)
    if not triggers or event.entity_type_id is None:
        return []
    known: dict[tuple[uuid.UUID, uuid.UUID, str], list[AutomationRule]] = session.info.setdefault(
        "automation_rules", {}
    )
    key = (event.workspace_id, event.entity_type_id, event.event_type)
    if key not in known:
        known[key] = await _load_rules_for(session, event, triggers)
    return known[key]


async def _load_rules_for(session: AsyncSession, event: OutboxEvent, triggers: tuple[str, ...]) -> list[AutomationRule]:
    rows = (
        await session.execute(
            select(AutomationRule, EntityType.settings)
            .join(EntityType, EntityType.id == AutomationRule.entity_type_id)
            .where(
                AutomationRule.workspace_id == event.workspace_id,
                AutomationRule.entity_type_id == event.entity_type_id,
                AutomationRule.enabled.is_(True),
                AutomationRule.trigger_type.in_(triggers),
            )
            .order_by(AutomationRule.sort, AutomationRule.created_at)
        )
    ).all()
    if rows and not EntityTypeSettings.model_validate(rows[0][1]).automation_enabled:
        return []
    return [row[0] for row in rows]


async def load_element(
    session: AsyncSession, workspace_id: uuid.UUID, element_id: uuid.UUID | None
) -> ElementRead | None:
    """The element as the API shows it, in one query (the engine reads many; it needs no full type metadata)."""
    if element_id is None:
        return None
    row = (
        await session.execute(
            select(Element, Stage.code, EntityType.code)
            .join(EntityType, EntityType.id == Element.entity_type_id)
            .outerjoin(Stage, Stage.id == Element.stage_id)
            .where(Element.workspace_id == workspace_id, Element.id == element_id)
        )
    ).first()
    if row is None:
        return None
    element, stage_code, type_code = row
    return element_service.element_read(element, type_code, stage_code)


async def handle_event(session: AsyncSession, settings: Settings, event_id: uuid.UUID) -> Followups:
    """Mark the event handled and create its runs, timers and webhook deliveries; a second call does nothing."""
    return await handle_events(session, settings, [event_id])


async def handle_events(session: AsyncSession, settings: Settings, event_ids: list[uuid.UUID]) -> Followups:
    """`handle_event` for a batch, in order: the events read and marked handled in one statement each."""
    out = Followups()
    events = {
        event.event_id: event
        for event in await session.scalars(select(OutboxEvent).where(OutboxEvent.event_id.in_(event_ids)))
    }
    if not events:
        return out
    marked = set(
        await session.scalars(
            pg_insert(HandledEvent)
            .values([{"event_id": e.event_id, "workspace_id": e.workspace_id} for e in events.values()])
            .on_conflict_do_nothing()
            .returning(HandledEvent.event_id)
        )
    )
    runs: list[dict[str, Any]] = []
    for event_id in event_ids:
        if event_id in marked:
            out.extend(await _handle_marked(session, settings, events[event_id], runs))
    if runs:
        # The events were marked handled just now, in this transaction: none of their runs can exist yet.
        await session.execute(pg_insert(AutomationRun).values(runs))
    return out


def known_elements(session: AsyncSession) -> dict[uuid.UUID, ElementRead]:
    """Elements as this transaction last saw them (loaded for an event, or as a run left them): the runs of a batch
    that follow need not read them again. Forgotten when a savepoint rolls back (`forget_elements`)."""
    known: dict[uuid.UUID, ElementRead] = session.info.setdefault("automation_elements", {})
    return known


def forget_elements(session: AsyncSession) -> None:
    session.info.pop("automation_elements", None)


async def _known_element(
    session: AsyncSession, workspace_id: uuid.UUID, element_id: uuid.UUID | None
) -> ElementRead | None:
    if element_id is None:
        return None
    known = known_elements(session)
    element = known.get(element_id)
    if element is None:
        element = await load_element(session, workspace_id, element_id)
        if element is not None:
            known[element_id] = element
    return element


async def _handle_marked(
    session: AsyncSession, settings: Settings, event: OutboxEvent, runs: list[dict[str, Any]]
) -> Followups:
    """An event just marked handled: its deliveries queued, its timers armed, its runs' rows added to `runs`."""
    out = Followups()
    event_id = event.event_id
    actor = system_actor(event.workspace_id)
    payload = event.payload
    # Load the element only when a subscription or a rule may want it: most follow-up events concern nobody.
    subscriptions = await _subscriptions_for(session, event)
    rules = await _rules_for(session, event)
    element = await _known_element(session, event.workspace_id, event.element_id) if subscriptions or rules else None
    if subscriptions:
        body = {
            "type": event.event_type,
            "timestamp": event.created_at.isoformat(),
            "data": {**payload, **({"element": element.model_dump(mode="json")} if element else {})},
        }
        record = record_of(element) if element else None
        out.deliveries += await _queue_deliveries(session, subscriptions, event, body, record)
    depth = int((payload.get("origin") or {}).get("depth", -1)) + 1
    for rule in rules:
        timed = rule.trigger_type in ("time_in_stage", "date_reached")
        if not timed and not _fires(rule, event.event_type, payload, element):
            continue
        if rule.trigger_type not in RULES_THAT_MAY_FAIL_TO_START:
            # Its condition is checked in memory (a broken one fails the run, not the event): one insert, no savepoint.
            out.extend(await _start_rule(session, settings, actor, rule, event, element, depth, runs))
            continue
        # Each rule in a savepoint: one that fails to start (a template, a timer it cannot arm…) gets a failed run
        # with its error, and the event's other rules and subscriptions go on.
        try:
            async with session.begin_nested():
                started = await _start_rule(session, settings, actor, rule, event, element, depth)
        except Exception as exc:
            if is_transient(exc):
                raise
            logger.warning("rule %s could not start for event %s", rule.id, event_id, exc_info=True)
            async with session.begin_nested():
                await _create_run(
                    session,
                    settings,
                    rule,
                    event_id=event_id,
                    event_type=event.event_type,
                    element=element,
                    depth=depth,
                    context={"event": {"type": event.event_type, "id": str(event_id)}},
                    failure=f"the rule could not start: {describe_failure(exc)}",
                )
            continue
        out.extend(started)
    return out


async def _subscriptions_for(session: AsyncSession, event: OutboxEvent) -> list[Any]:
    """The event's webhook subscriptions, read once per transaction for each (workspace, event type)."""
    known: dict[tuple[uuid.UUID, str], list[Any]] = session.info.setdefault("automation_subscriptions", {})
    key = (event.workspace_id, event.event_type)
    if key not in known:
        known[key] = await webhook_service.subscriptions_for(session, event.workspace_id, event.event_type)
    return known[key]


async def _queue_deliveries(
    session: AsyncSession,
    subscriptions: list[Any],
    event: OutboxEvent,
    body: dict[str, Any],
    record: dict[str, Any] | None,
) -> list[uuid.UUID]:
    """The event's deliveries; when one subscription fails (a stored filter that no longer parses…), the others are
    queued one by one, each in its own savepoint, and only that one is skipped."""

    async def queue(chosen: list[Any]) -> list[uuid.UUID]:
        async with session.begin_nested():
            return await webhook_service.queue_deliveries(
                session, chosen, event_id=event.event_id, event_type=event.event_type, body=body, record=record
            )

    try:
        return await queue(subscriptions)
    except Exception as exc:
        if is_transient(exc):
            raise
    queued: list[uuid.UUID] = []
    for subscription in subscriptions:
        try:
            queued += await queue([subscription])
        except Exception as exc:
            if is_transient(exc):
                raise
            logger.warning(
                "subscription %s skipped event %s: %s", subscription.id, event.event_id, describe_failure(exc)
            )
    return queued


async def _start_rule(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    rule: AutomationRule,
    event: OutboxEvent,
    element: ElementRead | None,
    depth: int,
    deferred: list[dict[str, Any]] | None = None,
) -> Followups:
    """What one rule makes of an event: a timer armed, or a run created (claimed, skipped or failed); the run's row
    added to `deferred` when given."""
    out = Followups()
    payload = event.payload
    if rule.trigger_type in ("time_in_stage", "date_reached"):
        if element is not None and element.deleted_at is None:
            armed = await _arm_timer(session, rule, element, event.event_type, payload)
            if armed:
                out.timers.append(armed)
        return out
    target = element
    context: dict[str, Any] = {"event": {"type": event.event_type, "id": str(event.event_id), **payload}}
    # A hard-deleted element is gone, but its rules may still call webhooks or notify someone.
    missing = None if rule.trigger_type == "element.deleted" else "the element no longer exists"
    if rule.trigger_type == "webhook.received":
        context["body"] = payload.get("body") or {}
        context["event"].pop("body", None)
        target = await _hook_element(session, actor, rule, context["body"])
        wants_element = "find" in rule.trigger or "element_id" in rule.trigger
        missing = "no element matched the incoming hook" if wants_element else None
    created = await _create_run(
        session,
        settings,
        rule,
        event_id=event.event_id,
        event_type=event.event_type,
        element=target,
        depth=depth,
        context=context,
        missing_element=missing,
        deferred=deferred,
    )
    if created:
        out.runs.append(created)
    return out


# --- running a run ---------------------------------------------------------------------------------------------


def _due(now: datetime) -> ColumnElement[bool]:
    """Runs a worker may take: queued and due, or running with an expired lease (its worker died or hung)."""
    return or_(
        and_(AutomationRun.status == RunStatus.queued, AutomationRun.resume_at <= now),
        and_(AutomationRun.status == RunStatus.running, AutomationRun.lease_until < now),
    )


def _attempts_used() -> ColumnElement[int]:
    """Attempts counted against the run's budget: since it was created, retried by hand or last parked by a delay."""
    return AutomationRun.attempts - func.coalesce(AutomationRun.context["budget_from"].as_integer(), 0)


async def give_up_exhausted(
    session: AsyncSession, settings: Settings, *, run_id: uuid.UUID | None = None, limit: int = TIMER_BATCH
) -> int:
    """Fail the due runs that have used up their attempts instead of claiming them again.

    A run whose worker is killed, or hangs past its lease, never reaches `fail_run`: without this every expired
    lease would be one more attempt, forever.
    """
    statement = select(AutomationRun).where(
        _due(datetime.now(UTC)), _attempts_used() >= settings.AUTOMATION_MAX_ATTEMPTS
    )
    if run_id is not None:
        statement = statement.where(AutomationRun.id == run_id)
    runs = list(await session.scalars(statement.limit(limit).with_for_update(skip_locked=True)))
    if not runs:
        return 0
    rules = {
        rule.id: rule
        for rule in await session.scalars(
            select(AutomationRule).where(AutomationRule.id.in_({r.rule_id for r in runs}))
        )
    }
    for run in runs:
        used = run.attempts - int(run.context.get("budget_from", 0))
        reason = (
            f"the last one never finished: its worker stopped, or hung past the {settings.AUTOMATION_LEASE_SECONDS:g}s"
            " lease"
            if run.status == RunStatus.running
            else "no attempts left"
        )
        earlier = f"; the error before: {run.error}" if run.error else ""
        run.error = f"gave up after {used} attempts ({reason}){earlier}"[:4000]
        rule = rules.get(run.rule_id)
        if rule is not None:
            _finish(session, run, rule, RunStatus.failed)
    await session.flush()
    return len(runs)


async def claim_run(session: AsyncSession, settings: Settings, run_id: uuid.UUID) -> int | None:
    """Take a due queued run, or a running one whose lease expired; returns the attempt number.

    None when the run is not due, is someone else's, or has no attempts left (then it is failed here).
    """
    if await give_up_exhausted(session, settings, run_id=run_id):
        return None
    now = datetime.now(UTC)
    return await session.scalar(
        update(AutomationRun)
        .where(
            AutomationRun.id == run_id,
            _due(now),
            _attempts_used() < settings.AUTOMATION_MAX_ATTEMPTS,
        )
        .values(
            status=RunStatus.running,
            attempts=AutomationRun.attempts + 1,
            lease_until=now + timedelta(seconds=settings.AUTOMATION_LEASE_SECONDS),
            started_at=text("coalesce(started_at, now())"),
        )
        .returning(AutomationRun.attempts)
    )


def _end_values(run: AutomationRun, status: RunStatus) -> dict[str, Any]:
    """The columns a run's end sets."""
    now = datetime.now(UTC)
    return {
        "status": status,
        "finished_at": now,
        "lease_until": None,
        "resume_at": None,
        "duration_ms": int((now - (run.started_at or now)).total_seconds() * 1000),
    }


def _finish(session: AsyncSession, run: AutomationRun, rule: AutomationRule, status: RunStatus) -> None:
    for column, value in _end_values(run, status).items():
        setattr(run, column, value)
    if run.element_id is not None:
        _record_run_outcome(session, rule, run.id, run.element_id, status, run.error)


def _record_run_outcome(
    session: AsyncSession,
    rule: AutomationRule,
    run_id: uuid.UUID,
    element_id: uuid.UUID,
    status: RunStatus,
    error: str | None,
) -> None:
    """The run's end on its element's timeline."""
    add_entry(
        session,
        system_actor(rule.workspace_id),
        "automation_run",
        element_id=element_id,
        data={
            "rule_id": str(rule.id),
            "rule": rule.name,
            "run_id": str(run_id),
            "status": status.value,
            "error": error,
        },
    )


async def perform_run(session: AsyncSession, settings: Settings, run_id: uuid.UUID, attempt: int) -> Followups:
    """Run the actions of a claimed run from its current step, in the caller's transaction.

    Raises when an action fails: the caller rolls back (nothing of this attempt stays) and calls `fail_run`.
    """
    return await perform_runs(session, settings, [(run_id, attempt)])


async def perform_runs(session: AsyncSession, settings: Settings, runs: list[tuple[uuid.UUID, int]]) -> Followups:
    """`perform_run` for many runs in order, the runs and their rules locked and read in one statement."""
    out = Followups()
    wanted = dict(runs)
    found = {
        run.id: (run, rule)
        for run, rule in (
            await session.execute(
                select(AutomationRun, AutomationRule)
                .outerjoin(AutomationRule, AutomationRule.id == AutomationRun.rule_id)
                .where(AutomationRun.id.in_(wanted), AutomationRun.status == RunStatus.running)
                .order_by(AutomationRun.id)
                .with_for_update(of=AutomationRun)
            )
        ).all()
        # Not ours unless at the attempt we claimed: finished, or taken over after our lease expired.
        if run.attempts == wanted[run.id]
    }
    succeeded: list[dict[str, Any]] = []
    for run_id, _ in runs:
        if run_id in found:
            out.extend(await _perform(session, *found[run_id], succeeded))
    if succeeded:
        # One statement for all: set on the runs themselves, each action's flush would write them one by one.
        await session.execute(update(AutomationRun), succeeded)
    return out


async def _perform(
    session: AsyncSession, run: AutomationRun, rule: AutomationRule | None, succeeded: list[dict[str, Any]]
) -> Followups:
    """A run's actions from its current step; its end, when it succeeds, added to `succeeded` for the caller."""
    out = Followups()
    if rule is None or not rule.enabled:
        run.error = "the rule was disabled before the run started"
        if rule is not None:
            _finish(session, run, rule, RunStatus.skipped)
        return out
    actor = system_actor(run.workspace_id)
    element = await _known_element(session, run.workspace_id, run.element_id)
    token = event_origin.set({"depth": run.depth, "rule_id": str(rule.id), "run_id": str(run.id)})
    # An A/B rule runs the element's variant (assigned on its first run, then reused); any other its own actions.
    actions = await experiments.actions_for(session, rule, run, element.id if element else None)
    try:
        for index in range(run.step, len(actions)):
            action = actions[index]
            if action["type"] == "delay":
                seconds = action_params.Delay.model_validate(action.get("params", {})).total_seconds
                run.step = index + 1
                # The steps so far succeeded: the part after the delay gets a fresh budget of attempts.
                run.context = {**run.context, "budget_from": run.attempts}
                run.status = RunStatus.queued
                run.lease_until = None
                run.resume_at = datetime.now(UTC) + timedelta(seconds=seconds)
                out.resumes.append((run.id, run.resume_at))
                return out
            element = await _run_action(session, actor, run, rule, index, action, element, out)
    finally:
        event_origin.reset(token)
    if element is not None:
        known_elements(session)[element.id] = element
    # No step in between needs to be on record: a failing action rolls the whole attempt back.
    end = _end_values(run, RunStatus.succeeded)
    succeeded.append({"id": run.id, "step": len(actions), "error": None, **end})
    if run.element_id is not None:
        _record_run_outcome(session, rule, run.id, run.element_id, RunStatus.succeeded, None)
    return out


async def fail_run(
    session: AsyncSession, settings: Settings, run_id: uuid.UUID, attempt: int, error: str, *, permanent: bool
) -> Followups:
    """After a failed attempt (rolled back): back off and retry, or stop as failed once out of attempts."""
    out = Followups()
    run = await session.scalar(
        select(AutomationRun)
        .where(AutomationRun.id == run_id, AutomationRun.status == RunStatus.running, AutomationRun.attempts == attempt)
        .with_for_update()
    )
    if run is None:
        return out
    run.error = error[:4000]
    # A retry by hand gives the run a fresh budget of attempts, counted from where it was.
    budget_from = int(run.context.get("budget_from", 0))
    if permanent or attempt - budget_from >= settings.AUTOMATION_MAX_ATTEMPTS:
        rule = await session.scalar(select(AutomationRule).where(AutomationRule.id == run.rule_id))
        if rule is not None:
            _finish(session, run, rule, RunStatus.failed)
        return out
    run.status = RunStatus.queued
    run.lease_until = None
    run.resume_at = datetime.now(UTC) + timedelta(seconds=webhook_service.backoff_seconds(attempt))
    out.resumes.append((run.id, run.resume_at))
    return out


async def _run_action(
    session: AsyncSession,
    actor: Actor,
    run: AutomationRun,
    rule: AutomationRule,
    index: int,
    action: dict[str, Any],
    element: ElementRead | None,
    out: Followups,
) -> ElementRead | None:
    """One action through the same services the API uses; returns the element as it is afterwards."""
    kind = action["type"]
    raw = dict(action.get("params", {}))
    secret = raw.pop("secret", None)
    params = action_params.parse_params(
        kind, render(raw, template_context(element, run, rule)), f"actions[{index}].params"
    )
    if isinstance(params, action_params.CallWebhook):
        body = params.body or {
            "type": "automation.webhook",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {
                "rule": {"id": str(rule.id), "name": rule.name},
                "run_id": str(run.id),
                "event": run.context.get("event", {}),
                "element": element.model_dump(mode="json") if element else None,
            },
        }
        delivery_id = await webhook_service.add_delivery(
            session,
            run.workspace_id,
            source_key=f"run:{run.id}:{index}",
            url=params.url,
            secret=str(secret),
            event_type="automation.webhook",
            body=body,
            run_id=run.id,
        )
        if delivery_id:
            out.deliveries.append(delivery_id)
        return element
    if isinstance(params, action_params.CreateTask):
        due = datetime.now(UTC) + timedelta(hours=params.due_in_hours) if params.due_in_hours is not None else None
        await task_service.create_task(
            session,
            actor,
            TaskCreate(
                title=params.title,
                description=params.description,
                element_id=element.id if element else None,
                assignee_id=params.assignee_id or (element.assigned_to if element else None),
                due_at=due,
            ),
            run_id=run.id,
        )
        return element
    if isinstance(params, action_params.Notify):
        await task_service.notify(
            session,
            actor,
            user_id=params.user_id,
            message=params.message,
            element_id=element.id if element else None,
            run_id=run.id,
        )
        return element
    if isinstance(params, action_params.CreateLinkedElement):
        source = _need(element, kind)
        created = await element_service.create_element(
            session,
            actor,
            params.entity_type,
            ElementCreate(title=params.title, stage_code=params.stage_code, values=params.values),
        )
        parent, child = (source.id, created.id) if params.as_ == "child" else (created.id, source.id)
        await relation_service.link(session, actor, parent, child)
        return element
    target = _need(element, kind)
    if isinstance(params, action_params.AddComment):
        add_entry(session, actor, "comment", element_id=target.id, data={"text": params.text, "rule_id": str(rule.id)})
        return element
    if isinstance(params, action_params.LogActivity):
        await _log_activity(session, actor, run, params, target)
        return element
    if isinstance(params, action_params.ScheduleCall):
        await calltime_service.schedule_call(
            session,
            actor,
            target.id,
            within_days=params.within_days,
            duration_minutes=params.duration_minutes,
            max_calls_per_hour=params.max_calls_per_hour,
            title=params.title,
            segment=params.segment,
            run_id=run.id,
        )
        return element
    if isinstance(params, action_params.TriageRequest):
        await _triage(session, actor, run, params, target)
        return await _reloaded(session, actor, target)
    return await _element_action(session, actor, kind, params, target)


async def _triage(
    session: AsyncSession, actor: Actor, run: AutomationRun, params: action_params.TriageRequest, element: ElementRead
) -> None:
    """Triage as `POST /elements/{id}/triage` does; an urgency listed in `escalate_if` also creates a task."""
    result = await triage_service.triage_element(
        session, actor, element.id, TriageElementRequest(apply=params.apply, similar=params.similar)
    )
    if params.escalate_if and result.urgency.value in params.escalate_if:
        await task_service.create_task(
            session,
            actor,
            TaskCreate(
                title=params.escalation_title,
                description=f"Triaged {result.category.value} / {result.urgency.value} "
                f"(p={result.urgency.probability})",
                element_id=element.id,
                assignee_id=params.escalation_assignee_id or element.assigned_to,
            ),
            run_id=run.id,
        )


async def _log_activity(
    session: AsyncSession, actor: Actor, run: AutomationRun, params: action_params.LogActivity, element: ElementRead
) -> None:
    starts = None
    if params.starts_in_minutes is not None:
        starts = datetime.now(UTC) + timedelta(minutes=params.starts_in_minutes)
    data = ActivityCreate(
        kind=params.kind,
        direction=params.direction,
        subject=params.subject,
        description=params.description,
        status=params.status,
        outcome=params.outcome,
        starts_at=starts,
        duration_seconds=params.duration_seconds,
        responsible_user_id=params.responsible_user_id or element.assigned_to,
        payload=params.payload or {},
        element_ids=[element.id],
    )
    await activity_service.create_activity(session, actor, data, run_id=run.id)


async def _element_action(
    session: AsyncSession, actor: Actor, kind: str, params: action_params._Params, element: ElementRead
) -> ElementRead:
    if isinstance(params, action_params.SetFields):
        return await element_service.update_element(
            session, actor, element.id, ElementUpdate.model_validate(params.model_dump(exclude_unset=True))
        )
    if isinstance(params, action_params.MoveToStage):
        move = ElementMove(stage_id=params.stage_id, stage_code=params.stage_code)
        return await element_service.move_element(session, actor, element.id, move)
    if isinstance(params, action_params.Assign):
        if params.policy_id is not None:
            # The same routing as `POST /elements/{id}/route`: decision and reasons go on the timeline.
            await routing_service.route_element(session, actor, element.id, policy_id=params.policy_id)
            return await _reloaded(session, actor, element)
        return await element_service.update_element(
            session, actor, element.id, ElementUpdate(assigned_to=params.user_id)
        )
    if isinstance(params, action_params.Score):
        if params.only_unscored and element.score is not None:
            return element
        await scoring_service.score_element(session, actor, element.id, model_id=params.model_id)
        return await _reloaded(session, actor, element)
    if isinstance(params, action_params.MoveToPipeline):
        return await _tunnel(session, actor, params, element)
    raise Invalid(f"Unknown action {kind!r}")


async def _tunnel(
    session: AsyncSession, actor: Actor, params: action_params.MoveToPipeline, element: ElementRead
) -> ElementRead:
    """Move the element into another pipeline, or copy it there as a new element linked to the source."""
    meta = await get_type_meta_by_id(session, actor.workspace_id, (await _element_row(session, element.id)))
    if params.pipeline_id not in meta.pipelines:
        raise Invalid(f"Pipeline {params.pipeline_id} is not a pipeline of {meta.code!r}")
    stage_id = params.stage_id
    if stage_id is None and params.stage_code is None:
        stages = meta.stages_of(params.pipeline_id)
        if not stages:
            raise Invalid(f"Pipeline {params.pipeline_id} has no stages")
        stage_id = stages[0].id
    if params.mode == "move":
        move = ElementMove(pipeline_id=params.pipeline_id, stage_id=stage_id, stage_code=params.stage_code)
        return await element_service.move_element(session, actor, element.id, move)
    copy = await element_service.create_element(
        session,
        actor,
        meta.code,
        ElementCreate(
            title=element.title,
            pipeline_id=params.pipeline_id,
            stage_id=stage_id,
            stage_code=params.stage_code,
            assigned_to=element.assigned_to,
            currency=element.currency,
            source=element.source,
            # A file belongs to one element: the copy starts without the source's files.
            values={
                code: value
                for code, value in element.values.items()
                if code not in meta.fields or meta.fields[code].row.type != "file"
            },
        ),
    )
    add_entry(session, actor, "copied_to", element_id=element.id, data={"element_id": str(copy.id)})
    add_entry(session, actor, "copied_from", element_id=copy.id, data={"element_id": str(element.id)})
    try:
        async with session.begin_nested():
            await relation_service.link(session, actor, element.id, copy.id)
    except DomainError:
        pass  # no relation declared between the type and itself: the timeline entries keep the link
    return element


async def _reloaded(session: AsyncSession, actor: Actor, element: ElementRead) -> ElementRead:
    found = await load_element(session, actor.workspace_id, element.id)
    if found is None:
        raise NotFound(f"Element {element.id} not found")
    return found


async def _element_row(session: AsyncSession, element_id: uuid.UUID) -> uuid.UUID:
    type_id = await session.scalar(select(Element.entity_type_id).where(Element.id == element_id))
    if type_id is None:
        raise NotFound(f"Element {element_id} not found")
    return type_id


def _need(element: ElementRead | None, kind: str) -> ElementRead:
    if element is None:
        raise Invalid(f"The {kind} action needs an element, and this run has none")
    return element


# --- time: timers and the sweeper ------------------------------------------------------------------------------


async def fire_timers(
    session: AsyncSession, settings: Settings, *, timer_id: uuid.UUID | None = None, limit: int = TIMER_BATCH
) -> Followups:
    """Fire due timers (one, or a batch); each becomes runs unless the element moved on in the meantime."""
    out = Followups()
    now = datetime.now(UTC)
    statement = select(AutomationTimer).where(AutomationTimer.fired_at.is_(None), AutomationTimer.due_at <= now)
    if timer_id is not None:
        statement = statement.where(AutomationTimer.id == timer_id)
    timers = list(
        await session.scalars(statement.order_by(AutomationTimer.due_at).limit(limit).with_for_update(skip_locked=True))
    )
    for timer in timers:
        timer.fired_at = now
        rule = await session.scalar(select(AutomationRule).where(AutomationRule.id == timer.rule_id))
        if rule is None or not rule.enabled:
            continue
        # Each timer in a savepoint: one that cannot fire gets a failed run with its error; the batch goes on.
        try:
            async with session.begin_nested():
                out.extend(await _fire_timer(session, settings, rule, timer))
        except Exception as exc:
            if is_transient(exc):
                raise
            logger.warning("timer %s of rule %s could not fire", timer.id, rule.id, exc_info=True)
            async with session.begin_nested():
                await _timer_failed(session, settings, rule, timer, describe_failure(exc))
    return out


def _timer_context(rule: AutomationRule, timer: AutomationTimer) -> dict[str, Any]:
    return {"event": {"type": rule.trigger_type, "timer_id": str(timer.id), "due_at": timer.due_at.isoformat()}}


async def _fire_timer(
    session: AsyncSession, settings: Settings, rule: AutomationRule, timer: AutomationTimer
) -> Followups:
    out = Followups()
    if rule.trigger_type == "schedule":
        await _fire_schedule(session, settings, rule, timer, out)
        return out
    element = await _element_or_none(session, system_actor(rule.workspace_id), timer.element_id)
    if element is None or element.deleted_at is not None or not _timer_holds(rule, timer, element):
        return out
    created = await _timer_run(session, settings, rule, timer, element)
    if created:
        out.runs.append(created)
    return out


async def _timer_run(
    session: AsyncSession,
    settings: Settings,
    rule: AutomationRule,
    timer: AutomationTimer,
    element: ElementRead | None,
    failure: str | None = None,
) -> tuple[uuid.UUID, int] | None:
    """The run of a due timer (one per timer: the timer's id is its event id)."""
    return await _create_run(
        session,
        settings,
        rule,
        event_id=timer.id,
        event_type=rule.trigger_type,
        element=element,
        depth=0,
        context=_timer_context(rule, timer),
        failure=failure,
    )


async def _timer_failed(
    session: AsyncSession, settings: Settings, rule: AutomationRule, timer: AutomationTimer, error: str
) -> None:
    """The failure on record as the timer's run; a schedule keeps its next time."""
    element = await _element_or_none(session, system_actor(rule.workspace_id), timer.element_id)
    await _timer_run(session, settings, rule, timer, element, failure=f"the timer could not fire: {error}")
    await _schedule_next(session, rule, after=max(timer.due_at, datetime.now(UTC)))


def _timer_holds(rule: AutomationRule, timer: AutomationTimer, element: ElementRead) -> bool:
    if rule.trigger_type == "time_in_stage":
        moved = element.moved_at.isoformat() if element.moved_at else ""
        return element.stage_id == rule.stage_id and moved == timer.anchor
    return str(element.values.get(str(rule.trigger.get("field")))) == timer.anchor


async def _fire_schedule(
    session: AsyncSession, settings: Settings, rule: AutomationRule, timer: AutomationTimer, out: Followups
) -> None:
    actor = system_actor(rule.workspace_id)
    meta = await get_type_meta_by_id(session, actor.workspace_id, rule.entity_type_id)
    page = await element_service.list_elements(
        session, actor, meta.code, ElementSearch(filter=rule.condition, limit=SCHEDULE_MAX_ELEMENTS)
    )
    for element in page.items:
        if not _placed(rule, element):
            continue
        created = await _create_run(
            session,
            settings,
            rule,
            event_id=uuid.uuid5(TIMER_NAMESPACE, f"{timer.id}:{element.id}"),
            event_type="schedule",
            element=element,
            depth=0,
            context={"event": {"type": "schedule", "timer_id": str(timer.id), "due_at": timer.due_at.isoformat()}},
        )
        if created:
            out.runs.append(created)
    await _schedule_next(session, rule, after=max(timer.due_at, datetime.now(UTC)))


async def sweep(session: AsyncSession, settings: Settings, *, events: bool = True) -> Followups:
    """What the periodic tick picks up from the database: due or abandoned runs, due deliveries, unhandled events.

    Nothing here depends on Redis having kept anything: a lost queue or a killed worker only delays work.
    """
    out = Followups()
    now = datetime.now(UTC)
    lease = now + timedelta(seconds=settings.AUTOMATION_LEASE_SECONDS)
    await give_up_exhausted(session, settings)
    candidates = (
        select(AutomationRun.id)
        .where(_due(now), _attempts_used() < settings.AUTOMATION_MAX_ATTEMPTS)
        .limit(TIMER_BATCH)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    claimed = await session.execute(
        update(AutomationRun)
        .where(AutomationRun.id.in_(candidates))
        .values(
            status=RunStatus.running,
            attempts=AutomationRun.attempts + 1,
            lease_until=lease,
            started_at=text("coalesce(started_at, now())"),
        )
        .returning(AutomationRun.id, AutomationRun.attempts)
        .execution_options(synchronize_session=False)
    )
    out.runs += [(row[0], row[1]) for row in claimed]
    out.due_deliveries += await webhook_service.due_deliveries(
        session, overdue_seconds=settings.AUTOMATION_SWEEP_AFTER_SECONDS
    )
    if events:
        lost = await session.scalars(
            select(OutboxEvent.event_id)
            .outerjoin(HandledEvent, HandledEvent.event_id == OutboxEvent.event_id)
            .where(
                OutboxEvent.dispatched_at >= now - EVENT_SWEEP_WINDOW,
                OutboxEvent.dispatched_at < now - timedelta(seconds=settings.AUTOMATION_SWEEP_AFTER_SECONDS),
                HandledEvent.event_id.is_(None),
            )
            .limit(500)
        )
        out.events += list(lost)
    return out
