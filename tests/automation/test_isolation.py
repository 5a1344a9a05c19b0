"""One rule, timer or delivery that fails never takes the others of its event or batch down, nor the sweep; and every
path that claims a run or a delivery counts its attempts, so one whose worker dies or hangs each time stops."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from app.automation import engine, runner
from app.automation.models import AutomationRule, AutomationRun, AutomationTimer, HandledEvent, RunStatus
from app.db import unit_of_work
from app.outbox.models import OutboxEvent
from app.settings import Settings
from app.webhooks import service as webhook_service
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from tests.automation.test_rule_typing import RecordingWaker, handle_new_events
from tests.conftest import Tenant
from tests.factories import create_element, default_pipeline, lead_type


async def new_rule(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    rule = {"name": "R", "entity_type": "lead", "actions": [{"type": "add_comment", "params": {"text": "ran"}}], **body}
    response = await client.post("/automation/rules", json=rule)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def store_trigger(app: FastAPI, rule_id: str, trigger: dict[str, Any]) -> None:
    """As a rule saved before today's checks: the stored trigger is one the API would now refuse."""
    async with unit_of_work(app.state.sessionmaker) as session:
        await session.execute(
            update(AutomationRule).where(AutomationRule.id == uuid.UUID(rule_id)).values(trigger=trigger)
        )


async def runs_of(client: httpx.AsyncClient, rule_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await client.get("/automation/runs", params={"rule_id": rule_id})).json()["items"]
    return items


async def test_a_rule_that_cannot_start_fails_alone_and_the_events_other_rules_and_deliveries_go_on(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    await lead_type(client)
    new = next(s for s in (await default_pipeline(client, "lead"))["stages"] if s["code"] == "NEW")
    too_far = await new_rule(client, stage_id=new["id"], trigger={"type": "time_in_stage", "hours": 1})
    await store_trigger(app, too_far["id"], {"type": "time_in_stage", "days": 1e12})
    not_a_number = await new_rule(client, trigger={"type": "date_reached", "field": "created_on", "offset_days": 1})
    await store_trigger(app, not_a_number["id"], {"type": "date_reached", "field": "created_on", "offset_days": "x"})
    fine = await new_rule(client, trigger={"type": "element.created"})
    hook = await client.post("/webhooks", json={"url": "https://example.com/hook", "events": ["element.created"]})
    assert hook.status_code == 201, hook.text

    element = await create_element(client, "lead", title="Both", values={"created_on": "2030-01-01"})
    waker = await handle_new_events(app, settings, tenant.workspace_id)

    (ran,) = await runs_of(client, fine["id"])
    assert (ran["status"], ran["element_id"]) == ("succeeded", element["id"])
    for broken, error in ((too_far, "OverflowError"), (not_a_number, "ValueError")):
        (failed,) = await runs_of(client, broken["id"])
        assert failed["status"] == "failed", failed
        assert failed["error"].startswith(f"the rule could not start: {error}"), failed
    history = (await client.get(f"/elements/{element['id']}/history")).json()["items"]
    assert [e["data"]["text"] for e in history if e["kind"] == "comment"] == ["ran"]
    deliveries = (await client.get(f"/webhooks/{hook.json()['id']}/deliveries")).json()["items"]
    assert [d["event_type"] for d in deliveries] == ["element.created"]
    assert any(kind == "deliver" for kind, _ in waker.woken)
    async with app.state.sessionmaker() as session:  # handled: the sweep will not hand the event out again
        handled = await session.scalar(
            select(HandledEvent.event_id)
            .join(OutboxEvent, OutboxEvent.event_id == HandledEvent.event_id)
            .where(OutboxEvent.event_type == "element.created", OutboxEvent.element_id == uuid.UUID(element["id"]))
        )
        assert handled is not None


async def test_a_timer_that_cannot_fire_fails_alone_and_the_batch_goes_on(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    await lead_type(client)
    new = next(s for s in (await default_pipeline(client, "lead"))["stages"] if s["code"] == "NEW")
    # A schedule whose condition names a field deleted since: its list query is refused when it fires.
    scheduled = await new_rule(
        client,
        trigger={"type": "schedule", "cron": "0 9 * * *"},
        condition={"field": "budget", "op": "gte", "value": 1},
    )
    waiting = await new_rule(client, stage_id=new["id"], trigger={"type": "time_in_stage", "hours": 1})
    element = await create_element(client, "lead", title="Waits")
    await handle_new_events(app, settings, tenant.workspace_id)
    assert (await client.delete("/entity-types/lead/fields/budget")).status_code == 204
    async with unit_of_work(app.state.sessionmaker) as session:
        timers = list(
            await session.scalars(select(AutomationTimer).where(AutomationTimer.workspace_id == tenant.workspace_id))
        )
        assert {t.rule_id for t in timers} == {uuid.UUID(scheduled["id"]), uuid.UUID(waiting["id"])}
        for timer in timers:  # both due; the broken one first
            broken = timer.rule_id == uuid.UUID(scheduled["id"])
            timer.due_at = datetime.now(UTC) - timedelta(minutes=10 if broken else 5)
            if broken:
                timer.key = f"schedule:{timer.rule_id}:{timer.due_at.isoformat()}"

    async with unit_of_work(app.state.sessionmaker) as session:
        fired = await engine.fire_timers(session, settings)
    mine = [
        run_id
        for run_id, _ in fired.runs
        if run_id in {uuid.UUID(r["id"]) for r in await runs_of(client, waiting["id"])}
    ]
    assert len(mine) == 1
    for run_id, attempt in fired.runs:
        if run_id in mine:
            await runner.execute_run(app.state.sessionmaker, settings, run_id, attempt)

    (ran,) = await runs_of(client, waiting["id"])
    assert (ran["status"], ran["element_id"]) == ("succeeded", element["id"])
    (failed,) = await runs_of(client, scheduled["id"])
    assert failed["status"] == "failed", failed
    assert failed["error"].startswith("the timer could not fire:"), failed
    assert "unknown field 'budget'" in failed["error"], failed
    async with app.state.sessionmaker() as session:  # the schedule goes on to its next time
        pending = await session.scalars(
            select(AutomationTimer).where(
                AutomationTimer.rule_id == uuid.UUID(scheduled["id"]), AutomationTimer.fired_at.is_(None)
            )
        )
        assert len(list(pending)) == 1


async def test_the_tick_sweeps_runs_even_when_firing_timers_fails(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await _stored_run(app, client, tenant, status=RunStatus.queued, attempts=1)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the timers part broke")

    monkeypatch.setattr(engine, "fire_timers", broken)
    waker = RecordingWaker()
    await runner.tick(app.state.sessionmaker, settings, waker, events=False)
    assert ("run", run_id) in waker.woken
    assert (await _run(app, run_id)).status == RunStatus.running


async def _stored_run(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    *,
    status: RunStatus,
    attempts: int,
    context: dict[str, Any] | None = None,
    rule_id: str | None = None,
) -> uuid.UUID:
    """A run as a worker left it: running with an expired lease (it died or hung), or queued and due."""
    if rule_id is None:
        if (await client.get("/entity-types/lead")).status_code == 404:
            await lead_type(client)
        rule_id = (await new_rule(client, trigger={"type": "element.created"}, enabled=False))["id"]
    element = await create_element(client, "lead", title="Left behind")
    past = datetime.now(UTC) - timedelta(minutes=5)
    run = AutomationRun(
        id=uuid.uuid4(),
        workspace_id=tenant.workspace_id,
        rule_id=uuid.UUID(rule_id),
        event_id=uuid.uuid4(),
        event_type="element.created",
        element_id=uuid.UUID(element["id"]),
        status=status,
        attempts=attempts,
        context=context or {},
        lease_until=past if status == RunStatus.running else None,
        resume_at=past if status == RunStatus.queued else None,
        started_at=past,
    )
    async with unit_of_work(app.state.sessionmaker) as session:
        session.add(run)
    return run.id


async def _run(app: FastAPI, run_id: uuid.UUID) -> AutomationRun:
    async with app.state.sessionmaker() as session:
        run = await session.scalar(select(AutomationRun).where(AutomationRun.id == run_id))
    assert run is not None
    return run


async def test_a_run_whose_lease_expired_on_its_last_attempt_is_failed_not_claimed_again(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    last = settings.AUTOMATION_MAX_ATTEMPTS
    exhausted = await _stored_run(app, client, tenant, status=RunStatus.running, attempts=last)
    async with unit_of_work(app.state.sessionmaker) as session:
        assert await engine.claim_run(session, settings, exhausted) is None
    run = await _run(app, exhausted)
    assert run.status == RunStatus.failed
    assert run.error is not None
    assert run.error.startswith(f"gave up after {last} attempts (the last one never finished"), run.error
    assert run.finished_at is not None
    assert run.lease_until is None
    history = (await client.get(f"/elements/{run.element_id}/history")).json()["items"]
    assert any(e["kind"] == "automation_run" and e["data"]["status"] == "failed" for e in history)

    # With attempts left, a takeover is the next attempt.
    taken = await _stored_run(app, client, tenant, status=RunStatus.running, attempts=last - 1)
    async with unit_of_work(app.state.sessionmaker) as session:
        assert await engine.claim_run(session, settings, taken) == last
    assert (await _run(app, taken)).status == RunStatus.running


async def test_the_sweep_fails_exhausted_runs_and_claims_the_others(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    last = settings.AUTOMATION_MAX_ATTEMPTS
    exhausted = await _stored_run(app, client, tenant, status=RunStatus.running, attempts=last)
    rule_id = str((await _run(app, exhausted)).rule_id)
    expired = await _stored_run(app, client, tenant, status=RunStatus.running, attempts=1, rule_id=rule_id)
    # Retried by hand after using up its budget: counted from there.
    retried = await _stored_run(
        app, client, tenant, status=RunStatus.queued, attempts=last, context={"budget_from": last}, rule_id=rule_id
    )
    async with unit_of_work(app.state.sessionmaker) as session:
        swept = await engine.sweep(session, settings, events=False)
    claimed = dict(swept.runs)
    assert exhausted not in claimed
    assert (claimed.get(expired), claimed.get(retried)) == (2, last + 1)
    assert (await _run(app, exhausted)).status == RunStatus.failed
    assert {(await _run(app, r)).status for r in (expired, retried)} == {RunStatus.running}


async def test_a_run_parked_by_many_delays_still_finishes(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    """Each part between delays has its own budget: more delays than attempts are not a failure."""
    await lead_type(client)
    delays = [{"type": "delay", "params": {"seconds": 0}}] * (settings.AUTOMATION_MAX_ATTEMPTS + 2)
    rule = await new_rule(
        client,
        trigger={"type": "element.created"},
        actions=[*delays, {"type": "add_comment", "params": {"text": "at last"}}],
    )
    await create_element(client, "lead", title="Patient")
    await handle_new_events(app, settings, tenant.workspace_id)
    for _ in range(len(delays) + 1):
        (run,) = await runs_of(client, rule["id"])
        if run["status"] != "queued":
            break
        await runner.resume_run(app.state.sessionmaker, settings, RecordingWaker(), uuid.UUID(run["id"]))
    (run,) = await runs_of(client, rule["id"])
    assert run["status"] == "succeeded", run
    assert run["attempts"] == len(delays) + 1


async def test_a_delivery_whose_last_attempt_never_finished_is_failed_not_sent_again(
    app: FastAPI, tenant: Tenant, settings: Settings
) -> None:
    async with unit_of_work(app.state.sessionmaker) as session:
        delivery_id = await webhook_service.add_delivery(
            session,
            tenant.workspace_id,
            source_key=f"test:{uuid.uuid4()}",
            url="https://93.184.215.14/never",
            secret="whsec_" + "A" * 32,
            event_type="element.created",
            body={"a": 1},
        )
        assert delivery_id is not None
        # Every attempt claimed, none logged: the worker died mid-send each time; the last lease has expired.
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(attempts=settings.WEBHOOK_MAX_ATTEMPTS, next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as http:
        await runner.deliver(app.state.sessionmaker, settings, http, RecordingWaker(), delivery_id)
    assert sent == []
    async with app.state.sessionmaker() as session:
        delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id))
        attempts = list(await session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)))
    assert delivery is not None
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.failed, settings.WEBHOOK_MAX_ATTEMPTS)
    assert delivery.last_error is not None
    assert delivery.last_error.startswith("gave up after"), delivery.last_error
    assert [a.attempt for a in attempts] == [settings.WEBHOOK_MAX_ATTEMPTS]
