"""Rows of every kind retention prunes, written straight into PostgreSQL with their times set in the past."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Tenant
from tests.factories import create_type


def ago(days: float = 0, minutes: float = 0) -> datetime:
    return datetime.now(UTC) - timedelta(days=days, minutes=minutes)


class Rows:
    """Inserts into one workspace and reads back what is left of it."""

    def __init__(self, engine: AsyncEngine, workspace_id: uuid.UUID) -> None:
        self.engine = engine
        self.workspace_id = workspace_id
        self.rule_id: uuid.UUID | None = None

    async def execute(self, sql: str, **params: Any) -> Any:
        async with self.engine.begin() as connection:
            result = await connection.execute(text(sql), {"w": self.workspace_id, **params})
            return result.all() if result.returns_rows else []

    async def ids(self, table: str, column: str = "id") -> set[Any]:
        rows = await self.execute(f"SELECT {column} FROM {table} WHERE workspace_id = :w")  # noqa: S608
        return {row[0] for row in rows}

    async def run(self, status: str, *, created: datetime, finished: datetime | None) -> uuid.UUID:
        run_id = uuid.uuid4()
        await self.execute(
            "INSERT INTO automation_runs (id, workspace_id, rule_id, event_id, event_type, status, depth, step, "
            "attempts, context, created_at, finished_at) VALUES (:id, :w, :rule, :event, 'element.created', "
            "CAST(:status AS automation_run_status), 0, 0, 1, '{}', :created, :finished)",
            id=run_id,
            rule=self.rule_id,
            event=uuid.uuid4(),
            status=status,
            created=created,
            finished=finished,
        )
        return run_id

    async def delivery(self, status: str, *, created: datetime, attempts: Sequence[datetime] = ()) -> uuid.UUID:
        delivery_id = uuid.uuid4()
        await self.execute(
            "INSERT INTO webhook_deliveries (id, workspace_id, source_key, message_id, event_type, url, secret, body, "
            "status, attempts, created_at) VALUES (:id, :w, :key, :message, 'element.created', "
            "'https://example.com/hook', 'whsec_x', '{}', CAST(:status AS webhook_delivery_status), :n, :created)",
            id=delivery_id,
            key=f"test:{delivery_id}",
            message=f"msg_{delivery_id.hex}",
            status=status,
            n=len(attempts),
            created=created,
        )
        for number, at in enumerate(attempts, 1):
            await self.execute(
                "INSERT INTO webhook_attempts (workspace_id, delivery_id, attempt, status_code, created_at) "
                "VALUES (:w, :d, :n, 200, :at)",
                d=delivery_id,
                n=number,
                at=at,
            )
        return delivery_id

    async def event(self, *, created: datetime, dispatched: datetime | None, handled: bool) -> uuid.UUID:
        event_id = uuid.uuid4()
        await self.execute(
            "INSERT INTO outbox_events (event_id, workspace_id, event_type, payload, created_at, dispatched_at) "
            "VALUES (:id, :w, 'element.updated', '{}', :created, :dispatched)",
            id=event_id,
            created=created,
            dispatched=dispatched,
        )
        if handled:
            await self.execute(
                "INSERT INTO automation_handled_events (event_id, workspace_id, handled_at) VALUES (:id, :w, :at)",
                id=event_id,
                at=dispatched,
            )
        return event_id

    async def entry(self, *, created: datetime) -> int:
        [(entry_id,)] = await self.execute(
            "INSERT INTO timeline_entries (workspace_id, kind, data, created_at) VALUES (:w, 'comment', '{}', :at) "
            "RETURNING id",
            at=created,
        )
        return int(entry_id)


async def rows_for(app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> Rows:
    rows = Rows(app.state.engine, tenant.workspace_id)
    await create_type(client, "lead")
    response = await client.post(
        "/automation/rules",
        json={
            "name": "R",
            "entity_type": "lead",
            "trigger": {"type": "element.created"},
            "actions": [{"type": "add_comment", "params": {"text": "hi"}}],
        },
    )
    assert response.status_code == 201, response.text
    rows.rule_id = uuid.UUID(response.json()["id"])
    return rows


@pytest.fixture
async def rows(app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> Rows:
    return await rows_for(app, client, tenant)
