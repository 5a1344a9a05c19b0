"""Issue 11, item 6: stored errors (`run.error`, an import's `error`) never carry the SQL statement or its
parameters (SQLAlchemy's exception strings hold both)."""

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.actor import system_actor
from app.automation import engine, runner
from app.db import unit_of_work
from app.imports import service as import_service
from app.kit.failures import describe_failure
from app.outbox.models import OutboxEvent
from app.settings import Settings
from tests.automation.test_rules_api import rule_body
from tests.conftest import Tenant
from tests.factories import create_element, lead_type

SECRET = "sekret-parameter-42"
# Real statements PostgreSQL refuses, each with the secret as a parameter.
FAILING = {
    "22P02": ("SELECT CAST(CAST(:x AS text) AS integer)", "invalid input syntax for type integer"),
    # Refused by asyncpg before it is sent, with the value in the message.
    "22000": ("SELECT CAST(:x AS integer)", "invalid input for query argument $1"),
    "22012": ("SELECT 1 / 0 WHERE :x <> ''", "division by zero"),
    "22003": ("SELECT CAST(length(:x) * 1000 AS numeric(3, 0))", "numeric field overflow"),
}


def assert_clean(message: str | None) -> None:
    assert message is not None
    assert SECRET not in message
    assert "[parameters" not in message
    assert "[SQL" not in message


async def fail_with(session: AsyncSession, sqlstate: str) -> None:
    statement, _ = FAILING[sqlstate]
    await session.execute(text(statement), {"x": SECRET})


class NoWaker:
    async def run(self, run_id: uuid.UUID, attempt: int) -> None: ...
    async def resume(self, run_id: uuid.UUID, at: datetime) -> None: ...
    async def timer(self, timer_id: uuid.UUID, at: datetime) -> None: ...
    async def deliver(self, delivery_id: uuid.UUID, at: datetime | None = None) -> None: ...
    async def deliver_many(self, delivery_ids: list[uuid.UUID]) -> None: ...
    async def deliver_due(self, delivery_id: uuid.UUID, due: datetime) -> None: ...
    async def events(self, event_ids: list[uuid.UUID]) -> None: ...


@pytest.mark.parametrize("sqlstate", sorted(FAILING))
async def test_a_database_error_is_described_without_sql_or_parameters(app: FastAPI, sqlstate: str) -> None:
    async with app.state.sessionmaker() as session:
        with pytest.raises(DBAPIError) as raised:
            await fail_with(session, sqlstate)
    message = describe_failure(raised.value)
    assert_clean(message)
    assert message.startswith(f"database error {sqlstate}: {FAILING[sqlstate][1]}")
    # The engine leaves parameters out of every exception string (logs included).
    assert "[parameters:" not in str(raised.value)


@pytest.fixture
def failing_action(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule action that runs a statement PostgreSQL refuses (a real database error, mid-run)."""

    async def run_action(session: AsyncSession, *args: Any) -> Any:
        await fail_with(session, "22P02")

    monkeypatch.setattr(engine, "_run_action", run_action)


async def test_a_runs_error_carries_no_sql_parameters(
    app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient, failing_action: None
) -> None:
    await lead_type(client)
    rule = (await client.post("/automation/rules", json=rule_body())).json()
    element = await create_element(client, "lead", title="x")
    async with unit_of_work(app.state.sessionmaker) as session:
        event_id = await session.scalar(
            select(OutboxEvent.event_id).where(
                OutboxEvent.workspace_id == tenant.workspace_id,
                OutboxEvent.event_type == "element.created",
                OutboxEvent.element_id == uuid.UUID(element["id"]),
            )
        )
    assert event_id is not None
    assert await runner.process_event(app.state.sessionmaker, settings, NoWaker(), event_id) == 1
    runs = (await client.get("/automation/runs", params={"rule_id": rule["id"]})).json()["items"]
    assert len(runs) == 1
    assert_clean(runs[0]["error"])
    assert "invalid input syntax for type integer" in runs[0]["error"]


async def test_an_imports_error_carries_no_sql_parameters(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await lead_type(client)

    async def import_batch(session: AsyncSession, *args: Any) -> Any:
        await fail_with(session, "22000")

    monkeypatch.setattr(import_service, "_import_batch", import_batch)
    actor = system_actor(tenant.workspace_id)
    async with unit_of_work(app.state.sessionmaker) as session:
        job = await import_service.create_job(
            session, actor, "lead", filename="x.csv", text="Title\nA\n", mapping={"Title": "title"}
        )
    with pytest.raises(DBAPIError):
        await import_service.run_job(app.state.sessionmaker, actor, job.id)
    stored = (await client.get(f"/entity-types/lead/imports/{job.id}")).json()
    assert stored["status"] == "failed"
    assert_clean(stored["error"])
    assert "database error 22000: invalid input for query argument $1" in stored["error"]
