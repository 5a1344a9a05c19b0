"""event.bind/unbind/get, and the bound handlers called as Bitrix24 calls them (form-encoded), through the automation
engine's durable deliveries: a handler that fails is tried again."""

import uuid
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.automation import engine
from app.db import unit_of_work
from app.outbox.models import OutboxEvent
from app.settings import Settings
from app.webhooks import service as webhook_service
from app.webhooks.models import DeliveryStatus, WebhookDelivery
from tests.automation.harness import HookServer, hook_server
from tests.bitrix.conftest import webhook
from tests.conftest import make_tenant

pytestmark = pytest.mark.slow


async def call(server: str, key: str, method: str, params: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(webhook(server, key) + method, json=params)


async def deliver(app: FastAPI, settings: Settings, workspace_id: uuid.UUID, seen: set[uuid.UUID]) -> list[bool]:
    """Hand the workspace's new events to the engine and send the deliveries they queue, once each: whether each
    attempt landed (a failed one is left pending, due again at once)."""
    async with unit_of_work(app.state.sessionmaker) as session:
        events = [
            e
            for e in await session.scalars(
                select(OutboxEvent.event_id)
                .where(OutboxEvent.workspace_id == workspace_id)
                .order_by(OutboxEvent.created_at)
            )
            if e not in seen
        ]
        seen.update(events)
        queued = (await engine.handle_events(session, settings, events)).deliveries if events else []
    return await send_due(app, settings, queued)


async def send_due(app: FastAPI, settings: Settings, delivery_ids: list[uuid.UUID]) -> list[bool]:
    outcomes = []
    async with httpx.AsyncClient() as http:
        async with unit_of_work(app.state.sessionmaker) as session:
            claimed = await webhook_service.claim_deliveries(
                session, delivery_ids, lease_seconds=30, max_attempts=settings.WEBHOOK_MAX_ATTEMPTS
            )
        for one in claimed:
            outcome = await webhook_service.send_claimed(http, settings, one)
            async with unit_of_work(app.state.sessionmaker) as session:
                await webhook_service.record_outcome(session, settings, one, outcome)
            outcomes.append(outcome.ok)
    return outcomes


def form(received: HookServer, index: int) -> dict[str, str]:
    message = received.received[index]
    assert message.headers["content-type"] == "application/x-www-form-urlencoded"
    return {k: v[0] for k, v in parse_qs(message.body.decode(), keep_blank_values=True).items()}


async def test_bound_handlers_get_bitrix24_events(server: str, app: FastAPI, settings: Settings) -> None:
    tenant = await make_tenant(app, "bitrix-events")
    key = tenant.admin_key
    quick = settings.model_copy(update={"WEBHOOK_BACKOFF_SECONDS": 0.001})
    etid = (await call(server, key, "crm.type.add", {"fields": {"title": "Orders"}})).json()["result"]["type"][
        "entityTypeId"
    ]
    with hook_server() as receiver:
        for event in ("onCrmDynamicItemAdd", "ONCRMDYNAMICITEMUPDATE", "onCrmDynamicItemDelete"):
            bound = await call(server, key, "event.bind", {"event": event, "handler": receiver.url("/b24")})
            assert bound.json()["result"] is True, bound.text
        again = await call(server, key, "event.bind", {"event": "onCrmDynamicItemAdd", "handler": receiver.url("/b24")})
        assert again.status_code == 400
        private = await call(server, key, "event.bind", {"event": "onCrmDynamicItemAdd", "handler": "http://10.0.0.1/"})
        assert private.status_code == 400  # the webhooks' own URL checks
        unknown = await call(server, key, "event.bind", {"event": "onCrmDealAdd", "handler": receiver.url()})
        assert unknown.status_code == 400
        listed = (await call(server, key, "event.get", {})).json()["result"]
        assert sorted(b["event"] for b in listed) == [
            "ONCRMDYNAMICITEMADD",
            "ONCRMDYNAMICITEMDELETE",
            "ONCRMDYNAMICITEMUPDATE",
        ]
        assert {b["handler"] for b in listed} == {receiver.url("/b24")}

        seen: set[uuid.UUID] = set()
        await deliver(app, quick, tenant.workspace_id, seen)  # the type's own events: nobody is bound to them
        item = (await call(server, key, "crm.item.add", {"entityTypeId": etid, "fields": {"title": "A"}})).json()
        number = item["result"]["item"]["id"]
        receiver.status = 500
        assert await deliver(app, quick, tenant.workspace_id, seen) == [False]
        receiver.status = 200
        async with unit_of_work(app.state.sessionmaker) as session:
            pending = list(
                await session.scalars(
                    select(WebhookDelivery.id).where(
                        WebhookDelivery.workspace_id == tenant.workspace_id,
                        WebhookDelivery.status == DeliveryStatus.pending,
                    )
                )
            )
        assert await send_due(app, quick, pending) == [True]  # the same message, tried again
        assert len(receiver.received) == 2
        assert receiver.received[0].body == receiver.received[1].body
        added = form(receiver, 1)
        assert added["event"] == "ONCRMDYNAMICITEMADD"
        assert added["data[FIELDS][ID]"] == str(number)
        assert added["data[FIELDS][ENTITY_TYPE_ID]"] == str(etid)
        assert int(added["ts"]) > 0
        assert added["auth[application_token]"]
        assert receiver.received[1].headers["webhook-signature"].startswith("v1,")

        update = {"entityTypeId": etid, "id": number, "fields": {"title": "B", "stageId": "IN_PROGRESS"}}
        assert (await call(server, key, "crm.item.update", update)).status_code == 200
        assert await deliver(app, quick, tenant.workspace_id, seen) == [True, True]  # updated, then moved
        assert {form(receiver, i)["event"] for i in (2, 3)} == {"ONCRMDYNAMICITEMUPDATE"}
        assert (await call(server, key, "crm.item.delete", {"entityTypeId": etid, "id": number})).status_code == 200
        assert await deliver(app, quick, tenant.workspace_id, seen) == [True]
        deleted = form(receiver, 4)
        assert deleted["event"] == "ONCRMDYNAMICITEMDELETE"
        assert deleted["data[FIELDS][ID]"] == str(number)

        unbound = await call(
            server, key, "event.unbind", {"event": "onCrmDynamicItemAdd", "handler": receiver.url("/b24")}
        )
        assert unbound.json()["result"] == {"count": 1}
        assert len((await call(server, key, "event.get", {})).json()["result"]) == 2
        await call(server, key, "crm.item.add", {"entityTypeId": etid, "fields": {"title": "C"}})
        assert await deliver(app, quick, tenant.workspace_id, seen) == []
