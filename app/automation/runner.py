"""Job bodies of the engine: each step in its own transaction, then the follow-ups handed to the queue."""

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
Sessionmaker = async_sessionmaker[AsyncSession]


async def wake(waker: Waker, out: Followups) -> None:
    for run_id, attempt in out.runs:
        await waker.run(run_id, attempt)
    for delivery_id in out.deliveries:
        await waker.deliver(delivery_id)
    for delivery_id, due in out.due_deliveries:
        await waker.deliver_due(delivery_id, due)
    for run_id, at in out.resumes:
        await waker.resume(run_id, at)
    for timer_id, at in out.timers:
        await waker.timer(timer_id, at)
    for event_id in out.events:
        await waker.event(event_id)


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


async def process_event(sessionmaker: Sessionmaker, settings: Settings, waker: Waker, event_id: uuid.UUID) -> int:
    """Handle one outbox event and run its rules right here; returns how many runs it started."""
    async with unit_of_work(sessionmaker) as session:
        handled = await engine.handle_event(session, settings, event_id)
    runs, handled.runs = handled.runs, []
    for run_id, attempt in runs:
        handled.extend(await execute_run(sessionmaker, settings, run_id, attempt))
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
    async with unit_of_work(sessionmaker) as session:
        claimed = await webhook_service.claim_delivery(
            session,
            delivery_id,
            lease_seconds=settings.AUTOMATION_LEASE_SECONDS,
            max_attempts=settings.WEBHOOK_MAX_ATTEMPTS,
        )
    if claimed is None:
        return
    async with unit_of_work(sessionmaker) as session:
        retry_at = await webhook_service.attempt_delivery(session, http, settings, claimed)
    if retry_at is not None:
        await waker.deliver(delivery_id, retry_at)
