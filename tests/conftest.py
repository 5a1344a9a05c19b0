"""Tests run against a real PostgreSQL (a fresh database per session, built by `alembic upgrade head`) and a real
Redis. With no TEST_DATABASE_URL / DATABASE_URL (or REDIS_URL) set, the embedded servers of `stageflow dev` are used.

Each test gets its own workspace: tenants never see each other, so tests need no cleanup and the app commits for real.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from app.cli import run_migrations
from app.db import unit_of_work
from app.main import create_app
from app.settings import Settings
from app.workspaces import service as workspace_service

EMBEDDED_DIR = Path(".stageflow/test")


@pytest.fixture(scope="session")
def embedded() -> Iterator[dict[str, str]]:
    """URLs of the services to test against, starting embedded ones only where none is configured."""
    database_url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    stop: Callable[[], None] | None = None
    if not database_url or not redis_url:
        from app.embedded import start_embedded

        services, stop = start_embedded(EMBEDDED_DIR, need_database=not database_url, need_redis=not redis_url)
        database_url = database_url or services.database_url
        redis_url = redis_url or services.redis_url
    yield {"database": database_url, "redis": redis_url}
    if stop is not None:
        stop()


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _with_database(url: str, name: str) -> str:
    base, _, query = _plain(url).partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def database_url(embedded: dict[str, str]) -> Iterator[str]:
    """A fresh database for this test session, migrated to head."""
    name = f"stageflow_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin_url = _with_database(embedded["database"], "postgres")

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(admin_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _with_database(embedded["database"], name)
    run_migrations(Settings(DATABASE_URL=url).database_url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def settings(database_url: str, embedded: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        DATABASE_URL=database_url,
        FILES_DIR=str(tmp_path_factory.mktemp("files")),  # uploads of the session, gone with its temporary files
        REDIS_URL=embedded["redis"],
        ENVIRONMENT="test",
        DB_POOL_SIZE=10,
        OUTBOX_DISPATCHER_ENABLED=False,
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",  # the tests' webhook receivers listen on loopback
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@dataclass
class Tenant:
    workspace_id: uuid.UUID
    admin_key: str


async def make_tenant(app: FastAPI, name: str = "test") -> Tenant:
    async with unit_of_work(app.state.sessionmaker) as session:
        workspace, key = await workspace_service.create_workspace(session, name=name)
    return Tenant(workspace.id, key)


@pytest.fixture
async def tenant(app: FastAPI) -> Tenant:
    return await make_tenant(app)


def make_client(app: FastAPI, key: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver/api/v1", headers=headers
    )


@pytest.fixture
async def client(app: FastAPI, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app, tenant.admin_key) as http:
        yield http


@pytest.fixture
async def other_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of another workspace, for tenant isolation checks."""
    other = await make_tenant(app, "other")
    async with make_client(app, other.admin_key) as http:
        yield http


@pytest.fixture
async def viewer_client(app: FastAPI, client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    response = await client.post("/api-keys", json={"name": "viewer", "role": "viewer"})
    assert response.status_code == 201
    async with make_client(app, response.json()["api_key"]) as http:
        yield http


class QueryCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_queries(app: FastAPI) -> Iterator[Callable[[], QueryCounter]]:
    """Start counting the SQL statements the app sends: `counter = count_queries()`."""
    engine = app.state.engine.sync_engine
    counters: list[QueryCounter] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        for counter in counters:
            counter.statements.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)

    def start() -> QueryCounter:
        counter = QueryCounter()
        counters.append(counter)
        return counter

    yield start
    event.remove(engine, "before_cursor_execute", on_execute)
