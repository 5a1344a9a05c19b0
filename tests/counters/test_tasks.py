"""Overdue tasks: counted per type of the task's element while open and past due; time passing is the timer's."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.counters.conftest import Crm
from tests.factories import create_type, created


def at(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


async def task(crm: Crm, assignee: str | None, due_in: float | None, element_id: str | None = None) -> dict[str, Any]:
    body = {"title": "call", "assignee_id": assignee, "due_at": at(due_in) if due_in is not None else None}
    if element_id:
        body["element_id"] = element_id
    return created(await crm.client.post("/tasks", json=body))


async def update(crm: Crm, task_id: str, **body: Any) -> None:
    response = await crm.client.patch(f"/tasks/{task_id}", json=body)
    assert response.status_code == 200, response.text


async def test_due_time_passing_then_done_and_reopened(crm: Crm) -> None:
    lead = await crm.element(None)
    call = await task(crm, crm.ann, 1, lead["id"])
    await task(crm, crm.ann, None, lead["id"])  # no due time: never overdue
    assert await crm.of(crm.ann) == (0, 0, 0)
    assert (await crm.fire(2)).tasks == 1
    assert await crm.of(crm.ann) == (0, 0, 1)
    assert (await crm.fire(10)).tasks == 0  # marked once
    assert await crm.of(crm.ann) == (0, 0, 1)

    await update(crm, call["id"], status="done")
    assert await crm.of(crm.ann) == (0, 0, 0)
    await update(crm, call["id"], status="open")
    assert await crm.of(crm.ann) == (0, 0, 1)
    await update(crm, call["id"], status="cancelled")
    assert await crm.of(crm.ann) == (0, 0, 0)
    await crm.check_consistent()


async def test_due_time_moved_and_reassigned(crm: Crm) -> None:
    lead = await crm.element(None)
    late = await task(crm, crm.ann, -5, lead["id"])  # already past: counted at once
    assert await crm.of(crm.ann) == (0, 0, 1)
    await update(crm, late["id"], due_at=at(30))
    assert await crm.of(crm.ann) == (0, 0, 0)
    await update(crm, late["id"], due_at=at(-1))
    assert await crm.of(crm.ann) == (0, 0, 1)
    await update(crm, late["id"], assignee_id=crm.bob)
    assert (await crm.of(crm.ann), await crm.of(crm.bob)) == ((0, 0, 0), (0, 0, 1))
    assert (await crm.client.delete(f"/tasks/{late['id']}")).status_code == 204
    assert await crm.of(crm.bob) == (0, 0, 0)
    await crm.check_consistent()


async def test_tasks_about_no_element_and_per_type(crm: Crm) -> None:
    await create_type(crm.client, "deal")
    deal = created(await crm.client.post("/entity-types/deal/elements", json={"title": "d"}))
    lead = await crm.element(None)
    await task(crm, crm.ann, -1)
    await task(crm, crm.ann, -1, deal["id"])
    await task(crm, crm.ann, -1, lead["id"])
    await task(crm, crm.ann, -1, lead["id"])
    body = await crm.counters(crm.ann)
    by_type = {t["entity_type"]: t["overdue_tasks"] for t in body["types"]}
    assert by_type == {"deal": 1, "lead": 2}
    assert body["other_overdue_tasks"] == 1
    assert body["total"] == {"new_elements": 0, "overdue_elements": 0, "overdue_tasks": 4}

    # A deleted type leaves its tasks counted with the ones about no element.
    assert (await crm.client.delete("/entity-types/deal", params={"force": True})).status_code == 204
    body = await crm.counters(crm.ann)
    assert [t["entity_type"] for t in body["types"]] == ["lead"]
    assert body["other_overdue_tasks"] == 2
    await crm.check_consistent()


async def test_a_rules_task_counts_for_the_assignee(crm: Crm) -> None:
    """Tasks a rule creates go through the same service: same counters."""
    from app.auth.actor import system_actor
    from app.db import unit_of_work
    from app.tasks import service as task_service
    from app.tasks.schemas import TaskCreate

    lead = await crm.element(crm.ann)
    async with unit_of_work(crm.app.state.sessionmaker) as session:
        await task_service.create_task(
            session,
            system_actor(crm.tenant.workspace_id),
            TaskCreate(title="follow up", element_id=lead["id"], assignee_id=crm.ann, due_at=at(60)),
        )
    assert await crm.of(crm.ann) == (1, 0, 0)
    assert (await crm.fire(61)).tasks == 1
    assert await crm.of(crm.ann) == (1, 0, 1)
