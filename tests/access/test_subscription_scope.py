"""A subscription delivers only the events of elements its subscriber may read, without hidden fields (a real uvicorn
server with the outbox dispatcher, as in tests/graphql/test_subscriptions.py)."""

import asyncio
import uuid
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from app.events.bus import channel
from app.settings import Settings
from tests.access.test_element_scopes import key_with_role, make_role
from tests.conftest import make_client, make_tenant
from tests.factories import create_field, create_type, default_pipeline
from tests.graphql.test_subscriptions import _collect, server

pytestmark = pytest.mark.slow
__all__ = ["server"]  # the module-scoped live server fixture


async def subscribed(redis_url: str, workspace_id: uuid.UUID) -> None:
    """Wait until the workspace's event channel has a subscriber (the WebSocket is authenticated and listening)."""
    redis = Redis.from_url(redis_url)
    try:
        for _ in range(200):
            if dict(await redis.pubsub_numsub(channel(workspace_id))).get(channel(workspace_id).encode()):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the subscription never reached Redis")
    finally:
        await redis.aclose()


async def test_events_of_unreadable_elements_and_hidden_fields_never_arrive(
    server: str, app: FastAPI, settings: Settings
) -> None:
    tenant = await make_tenant(app, "live-access")
    async with make_client(app, tenant.admin_key) as admin:
        await create_type(admin, "deal")
        await create_field(admin, "deal", "budget", "decimal")
        await create_field(admin, "deal", "margin", "decimal")
        stages = (await default_pipeline(admin, "deal"))["stages"]
        await make_role(
            app,
            tenant,
            name="own deals",
            grants=[{"entity_type": "deal", "read": "own", "add": "all", "update": "own"}],
            field_rules=[{"entity_type": "deal", "field": "margin", "access": "hidden"}],
        )
        key = await key_with_role(admin, "own deals")
        async with make_client(app, key) as own:
            events: list[dict[str, Any]] = []
            listener = asyncio.create_task(_collect(server, key, {"type": "deal"}, "element.moved", events))
            await subscribed(settings.REDIS_URL, tenant.workspace_id)
            theirs = await admin.post("/entity-types/deal/elements", json={"title": "theirs", "values": {"margin": 3}})
            created = await own.post("/entity-types/deal/elements", json={"title": "mine", "values": {"budget": 1}})
            mine = created.json()
            await admin.patch(f"/elements/{mine['id']}", json={"values": {"margin": 7}})
            moved = await own.post(f"/elements/{mine['id']}/move", json={"stage_id": stages[1]["id"]})
            assert moved.status_code == 200, moved.text
            await asyncio.wait_for(listener, timeout=15)
    assert [e["eventType"] for e in events] == ["element.created", "element.updated", "element.moved"]
    assert {e["elementId"] for e in events} == {mine["id"]}
    assert theirs.json()["id"] not in orjson.dumps(events).decode()
    assert "margin" not in orjson.dumps(events).decode()
    assert events[1]["payload"]["changed"] == []
    assert events[2]["element"]["values"] == {"budget": 1}
