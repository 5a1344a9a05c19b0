"""SIGKILL a worker in the middle of a burst of runs: a new worker finishes everything, exactly once in effect."""

import asyncio
import time
import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from app.automation.models import AutomationRun, RunStatus
from app.settings import Settings
from app.tasks.models import Task
from app.timeline.models import TimelineEntry
from tests.automation.harness import forget_earlier_events, start_worker, stop_worker, wait_for
from tests.conftest import Tenant
from tests.factories import lead_type

ELEMENTS = 100


async def counts(app: FastAPI, workspace_id: uuid.UUID) -> dict[str, Any]:
    async with app.state.sessionmaker() as session:
        by_status = dict(
            (
                await session.execute(
                    select(AutomationRun.status, func.count())
                    .where(AutomationRun.workspace_id == workspace_id)
                    .group_by(AutomationRun.status)
                )
            ).all()
        )
        tasks_per_element = list(
            await session.scalars(
                select(func.count()).where(Task.workspace_id == workspace_id).group_by(Task.element_id)
            )
        )
        comments_per_element = list(
            await session.scalars(
                select(func.count())
                .where(TimelineEntry.workspace_id == workspace_id, TimelineEntry.kind == "comment")
                .group_by(TimelineEntry.element_id)
            )
        )
        retaken = await session.scalar(
            select(func.count()).where(AutomationRun.workspace_id == workspace_id, AutomationRun.attempts > 1)
        )
    return {"status": by_status, "tasks": tasks_per_element, "comments": comments_per_element, "retaken": retaken}


async def test_a_killed_worker_loses_and_doubles_nothing(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    await lead_type(client)
    response = await client.post(
        "/automation/rules",
        json={
            "name": "Welcome",
            "entity_type": "lead",
            "trigger": {"type": "element.created"},
            "actions": [
                {"type": "create_task", "params": {"title": "Welcome {{ title }}"}},
                {"type": "add_comment", "params": {"text": "welcomed"}},
                {"type": "set_fields", "params": {"values": {"company_size": 1}}},
            ],
        },
    )
    assert response.status_code == 201, response.text
    forget_earlier_events(settings)
    first = start_worker(settings)
    try:
        items = [{"op": "create", "data": {"title": f"lead {i}"}} for i in range(ELEMENTS)]
        batch = await client.post("/entity-types/lead/elements/batch", json={"items": items})
        assert batch.status_code == 200, batch.text

        async def some_done() -> bool:
            done: int = (await counts(app, tenant.workspace_id))["status"].get(RunStatus.succeeded, 0)
            return 0 < done < ELEMENTS or done == ELEMENTS

        await wait_for(some_done, seconds=20, interval=0.02)
    finally:
        stop_worker(first, kill=True)  # SIGKILL: no cleanup, open transactions die with the connection
    at_kill = await counts(app, tenant.workspace_id)
    assert at_kill["status"].get(RunStatus.succeeded, 0) < ELEMENTS, "the worker finished before it was killed"

    started = time.monotonic()
    second = start_worker(settings)
    try:

        async def all_done() -> dict[str, Any] | None:
            now = await counts(app, tenant.workspace_id)
            return now if now["status"].get(RunStatus.succeeded, 0) == ELEMENTS else None

        final = await wait_for(all_done, seconds=40, interval=0.2)
    finally:
        stop_worker(second)
    await asyncio.sleep(0)
    assert final["status"] == {RunStatus.succeeded: ELEMENTS}  # one run per (event, rule), none failed
    assert sorted(final["tasks"]) == [1] * ELEMENTS  # every element got its task exactly once
    assert sorted(final["comments"]) == [1] * ELEMENTS
    print(
        f"\nat kill: {at_kill['status']}; recovered in {time.monotonic() - started:.1f}s; "
        f"runs taken over after the kill: {final['retaken']}"
    )
