"""Each person's counters per entity type: new elements, elements past their stage's time limit, overdue tasks.

Reading them costs one small aggregate over the person's rows of `user_counters`, never a scan of their elements:
triggers on elements, tasks and stages (migration 20261130_counters) fold every change into those rows, and the
timer here (`fire_due`, on the worker's tick) marks what became overdue as time passed. `recount` rewrites a
workspace's (or one person's) counters from the data and reports what was wrong.

"My" means assigned to me: an element's `assigned_to`, a task's `assignee_id`. "New" means still in the first stage
of its pipeline (where an element lands when no stage is given), the stage nobody has moved it out of yet.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.actor import Actor
from app.counters.models import user_counters
from app.counters.schemas import CounterDrift, CounterValues, MyCounters, RecountResult, TypeCounters
from app.entity_types.models import EntityType
from app.errors import Forbidden, NotFound
from app.users.models import User

MAX_DRIFT_LISTED = 100
DUE_BATCH = 5000
Key = tuple[uuid.UUID, uuid.UUID | None]
SUMS = (
    func.sum(user_counters.c.new_elements),
    func.sum(user_counters.c.overdue_elements),
    func.sum(user_counters.c.overdue_tasks),
)


async def my_counters(session: AsyncSession, actor: Actor) -> MyCounters:
    """The acting person's counters for every type they may read; an API key is nobody's and has none (403)."""
    if actor.user_id is None:
        raise Forbidden("Counters are a person's: call with a user's access token, not an API key")
    c = user_counters.c
    sums = await session.execute(
        select(c.entity_type_id, *SUMS)
        .where(c.workspace_id == actor.workspace_id, c.user_id == actor.user_id)
        .group_by(c.entity_type_id)
    )
    by_type = {row[0]: (int(row[1]), int(row[2]), int(row[3])) for row in sums}
    types = await session.execute(
        select(EntityType.id, EntityType.code, EntityType.title)
        .where(EntityType.workspace_id == actor.workspace_id)
        .order_by(EntityType.code)
    )
    listed: list[TypeCounters] = []
    other_tasks = by_type.pop(None, (0, 0, 0))[2]
    for type_id, code, title in types:
        new, overdue, tasks = by_type.pop(type_id, (0, 0, 0))
        if actor.grants.on(type_id, code).can_read_any():
            listed.append(
                TypeCounters(
                    entity_type_id=type_id,
                    entity_type=code,
                    title=title,
                    new_elements=new,
                    overdue_elements=overdue,
                    overdue_tasks=tasks,
                )
            )
        else:
            # My own tasks stay counted; the type's elements are not mine to see.
            other_tasks += tasks
    total = CounterValues(
        new_elements=sum(t.new_elements for t in listed),
        overdue_elements=sum(t.overdue_elements for t in listed),
        overdue_tasks=sum(t.overdue_tasks for t in listed) + other_tasks,
    )
    return MyCounters(user_id=actor.user_id, types=listed, other_overdue_tasks=other_tasks, total=total)


async def recount(session: AsyncSession, actor: Actor, *, user_id: uuid.UUID | None = None) -> RecountResult:
    """Admins: rewrite the workspace's counters (or one user's) from the data; returns what was wrong."""
    actor.ensure_admin()
    if user_id is not None:
        found = await session.scalar(select(User.id).where(User.workspace_id == actor.workspace_id, User.id == user_id))
        if found is None:
            raise NotFound(f"User {user_id} not found")
    return await recount_workspace(session, actor.workspace_id, user_id=user_id)


async def recount_workspace(
    session: AsyncSession, workspace_id: uuid.UUID, *, user_id: uuid.UUID | None = None
) -> RecountResult:
    """The repair itself (no permission check: the CLI and tests call it). It waits for the workspace's writes in
    flight and holds theirs back until the caller commits."""
    rows = (
        await session.execute(
            text("SELECT * FROM user_counters_recount(:workspace_id, :user_id)"),
            {"workspace_id": workspace_id, "user_id": user_id},
        )
    ).all()
    drift = [
        CounterDrift(
            user_id=row.user_id,
            entity_type_id=row.entity_type_id,
            stored=CounterValues(
                new_elements=row.new_stored, overdue_elements=row.overdue_stored, overdue_tasks=row.tasks_stored
            ),
            recounted=CounterValues(
                new_elements=row.new_expected, overdue_elements=row.overdue_expected, overdue_tasks=row.tasks_expected
            ),
        )
        for row in rows[:MAX_DRIFT_LISTED]
    ]
    return RecountResult(user_id=user_id, drift=drift, drift_count=len(rows))


async def stored_counters(session: AsyncSession, workspace_id: uuid.UUID) -> dict[Key, tuple[int, int, int]]:
    """What the triggers have kept, per (person, type), zeros left out."""
    c = user_counters.c
    rows = await session.execute(
        select(c.user_id, c.entity_type_id, *SUMS)
        .where(c.workspace_id == workspace_id)
        .group_by(c.user_id, c.entity_type_id)
    )
    return {(r[0], r[1]): (int(r[2]), int(r[3]), int(r[4])) for r in rows if any(r[2:])}


async def expected_counters(session: AsyncSession, workspace_id: uuid.UUID) -> dict[Key, tuple[int, int, int]]:
    """What the counters should be, counted from the elements and tasks (a scan: for checks and repairs only)."""
    rows = await session.execute(
        text("SELECT * FROM user_counters_expected(:workspace_id, NULL)"), {"workspace_id": workspace_id}
    )
    return {(r[0], r[1]): (int(r[2]), int(r[3]), int(r[4])) for r in rows}


# --- time: the timer ---------------------------------------------------------------------------------------------

# Elements whose deadline came: marked once (overdue_since was null) and their deadline dropped, in one statement.
# Rows someone holds (a move in flight replaces the deadline) are skipped and picked up by a later tick.
MARK_DUE_ELEMENTS = text(
    """
WITH due AS (
    SELECT e.id, d.due_at FROM elements e
    JOIN counter_deadlines d ON d.element_id = e.id AND d.stage_id = e.stage_id
    WHERE d.due_at <= :now
    ORDER BY d.due_at LIMIT :limit
    FOR UPDATE OF e, d SKIP LOCKED
), cleared AS (
    DELETE FROM counter_deadlines d USING due WHERE d.element_id = due.id
)
UPDATE elements e SET overdue_since = due.due_at FROM due
WHERE e.id = due.id AND e.overdue_since IS NULL AND e.deleted_at IS NULL
"""
)
# Deadlines whose element is gone or elsewhere (none should exist: moves and purges drop theirs).
DROP_STALE_DEADLINES = text(
    """
DELETE FROM counter_deadlines WHERE element_id IN (
    SELECT d.element_id FROM counter_deadlines d
    WHERE d.due_at <= :now
        AND NOT EXISTS (SELECT 1 FROM elements e WHERE e.id = d.element_id AND e.stage_id = d.stage_id)
    LIMIT :limit FOR UPDATE SKIP LOCKED
)
"""
)
MARK_DUE_TASKS = text(
    """
UPDATE tasks t SET overdue_since = t.due_at
FROM (
    SELECT id FROM tasks
    WHERE status = 'open' AND overdue_since IS NULL AND due_at IS NOT NULL AND due_at <= :now
    ORDER BY due_at LIMIT :limit
    FOR UPDATE SKIP LOCKED
) due
WHERE t.id = due.id
"""
)


@dataclass(frozen=True)
class Fired:
    elements: int
    tasks: int


async def fire_due(session: AsyncSession, *, now: datetime | None = None, limit: int = DUE_BATCH) -> Fired:
    """Mark the elements that outstayed their stage's limit and the open tasks past their due time, up to `limit`
    of each, in the caller's transaction; the triggers count them. Idempotent: a mark is set only once."""
    params: dict[str, Any] = {"now": now or datetime.now(UTC), "limit": limit}
    elements: Any = await session.execute(MARK_DUE_ELEMENTS, params)
    if elements.rowcount < limit:
        # Past a backlog only: the due rows left are then few (held by someone, or stale).
        await session.execute(DROP_STALE_DEADLINES, params)
    tasks: Any = await session.execute(MARK_DUE_TASKS, params)
    return Fired(elements=elements.rowcount, tasks=tasks.rowcount)
