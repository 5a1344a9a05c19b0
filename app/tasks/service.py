"""Tasks (to-dos about elements) and stored notifications; rules create both through these functions."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.visibility import readable_elements, reads_everything, workspace_metas
from app.auth.actor import Actor
from app.elements.models import Element
from app.elements.service import load_element_row
from app.errors import ErrorCollector, FieldError, Invalid, NotFound
from app.outbox.service import record_event
from app.tasks.models import Notification, Task, TaskStatus
from app.tasks.schemas import NotificationList, NotificationRead, TaskCreate, TaskList, TaskRead, TaskUpdate
from app.timeline.service import add_entry
from app.users.service import check_assignees

MAX_LIST = 500


async def _check_element(session: AsyncSession, actor: Actor, element_id: uuid.UUID | None) -> uuid.UUID | None:
    """The element's entity type (the task's overdue count goes to it), or Invalid when there is no such element."""
    if element_id is None:
        return None
    try:
        element = await load_element_row(session, actor, element_id)
    except NotFound as exc:
        raise Invalid(
            "The task is not valid", errors=[FieldError("element_id", f"element {element_id} not found")]
        ) from exc
    return element.entity_type_id


async def _check_user(session: AsyncSession, actor: Actor, path: str, user_id: uuid.UUID | None, detail: str) -> None:
    """A user named in a body must be a user of the caller's workspace."""
    errors = ErrorCollector()
    await check_assignees(session, actor.workspace_id, [(path, user_id)], errors)
    errors.raise_if_any(detail)


async def create_task(
    session: AsyncSession, actor: Actor, data: TaskCreate, *, run_id: uuid.UUID | None = None
) -> TaskRead:
    actor.ensure_can_write()
    entity_type_id = await _check_element(session, actor, data.element_id)
    await _check_user(session, actor, "assignee_id", data.assignee_id, "The task is not valid")
    now = datetime.now(UTC)
    task = Task(
        id=uuid.uuid4(),
        workspace_id=actor.workspace_id,
        element_id=data.element_id,
        entity_type_id=entity_type_id,
        title=data.title,
        description=data.description,
        assignee_id=data.assignee_id,
        status=TaskStatus.open,
        due_at=data.due_at,
        run_id=run_id,
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    if data.element_id:
        add_entry(session, actor, "task_created", element_id=data.element_id, data={"task_id": str(task.id)})
    record_event(session, actor.workspace_id, "task.created", element_id=data.element_id, payload={"id": str(task.id)})
    await session.flush()
    return TaskRead.model_validate(task)


async def _shown(session: AsyncSession, actor: Actor) -> ColumnElement[bool]:
    """The tasks the actor may see: all for the built-in roles; else theirs and those on elements they may read."""
    if reads_everything(actor):
        return true()
    metas = await workspace_metas(session, actor.workspace_id)
    readable = select(Element.id).where(Element.workspace_id == actor.workspace_id, readable_elements(actor, metas))
    mine = Task.assignee_id == actor.user_id if actor.user_id is not None else false()
    return or_(mine, Task.element_id.in_(readable))


async def _get(session: AsyncSession, actor: Actor, task_id: uuid.UUID, *, lock: bool = False) -> Task:
    statement = select(Task).where(
        Task.workspace_id == actor.workspace_id, Task.id == task_id, await _shown(session, actor)
    )
    task = await session.scalar(statement.with_for_update() if lock else statement)
    if task is None:
        raise NotFound(f"Task {task_id} not found")
    return task


async def get_task(session: AsyncSession, actor: Actor, task_id: uuid.UUID) -> TaskRead:
    return TaskRead.model_validate(await _get(session, actor, task_id))


async def list_tasks(
    session: AsyncSession,
    actor: Actor,
    *,
    element_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
    status: TaskStatus | None = None,
    limit: int = 100,
) -> TaskList:
    statement = select(Task).where(Task.workspace_id == actor.workspace_id, await _shown(session, actor))
    if element_id is not None:
        statement = statement.where(Task.element_id == element_id)
    if assignee_id is not None:
        statement = statement.where(Task.assignee_id == assignee_id)
    if status is not None:
        statement = statement.where(Task.status == status)
    rows = await session.scalars(statement.order_by(Task.created_at.desc(), Task.id).limit(min(limit, MAX_LIST)))
    return TaskList(items=[TaskRead.model_validate(t) for t in rows])


async def update_task(session: AsyncSession, actor: Actor, task_id: uuid.UUID, data: TaskUpdate) -> TaskRead:
    actor.ensure_can_write()
    task = await _get(session, actor, task_id, lock=True)
    changes = data.model_dump(exclude_unset=True)
    if "status" in changes and changes["status"] is None:
        raise Invalid("The task is not valid", errors=[FieldError("status", "cannot be null")])
    if "title" in changes and changes["title"] is None:
        raise Invalid("The task is not valid", errors=[FieldError("title", "cannot be null")])
    await _check_user(session, actor, "assignee_id", changes.get("assignee_id"), "The task is not valid")
    for name, value in changes.items():
        setattr(task, name, value)
    now = datetime.now(UTC)
    task.updated_at = now
    if "status" in changes:
        task.completed_at = now if task.status == TaskStatus.done else None
    await session.flush()
    record_event(session, actor.workspace_id, "task.updated", element_id=task.element_id, payload={"id": str(task.id)})
    return TaskRead.model_validate(task)


async def delete_task(session: AsyncSession, actor: Actor, task_id: uuid.UUID) -> None:
    actor.ensure_can_write()
    task = await _get(session, actor, task_id, lock=True)
    await session.delete(task)
    await session.flush()


async def notify(
    session: AsyncSession,
    actor: Actor,
    *,
    user_id: uuid.UUID,
    message: str,
    element_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
) -> NotificationRead:
    await _check_user(session, actor, "user_id", user_id, "The notification is not valid")
    notification = Notification(
        id=uuid.uuid4(),
        workspace_id=actor.workspace_id,
        user_id=user_id,
        element_id=element_id,
        message=message,
        run_id=run_id,
        created_at=datetime.now(UTC),
    )
    session.add(notification)
    await session.flush()
    return NotificationRead.model_validate(notification)


async def list_notifications(
    session: AsyncSession, actor: Actor, *, user_id: uuid.UUID | None = None, unread: bool = False, limit: int = 100
) -> NotificationList:
    statement = select(Notification).where(Notification.workspace_id == actor.workspace_id)
    if not reads_everything(actor):  # everyone's notifications carry any element's news: a person sees their own
        statement = statement.where(Notification.user_id == actor.user_id if actor.user_id is not None else false())
    if user_id is not None:
        statement = statement.where(Notification.user_id == user_id)
    if unread:
        statement = statement.where(Notification.read_at.is_(None))
    rows = await session.scalars(statement.order_by(Notification.created_at.desc()).limit(min(limit, MAX_LIST)))
    return NotificationList(items=[NotificationRead.model_validate(n) for n in rows])
