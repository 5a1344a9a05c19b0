"""Subscriptions over WebSocket (graphql-transport-ws) against a real uvicorn server whose lifespan runs the outbox
dispatcher: a move made over HTTP reaches a subscription opened beforehand through the outbox and Redis pub/sub."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

from app.kit.net import free_port
from app.main import create_app
from app.settings import Settings
from tests.conftest import Tenant, make_tenant

pytestmark = pytest.mark.slow

SUBSCRIBE = """
subscription($type: String, $pipeline: UUID) {
  elementEvents(type: $type, pipelineId: $pipeline) {
    eventType elementId entityType payload element { stageCode version values }
  }
}
"""


@pytest.fixture(scope="module")
async def server(settings: Settings) -> AsyncIterator[str]:
    """A real API process (in this event loop) with the in-process outbox dispatcher on."""
    application = create_app(settings.model_copy(update={"OUTBOX_DISPATCHER_ENABLED": True}))
    port = free_port()
    config = uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    instance = uvicorn.Server(config)
    task = asyncio.create_task(instance.serve())
    for _ in range(200):
        if instance.started:
            break
        await asyncio.sleep(0.05)
    assert instance.started
    yield f"127.0.0.1:{port}"
    instance.should_exit = True
    await asyncio.wait_for(task, timeout=10)


@pytest.fixture
async def ws_tenant(app: FastAPI) -> Tenant:
    return await make_tenant(app, "live")


def _http(server: str, key: str) -> Client:
    return Client(
        transport=HTTPXAsyncTransport(url=f"http://{server}/graphql", headers={"Authorization": f"Bearer {key}"})
    )


def _ws(server: str, key: str | None) -> Client:
    transport = WebsocketsTransport(
        url=f"ws://{server}/graphql",
        init_payload={"Authorization": f"Bearer {key}"} if key else {},
        subprotocols=["graphql-transport-ws"],
    )
    return Client(transport=transport)


async def _collect(server: str, key: str, variables: dict[str, Any], until: str, out: list[dict[str, Any]]) -> None:
    async with _ws(server, key) as session:
        async for result in session.subscribe(GraphQLRequest(SUBSCRIBE, variable_values=variables)):
            out.append(result["elementEvents"])
            if result["elementEvents"]["eventType"] == until:
                return


async def test_a_move_reaches_a_subscription_opened_before(server: str, ws_tenant: Tenant) -> None:
    async with _http(server, ws_tenant.admin_key) as http:
        defined = await http.execute(
            GraphQLRequest(
                """mutation {
                  createEntityType(input: {code: "dishwasher", title: "Dishwasher"}) {
                    ... on EntityType { pipelines { id } }
                  }
                  createField(type: "dishwasher", input: {code: "model", type: "string"}) { __typename }
                  other: createEntityType(input: {code: "lead", title: "Lead"}) { __typename }
                }"""
            )
        )
        pipeline_id = defined["createEntityType"]["pipelines"][0]["id"]
        everything: list[dict[str, Any]] = []
        by_pipeline: list[dict[str, Any]] = []
        listeners = [
            asyncio.create_task(
                _collect(server, ws_tenant.admin_key, {"type": "dishwasher"}, "element.moved", everything)
            ),
            asyncio.create_task(
                _collect(server, ws_tenant.admin_key, {"pipeline": pipeline_id}, "element.moved", by_pipeline)
            ),
        ]
        await asyncio.sleep(0.5)  # the subscriptions are open once Redis has them
        await http.execute(GraphQLRequest('mutation { createLead(input: {title: "noise"}) { __typename } }'))
        created = await http.execute(
            GraphQLRequest('mutation { createDishwasher(input: {model: "Alpha"}) { ... on Dishwasher { id } } }')
        )
        element_id = created["createDishwasher"]["id"]
        moved = await http.execute(
            GraphQLRequest(
                'mutation($id: UUID!) { moveDishwasher(id: $id, stageCode: "IN_PROGRESS") { __typename } }',
                variable_values={"id": element_id},
            )
        )
        assert moved["moveDishwasher"]["__typename"] == "Dishwasher"
        await asyncio.wait_for(asyncio.gather(*listeners), timeout=15)

    for events in (everything, by_pipeline):
        assert [e["eventType"] for e in events] == ["element.created", "element.moved"]
        assert {e["elementId"] for e in events} == {element_id}
        assert events[1]["payload"]["to_stage_code"] == "IN_PROGRESS"
        assert events[1]["entityType"] == "dishwasher"
        assert events[1]["element"] == {"stageCode": "IN_PROGRESS", "version": 2, "values": {"model": "Alpha"}}


async def test_a_websocket_without_a_key_is_refused(server: str) -> None:
    async def first_event() -> None:
        async with _ws(server, None) as session:
            async for _ in session.subscribe(GraphQLRequest(SUBSCRIBE)):
                break

    with pytest.raises(TransportError) as caught:
        await first_event()
    closed = caught.value.__cause__
    assert getattr(getattr(closed, "rcvd", None), "code", None) == 4403
