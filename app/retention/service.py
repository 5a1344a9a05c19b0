"""Retention: the per-workspace settings, and the pruning the worker runs on a schedule (and `stageflow prune` once).

Pruning deletes in small batches, each one statement in its own short transaction: the rows are chosen with
`FOR UPDATE SKIP LOCKED`, so a batch never waits on (or blocks) a row someone is working on, and no lock outlives
its batch. Only what is over can go:

- a run that is succeeded, failed or skipped (never queued or running; a failed run that is retried by hand is
  queued again and its `finished_at` cleared, so it starts over);
- a delivery that is delivered or dead-lettered, with no attempt inside the window (a replay in flight is pending;
  a replay that just failed again has a fresh attempt), together with its attempt log;
- an outbox event that was dispatched and that the automation engine has handled, together with its handled mark, in
  the same statement. Handling is idempotent on that mark: a late `handle_event` job for a pruned event finds no
  event and does nothing, and the sweep never sees a mark go while its event stays. The outbox is never pruned
  within the engine's sweep window (EVENT_SWEEP_WINDOW), and a dispatched event that was never handled is kept at
  least a day (arq drops a queued job a day after its time): until then its job may still come.

Files (app.files.service.prune_files) go too: uploads no element took within FILES_UNBOUND_HOURS, and every purged
file (its element or field deleted, or taken out of a value), bytes first, then the row.
"""

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import TextClause, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.auth.actor import Actor
from app.automation.engine import EVENT_SWEEP_WINDOW
from app.errors import NotFound
from app.files import service as file_service
from app.retention.schemas import RetentionDays, RetentionRead, RetentionUpdate
from app.settings import Settings
from app.workspaces.models import Workspace

logger = logging.getLogger("stageflow.retention")

SETTINGS_KEY = "retention"  # the workspace's settings key
FIELDS = ("runs_days", "deliveries_days", "outbox_days", "timeline_days")
# A dispatched event nobody handled may still have its job queued: arq expires a queued job a day after its time.
UNHANDLED_KEEP = timedelta(days=1)
# The worker's pass stops starting batches after this long (the cron job's timeout is above it); the next goes on.
PASS_BUDGET_SECONDS = 240.0
# One pass at a time across every worker and `stageflow prune`: a session-level advisory lock.
LOCK_KEY = 0x73_66_72_65_74_6E  # "sfretn"
LOCK_TIMEOUT = "5s"  # a batch gives up rather than queue behind a table lock (DDL)


# --- settings --------------------------------------------------------------------------------------------------


def instance_days(settings: Settings) -> RetentionDays:
    return RetentionDays(
        runs_days=settings.RETENTION_RUNS_DAYS,
        deliveries_days=settings.RETENTION_DELIVERIES_DAYS,
        outbox_days=settings.RETENTION_OUTBOX_DAYS,
        timeline_days=settings.RETENTION_TIMELINE_DAYS,
    )


def effective_days(settings: Settings, stored: dict[str, Any] | None) -> RetentionDays:
    """The workspace's own values where it set them (null included: keep forever), the instance's elsewhere."""
    own = {key: value for key, value in (stored or {}).items() if key in FIELDS}
    return RetentionDays.model_validate({**instance_days(settings).model_dump(), **own})


def _read(settings: Settings, stored: dict[str, Any] | None) -> RetentionRead:
    return RetentionRead(
        **effective_days(settings, stored).model_dump(),
        defaults=instance_days(settings),
        overridden=[key for key in FIELDS if key in (stored or {})],
    )


async def _workspace(session: AsyncSession, actor: Actor, *, lock: bool = False) -> Workspace:
    actor.ensure_admin()
    statement = select(Workspace).where(Workspace.id == actor.workspace_id)
    workspace = await session.scalar(statement.with_for_update() if lock else statement)
    if workspace is None:
        raise NotFound("Workspace not found")
    return workspace


async def get_retention(session: AsyncSession, actor: Actor, settings: Settings) -> RetentionRead:
    workspace = await _workspace(session, actor)
    return _read(settings, workspace.settings.get(SETTINGS_KEY))


async def update_retention(
    session: AsyncSession, actor: Actor, settings: Settings, data: RetentionUpdate
) -> RetentionRead:
    workspace = await _workspace(session, actor, lock=True)
    stored = {**workspace.settings.get(SETTINGS_KEY, {}), **data.model_dump(exclude_unset=True)}
    workspace.settings = {**workspace.settings, SETTINGS_KEY: stored}
    await session.flush()
    return _read(settings, stored)


async def reset_retention(session: AsyncSession, actor: Actor, settings: Settings) -> RetentionRead:
    workspace = await _workspace(session, actor, lock=True)
    workspace.settings = {key: value for key, value in workspace.settings.items() if key != SETTINGS_KEY}
    await session.flush()
    return _read(settings, None)


# --- pruning ---------------------------------------------------------------------------------------------------

# The status predicates are those of the partial indexes (app/retention/models.py), spelled the same so they are used.
RUNS_SQL = text(
    """
    WITH doomed AS (
        SELECT id FROM automation_runs
        WHERE workspace_id = :workspace_id AND status IN ('succeeded', 'failed', 'skipped') AND finished_at < :cutoff
        LIMIT :batch FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM automation_runs r USING doomed WHERE r.id = doomed.id RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone)
    """
)
# The attempts go in the same statement (their foreign key would cascade anyway): counted, and no second pass.
DELIVERIES_SQL = text(
    """
    WITH doomed AS (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.workspace_id = :workspace_id AND d.status IN ('succeeded', 'failed') AND d.created_at < :cutoff
          AND NOT EXISTS (
              SELECT 1 FROM webhook_attempts a WHERE a.delivery_id = d.id AND a.created_at >= :cutoff
          )
        LIMIT :batch FOR UPDATE OF d SKIP LOCKED
    ), attempts AS (
        DELETE FROM webhook_attempts a USING doomed WHERE a.delivery_id = doomed.id RETURNING 1
    ), gone AS (
        DELETE FROM webhook_deliveries d USING doomed WHERE d.id = doomed.id RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM attempts)
    """
)
OUTBOX_SQL = text(
    """
    WITH doomed AS (
        SELECT o.id, o.event_id FROM outbox_events o
        WHERE o.workspace_id = :workspace_id AND o.dispatched_at IS NOT NULL AND o.dispatched_at < :cutoff
          AND (
              o.dispatched_at < :unhandled_cutoff
              OR EXISTS (SELECT 1 FROM automation_handled_events h WHERE h.event_id = o.event_id)
          )
        LIMIT :batch FOR UPDATE OF o SKIP LOCKED
    ), marks AS (
        DELETE FROM automation_handled_events h USING doomed WHERE h.event_id = doomed.event_id RETURNING 1
    ), gone AS (
        DELETE FROM outbox_events o USING doomed WHERE o.id = doomed.id RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM marks)
    """
)
TIMELINE_SQL = text(
    """
    WITH doomed AS (
        SELECT id FROM timeline_entries
        WHERE workspace_id = :workspace_id AND created_at < :cutoff
        LIMIT :batch FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM timeline_entries t USING doomed WHERE t.id = doomed.id RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone)
    """
)


@dataclass(frozen=True)
class Target:
    """One kind of record: its setting, its statement, and the tables its counts are of (the first: the batch's)."""

    setting: str
    statement: TextClause
    tables: tuple[str, ...]


TARGETS = (
    Target("runs_days", RUNS_SQL, ("automation_runs",)),
    Target("deliveries_days", DELIVERIES_SQL, ("webhook_deliveries", "webhook_attempts")),
    Target("outbox_days", OUTBOX_SQL, ("outbox_events", "automation_handled_events")),
    Target("timeline_days", TIMELINE_SQL, ("timeline_entries",)),
)
# Files go their own way (their bytes leave the storage first): app.files.service.prune_files.
FILES_TABLE = "files"
TABLES = (*(table for target in TARGETS for table in target.tables), FILES_TABLE)

# Called after each batch: workspace, the batch's table, rows deleted from it so far in this workspace, done.
Progress = Callable[[uuid.UUID, str, int, bool], None]


@dataclass
class PruneReport:
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    workspaces: int = 0
    batches: int = 0
    seconds: float = 0.0
    complete: bool = True  # False: the time budget ran out first (the next pass goes on)
    busy: bool = False  # another pass held the lock: this one did nothing

    def as_dict(self) -> dict[str, Any]:
        return {
            "deleted": self.deleted,
            "workspaces": self.workspaces,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
            "busy": self.busy,
        }


def _params(target: Target, workspace_id: uuid.UUID, days: float, now: datetime, batch: int) -> dict[str, Any]:
    cutoff = now - timedelta(days=days)
    params: dict[str, Any] = {"workspace_id": workspace_id, "cutoff": cutoff, "batch": batch}
    if target.setting == "outbox_days":
        params["cutoff"] = min(cutoff, now - EVENT_SWEEP_WINDOW)
        params["unhandled_cutoff"] = min(cutoff, now - UNHANDLED_KEEP)
    return params


async def _batch(engine: AsyncEngine, target: Target, params: dict[str, Any]) -> tuple[int, ...]:
    """One batch, one transaction: choose, lock (skipping locked rows), delete, commit."""
    async with engine.begin() as connection:
        await connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        row = (await connection.execute(target.statement, params)).one()
    return tuple(int(value) for value in row)


async def _workspaces(engine: AsyncEngine, only: Sequence[uuid.UUID] | None) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    statement = select(Workspace.id, Workspace.settings[SETTINGS_KEY]).order_by(Workspace.id)
    if only is not None:
        statement = statement.where(Workspace.id.in_(only))
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return [(row[0], row[1] or {}) for row in rows]


async def _try_lock(connection: AsyncConnection) -> bool:
    locked = bool(await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}))
    await connection.commit()  # the lock is the session's: no transaction stays open while the pass runs
    return locked


async def _prune_target(
    engine: AsyncEngine,
    target: Target,
    params: dict[str, Any],
    report: PruneReport,
    deadline: float | None,
    progress: Progress | None,
) -> bool:
    """Batch after batch until one comes back short; False when the deadline came first."""
    total = 0
    while True:
        if deadline is not None and time.monotonic() > deadline:
            return False
        counts = await _batch(engine, target, params)
        report.batches += 1
        for table, count in zip(target.tables, counts, strict=True):
            report.deleted[table] += count
        total += counts[0]
        done = counts[0] < params["batch"]
        if progress is not None:
            progress(params["workspace_id"], target.tables[0], total, done)
        if done:
            return True


async def prune(
    engine: AsyncEngine,
    settings: Settings,
    *,
    workspaces: Sequence[uuid.UUID] | None = None,
    now: datetime | None = None,
    batch_size: int | None = None,
    budget_seconds: float | None = None,
    progress: Progress | None = None,
) -> PruneReport:
    """One pass over every workspace (or those given): each kind of record it keeps for a time, batch after batch."""
    report = PruneReport()
    started = time.monotonic()
    deadline = started + budget_seconds if budget_seconds is not None else None
    batch = batch_size or settings.RETENTION_BATCH_SIZE
    async with engine.connect() as lock:
        if not await _try_lock(lock):
            report.busy = True
            return report
        try:
            now = now or datetime.now(UTC)
            for workspace, stored in await _workspaces(engine, workspaces):
                days = effective_days(settings, stored)
                report.workspaces += 1
                for target in TARGETS:
                    keep = getattr(days, target.setting)
                    if keep is None:
                        continue
                    params = _params(target, workspace, keep, now, batch)
                    if not await _prune_target(engine, target, params, report, deadline, progress):
                        report.complete = False
                        break
                if not report.complete:
                    break
                files = await file_service.prune_files(engine, settings, workspace, now=now, batch=batch)
                report.deleted[FILES_TABLE] += files
                if progress is not None:
                    progress(workspace, FILES_TABLE, files, True)
        finally:
            await _unlock(lock)
    report.seconds = time.monotonic() - started
    return report


async def _unlock(connection: AsyncConnection) -> None:
    try:
        await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
        await connection.commit()
    except BaseException:
        # A pooled connection must not go back still holding the lock (every later pass would be "busy"): closing
        # it releases the lock.
        await connection.invalidate()
        raise


def is_due(settings: Settings, at: datetime) -> bool:
    """The worker's cron ticks every minute; a pass runs every RETENTION_PRUNE_EVERY_MINUTES of them."""
    every = settings.RETENTION_PRUNE_EVERY_MINUTES
    return every > 0 and int(at.timestamp() // 60) % every == 0


async def scheduled_prune(engine: AsyncEngine, settings: Settings, *, at: datetime | None = None) -> PruneReport | None:
    """The worker's pass (None when this minute is not one of them)."""
    if not is_due(settings, at or datetime.now(UTC)):
        return None
    report = await prune(engine, settings, budget_seconds=PASS_BUDGET_SECONDS)
    if any(report.deleted.values()) or not report.complete:
        logger.info("retention pass: %s", report.as_dict())
    return report
