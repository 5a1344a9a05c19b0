"""The incremental counters equal the ones counted from scratch, after any sequence of operations; a recount never
misses a write still in flight."""

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.actor import system_actor
from app.counters import service as counters
from app.db import unit_of_work
from app.elements import service as elements
from app.elements.schemas import BatchItem, ElementBatch, ElementCreate, ElementMove, ElementUpdate
from app.pipelines import service as pipelines
from app.pipelines.schemas import StageCreate, StageOrder, StageUpdate
from app.tasks import service as tasks
from app.tasks.models import TaskStatus
from app.tasks.schemas import TaskCreate, TaskUpdate
from tests.counters.conftest import Crm, add_person
from tests.factories import create_type

OPERATIONS = 160


class World:
    """Random operations through the services, as the API and the engine call them."""

    def __init__(self, crm: Crm, people: list[str], rng: random.Random) -> None:
        self.crm = crm
        self.actor = system_actor(crm.tenant.workspace_id)
        self.people: list[uuid.UUID | None] = [uuid.UUID(p) for p in people] + [None]
        self.rng = rng
        self.stage_codes = 0

    def person(self) -> uuid.UUID | None:
        return self.rng.choice(self.people)

    async def pick(self, session: AsyncSession, sql: str, **params: Any) -> Any:
        """A random row of an ordered query: the seed alone decides the sequence, whatever plan PostgreSQL picks."""
        rows = (await session.execute(text(sql), {"ws": self.crm.tenant.workspace_id, **params})).all()
        return self.rng.choice(rows) if rows else None

    async def step(self, session: AsyncSession) -> str:
        kind = self.rng.choices(
            [
                "create",
                "batch",
                "move",
                "assign",
                "delete",
                "restore",
                "limit",
                "reorder",
                "age",
                "fire",
                "task",
                "task_update",
                "task_delete",
                "add_stage",
                "drop_stage",
            ],
            weights=[8, 3, 8, 6, 3, 2, 3, 2, 3, 3, 5, 5, 1, 1, 1],
        )[0]
        await getattr(self, kind)(session)
        return kind

    async def stages(self, session: AsyncSession, type_code: str) -> list[Any]:
        return list(
            (
                await session.execute(
                    text(
                        "SELECT s.id, s.code FROM stages s JOIN pipelines p ON p.id = s.pipeline_id "
                        "JOIN entity_types t ON t.id = p.entity_type_id WHERE t.workspace_id = :ws AND t.code = :c"
                        " ORDER BY s.code, s.sort"
                    ),
                    {"ws": self.crm.tenant.workspace_id, "c": type_code},
                )
            ).all()
        )

    async def create(self, session: AsyncSession) -> None:
        type_code = self.rng.choice(["lead", "ticket"])
        stage = self.rng.choice(await self.stages(session, type_code))
        data = ElementCreate(title="r", stage_id=stage.id, assigned_to=self.person())
        await elements.create_element(session, self.actor, type_code, data)

    async def batch(self, session: AsyncSession) -> None:
        items = [
            BatchItem(op="create", data={"title": "b", "assigned_to": str(p) if (p := self.person()) else None})
            for _ in range(self.rng.randint(1, 6))
        ]
        await elements.batch(session, self.actor, "lead", ElementBatch(items=items))

    async def move(self, session: AsyncSession) -> None:
        row = await self.pick(
            session,
            "SELECT e.id, t.code FROM elements e JOIN entity_types t ON t.id = e.entity_type_id "
            "WHERE e.workspace_id = :ws AND e.deleted_at IS NULL ORDER BY e.number",
        )
        if row:
            stage = self.rng.choice(await self.stages(session, row.code))
            await elements.move_element(session, self.actor, row.id, ElementMove(stage_id=stage.id))

    async def assign(self, session: AsyncSession) -> None:
        row = await self.pick(
            session, "SELECT id FROM elements WHERE workspace_id = :ws AND deleted_at IS NULL ORDER BY number"
        )
        if row:
            await elements.update_element(session, self.actor, row.id, ElementUpdate(assigned_to=self.person()))

    async def delete(self, session: AsyncSession) -> None:
        row = await self.pick(
            session, "SELECT id FROM elements WHERE workspace_id = :ws AND deleted_at IS NULL ORDER BY number"
        )
        if row:
            await elements.delete_element(session, self.actor, row.id)

    async def restore(self, session: AsyncSession) -> None:
        row = await self.pick(
            session, "SELECT id FROM elements WHERE workspace_id = :ws AND deleted_at IS NOT NULL ORDER BY number"
        )
        if row:
            await elements.restore_element(session, self.actor, row.id)

    async def limit(self, session: AsyncSession) -> None:
        stage = self.rng.choice(await self.stages(session, self.rng.choice(["lead", "ticket"])))
        minutes = self.rng.choice([1, 5, 30, 120, None])
        await pipelines.update_stage(
            session, self.actor, stage.id, StageUpdate.model_validate({"time_limit_minutes": minutes})
        )

    async def reorder(self, session: AsyncSession) -> None:
        pipeline_id = await session.scalar(
            text(
                "SELECT p.id FROM pipelines p JOIN entity_types t ON t.id = p.entity_type_id "
                "WHERE t.workspace_id = :ws AND t.code = 'lead'"
            ),
            {"ws": self.crm.tenant.workspace_id},
        )
        ids = [s.id for s in await self.stages(session, "lead")]
        self.rng.shuffle(ids)
        await pipelines.reorder_stages(session, self.actor, pipeline_id, StageOrder(stage_ids=ids))

    async def age(self, session: AsyncSession) -> None:
        """Time passed for one element: it arrived in its stage some minutes earlier."""
        row = await self.pick(session, "SELECT id FROM elements WHERE workspace_id = :ws ORDER BY number")
        if row:
            await session.execute(
                text("UPDATE elements SET moved_at = moved_at - make_interval(mins => :m) WHERE id = :id"),
                {"m": self.rng.randint(1, 200), "id": row.id},
            )

    async def fire(self, session: AsyncSession) -> None:
        now = datetime.now(UTC) + timedelta(minutes=self.rng.randint(0, 150))
        await counters.fire_due(session, now=now, limit=self.rng.choice([1, 3, 1000]))

    async def task(self, session: AsyncSession) -> None:
        element = await self.pick(session, "SELECT id FROM elements WHERE workspace_id = :ws ORDER BY number")
        due = self.rng.choice([None, -30, -1, 1, 30, 90])
        data = TaskCreate(
            title="t",
            element_id=element.id if element and self.rng.random() < 0.8 else None,
            assignee_id=self.person(),
            due_at=datetime.now(UTC) + timedelta(minutes=due) if due is not None else None,
        )
        await tasks.create_task(session, self.actor, data)

    async def task_update(self, session: AsyncSession) -> None:
        row = await self.pick(session, "SELECT id FROM tasks WHERE workspace_id = :ws ORDER BY created_at, id")
        if row is None:
            return
        change = self.rng.choice(["status", "due", "assignee"])
        if change == "status":
            data = TaskUpdate(status=self.rng.choice(list(TaskStatus)))
        elif change == "due":
            data = TaskUpdate(due_at=datetime.now(UTC) + timedelta(minutes=self.rng.choice([-20, 20, 200])))
        else:
            data = TaskUpdate(assignee_id=self.person())
        await tasks.update_task(session, self.actor, row.id, data)

    async def task_delete(self, session: AsyncSession) -> None:
        row = await self.pick(session, "SELECT id FROM tasks WHERE workspace_id = :ws ORDER BY created_at, id")
        if row:
            await tasks.delete_task(session, self.actor, row.id)

    async def add_stage(self, session: AsyncSession) -> None:
        pipeline_id = await session.scalar(
            text(
                "SELECT p.id FROM pipelines p JOIN entity_types t ON t.id = p.entity_type_id "
                "WHERE t.workspace_id = :ws AND t.code = 'lead'"
            ),
            {"ws": self.crm.tenant.workspace_id},
        )
        self.stage_codes += 1
        data = StageCreate(code=f"S{self.stage_codes}", sort=self.rng.randint(-100, 10_000))
        await pipelines.create_stage(session, self.actor, pipeline_id, data)

    async def drop_stage(self, session: AsyncSession) -> None:
        stages = await self.stages(session, "lead")
        if len(stages) < 3:
            return
        gone, target = self.rng.sample(stages, 2)
        await pipelines.delete_stage(session, self.actor, gone.id, move_to=target.id)


# Marks and deadlines in step with the stages: a live element in a stage with a limit is either marked (at exactly
# arrival + limit) or has a deadline (at exactly that time); anything else has neither. A task's mark is its due time.
CLOCKS_OUT_OF_STEP = """
SELECT e.id FROM elements e
LEFT JOIN stages s ON s.id = e.stage_id
LEFT JOIN counter_deadlines d ON d.element_id = e.id
WHERE e.workspace_id = :ws AND NOT coalesce(CASE
    WHEN e.deleted_at IS NOT NULL OR s.time_limit_minutes IS NULL THEN e.overdue_since IS NULL AND d.element_id IS NULL
    WHEN e.overdue_since IS NOT NULL THEN
        e.overdue_since = e.moved_at + make_interval(mins => s.time_limit_minutes) AND d.element_id IS NULL
    ELSE d.stage_id = e.stage_id AND d.due_at = e.moved_at + make_interval(mins => s.time_limit_minutes)
END, false)
UNION ALL
SELECT t.id FROM tasks t WHERE t.workspace_id = :ws AND t.overdue_since IS DISTINCT FROM t.due_at
    AND t.overdue_since IS NOT NULL
"""


async def clocks_out_of_step(crm: Crm) -> list[Any]:
    async with unit_of_work(crm.app.state.sessionmaker) as session:
        rows = await session.execute(text(CLOCKS_OUT_OF_STEP), {"ws": crm.tenant.workspace_id})
        return list(rows.scalars())


async def stored_and_expected(crm: Crm) -> tuple[Any, Any]:
    async with unit_of_work(crm.app.state.sessionmaker) as session:
        stored = await counters.stored_counters(session, crm.tenant.workspace_id)
        expected = await counters.expected_counters(session, crm.tenant.workspace_id)
    return stored, expected


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_incremental_equals_recounted(crm: Crm, seed: int) -> None:
    await create_type(crm.client, "ticket", settings={"recycle_bin_enabled": False})
    carl = await add_person(crm.app, crm.tenant, crm.client, "carl")
    world = World(crm, [crm.ann, crm.bob, carl["id"]], random.Random(seed))
    done: list[str] = []
    seen = [0, 0, 0]  # the most new, overdue elements, overdue tasks any one person had at a check
    for index in range(OPERATIONS):
        async with unit_of_work(crm.app.state.sessionmaker) as session:
            done.append(await world.step(session))
        if index % 10 == 9 or index == OPERATIONS - 1:
            stored, expected = await stored_and_expected(crm)
            assert stored == expected, f"after {done[-10:]}"
            assert await clocks_out_of_step(crm) == [], f"after {done[-10:]}"
            seen = [max([seen[i], *(values[i] for values in expected.values())]) for i in range(3)]
    assert all(seen), f"the sequence never exercised every counter: {seen}"
    async with unit_of_work(crm.app.state.sessionmaker) as session:
        result = await counters.recount_workspace(session, crm.tenant.workspace_id)
    assert result.drift_count == 0


async def test_a_recount_waits_for_writes_in_flight(crm: Crm) -> None:
    """The writer's delta and the recount never overlap: the recount waits for the writer's commit and counts it."""
    sessionmaker = crm.app.state.sessionmaker

    async def recount() -> int:
        async with unit_of_work(sessionmaker) as session:
            return (await counters.recount_workspace(session, crm.tenant.workspace_id)).drift_count

    await crm.element(crm.ann)
    async with sessionmaker() as writer, writer.begin():
        data = ElementCreate(title="in flight", assigned_to=uuid.UUID(crm.ann))
        await elements.create_element(writer, system_actor(crm.tenant.workspace_id), "lead", data)
        repair = asyncio.create_task(recount())
        await asyncio.sleep(0.3)
        assert not repair.done()
    assert await repair == 0
    assert await crm.of(crm.ann) == (2, 0, 0)
    await crm.check_consistent()
