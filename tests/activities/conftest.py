"""Activities tests: a `lead` type, and the automation engine run here on a workspace's outbox (no worker)."""

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.automation import runner
from app.automation.models import HandledEvent
from app.outbox.models import OutboxEvent
from app.settings import Settings
from tests.factories import create_element, create_type
from tests.graphql.conftest import gql_session, run

__all__ = ["gql_session", "handle_events", "run"]


class NoWaker:
    """The queue: runs are executed by `process_events` itself, so nothing needs waking."""

    async def run(self, run_id: uuid.UUID, attempt: int) -> None: ...
    async def resume(self, run_id: uuid.UUID, at: datetime) -> None: ...
    async def timer(self, timer_id: uuid.UUID, at: datetime) -> None: ...
    async def deliver(self, delivery_id: uuid.UUID, at: datetime | None = None) -> None: ...
    async def deliver_many(self, delivery_ids: list[uuid.UUID]) -> None: ...
    async def deliver_due(self, delivery_id: uuid.UUID, due: datetime) -> None: ...
    async def events(self, event_ids: list[uuid.UUID]) -> None: ...


async def handle_events(app: FastAPI, settings: Settings, workspace_id: uuid.UUID, *, rounds: int = 5) -> int:
    """What a worker does with the workspace's unhandled outbox events: batches through `runner.process_events`
    (the events of one batch and their runs in one transaction), again for the events the runs caused.
    Returns how many runs were started."""
    started = 0
    for _ in range(rounds):
        async with app.state.sessionmaker() as session:
            pending = list(
                await session.scalars(
                    select(OutboxEvent.event_id)
                    .outerjoin(HandledEvent, HandledEvent.event_id == OutboxEvent.event_id)
                    .where(OutboxEvent.workspace_id == workspace_id, HandledEvent.event_id.is_(None))
                    .order_by(OutboxEvent.id)
                )
            )
        if not pending:
            break
        for start in range(0, len(pending), runner.EVENTS_PER_JOB):
            batch = pending[start : start + runner.EVENTS_PER_JOB]
            started += await runner.process_events(app.state.sessionmaker, settings, NoWaker(), batch)
    return started


@pytest.fixture
async def lead(client: httpx.AsyncClient) -> dict[str, Any]:
    """A lead (of a `lead` type with no custom fields: stages NEW, IN_PROGRESS, SUCCESS, FAIL)."""
    await create_type(client, "lead")
    return await create_element(client, "lead", title="ACME")
