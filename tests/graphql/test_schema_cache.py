"""The typed-schema cache: one tenant's rebuild never blocks another, and it holds a bounded number of workspaces."""

import asyncio
import threading
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest

from app.api.graphql.context import Context
from app.api.graphql.schema import SchemaCache, StageflowSchema
from app.auth import service as auth_service
from app.settings import Settings
from tests.conftest import Tenant, make_client, make_tenant
from tests.factories import create_type
from tests.graphql.conftest import http_client

QUERY = "{ entityTypes { code } }"


async def _graphql(app: FastAPI, key: str, query: str = QUERY) -> dict[str, Any]:
    async with http_client(app, key) as session:
        result: dict[str, Any] = await session.execute(GraphQLRequest(query))
    return result


class SlowBuild:
    """Stalls the build of one workspace's schema until released, counting builds per workspace."""

    def __init__(self, cache: SchemaCache, slow: uuid.UUID) -> None:
        self.original = cache._build
        self.slow = slow
        self.started = threading.Event()
        self.release = threading.Event()
        self.builds: dict[uuid.UUID, int] = {}

    def __call__(self, workspace_id: uuid.UUID, metas: list[Any]) -> StageflowSchema:
        self.builds[workspace_id] = self.builds.get(workspace_id, 0) + 1
        if workspace_id == self.slow:
            self.started.set()
            assert self.release.wait(timeout=30), "never released"
        return self.original(workspace_id, metas)


async def test_a_slow_rebuild_of_one_workspace_does_not_block_another(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = await make_tenant(app, "other")
    async with make_client(app, other.admin_key) as other_client:
        await create_type(other_client, "ticket")
    await create_type(client, "lead")  # both workspaces' schemas are now to be (re)built
    cache: SchemaCache = app.state.graphql_schemas
    slow = SlowBuild(cache, tenant.workspace_id)
    monkeypatch.setattr(cache, "_build", slow)

    stalled = [asyncio.create_task(_graphql(app, tenant.admin_key)) for _ in range(3)]
    try:
        assert await asyncio.to_thread(slow.started.wait, 10)
        # the other tenant needs a build of its own while the first one's hangs: it is answered at once
        answer = await asyncio.wait_for(_graphql(app, other.admin_key), timeout=10)
        assert answer == {"entityTypes": [{"code": "ticket"}]}
        assert not any(task.done() for task in stalled)
    finally:
        slow.release.set()
    answers = await asyncio.wait_for(asyncio.gather(*stalled), timeout=30)
    assert answers == [{"entityTypes": [{"code": "lead"}]}] * 3
    # the three requests of the slow workspace waited for one build instead of making three
    assert slow.builds == {tenant.workspace_id: 1, other.workspace_id: 1}


async def test_a_changed_type_rebuilds_its_workspace_only(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = await make_tenant(app, "other")
    await _graphql(app, tenant.admin_key)
    await _graphql(app, other.admin_key)
    cache: SchemaCache = app.state.graphql_schemas
    counting = SlowBuild(cache, uuid.uuid4())
    monkeypatch.setattr(cache, "_build", counting)
    await create_type(client, "lead")
    data = await _graphql(app, tenant.admin_key, "{ leads { totalCount } }")
    assert data == {"leads": {"totalCount": 0}}
    await _graphql(app, other.admin_key)
    await _graphql(app, tenant.admin_key)
    assert counting.builds == {tenant.workspace_id: 1}


async def _actor(app: FastAPI, key: str) -> Any:
    async with app.state.sessionmaker() as session:
        return await auth_service.authenticate(session, f"Bearer {key}", touch_seconds=10**9)


async def test_the_cache_is_bounded_and_drops_the_least_recently_used(app: FastAPI, settings: Settings) -> None:
    cache = SchemaCache(settings.model_copy(update={"GRAPHQL_SCHEMA_CACHE_SIZE": 2}))
    assert SchemaCache(settings).size == 256
    tenants = [await make_tenant(app, f"t{i}") for i in range(3)]
    contexts = [
        Context(
            settings=settings,
            sessionmaker=app.state.sessionmaker,
            redis=None,
            schemas=cache,
            actor=await _actor(app, t.admin_key),
        )
        for t in tenants
    ]
    first = await cache.for_context(contexts[0])
    await cache.for_context(contexts[1])
    assert await cache.for_context(contexts[0]) is first  # a hit, and now the most recently used
    await cache.for_context(contexts[2])  # drops tenant 1, the least recently used
    assert len(cache) == 2
    assert await cache.for_context(contexts[0]) is first
    assert set(cache._schemas) == {tenants[0].workspace_id, tenants[2].workspace_id}
    assert not cache._locks  # no lock is kept for an idle workspace
