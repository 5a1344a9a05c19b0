"""Alerts: a threshold on a stage's conversion fires once, notifies, calls a signed webhook through the engine's
deliveries (a local receiver checks the signature), and resolves; an anomaly fires on a spike, not on noise."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.analytics import alerts
from app.automation import runner
from app.db import unit_of_work
from app.kit.signing import verify
from app.outbox.models import OutboxEvent
from app.settings import Settings
from app.tasks.models import Notification
from tests.analytics.conftest import Deal, Deals, Move, seed
from tests.automation.harness import hook_server

# The checks happen "at" 09:00 two days from now: every check of a test falls on one date whatever the clock says,
# and after the alerts' creation (their first check is due at once).
NOW = datetime.combine(datetime.now(UTC).date() + timedelta(days=2), time(9), UTC)


def deal(deals: Deals, days_ago: float, path: list[str], *, step_hours: float = 2) -> Deal:
    """A deal created `days_ago` days before NOW that walks `path` (after NEW), a step every few hours."""
    created = NOW - timedelta(days=days_ago)
    one = Deal(uuid.uuid4(), created, deals.users[0], 100.0, 50, "web", "ads", [Move(created, None, "NEW")])
    previous = "NEW"
    for n, code in enumerate(path, start=1):
        one.moves.append(Move(created + timedelta(hours=step_hours * n), previous, code))
        previous = code
    return one


class RecordingWaker:
    def __init__(self) -> None:
        self.deliveries: list[uuid.UUID] = []

    async def run(self, run_id: uuid.UUID, attempt: int) -> None: ...
    async def resume(self, run_id: uuid.UUID, at: datetime) -> None: ...
    async def timer(self, timer_id: uuid.UUID, at: datetime) -> None: ...
    async def deliver(self, delivery_id: uuid.UUID, at: datetime | None = None) -> None:
        self.deliveries.append(delivery_id)

    async def deliver_many(self, delivery_ids: list[uuid.UUID]) -> None:
        self.deliveries += delivery_ids

    async def deliver_due(self, delivery_id: uuid.UUID, due: datetime) -> None: ...
    async def events(self, event_ids: list[uuid.UUID]) -> None: ...


async def check(deals: Deals, alert_id: str, now: datetime = NOW) -> dict[str, Any]:
    """What the worker's cron does for a due alert, at `now`."""
    async with unit_of_work(deals.app.state.sessionmaker) as session:
        assert await alerts.check_due(session, now=now) >= 0
    response = await deals.client.get(f"/alerts/{alert_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def events_of(deals: Deals, alert_id: str) -> list[dict[str, Any]]:
    response = await deals.client.get(f"/alerts/{alert_id}/events")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def deliver(deals: Deals, settings: Settings, event_id: str) -> None:
    """The outbox event through the engine (deliveries for its subscriptions) and each delivery sent for real."""
    waker = RecordingWaker()
    await runner.process_events(deals.app.state.sessionmaker, settings, waker, [uuid.UUID(event_id)])
    assert waker.deliveries
    async with httpx.AsyncClient() as http:
        await runner.deliver_many(deals.app.state.sessionmaker, settings, http, waker, waker.deliveries)


async def test_a_conversion_below_its_threshold_fires_once_notifies_calls_a_webhook_and_resolves(
    deals: Deals, settings: Settings
) -> None:
    # Last week: 10 deals reached QUALIFIED, 2 of them went on to PROPOSAL (conversion 0.2).
    await seed(
        deals,
        [deal(deals, 3, ["QUALIFIED", "PROPOSAL"]) for _ in range(2)]
        + [deal(deals, 4, ["QUALIFIED"]) for _ in range(8)],
    )
    # The message carries the pipeline's metrics: a viewer (reads everything) hears of it, a person whose role reads
    # only their own deals does not, though listed.
    viewer = next(r for r in (await deals.client.get("/roles")).json()["items"] if r["name"] == "viewer")
    own = await deals.client.post(
        "/roles", json={"name": "own deals", "grants": [{"entity_type": "deal", "read": "own"}]}
    )
    assert own.status_code == 201, own.text
    for user, role in ((deals.users[1], viewer["id"]), (deals.users[2], own.json()["id"])):
        assert (await deals.client.put(f"/users/{user}/roles", json={"role_ids": [role]})).status_code == 200
    with hook_server() as receiver:
        subscription = (
            await deals.client.post(
                "/webhooks", json={"url": receiver.url(), "events": ["alert.fired", "alert.resolved"]}
            )
        ).json()
        response = await deals.client.post(
            "/alerts",
            json={
                "name": "Qualified leads stall",
                "entity_type": "deal",
                "pipeline_id": deals.pipeline_id,
                "stage_id": deals.stages["QUALIFIED"],
                "metric": "conversion_to_next",
                "condition": {"kind": "threshold", "op": "lt", "value": 0.4},
                "window_days": 7,
                "min_volume": 5,
                "check_every_minutes": 60,
                "notify_user_ids": [deals.users[1], deals.users[2]],
            },
        )
        assert response.status_code == 201, response.text
        alert = response.json()

        fired = await check(deals, alert["id"])
        assert fired["state"] == "firing"
        assert fired["last_value"] == pytest.approx(0.2)
        [event] = await events_of(deals, alert["id"])
        assert event["kind"] == "fired"
        assert event["value"] == pytest.approx(0.2)
        assert event["low"] == 0.4
        assert event["notified"] == 1

        # Still below: checked again (an hour later, and by hand) it stays firing and says nothing more.
        await check(deals, alert["id"], NOW + timedelta(hours=1, minutes=1))
        manual = await deals.client.post(f"/alerts/{alert['id']}/check")
        assert manual.status_code == 200, manual.text
        assert manual.json()["breached"] is True
        assert manual.json()["event"] is None
        assert len(await events_of(deals, alert["id"])) == 1

        async with deals.app.state.sessionmaker() as session:
            notes = list(
                await session.scalars(select(Notification).where(Notification.user_id == uuid.UUID(deals.users[1])))
            )
        assert len(notes) == 1
        assert "Qualified leads stall" in notes[0].message
        async with deals.app.state.sessionmaker() as session:
            narrowed = await session.scalar(
                select(func.count()).select_from(Notification).where(Notification.user_id == uuid.UUID(deals.users[2]))
            )
        assert narrowed == 0
        assert "fired" in notes[0].message

        await deliver(deals, settings, event["event_id"])
        [hit] = receiver.received
        body = json.loads(hit.body)
        assert body["type"] == "alert.fired"
        assert body["data"]["alert_id"] == alert["id"]
        assert body["data"]["value"] == pytest.approx(0.2)
        assert verify(
            subscription["secret"],
            hit.headers["webhook-id"],
            int(hit.headers["webhook-timestamp"]),
            hit.body,
            hit.headers["webhook-signature"],
        )
        assert not verify("whsec_" + "A" * 32, hit.headers["webhook-id"], 0, hit.body, hit.headers["webhook-signature"])

        # Five more deals go all the way to PROPOSAL: 7 of 15 (0.47), back in band.
        await seed(deals, [deal(deals, 2, ["QUALIFIED", "PROPOSAL"]) for _ in range(5)])
        resolved = await check(deals, alert["id"], NOW + timedelta(hours=3))
        assert resolved["state"] == "ok"
        history = await events_of(deals, alert["id"])
        assert [e["kind"] for e in history] == ["resolved", "fired"]
        assert history[0]["value"] == pytest.approx(7 / 15)
        await deliver(deals, settings, history[0]["event_id"])
        assert json.loads(receiver.received[-1].body)["type"] == "alert.resolved"


async def test_an_anomaly_fires_on_a_spike_and_not_on_noise(deals: Deals) -> None:
    rng = random.Random(5)
    # A month of 18–22 new deals a day (the day of NOW included, for the day after).
    noise = [deal(deals, day + rng.random() * 0.3, []) for day in range(31) for _ in range(rng.randint(18, 22))]
    await seed(deals, noise)
    body = {
        "name": "New deals out of the ordinary",
        "entity_type": "deal",
        "pipeline_id": deals.pipeline_id,
        "metric": "created",
        "condition": {"kind": "anomaly", "k": 3, "periods": 14},
        "window_days": 1,
    }
    alert = (await deals.client.post("/alerts", json=body)).json()
    calm = await check(deals, alert["id"])
    assert calm["state"] == "ok"
    assert await events_of(deals, alert["id"]) == []

    # The day before NOW gets 60 more.
    await seed(deals, [deal(deals, 1 + rng.random() * 0.3, []) for _ in range(60)])
    spiked = await check(deals, alert["id"], NOW + timedelta(hours=1, minutes=1))
    assert spiked["state"] == "firing"
    [event] = await events_of(deals, alert["id"])
    assert event["value"] >= 78
    assert event["low"] < 20 < event["high"] < 30

    # The next day the window moves past the spike: back in band, resolved.
    calm_again = await check(deals, alert["id"], NOW + timedelta(days=1, hours=2))
    assert calm_again["state"] == "ok"
    assert [e["kind"] for e in await events_of(deals, alert["id"])] == ["resolved", "fired"]


class TestRules:
    async def test_a_stage_metric_needs_its_stage_and_bad_input_is_listed(self, deals: Deals) -> None:
        response = await deals.client.post(
            "/alerts",
            json={
                "name": "x",
                "entity_type": "deal",
                "metric": "conversion_to_next",
                "condition": {"kind": "threshold", "op": "lt", "value": 0.1},
                "pipeline_id": deals.pipeline_id,
            },
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "stage_id"
        response = await deals.client.post(
            "/alerts",
            json={
                "name": "",
                "entity_type": "deal",
                "metric": "nope",
                "condition": {"kind": "anomaly", "k": 100},
                "notify_user_ids": [str(uuid.uuid4())],
            },
        )
        assert response.status_code == 422
        fields = {e["field"] for e in response.json()["errors"]}
        assert {"name", "metric"} <= fields
        response = await deals.client.post(
            "/alerts",
            json={
                "name": "People",
                "entity_type": "deal",
                "metric": "won_count",
                "condition": {"kind": "threshold", "op": "lt", "value": 1},
                "notify_user_ids": [str(uuid.uuid4())],
            },
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "notify_user_ids"

    async def test_update_list_and_delete(self, deals: Deals) -> None:
        body = {
            "name": "Wins",
            "entity_type": "deal",
            "metric": "won_count",
            "condition": {"kind": "threshold", "op": "lt", "value": 1},
        }
        alert = (await deals.client.post("/alerts", json=body)).json()
        assert alert["pipeline_id"]  # the default pipeline
        changed = await deals.client.patch(f"/alerts/{alert['id']}", json={"name": "Wins!", "enabled": False})
        assert changed.status_code == 200
        assert changed.json()["name"] == "Wins!"
        assert changed.json()["enabled"] is False
        listed = (await deals.client.get("/alerts", params={"entity_type": "deal"})).json()["items"]
        assert [a["id"] for a in listed] == [alert["id"]]
        assert (await deals.client.delete(f"/alerts/{alert['id']}")).status_code == 204
        assert (await deals.client.get(f"/alerts/{alert['id']}")).status_code == 404


async def test_automation_metrics_count_runs_and_the_moves_rules_made(deals: Deals, settings: Settings) -> None:
    rule = (
        await deals.client.post(
            "/automation/rules",
            json={
                "name": "Qualify at once",
                "entity_type": "deal",
                "pipeline_id": deals.pipeline_id,
                "trigger": {"type": "element.created"},
                "actions": [{"type": "move_to_stage", "params": {"stage_code": "QUALIFIED"}}],
            },
        )
    ).json()
    element = (
        await deals.client.post("/entity-types/deal/elements", json={"title": "A", "pipeline_id": deals.pipeline_id})
    ).json()
    async with deals.app.state.sessionmaker() as session:
        event_id = await session.scalar(
            select(OutboxEvent.event_id).where(
                OutboxEvent.element_id == uuid.UUID(element["id"]), OutboxEvent.event_type == "element.created"
            )
        )
    await runner.process_events(deals.app.state.sessionmaker, settings, RecordingWaker(), [event_id])
    moved_back = await deals.client.post(f"/elements/{element['id']}/move", json={"stage_code": "NEW"})
    assert moved_back.json()["stage_code"] == "NEW"  # the rule had moved it on; a person moves it back
    report = (
        await deals.client.get(
            "/analytics/automation", params={"entity_type": "deal", "pipeline_id": deals.pipeline_id}
        )
    ).json()
    assert report["runs"] == 1
    assert report["succeeded"] == 1
    assert report["failure_rate"] == 0
    assert report["p95_latency_ms"] is not None
    assert [r["rule_id"] for r in report["rules"]] == [rule["id"]]
    assert report["moves"] == 2
    assert report["moves_by_rules"] == 1
    assert report["rules_share"] == 0.5
