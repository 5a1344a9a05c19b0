"""A full connection pool and a query past the API's statement timeout answer 503 problem+json with Retry-After
(REST) or an error entry (GraphQL), not a hang or a 500; the statement timeout is the API's alone. The session's app
gets a tiny pool or a short timeout in place of its own for a test (on the same test database)."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import make_engine, make_sessionmaker, no_statement_timeout, open_read_pool
from app.settings import Settings
from tests.conftest import Tenant
from tests.factories import created


def problem_503(response: httpx.Response, slug: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["type"] == f"https://stageflow.dev/problems/{slug}"


@pytest.fixture
async def swap_engine(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """Put an API engine made with other settings in the app's place for the test."""
    engines: list[AsyncEngine] = []

    def swap(settings: Settings) -> AsyncEngine:
        engine = make_engine(settings, serving=True)
        engines.append(engine)
        monkeypatch.setattr(app.state, "engine", engine)
        monkeypatch.setattr(app.state, "sessionmaker", make_sessionmaker(engine))
        return engine

    yield swap
    for engine in engines:
        await engine.dispose()


async def test_a_full_pool_answers_503_at_once_and_serves_again_when_a_connection_is_free(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient, swap_engine: Any
) -> None:
    tiny = settings.model_copy(update={"DB_POOL_SIZE": 1, "DB_MAX_OVERFLOW": 0, "DB_POOL_TIMEOUT_SECONDS": 0.2})
    engine = swap_engine(tiny)
    async with engine.connect() as held:  # the pool's one connection, taken
        await held.execute(text("SELECT 1"))
        problem_503(await client.get("/entity-types"), "database-busy")
        problem_503(await client.post("/entity-types", json={"code": "busy", "title": "Busy"}), "database-busy")
        graphql = await client.post("http://testserver/graphql", json={"query": "{ entityTypes { code } }"})
        problem_503(graphql, "database-busy")  # GraphQL authenticates on a connection first
    assert (await client.get("/entity-types")).status_code == 200
    assert (await client.post("/entity-types", json={"code": "busy", "title": "Busy"})).status_code == 201


async def test_a_full_read_pool_answers_503(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    created(await client.post("/entity-types", json={"code": "lead", "title": "Lead"}))
    tiny = settings.model_copy(update={"DB_READ_POOL_SIZE": 1, "DB_POOL_TIMEOUT_SECONDS": 0.2})
    pool = await open_read_pool(tiny)
    monkeypatch.setattr(app.state, "read_pool", pool)
    monkeypatch.setattr(app.state, "settings", tiny)
    try:
        async with pool.acquire():
            problem_503(await client.get("/entity-types/lead/elements"), "database-busy")
        assert (await client.get("/entity-types/lead/elements")).status_code == 200
    finally:
        await pool.close()


@pytest.fixture
async def locked_type(settings: Settings, client: httpx.AsyncClient) -> AsyncIterator[str]:
    """A type whose row another connection holds locked for the test."""
    code = f"t{uuid.uuid4().hex[:8]}"
    type_id = created(await client.post("/entity-types", json={"code": code, "title": "Locked"}))["id"]
    blocker = await asyncpg.connect(settings.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute("SELECT 1 FROM entity_types WHERE id = $1 FOR UPDATE", uuid.UUID(type_id))
    try:
        yield code
    finally:
        await transaction.rollback()
        await blocker.close()


async def test_a_query_past_the_statement_timeout_answers_503_in_rest_and_an_error_in_graphql(
    settings: Settings, client: httpx.AsyncClient, swap_engine: Any, locked_type: str
) -> None:
    swap_engine(settings.model_copy(update={"API_STATEMENT_TIMEOUT_MS": 200}))
    # The update waits on the lock until PostgreSQL cancels it.
    problem_503(await client.patch(f"/entity-types/{locked_type}", json={"title": "Renamed"}), "query-timeout")
    mutation = (
        f'mutation {{ updateEntityType(type: "{locked_type}", input: {{title: "Renamed"}}) '
        "{ __typename ... on EntityType { code } } }"
    )
    answer = await client.post("http://testserver/graphql", json={"query": mutation})
    assert answer.status_code == 200
    body = answer.json()
    assert body["data"] is None or body["data"]["updateEntityType"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "query-timeout"
    assert error["extensions"]["status"] == 503
    assert error["extensions"]["retry_after"] >= 1
    assert "UPDATE" not in error["message"]  # never the driver's text
    # Other requests go on, on the connections the cancelled ones gave back.
    assert (await client.get(f"/entity-types/{locked_type}")).status_code == 200


async def test_the_statement_timeout_is_the_apis_alone(app: FastAPI, settings: Settings) -> None:
    async with app.state.engine.connect() as connection:
        assert await connection.scalar(text("SHOW statement_timeout")) == "15s"
    async with app.state.read_pool.acquire() as connection:
        assert await connection.fetchval("SHOW statement_timeout") == "15s"
    worker = make_engine(settings)  # the worker's, the CLI's: long jobs are theirs to bound
    try:
        async with worker.connect() as connection:
            assert await connection.scalar(text("SHOW statement_timeout")) == "0"
    finally:
        await worker.dispose()


async def test_a_long_job_of_the_api_process_lifts_the_timeout_and_puts_it_back(settings: Settings) -> None:
    engine = make_engine(settings.model_copy(update={"API_STATEMENT_TIMEOUT_MS": 100, "DB_POOL_SIZE": 1}), serving=True)
    try:
        async with engine.connect() as connection:
            async with no_statement_timeout(connection):
                await connection.execute(text("SELECT pg_sleep(0.3)"))  # past 100 ms, not cancelled
            assert await connection.scalar(text("SHOW statement_timeout")) == "100ms"
            await connection.rollback()
        async with engine.connect() as connection:  # the same pooled connection, its timeout back
            assert await connection.scalar(text("SHOW statement_timeout")) == "100ms"
    finally:
        await engine.dispose()


async def test_requests_wait_no_longer_than_the_pool_timeout_together(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient, swap_engine: Any, tenant: Tenant
) -> None:
    """Many requests against a held pool all get their 503 (none hangs), and nothing is left checked out."""
    engine = swap_engine(
        settings.model_copy(update={"DB_POOL_SIZE": 1, "DB_MAX_OVERFLOW": 0, "DB_POOL_TIMEOUT_SECONDS": 0.2})
    )
    async with engine.connect() as held:
        await held.execute(text("SELECT 1"))
        answers = await asyncio.gather(*(client.get("/entity-types") for _ in range(10)))
        assert {a.status_code for a in answers} == {503}
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
