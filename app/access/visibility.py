"""What a person may see besides elements: the configuration around the types they may read, and the logs.

Element permissions (app.access.permissions) say which elements someone may read. Around them:

- A type's configuration (the type itself, its fields, pipelines and stages, its rules, scoring models, routing
  policies, relations and imports) is shown to whoever may read some of its elements, or may change configuration
  (level admin or editor). Someone with no grant on a type does not learn it exists: lists leave it out, a read of
  it is 404, as for a type that does not exist.
- Logs that carry data of any element (automation runs and their webhook deliveries, webhook subscriptions and
  their deliveries, everyone's notifications) are shown to the roles that read every element: the built-in admin,
  editor and viewer. Others are refused them (a list is 403, one of them 404).
- Tasks: the built-in roles see them all; anyone else the tasks assigned to them and those on elements they may read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.permissions import Scope
from app.auth.models import Role
from app.errors import Forbidden, NotFound

if TYPE_CHECKING:
    from app.auth.actor import Actor
    from app.entity_types.meta import TypeMeta


def configures(actor: Actor) -> bool:
    """Whether the actor's level lets them change configuration (and so see all of it)."""
    return actor.role in (Role.admin, Role.editor)


def sees_type(actor: Actor, type_id: uuid.UUID, type_code: str) -> bool:
    return configures(actor) or actor.grants.on(type_id, type_code).can_read_any()


def ensure_sees_type(actor: Actor, type_id: uuid.UUID, type_code: str, not_found: str) -> None:
    """NotFound (`not_found`, the same answer as for something missing) unless the actor may see the type."""
    if not sees_type(actor, type_id, type_code):
        raise NotFound(not_found)


def reads_everything(actor: Actor) -> bool:
    """Whether one of the actor's roles reads every element of every type: the built-in ones do, custom ones never
    (their grants name the types they cover)."""
    grants = actor.grants
    return grants.full or any(role.other_types["read"] is Scope.all for role in grants.roles)


def ensure_reads_logs(actor: Actor, what: str) -> None:
    """For a list of a log that holds data of any element: 403 for a role that does not read every element."""
    if not reads_everything(actor):
        raise Forbidden(f"Your role may not read {what}: they carry data of elements of every type")


def readable_elements(actor: Actor, metas: Iterable[TypeMeta]) -> ColumnElement[bool]:
    """The elements the actor may read, as a condition on `elements` (the read scope of app.readmodel.compiler, for
    the side tables that point at elements: tasks…)."""
    from app.elements.models import Element

    if actor.grants.full:
        return true()
    parts: list[ColumnElement[bool]] = []
    for meta in metas:
        access = actor.on(meta)
        groups = access.read_groups(meta.pipelines)
        if groups is None:
            parts.append(Element.entity_type_id == meta.id)
            continue
        for group in groups:
            conditions: list[ColumnElement[bool]] = [Element.entity_type_id == meta.id]
            if not group.every_pipeline:
                pipelines: list[ColumnElement[bool]] = []
                if group.pipeline_ids:
                    pipelines.append(Element.pipeline_id.in_(group.pipeline_ids))
                if group.no_pipeline:
                    pipelines.append(Element.pipeline_id.is_(None))
                if not pipelines:
                    continue
                conditions.append(or_(*pipelines))
            owners = access.owner_ids(group.scope)
            if owners is not None:
                conditions.append(or_(Element.assigned_to.in_(owners), Element.created_by.in_(owners)))
            parts.append(and_(*conditions))
    return or_(*parts) if parts else false()


async def workspace_metas(session: AsyncSession, workspace_id: uuid.UUID) -> list[TypeMeta]:
    """Every type's metadata (from the per-process cache while nothing changed)."""
    from app.elements.meta_cache import cached_type_meta
    from app.entity_types.models import EntityType

    type_ids = await session.scalars(select(EntityType.id).where(EntityType.workspace_id == workspace_id))
    return [await cached_type_meta(session, workspace_id, type_id) for type_id in type_ids]
