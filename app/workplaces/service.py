"""Workplaces: sections of entity types a frontend shows as its menu, each for the roles chosen (empty: all).

An admin sees and manages every workplace. Anyone else sees the workplaces open to one of their roles, each with only
the entity types they may read; a workplace left with none of its types is not shown to them at all.
"""

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.models import AccessRole
from app.auth.actor import Actor
from app.auth.models import Role
from app.entity_types.models import EntityType
from app.errors import Conflict, ErrorCollector, NotFound
from app.kit.rows import workspace_row
from app.workplaces.models import Workplace
from app.workplaces.schemas import WorkplaceCreate, WorkplaceEntityType, WorkplaceRead, WorkplaceUpdate

TypeRow = tuple[uuid.UUID, str, str]  # id, code, title


def _sees_everything(actor: Actor) -> bool:
    return actor.role == Role.admin


def _role_ids(actor: Actor) -> set[uuid.UUID]:
    """The roles the actor acts with: a person's roles, or an API key's one."""
    return {role.id for role in actor.grants.roles}


async def _types(session: AsyncSession, workspace_id: uuid.UUID, ids: set[uuid.UUID]) -> dict[uuid.UUID, TypeRow]:
    if not ids:
        return {}
    rows = await session.execute(
        select(EntityType.id, EntityType.code, EntityType.title).where(
            EntityType.workspace_id == workspace_id, EntityType.id.in_(ids)
        )
    )
    return {row[0]: (row[0], row[1], row[2]) for row in rows}


def _read(actor: Actor, workplace: Workplace, types: dict[uuid.UUID, TypeRow]) -> WorkplaceRead | None:
    """The workplace as the actor sees it, or None when it is not theirs to see."""
    shown = [types[type_id] for type_id in workplace.entity_type_ids if type_id in types]
    if not _sees_everything(actor):
        if workplace.role_ids and not set(workplace.role_ids) & _role_ids(actor):
            return None
        readable = [t for t in shown if actor.grants.on(t[0], t[1]).can_read_any()]
        if shown and not readable:
            return None
        shown = readable
    return WorkplaceRead(
        id=workplace.id,
        name=workplace.name,
        description=workplace.description,
        sort=workplace.sort,
        entity_types=[WorkplaceEntityType(id=i, code=code, title=title) for i, code, title in shown],
        role_ids=list(workplace.role_ids),
        created_at=workplace.created_at,
        updated_at=workplace.updated_at,
    )


async def _reads(session: AsyncSession, actor: Actor, workplaces: list[Workplace]) -> list[WorkplaceRead]:
    types = await _types(session, actor.workspace_id, {t for w in workplaces for t in w.entity_type_ids})
    return [read for w in workplaces if (read := _read(actor, w, types)) is not None]


async def _get(session: AsyncSession, actor: Actor, workplace_id: uuid.UUID) -> Workplace:
    return await workspace_row(session, Workplace, actor.workspace_id, workplace_id, "Workplace")


async def list_workplaces(session: AsyncSession, actor: Actor) -> list[WorkplaceRead]:
    workplaces = list(
        await session.scalars(
            select(Workplace)
            .where(Workplace.workspace_id == actor.workspace_id)
            .order_by(Workplace.sort, Workplace.name, Workplace.id)
        )
    )
    return await _reads(session, actor, workplaces)


async def get_workplace(session: AsyncSession, actor: Actor, workplace_id: uuid.UUID) -> WorkplaceRead:
    reads = await _reads(session, actor, [await _get(session, actor, workplace_id)])
    if not reads:  # one the caller may not see does not exist for them
        raise NotFound(f"Workplace {workplace_id} not found")
    return reads[0]


def _as_id(ref: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(ref)
    except ValueError:
        return None


async def _type_ids(session: AsyncSession, actor: Actor, refs: list[str], errors: ErrorCollector) -> list[uuid.UUID]:
    """Codes or ids of the workspace's types, as ids in the order given (repeats dropped)."""
    if not refs:
        return []
    ids = {i for i in map(_as_id, refs) if i is not None}
    rows = await session.execute(
        select(EntityType.id, EntityType.code).where(
            EntityType.workspace_id == actor.workspace_id,
            EntityType.code.in_(refs) | EntityType.id.in_(ids),
        )
    )
    by_ref: dict[str, uuid.UUID] = {}
    for row_id, code in rows:
        by_ref[code] = row_id
        by_ref[str(row_id)] = row_id
    found: list[uuid.UUID] = []
    for i, ref in enumerate(refs):
        as_id = _as_id(ref)
        type_id = by_ref.get(ref) or (by_ref.get(str(as_id)) if as_id else None)
        if type_id is None:
            errors.add(f"entity_types[{i}]", f"entity type {ref!r} not found")
        elif type_id not in found:
            found.append(type_id)
    return found


async def _checked_role_ids(
    session: AsyncSession, actor: Actor, role_ids: list[uuid.UUID], errors: ErrorCollector
) -> list[uuid.UUID]:
    known = set(
        await session.scalars(
            select(AccessRole.id).where(AccessRole.workspace_id == actor.workspace_id, AccessRole.id.in_(role_ids))
        )
    )
    for i, role_id in enumerate(role_ids):
        if role_id not in known:
            errors.add(f"role_ids[{i}]", f"role {role_id} not found in this workspace")
    return list(dict.fromkeys(role_ids))


async def _name_taken(session: AsyncSession, actor: Actor, name: str, other_than: uuid.UUID | None = None) -> None:
    statement = select(Workplace.id).where(
        Workplace.workspace_id == actor.workspace_id, func.lower(Workplace.name) == name.lower()
    )
    if other_than is not None:
        statement = statement.where(Workplace.id != other_than)
    if await session.scalar(statement) is not None:
        raise Conflict(f"A workplace named {name!r} exists already")


async def _flush(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent write with the same name
        raise Conflict(f"A workplace named {name!r} exists already") from exc


async def create_workplace(session: AsyncSession, actor: Actor, data: WorkplaceCreate) -> WorkplaceRead:
    actor.ensure_admin()
    errors = ErrorCollector()
    type_ids = await _type_ids(session, actor, data.entity_types, errors)
    role_ids = await _checked_role_ids(session, actor, data.role_ids, errors)
    errors.raise_if_any()
    await _name_taken(session, actor, data.name)
    now = datetime.now(UTC)
    workplace = Workplace(
        workspace_id=actor.workspace_id,
        name=data.name,
        description=data.description,
        sort=data.sort,
        entity_type_ids=type_ids,
        role_ids=role_ids,
        created_at=now,
        updated_at=now,
    )
    session.add(workplace)
    await _flush(session, data.name)
    return (await _reads(session, actor, [workplace]))[0]


async def update_workplace(
    session: AsyncSession, actor: Actor, workplace_id: uuid.UUID, data: WorkplaceUpdate
) -> WorkplaceRead:
    actor.ensure_admin()
    workplace = await _get(session, actor, workplace_id)
    errors = ErrorCollector()
    type_ids = await _type_ids(session, actor, data.entity_types, errors) if data.entity_types is not None else None
    role_ids = await _checked_role_ids(session, actor, data.role_ids, errors) if data.role_ids is not None else None
    errors.raise_if_any()
    if data.name is not None and data.name != workplace.name:
        await _name_taken(session, actor, data.name, other_than=workplace.id)
        workplace.name = data.name
    if data.description is not None:
        workplace.description = data.description
    if data.sort is not None:
        workplace.sort = data.sort
    if type_ids is not None:
        workplace.entity_type_ids = type_ids
    if role_ids is not None:
        workplace.role_ids = role_ids
    workplace.updated_at = datetime.now(UTC)
    await _flush(session, workplace.name)
    return (await _reads(session, actor, [workplace]))[0]


async def delete_workplace(session: AsyncSession, actor: Actor, workplace_id: uuid.UUID) -> None:
    actor.ensure_admin()
    await session.delete(await _get(session, actor, workplace_id))
    await session.flush()
