"""Users of a workspace: the people elements are assigned to, with their tier, capacity and load."""

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.actor import Actor
from app.elements.models import Element
from app.errors import Conflict, ErrorCollector, NotFound
from app.pipelines.models import Stage, StageSemantic
from app.users.models import User, UserTier
from app.users.schemas import UserCreate, UserRead, UserUpdate


async def loads(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    user_ids: Sequence[uuid.UUID],
    *,
    entity_type_ids: Sequence[uuid.UUID] | None = None,
    exclude_element: uuid.UUID | None = None,
) -> dict[uuid.UUID, int]:
    """Open elements per user: live, in a `process` stage (optionally only of some entity types)."""
    if not user_ids:
        return {}
    statement = (
        select(Element.assigned_to, func.count())
        .join(Stage, Stage.id == Element.stage_id)
        .where(
            Element.workspace_id == workspace_id,
            Element.assigned_to.in_(list(user_ids)),
            Element.deleted_at.is_(None),
            Stage.semantic == StageSemantic.process,
        )
        .group_by(Element.assigned_to)
    )
    if entity_type_ids is not None:
        statement = statement.where(Element.entity_type_id.in_(list(entity_type_ids)))
    if exclude_element is not None:
        statement = statement.where(Element.id != exclude_element)
    counts = {row[0]: int(row[1]) for row in await session.execute(statement)}
    return {user_id: counts.get(user_id, 0) for user_id in user_ids}


def _read(user: User, load: int) -> UserRead:
    return UserRead(
        id=user.id,
        name=user.name,
        email=user.email,
        tier=user.tier,
        capacity=user.capacity,
        timezone=user.timezone,
        active=user.active,
        load=load,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


async def _get(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    user = await session.scalar(select(User).where(User.workspace_id == actor.workspace_id, User.id == user_id))
    if user is None:
        raise NotFound(f"User {user_id} not found")
    return user


async def _email_taken(session: AsyncSession, actor: Actor, email: str, *, other_than: uuid.UUID | None = None) -> None:
    statement = select(User.id).where(User.workspace_id == actor.workspace_id, func.lower(User.email) == email.lower())
    if other_than is not None:
        statement = statement.where(User.id != other_than)
    if await session.scalar(statement) is not None:
        raise Conflict(f"A user with email {email!r} exists already")


async def create_user(session: AsyncSession, actor: Actor, data: UserCreate) -> UserRead:
    actor.ensure_admin()
    await _email_taken(session, actor, data.email)
    now = datetime.now(UTC)
    user = User(
        workspace_id=actor.workspace_id,
        name=data.name,
        email=data.email,
        tier=data.tier,
        capacity=data.capacity,
        timezone=data.timezone,
        active=data.active,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent create with the same email
        raise Conflict(f"A user with email {data.email!r} exists already") from exc
    return _read(user, 0)


async def get_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> UserRead:
    user = await _get(session, actor, user_id)
    return _read(user, (await loads(session, actor.workspace_id, [user.id]))[user.id])


async def get_users(session: AsyncSession, actor: Actor, user_ids: Sequence[uuid.UUID]) -> list[UserRead]:
    """Users by id (unknown ids left out), with their loads: two queries for any number of ids."""
    if not user_ids:
        return []
    users = list(
        await session.scalars(select(User).where(User.workspace_id == actor.workspace_id, User.id.in_(set(user_ids))))
    )
    by_user = await loads(session, actor.workspace_id, [u.id for u in users])
    return [_read(u, by_user[u.id]) for u in users]


async def list_users(
    session: AsyncSession, actor: Actor, *, tier: UserTier | None = None, active: bool | None = None
) -> list[UserRead]:
    statement = select(User).where(User.workspace_id == actor.workspace_id).order_by(User.name, User.id)
    if tier is not None:
        statement = statement.where(User.tier == tier)
    if active is not None:
        statement = statement.where(User.active == active)
    users = list(await session.scalars(statement))
    by_user = await loads(session, actor.workspace_id, [u.id for u in users])
    return [_read(u, by_user[u.id]) for u in users]


async def update_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID, data: UserUpdate) -> UserRead:
    actor.ensure_admin()
    user = await _get(session, actor, user_id)
    changes = data.model_dump(exclude_unset=True)
    for name in ("name", "tier", "capacity", "timezone", "active", "email"):
        if changes.get(name) is None and name in changes:
            changes.pop(name)  # these columns cannot be cleared
    if "email" in changes:
        await _email_taken(session, actor, changes["email"], other_than=user.id)
    for name, value in changes.items():
        setattr(user, name, value)
    user.updated_at = datetime.now(UTC)
    await session.flush()
    return _read(user, (await loads(session, actor.workspace_id, [user.id]))[user.id])


async def delete_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> None:
    """Refused while elements are assigned to the user: deactivate them instead, or reassign first."""
    actor.ensure_admin()
    user = await _get(session, actor, user_id)
    assigned = await session.scalar(
        select(func.count())
        .select_from(Element)
        .where(Element.workspace_id == actor.workspace_id, Element.assigned_to == user.id)
    )
    if assigned:
        raise Conflict(f"{assigned} elements are assigned to this user: reassign them or set active=false")
    await session.delete(user)
    await session.flush()


async def check_assignees(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    assignees: Iterable[tuple[str, uuid.UUID | None]],
    errors: ErrorCollector,
) -> None:
    """Every `assigned_to` must be a user of the workspace; one query for a whole batch."""
    wanted = [(path, user_id) for path, user_id in assignees if user_id is not None]
    if not wanted:
        return
    found = set(
        await session.scalars(
            select(User.id).where(User.workspace_id == workspace_id, User.id.in_({u for _, u in wanted}))
        )
    )
    for path, user_id in wanted:
        if user_id not in found:
            errors.add(path, f"user {user_id} not found in this workspace")
