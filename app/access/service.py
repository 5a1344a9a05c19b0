"""Roles: the built-in three every workspace has, the workspace's own, and who holds them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.models import AccessRole, UserRole
from app.access.permissions import ACTIONS
from app.access.schemas import (
    FieldRule,
    FieldRuleIn,
    Grant,
    GrantIn,
    RoleCreate,
    RoleRead,
    RoleUpdate,
    StageRule,
    StageRuleIn,
)
from app.access.snapshot import access_changed
from app.auth.models import ApiKey, Role
from app.entity_types.meta import TypeMeta, get_type_meta
from app.entity_types.models import EntityType
from app.errors import Conflict, ErrorCollector, FieldError, Forbidden, Invalid, NotFound
from app.kit.rows import workspace_row
from app.pipelines.models import Pipeline, Stage
from app.users.models import User

if TYPE_CHECKING:
    from app.auth.actor import Actor


async def ensure_builtin_roles(session: AsyncSession, workspace_id: uuid.UUID) -> dict[Role, AccessRole]:
    rows = {
        r.level: r
        for r in await session.scalars(
            select(AccessRole).where(AccessRole.workspace_id == workspace_id, AccessRole.builtin.is_(True))
        )
    }
    for level in Role:
        if level not in rows:
            rows[level] = AccessRole(
                workspace_id=workspace_id,
                name=level.value,
                builtin=True,
                level=level,
                description=BUILTIN_DESCRIPTIONS[level],
                permissions={},
            )
            session.add(rows[level])
    await session.flush()
    return rows


BUILTIN_DESCRIPTIONS = {
    Role.admin: "Everything, including keys, users and roles",
    Role.editor: "Every element action and the configuration of types, pipelines and rules",
    Role.viewer: "Reads and exports everything, changes nothing",
}


async def find_role(session: AsyncSession, workspace_id: uuid.UUID, ref: Role | str | uuid.UUID) -> AccessRole:
    """A role of the workspace by id or name (`admin`, `editor`, `viewer` are always there)."""
    match = AccessRole.id == ref if isinstance(ref, uuid.UUID) else AccessRole.name == str(ref)
    role = await session.scalar(select(AccessRole).where(AccessRole.workspace_id == workspace_id, match))
    if role is None and isinstance(ref, Role | str) and str(ref) in Role.__members__:
        role = (await ensure_builtin_roles(session, workspace_id))[Role(str(ref))]
    if role is None:
        raise Invalid(f"Role {str(ref)!r} not found", errors=[FieldError("role", "no such role in this workspace")])
    return role


# --- reading ---------------------------------------------------------------------------------------------------


async def _type_codes(session: AsyncSession, workspace_id: uuid.UUID) -> dict[str, str]:
    rows = await session.execute(select(EntityType.id, EntityType.code).where(EntityType.workspace_id == workspace_id))
    return {str(type_id): code for type_id, code in rows}


def _read(role: AccessRole, codes: dict[str, str]) -> RoleRead:
    stored: dict[str, Any] = role.permissions or {}
    return RoleRead(
        id=role.id,
        name=role.name,
        description=role.description,
        builtin=role.builtin,
        level=role.level,
        grants=[
            Grant(entity_type=codes.get(g["entity_type_id"], g["entity_type_id"]), **g)
            for g in stored.get("grants", [])
            if g["entity_type_id"] in codes
        ],
        stage_rules=[StageRule(**r) for r in stored.get("stages", []) if r["entity_type_id"] in codes],
        field_rules=[
            FieldRule(entity_type=codes[r["entity_type_id"]], **r)
            for r in stored.get("fields", [])
            if r["entity_type_id"] in codes
        ],
        created_at=role.created_at,
        updated_at=role.updated_at,
    )


async def _get(session: AsyncSession, actor: Actor, role_id: uuid.UUID) -> AccessRole:
    return await workspace_row(session, AccessRole, actor.workspace_id, role_id, "Role")


async def list_roles(session: AsyncSession, actor: Actor) -> list[RoleRead]:
    actor.ensure_admin()
    await ensure_builtin_roles(session, actor.workspace_id)
    roles = await session.scalars(
        select(AccessRole)
        .where(AccessRole.workspace_id == actor.workspace_id)
        .order_by(AccessRole.builtin.desc(), AccessRole.name)
    )
    codes = await _type_codes(session, actor.workspace_id)
    return [_read(role, codes) for role in roles]


async def get_role(session: AsyncSession, actor: Actor, role_id: uuid.UUID) -> RoleRead:
    actor.ensure_admin()
    return _read(await _get(session, actor, role_id), await _type_codes(session, actor.workspace_id))


# --- writing ---------------------------------------------------------------------------------------------------


async def _metas(session: AsyncSession, actor: Actor, refs: set[str], errors: ErrorCollector) -> dict[str, TypeMeta]:
    found: dict[str, TypeMeta] = {}
    for ref in sorted(refs):
        try:
            found[ref] = await get_type_meta(session, actor.workspace_id, ref)
        except NotFound:
            errors.add("entity_type", f"entity type {ref!r} not found")
    return found


async def _permissions(
    session: AsyncSession, actor: Actor, data: RoleCreate | RoleUpdate, current: dict[str, Any]
) -> dict[str, Any]:
    """The stored form of a role's grants and rules, each reference checked against the workspace."""
    errors = ErrorCollector()
    refs = {g.entity_type for g in data.grants or []} | {r.entity_type for r in data.field_rules or []}
    metas = await _metas(session, actor, refs, errors)
    stored = dict(current)
    if data.grants is not None:
        stored["grants"] = _stored_grants(data.grants, metas, errors)
    if data.stage_rules is not None:
        stored["stages"] = await _stored_stage_rules(session, actor, data.stage_rules, errors)
    if data.field_rules is not None:
        stored["fields"] = _stored_field_rules(data.field_rules, metas, errors)
    errors.raise_if_any()
    return stored


def _stored_grants(grants: list[GrantIn], metas: dict[str, TypeMeta], errors: ErrorCollector) -> list[dict[str, Any]]:
    stored: list[dict[str, Any]] = []
    seen: set[tuple[uuid.UUID, uuid.UUID | None]] = set()
    for i, grant in enumerate(grants):
        meta = metas.get(grant.entity_type)
        if meta is None:
            continue
        if grant.pipeline_id is not None and grant.pipeline_id not in meta.pipelines:
            errors.add(f"grants[{i}].pipeline_id", f"pipeline {grant.pipeline_id} is not a pipeline of {meta.code}")
            continue
        if (meta.id, grant.pipeline_id) in seen:
            errors.add(f"grants[{i}]", "the same type and pipeline are granted twice")
        seen.add((meta.id, grant.pipeline_id))
        stored.append(_grant_json(meta.id, grant))
    return stored


async def _stored_stage_rules(
    session: AsyncSession, actor: Actor, rules: list[StageRuleIn], errors: ErrorCollector
) -> list[dict[str, Any]]:
    stages = {
        s.id: s
        for s in await session.scalars(
            select(Stage).where(Stage.workspace_id == actor.workspace_id, Stage.id.in_({r.stage_id for r in rules}))
        )
    }
    pipeline_types = await _pipeline_types(session, actor.workspace_id, {s.pipeline_id for s in stages.values()})
    stored = []
    for i, rule in enumerate(rules):
        stage = stages.get(rule.stage_id)
        if stage is None:
            errors.add(f"stage_rules[{i}].stage_id", f"stage {rule.stage_id} not found")
            continue
        stored.append(
            {
                "entity_type_id": str(pipeline_types[stage.pipeline_id]),
                "stage_id": str(stage.id),
                "move_into": rule.move_into,
            }
        )
    return stored


def _stored_field_rules(
    rules: list[FieldRuleIn], metas: dict[str, TypeMeta], errors: ErrorCollector
) -> list[dict[str, Any]]:
    stored = []
    for i, rule in enumerate(rules):
        meta = metas.get(rule.entity_type)
        if meta is None:
            continue
        if rule.field not in meta.fields:
            errors.add(f"field_rules[{i}].field", f"{meta.code} has no field {rule.field!r}")
            continue
        stored.append({"entity_type_id": str(meta.id), "field": rule.field, "access": rule.access})
    return stored


def _grant_json(type_id: uuid.UUID, grant: GrantIn) -> dict[str, Any]:
    scopes = grant.model_dump(by_alias=True, include={"read", "add", "update", "delete", "export", "import_"})
    return {
        "entity_type_id": str(type_id),
        "pipeline_id": str(grant.pipeline_id) if grant.pipeline_id else None,
        **{action: str(scopes[action]) for action in ACTIONS},
    }


async def _pipeline_types(
    session: AsyncSession, workspace_id: uuid.UUID, pipeline_ids: set[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    rows = await session.execute(
        select(Pipeline.id, Pipeline.entity_type_id).where(
            Pipeline.workspace_id == workspace_id, Pipeline.id.in_(pipeline_ids)
        )
    )
    return {row[0]: row[1] for row in rows}


async def _name_taken(session: AsyncSession, actor: Actor, name: str, other_than: uuid.UUID | None = None) -> None:
    statement = select(AccessRole.id).where(
        AccessRole.workspace_id == actor.workspace_id, func.lower(AccessRole.name) == name.lower()
    )
    if other_than is not None:
        statement = statement.where(AccessRole.id != other_than)
    if name.lower() in Role.__members__ or await session.scalar(statement) is not None:
        raise Conflict(f"A role named {name!r} exists already")


async def create_role(session: AsyncSession, actor: Actor, data: RoleCreate) -> RoleRead:
    actor.ensure_admin()
    await _name_taken(session, actor, data.name)
    now = datetime.now(UTC)
    role = AccessRole(
        workspace_id=actor.workspace_id,
        name=data.name,
        description=data.description,
        builtin=False,
        level=data.level,
        permissions=await _permissions(session, actor, data, {}),
        created_at=now,
        updated_at=now,
    )
    session.add(role)
    await session.flush()
    await access_changed(session, actor.workspace_id)
    return _read(role, await _type_codes(session, actor.workspace_id))


def _refuse_builtin(role: AccessRole) -> None:
    if role.builtin:
        raise Forbidden(f"The built-in role {role.name!r} cannot be changed or deleted")


async def update_role(session: AsyncSession, actor: Actor, role_id: uuid.UUID, data: RoleUpdate) -> RoleRead:
    actor.ensure_admin()
    role = await _get(session, actor, role_id)
    _refuse_builtin(role)
    if data.name is not None and data.name != role.name:
        await _name_taken(session, actor, data.name, other_than=role.id)
        role.name = data.name
    if data.description is not None:
        role.description = data.description
    if data.level is not None:
        role.level = data.level
    role.permissions = await _permissions(session, actor, data, role.permissions or {})
    role.updated_at = datetime.now(UTC)
    await session.flush()
    await access_changed(session, actor.workspace_id)
    return _read(role, await _type_codes(session, actor.workspace_id))


async def delete_role(session: AsyncSession, actor: Actor, role_id: uuid.UUID) -> None:
    """Refused while an active API key acts with the role; the users holding it lose it."""
    actor.ensure_admin()
    role = await _get(session, actor, role_id)
    _refuse_builtin(role)
    keys = await session.scalar(
        select(func.count()).select_from(ApiKey).where(ApiKey.role_id == role.id, ApiKey.revoked_at.is_(None))
    )
    if keys:
        raise Conflict(f"{keys} API keys act with this role: revoke them or give them another role first")
    await session.execute(delete(ApiKey).where(ApiKey.role_id == role.id))
    await session.delete(role)
    await session.flush()
    await access_changed(session, actor.workspace_id)


# --- who holds which role --------------------------------------------------------------------------------------


async def user_role_ids(session: AsyncSession, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    rows = await session.execute(select(UserRole.user_id, UserRole.role_id).where(UserRole.user_id.in_(user_ids)))
    held: dict[uuid.UUID, list[uuid.UUID]] = {user_id: [] for user_id in user_ids}
    for user_id, role_id in rows:
        held[user_id].append(role_id)
    return held


async def set_user_roles(session: AsyncSession, actor: Actor, user: User, role_ids: list[uuid.UUID]) -> None:
    """Replace the roles a user holds (ids of the workspace's roles)."""
    actor.ensure_admin()
    wanted = set(role_ids)
    found = set(
        await session.scalars(
            select(AccessRole.id).where(AccessRole.workspace_id == actor.workspace_id, AccessRole.id.in_(wanted))
        )
    )
    missing = wanted - found
    if missing:
        raise Invalid(
            "Unknown roles",
            errors=[FieldError("role_ids", f"role {role_id} not found in this workspace") for role_id in missing],
        )
    await session.execute(delete(UserRole).where(UserRole.user_id == user.id))
    for role_id in sorted(wanted):
        session.add(UserRole(user_id=user.id, role_id=role_id, workspace_id=actor.workspace_id))
    await session.flush()
    await access_changed(session, actor.workspace_id)


async def set_roles_of_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID, role_ids: list[uuid.UUID]) -> None:
    """`set_user_roles` for a user given by id: another workspace's user is not found."""
    actor.ensure_admin()
    user = await workspace_row(session, User, actor.workspace_id, user_id, "User")
    await set_user_roles(session, actor, user, role_ids)


async def close_new_pipeline(
    session: AsyncSession, entity_type_id: uuid.UUID, workspace_id: uuid.UUID, pipeline_id: uuid.UUID
) -> None:
    """The type does not open new pipelines to every role: each role with grants on the type gets none on it."""
    roles = list(
        await session.scalars(
            select(AccessRole).where(AccessRole.workspace_id == workspace_id, AccessRole.builtin.is_(False))
        )
    )
    for role in roles:
        stored = dict(role.permissions or {})
        grants = list(stored.get("grants", []))
        if not any(g["entity_type_id"] == str(entity_type_id) for g in grants):
            continue
        grants.append(
            {"entity_type_id": str(entity_type_id), "pipeline_id": str(pipeline_id), **dict.fromkeys(ACTIONS, "none")}
        )
        stored["grants"] = grants
        role.permissions = stored
    await session.flush()
    await access_changed(session, workspace_id)
