"""Job bodies of the engine: each step in its own transaction, then the follow-ups handed to the queue."""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.automation import engine
from app.automation.engine import Followups, Waker
from app.counters import service as counters
from app.db import unit_of_work
from app.errors import DomainError
from app.kit.failures import describe_failure
from app.settings import Settings
from app.webhooks import service as webhook_service

logger = logging.getLogger("stageflow.automation")
ONE_TRANSACTION_SHARE = 1 / 3
# Events handled by one job (the dispatcher's batches and the sweep's): one transaction handles them all and another
# runs their rules, so a busy outbox costs a few transactions per batch rather than a few per event; small enough
# that the workers share a burst.
EVENTS_PER_JOB = 25
Sessionmaker = async_sessionmaker[AsyncSession]


# Webhooks sent together by one job, all at once: the job ends within about one request's deadline, well inside
# the deliveries' leases.
DELIVERIES_PER_JOB = 20


async def wake(waker: Waker, out: Followups) -> None:
    for run_id, attempt in out.runs:
        await waker.run(run_id, attempt)
    if len(out.deliveries) == 1:
        await waker.deliver(out.deliveries[0])
    elif out.deliveries:
        for start in range(0, len(out.deliveries), DELIVERIES_PER_JOB):
            await waker.deliver_many(out.deliveries[start : start + DELIVERIES_PER_JOB])
    for delivery_id, due in out.due_deliveries:
        await waker.deliver_due(delivery_id, due)
    for run_id, at in out.resumes:
        await waker.resume(run_id, at)
    for timer_id, at in out.timers:
        await waker.timer(timer_id, at)
    for start in range(0, len(out.events), EVENTS_PER_JOB):
        await waker.events(out.events[start : start + EVENTS_PER_JOB])


async def execute_run(sessionmaker: Sessionmaker, settings: Settings, run_id: uuid.UUID, attempt: int) -> Followups:
    """One attempt of a claimed run: actions and status commit together, or nothing does."""
    try:
        async with unit_of_work(sessionmaker) as session:
            return await engine.perform_run(session, settings, run_id, attempt)
    except Exception as exc:
        # A domain error (bad stage, invalid values…) will fail the same way again: no point retrying it.
        permanent = isinstance(exc, DomainError)
        if not permanent:
            logger.warning("run %s attempt %s failed", run_id, attempt, exc_info=True)
        async with unit_of_work(sessionmaker) as session:
            return await engine.fail_run(session, settings, run_id, attempt, describe_failure(exc), permanent=permanent)


async def execute_runs(sessionmaker: Sessionmaker, settings: Settings, runs: list[tuple[uuid.UUID, int]]) -> Followups:
    """Claimed runs, many in one transaction: each in a savepoint, so a run whose action fails is rolled back alone and
    marked for its retry (or failed) in the same transaction. Should the transaction itself fail (the database went
    away, a deadlock), nothing of it stays and every run is tried again on its own."""
    if len(runs) == 1:
        return await execute_run(sessionmaker, settings, *runs[0])
    out = Followups()
    try:
        async with unit_of_work(sessionmaker) as session:
            for run_id, attempt in runs:
                try:
                    async with session.begin_nested():
                        out.extend(await engine.perform_run(session, settings, run_id, attempt))
                except Exception as exc:
                    engine.forget_elements(session)  # what the rolled-back run left them as is gone
                    if engine.is_transient(exc):
                        raise
                    permanent = isinstance(exc, DomainError)
                    if not permanent:
                        logger.warning("run %s attempt %s failed", run_id, attempt, exc_info=True)
                    error = describe_failure(exc)
                    out.extend(await engine.fail_run(session, settings, run_id, attempt, error, permanent=permanent))
    except Exception:
        logger.warning("a batch of %d runs failed as a whole; running them one by one", len(runs), exc_info=True)
        out = Followups()
        for run_id, attempt in runs:
            out.extend(await execute_run(sessionmaker, settings, run_id, attempt))
    return out


async def process_event(sessionmaker: Sessionmaker, settings: Settings, waker: Waker, event_id: uuid.UUID) -> int:
    """Handle one outbox event and run its rules right here; returns how many runs it started."""
    return await process_events(sessionmaker, settings, waker, [event_id])


async def process_events(
    sessionmaker: Sessionmaker, settings: Settings, waker: Waker, event_ids: list[uuid.UUID]
) -> int:
    """Handle a batch of outbox events and run their rules; returns how many runs they started.

    First all in one transaction: events marked handled, runs created, their actions done and the runs finished
    commit together (or none of it does). Should anything in it fail (a run's action, the database), it is done
    again in steps: the events in one transaction (each on its own should that fail too), then their runs, each
    in a savepoint (see `execute_runs`), so a failing run is retried or failed alone.
    """
    try:
        # A part of the job's time: a run that hangs must leave time for the steps, where its lease and attempts
        # are on record (in one transaction, a hang would roll back the run with it, again and again).
        async with asyncio.timeout(settings.job_timeout_seconds * ONE_TRANSACTION_SHARE):
            async with unit_of_work(sessionmaker) as session:
                done = await engine.handle_events(session, settings, event_ids)
                started = len(done.runs)
                runs, done.runs = done.runs, []
                done.extend(await engine.perform_runs(session, settings, runs))
    except Exception as exc:
        if not isinstance(exc, DomainError):
            logger.info("a batch of %d events failed in one transaction (%r); retrying in steps", len(event_ids), exc)
    else:
        await wake(waker, done)
        return started
    try:
        async with unit_of_work(sessionmaker) as session:
            handled = await engine.handle_events(session, settings, event_ids)
    except Exception:
        if len(event_ids) == 1:
            raise
        logger.warning("a batch of %d events failed; handling them one by one", len(event_ids), exc_info=True)
        return sum([await process_events(sessionmaker, settings, waker, [event_id]) for event_id in event_ids])
    runs, handled.runs = handled.runs, []
    handled.extend(await execute_runs(sessionmaker, settings, runs))
    await wake(waker, handled)
    return len(runs)


async def run_claimed(
    sessionmaker: Sessionmaker, settings: Settings, waker: Waker, run_id: uuid.UUID, attempt: int
) -> None:
    await wake(waker, await execute_run(sessionmaker, settings, run_id, attempt))


async def resume_run(sessionmaker: Sessionmaker, settings: Settings, waker: Waker, run_id: uuid.UUID) -> None:
    async with unit_of_work(sessionmaker) as session:
        attempt = await engine.claim_run(session, settings, run_id)
    if attempt is not None:
        await run_claimed(sessionmaker, settings, waker, run_id, attempt)


async def fire_timer(sessionmaker: Sessionmaker, settings: Settings, waker: Waker, timer_id: uuid.UUID) -> None:
    async with unit_of_work(sessionmaker) as session:
        out = await engine.fire_timers(session, settings, timer_id=timer_id)
    runs, out.runs = out.runs, []
    for run_id, attempt in runs:
        out.extend(await execute_run(sessionmaker, settings, run_id, attempt))
    await wake(waker, out)


async def tick(sessionmaker: Sessionmaker, settings: Settings, waker: Waker, *, events: bool) -> Followups:
    """The periodic sweep: due timers, due or abandoned runs, due deliveries, events nobody handled, counters.

    Each part in its own transaction, and a part that fails does not keep the other from running.
    """
    out = Followups()
    parts: list[tuple[str, Callable[[AsyncSession], Awaitable[Followups]]]] = [
        ("timers", lambda session: engine.fire_timers(session, settings)),
        ("runs and deliveries", lambda session: engine.sweep(session, settings, events=events)),
        ("counters", _fire_counters),
    ]
    for name, part in parts:
        try:
            async with unit_of_work(sessionmaker) as session:
                out.extend(await part(session))
        except Exception:
            logger.exception("the sweep of %s failed; the rest of the tick goes on", name)
    await wake(waker, out)
    return out


async def _fire_counters(session: AsyncSession) -> Followups:
    """Elements past their stage's time limit and tasks past their due time, for the people's counters."""
    await counters.fire_due(session)
    return Followups()


async def deliver(
    sessionmaker: Sessionmaker, settings: Settings, http: httpx.AsyncClient, waker: Waker, delivery_id: uuid.UUID
) -> None:
    """One attempt of a webhook delivery; the claim's lease keeps a second worker from sending it meanwhile.

    The request is cut at `webhook_deadline_seconds` and the job at `job_timeout_seconds`, both shorter than the
    lease: the attempt is over before anyone else may claim the delivery.
    """
    await deliver_many(sessionmaker, settings, http, waker, [delivery_id])


async def deliver_many(
    sessionmaker: Sessionmaker, settings: Settings, http: httpx.AsyncClient, waker: Waker, delivery_ids: list[uuid.UUID]
) -> None:
    """`deliver` for several deliveries: claimed in one transaction, sent concurrently, settled in one transaction.

    Each is sent to its own checked address under the same deadline as a single delivery, so the job is over within
    about one deadline: before any of the claims' leases runs out.
    """
    async with unit_of_work(sessionmaker) as session:
        claimed = await webhook_service.claim_deliveries(
            session,
            delivery_ids,
            lease_seconds=settings.AUTOMATION_LEASE_SECONDS,
            max_attempts=settings.WEBHOOK_MAX_ATTEMPTS,
        )
    if not claimed:
        return
    outcomes = await asyncio.gather(*(webhook_service.send_claimed(http, settings, one) for one in claimed))
    async with unit_of_work(sessionmaker) as session:
        retries = [
            (one.id, await webhook_service.record_outcome(session, settings, one, outcome))
            for one, outcome in zip(claimed, outcomes, strict=True)
        ]
    for delivery_id, retry_at in retries:
        if retry_at is not None:
            await waker.deliver(delivery_id, retry_at)
