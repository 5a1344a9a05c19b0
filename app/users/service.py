"""Users of a workspace: the people elements are assigned to, with their tier, capacity and load."""

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.models import Department
from app.access.service import set_user_roles, user_role_ids
from app.access.snapshot import access_changed
from app.auth.actor import Actor
from app.auth.passwords import hash_password
from app.auth.sessions import revoke_user_sessions
from app.db import session_connection
from app.elements.models import Element
from app.errors import Conflict, ErrorCollector, FieldError, Invalid
from app.kit.rows import workspace_row
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


def _read(user: User, load: int, role_ids: list[uuid.UUID]) -> UserRead:
    return UserRead(
        id=user.id,
        name=user.name,
        email=user.email,
        tier=user.tier,
        capacity=user.capacity,
        timezone=user.timezone,
        active=user.active,
        department_id=user.department_id,
        role_ids=sorted(role_ids),
        has_password=user.password_hash is not None,
        load=load,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


async def _reads(session: AsyncSession, actor: Actor, users: list[User]) -> list[UserRead]:
    """Users with their loads and roles: two queries for any number of users."""
    ids = [u.id for u in users]
    by_user = await loads(session, actor.workspace_id, ids)
    roles = await user_role_ids(session, ids) if ids else {}
    return [_read(u, by_user[u.id], roles[u.id]) for u in users]


async def _check_department(session: AsyncSession, actor: Actor, department_id: uuid.UUID | None) -> None:
    if department_id is None:
        return
    found = await session.scalar(
        select(Department.id).where(Department.workspace_id == actor.workspace_id, Department.id == department_id)
    )
    if found is None:
        raise Invalid(
            "Unknown department", errors=[FieldError("department_id", f"department {department_id} not found")]
        )


async def _get(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    return await workspace_row(session, User, actor.workspace_id, user_id, "User")


async def _email_taken(session: AsyncSession, actor: Actor, email: str, *, other_than: uuid.UUID | None = None) -> None:
    statement = select(User.id).where(User.workspace_id == actor.workspace_id, func.lower(User.email) == email.lower())
    if other_than is not None:
        statement = statement.where(User.id != other_than)
    if await session.scalar(statement) is not None:
        raise Conflict(f"A user with email {email!r} exists already")


async def create_user(session: AsyncSession, actor: Actor, data: UserCreate) -> UserRead:
    actor.ensure_admin()
    await _email_taken(session, actor, data.email)
    await _check_department(session, actor, data.department_id)
    now = datetime.now(UTC)
    user = User(
        workspace_id=actor.workspace_id,
        name=data.name,
        email=data.email,
        tier=data.tier,
        capacity=data.capacity,
        timezone=data.timezone,
        active=data.active,
        department_id=data.department_id,
        password_hash=await hash_password(data.password) if data.password else None,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent create with the same email
        raise Conflict(f"A user with email {data.email!r} exists already") from exc
    if data.role_ids:
        await set_user_roles(session, actor, user, data.role_ids)
    await access_changed(session, actor.workspace_id)  # this process's next request knows the new user
    return (await _reads(session, actor, [user]))[0]


async def get_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> UserRead:
    return (await _reads(session, actor, [await _get(session, actor, user_id)]))[0]


async def get_users(session: AsyncSession, actor: Actor, user_ids: Sequence[uuid.UUID]) -> list[UserRead]:
    """Users by id (unknown ids left out), with their loads: two queries for any number of ids."""
    if not user_ids:
        return []
    users = list(
        await session.scalars(select(User).where(User.workspace_id == actor.workspace_id, User.id.in_(set(user_ids))))
    )
    return await _reads(session, actor, users)


async def list_users(
    session: AsyncSession, actor: Actor, *, tier: UserTier | None = None, active: bool | None = None
) -> list[UserRead]:
    statement = select(User).where(User.workspace_id == actor.workspace_id).order_by(User.name, User.id)
    if tier is not None:
        statement = statement.where(User.tier == tier)
    if active is not None:
        statement = statement.where(User.active == active)
    users = list(await session.scalars(statement))
    return await _reads(session, actor, users)


async def update_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID, data: UserUpdate) -> UserRead:
    actor.ensure_admin()
    user = await _get(session, actor, user_id)
    changes = data.model_dump(exclude_unset=True)
    role_ids = changes.pop("role_ids", None)
    password = changes.pop("password", None)
    if "department_id" in changes:
        await _check_department(session, actor, changes["department_id"])
    if password is not None:
        user.password_hash = await hash_password(password)
    for name in ("name", "tier", "capacity", "timezone", "active", "email"):
        if changes.get(name) is None and name in changes:
            changes.pop(name)  # these columns cannot be cleared
    if "email" in changes:
        await _email_taken(session, actor, changes["email"], other_than=user.id)
    for name, value in changes.items():
        setattr(user, name, value)
    user.updated_at = datetime.now(UTC)
    await session.flush()
    if password is not None or changes.get("active") is False:
        await revoke_user_sessions(session, user.id)  # a new password or a deactivation ends every login
    if "active" in changes or "department_id" in changes:
        await access_changed(session, actor.workspace_id)
    if role_ids is not None:
        await set_user_roles(session, actor, user, role_ids)
    return (await _reads(session, actor, [user]))[0]


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
    await access_changed(session, actor.workspace_id)


# Plain SQL: every create and update with an assignee asks, and building the statement cost as much as running it.
ASSIGNEES_SQL = "SELECT id FROM users WHERE workspace_id = $1 AND id = ANY($2::uuid[])"


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
    connection = await session_connection(session)
    rows = await connection.fetch(ASSIGNEES_SQL, workspace_id, list({u for _, u in wanted}))
    found = {row[0] for row in rows}
    for path, user_id in wanted:
        if user_id not in found:
            errors.add(path, f"user {user_id} not found in this workspace")
