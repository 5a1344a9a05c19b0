"""Webhook subscriptions, their deliveries (one row per message, one log row per attempt), sending and replay."""

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.visibility import ensure_reads_logs, reads_everything
from app.auth.actor import Actor
from app.automation.service import new_webhook_secret
from app.errors import FieldError, Invalid, NotFound
from app.kit.filters import evaluate, parse_filter
from app.outbox.service import record_event
from app.settings import Settings
from app.webhooks import sender, targets
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookSubscription
from app.webhooks.schemas import (
    AttemptRead,
    DeliveryList,
    DeliveryRead,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionList,
    SubscriptionRead,
    SubscriptionUpdate,
)

MAX_BACKOFF_SECONDS = 3600


def backoff_seconds(attempt: int, *, base: float = 1.0) -> float:
    """Exponential with jitter: ~1s, 2s, 4s… capped at an hour."""
    delay: float = min(MAX_BACKOFF_SECONDS, base * 2 ** max(0, attempt - 1))
    return delay * random.uniform(0.8, 1.2)  # noqa: S311  (jitter, not crypto)


# --- subscriptions ---------------------------------------------------------------------------------------------


async def _get(session: AsyncSession, actor: Actor, subscription_id: uuid.UUID) -> WebhookSubscription:
    subscription = await session.scalar(
        select(WebhookSubscription).where(
            WebhookSubscription.workspace_id == actor.workspace_id, WebhookSubscription.id == subscription_id
        )
    )
    if subscription is None or not reads_everything(actor):  # its deliveries carry any element's data
        raise NotFound(f"Webhook {subscription_id} not found")
    return subscription


def _check_url(url: str) -> None:
    problem = targets.url_problem(url, targets.configured_allowed())
    if problem is not None:
        raise Invalid("The webhook URL cannot be called", errors=[FieldError("url", problem)])


async def create_subscription(
    session: AsyncSession, actor: Actor, data: SubscriptionCreate, *, body_format: str | None = None
) -> SubscriptionCreated:
    """`body_format`: None for Standard Webhooks JSON, `bitrix` for a Bitrix24 event binding (app/bitrix)."""
    actor.ensure_admin()
    _check_url(data.url)
    if data.filter:
        parse_filter(data.filter)
    subscription = WebhookSubscription(
        id=uuid.uuid4(),
        workspace_id=actor.workspace_id,
        url=data.url,
        events=data.events,
        filter=data.filter or None,
        secret=new_webhook_secret(),
        description=data.description,
        enabled=data.enabled,
        format=body_format,
        created_at=datetime.now(UTC),
    )
    session.add(subscription)
    await session.flush()
    return SubscriptionCreated(**SubscriptionRead.model_validate(subscription).model_dump(), secret=subscription.secret)


async def list_subscriptions(session: AsyncSession, actor: Actor) -> SubscriptionList:
    ensure_reads_logs(actor, "webhook subscriptions")
    rows = await session.scalars(
        select(WebhookSubscription)
        .where(WebhookSubscription.workspace_id == actor.workspace_id)
        .order_by(WebhookSubscription.created_at)
    )
    return SubscriptionList(items=[SubscriptionRead.model_validate(s) for s in rows])


async def get_subscription(session: AsyncSession, actor: Actor, subscription_id: uuid.UUID) -> SubscriptionRead:
    return SubscriptionRead.model_validate(await _get(session, actor, subscription_id))


async def update_subscription(
    session: AsyncSession, actor: Actor, subscription_id: uuid.UUID, data: SubscriptionUpdate
) -> SubscriptionRead:
    actor.ensure_admin()
    subscription = await _get(session, actor, subscription_id)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("url") is not None:
        _check_url(changes["url"])
    if changes.get("filter"):
        parse_filter(changes["filter"])
    for name, value in changes.items():
        if value is not None or name in ("filter", "description"):
            setattr(subscription, name, value)
    await session.flush()
    return SubscriptionRead.model_validate(subscription)


async def delete_subscription(session: AsyncSession, actor: Actor, subscription_id: uuid.UUID) -> None:
    actor.ensure_admin()
    await session.delete(await _get(session, actor, subscription_id))
    await session.flush()


async def list_deliveries(
    session: AsyncSession, actor: Actor, subscription_id: uuid.UUID, *, limit: int = 50
) -> DeliveryList:
    await _get(session, actor, subscription_id)
    deliveries = list(
        await session.scalars(
            select(WebhookDelivery)
            .where(
                WebhookDelivery.workspace_id == actor.workspace_id, WebhookDelivery.subscription_id == subscription_id
            )
            .order_by(WebhookDelivery.created_at.desc())
            .limit(limit)
        )
    )
    return DeliveryList(items=await _with_log(session, deliveries))


async def _with_log(session: AsyncSession, deliveries: list[WebhookDelivery]) -> list[DeliveryRead]:
    logs: dict[uuid.UUID, list[AttemptRead]] = {}
    if deliveries:
        attempts = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_([d.id for d in deliveries]))
            .order_by(WebhookAttempt.id)
        )
        for attempt in attempts:
            logs.setdefault(attempt.delivery_id, []).append(AttemptRead.model_validate(attempt))
    return [DeliveryRead.model_validate(d).model_copy(update={"log": logs.get(d.id, [])}) for d in deliveries]


async def list_run_deliveries(session: AsyncSession, actor: Actor, run_id: uuid.UUID) -> DeliveryList:
    ensure_reads_logs(actor, "webhook deliveries")
    deliveries = list(
        await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.workspace_id == actor.workspace_id, WebhookDelivery.run_id == run_id)
            .order_by(WebhookDelivery.created_at)
        )
    )
    return DeliveryList(items=await _with_log(session, deliveries))


async def replay_delivery(
    session: AsyncSession, actor: Actor, subscription_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryRead:
    """Send the same message again (same `webhook-id`, so receivers can deduplicate), now."""
    actor.ensure_admin()
    delivery = await session.scalar(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.workspace_id == actor.workspace_id,
            WebhookDelivery.subscription_id == subscription_id,
            WebhookDelivery.id == delivery_id,
        )
        .with_for_update()
    )
    if delivery is None:
        raise NotFound(f"Delivery {delivery_id} not found")
    delivery.status = DeliveryStatus.pending
    delivery.attempts = 0
    delivery.next_attempt_at = datetime.now(UTC)
    await session.flush()
    record_event(session, actor.workspace_id, "webhook_delivery.replayed", payload={"id": str(delivery.id)})
    return (await _with_log(session, [delivery]))[0]


# --- deliveries, for the engine --------------------------------------------------------------------------------


async def add_delivery(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    source_key: str,
    url: str,
    secret: str,
    event_type: str,
    body: dict[str, Any],
    subscription_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    body_format: str | None = None,
) -> uuid.UUID | None:
    """Queue one message; None when this source already queued it (a redelivered event adds nothing)."""
    delivery_id = uuid.uuid4()
    inserted = await session.scalar(
        pg_insert(WebhookDelivery)
        .values(
            id=delivery_id,
            workspace_id=workspace_id,
            subscription_id=subscription_id,
            run_id=run_id,
            source_key=source_key,
            message_id=f"msg_{delivery_id.hex}",
            event_type=event_type,
            url=url,
            secret=secret,
            body=body,
            format=body_format,
            status=DeliveryStatus.pending,
            attempts=0,
            next_attempt_at=datetime.now(UTC),
        )
        .on_conflict_do_nothing()
        .returning(WebhookDelivery.id)
    )
    return inserted


async def subscriptions_for(
    session: AsyncSession, workspace_id: uuid.UUID, event_type: str
) -> list[WebhookSubscription]:
    """The enabled subscriptions that want this event type."""
    rows = await session.scalars(
        select(WebhookSubscription).where(
            WebhookSubscription.workspace_id == workspace_id, WebhookSubscription.enabled.is_(True)
        )
    )
    return [s for s in rows if event_type in s.events or "*" in s.events]


async def queue_deliveries(
    session: AsyncSession,
    subscriptions: list[WebhookSubscription],
    *,
    event_id: uuid.UUID,
    event_type: str,
    body: dict[str, Any],
    record: dict[str, Any] | None,
) -> list[uuid.UUID]:
    """A delivery for each subscription whose filter (if any) the element matches; none twice per event."""
    created = []
    for subscription in subscriptions:
        if subscription.filter and (record is None or not evaluate(parse_filter(subscription.filter), record)):
            continue
        message = body
        if subscription.format == sender.FORM:
            # A Bitrix24 event binding (app/bitrix, imported here: it builds on this module).
            from app.bitrix import events as bitrix_events

            form = await bitrix_events.event_form(session, subscription, event_type, body)
            if form is None:
                continue
            message = form
        delivery_id = await add_delivery(
            session,
            subscription.workspace_id,
            source_key=f"sub:{subscription.id}:{event_id}",
            url=subscription.url,
            secret=subscription.secret,
            event_type=event_type,
            body=message,
            subscription_id=subscription.id,
            body_format=subscription.format,
        )
        if delivery_id:
            created.append(delivery_id)
    return created


@dataclass(frozen=True)
class ClaimedDelivery:
    id: uuid.UUID
    workspace_id: uuid.UUID
    attempt: int
    url: str
    secret: str
    message_id: str
    body: dict[str, Any]
    format: str | None = None


async def claim_delivery(
    session: AsyncSession, delivery_id: uuid.UUID, *, lease_seconds: float, max_attempts: int
) -> ClaimedDelivery | None:
    """Take a due delivery for one attempt; the lease keeps others off it while the request is in flight.

    A due delivery that has used `max_attempts` is failed instead: its last attempt never finished (the worker was
    killed or hung mid-send), and a lost attempt must not become one more, forever.
    """
    claimed = await claim_deliveries(session, [delivery_id], lease_seconds=lease_seconds, max_attempts=max_attempts)
    return claimed[0] if claimed else None


async def due_deliveries(
    session: AsyncSession, *, overdue_seconds: float = 0, limit: int = 200
) -> list[tuple[uuid.UUID, datetime]]:
    """Pending deliveries due for at least `overdue_seconds`: the sweep leaves the ones just queued to their jobs."""
    due_before = datetime.now(UTC) - timedelta(seconds=overdue_seconds)
    rows = await session.execute(
        select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
        .where(WebhookDelivery.status == DeliveryStatus.pending, WebhookDelivery.next_attempt_at <= due_before)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows if row[1] is not None]


async def claim_deliveries(
    session: AsyncSession, delivery_ids: list[uuid.UUID], *, lease_seconds: float, max_attempts: int
) -> list[ClaimedDelivery]:
    """`claim_delivery` for several deliveries, in the caller's transaction: two statements for all of them."""
    now = datetime.now(UTC)
    due = (
        WebhookDelivery.id.in_(delivery_ids),
        WebhookDelivery.status == DeliveryStatus.pending,
        WebhookDelivery.next_attempt_at <= now,
    )
    error = f"gave up after {max_attempts} attempts: the last one never finished (the worker stopped mid-send)"
    for row in await session.execute(
        update(WebhookDelivery)
        .where(*due, WebhookDelivery.attempts >= max_attempts)
        .values(status=DeliveryStatus.failed, next_attempt_at=None, last_error=error)
        .returning(WebhookDelivery.id, WebhookDelivery.workspace_id, WebhookDelivery.attempts)
    ):
        session.add(WebhookAttempt(workspace_id=row[1], delivery_id=row[0], attempt=row[2], latency_ms=0, error=error))
    rows = await session.execute(
        update(WebhookDelivery)
        .where(*due)
        .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=now + timedelta(seconds=lease_seconds))
        .returning(
            WebhookDelivery.id,
            WebhookDelivery.workspace_id,
            WebhookDelivery.attempts,
            WebhookDelivery.url,
            WebhookDelivery.secret,
            WebhookDelivery.message_id,
            WebhookDelivery.body,
            WebhookDelivery.format,
        )
    )
    return [ClaimedDelivery(*row) for row in rows]


async def attempt_delivery(
    session: AsyncSession, http: httpx.AsyncClient, settings: Settings, claimed: ClaimedDelivery
) -> datetime | None:
    """Send one attempt and log it; returns when to try again (None when done, delivered or given up)."""
    return await record_outcome(session, settings, claimed, await send_claimed(http, settings, claimed))


async def send_claimed(http: httpx.AsyncClient, settings: Settings, claimed: ClaimedDelivery) -> sender.Outcome:
    """One attempt of a claimed delivery, under the webhook deadline (no transaction is open meanwhile)."""
    return await sender.send(
        http,
        url=claimed.url,
        secret=claimed.secret,
        message_id=claimed.message_id,
        body=claimed.body,
        allowed=sender.allowed_networks(settings.WEBHOOK_ALLOWED_NETWORKS),
        timeout_seconds=settings.webhook_deadline_seconds,
        body_format=claimed.format,
    )


async def record_outcome(
    session: AsyncSession, settings: Settings, claimed: ClaimedDelivery, outcome: sender.Outcome
) -> datetime | None:
    """Log an attempt and settle the delivery; returns when to try again (None when done, delivered or given up).
    Nothing changes when the attempt is no longer the delivery's latest (its lease ran out and another took it)."""
    session.add(
        WebhookAttempt(
            workspace_id=claimed.workspace_id,
            delivery_id=claimed.id,
            attempt=claimed.attempt,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
        )
    )
    now = datetime.now(UTC)
    values: dict[str, Any] = {"last_status_code": outcome.status_code, "last_error": outcome.error}
    retry_at = None
    if outcome.ok:
        values.update(status=DeliveryStatus.succeeded, delivered_at=now, next_attempt_at=None)
    elif outcome.permanent or claimed.attempt >= settings.WEBHOOK_MAX_ATTEMPTS:
        values.update(status=DeliveryStatus.failed, next_attempt_at=None)  # dead-lettered: replay resends it
    else:
        retry_at = now + timedelta(seconds=backoff_seconds(claimed.attempt, base=settings.WEBHOOK_BACKOFF_SECONDS))
        values.update(next_attempt_at=retry_at)
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == claimed.id, WebhookDelivery.attempts == claimed.attempt)
        .values(**values)
    )
    return retry_at
