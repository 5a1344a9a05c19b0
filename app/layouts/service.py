"""Card layouts: which fields an entity type's card shows, in which named sections and order, per type and optionally
per pipeline and per role; and the card they resolve to for a pipeline, a person and an element.

A layout is presentation only: the fields it hides stay in the element API. The most specific layout wins: pipeline
and role, then pipeline, then role, then the type's own; with none, a generated card holds every field in one
section. Fields placed nowhere (added after the layout was saved) show in its default section; fields deleted since
are dropped when read; fields the reader's roles hide (field rules) are left out.

Everyone who may see the type reads its layouts and cards; whoever may change the type's fields changes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.models import AccessRole
from app.access.visibility import ensure_sees_type
from app.auth.actor import Actor
from app.elements import service as element_service
from app.elements.meta_cache import cached_type_meta
from app.elements.schemas import ElementRead
from app.entity_types.meta import TypeMeta
from app.errors import Conflict, ErrorCollector, NotFound
from app.layouts.models import CardLayout
from app.layouts.schemas import (
    MAX_LAYOUTS_PER_TYPE,
    SYSTEM_HEAD,
    SYSTEM_TAIL,
    CardField,
    CardRead,
    CardSection,
    ElementCardField,
    ElementCardRead,
    ElementCardSection,
    LayoutCreate,
    LayoutRead,
    LayoutSection,
    LayoutSectionRead,
    LayoutUpdate,
)

GENERATED_NAME = "Generated"
GENERATED_SECTION = ("main", "Main")


@dataclass(frozen=True)
class CardSource:
    """What resolving a type's cards needs: its metadata and its layouts (one query for any number of cards)."""

    meta: TypeMeta
    layouts: list[CardLayout]


# --- the fields a card can show ---------------------------------------------------------------------------------


def card_fields(meta: TypeMeta) -> dict[str, CardField]:
    """Every field the type's card can show now, in the order of a generated card: the system fields its settings
    turn on (title, stage, responsible…), its custom fields in their order, then the timestamps."""
    settings = meta.settings

    def system(fields: dict[str, Any]) -> dict[str, CardField]:
        return {
            code: CardField(code=code, title=spec.title, type=spec.type, system=True)
            for code, spec in fields.items()
            if spec.flag is None or getattr(settings, spec.flag)
        }

    custom = {
        code: CardField(code=code, title=f.row.label or code, type=f.row.type, system=False)
        for code, f in meta.fields.items()
    }
    return {**system(SYSTEM_HEAD), **custom, **system(SYSTEM_TAIL)}


def _stored_sections(layout: CardLayout, shown: Collection[str]) -> list[LayoutSectionRead]:
    """The layout's sections as saved, without the codes no longer among `shown` (deleted fields)."""
    return [
        LayoutSectionRead(
            code=s["code"],
            title=s["title"],
            fields=[c for c in s["fields"] if c in shown],
            default=bool(s.get("default")),
        )
        for s in layout.sections
    ]


# --- resolving a card -------------------------------------------------------------------------------------------


def role_ids(actor: Actor) -> frozenset[uuid.UUID]:
    """The roles the actor acts with: a person's roles, or an API key's one."""
    return frozenset(role.id for role in actor.grants.roles)


def choose(
    layouts: Iterable[CardLayout], pipeline_id: uuid.UUID | None, roles: Collection[uuid.UUID]
) -> CardLayout | None:
    """The most specific layout that applies: pipeline and role, pipeline, role, the type's own. Among layouts of
    several roles the actor holds, the oldest wins."""
    applying = [
        layout
        for layout in layouts
        if (layout.pipeline_id is None or layout.pipeline_id == pipeline_id)
        and (layout.role_id is None or layout.role_id in roles)
    ]
    if not applying:
        return None
    return min(
        applying,
        key=lambda layout: (
            -(2 * (layout.pipeline_id is not None) + (layout.role_id is not None)),
            layout.created_at,
            layout.id,
        ),
    )


def resolve(
    meta: TypeMeta, layout: CardLayout | None, pipeline_id: uuid.UUID | None, hidden_by_role: Collection[str]
) -> CardRead:
    """The card a layout (or the generated one, for None) gives, for a reader whose roles hide `hidden_by_role`."""
    fields = card_fields(meta)
    if layout is None:
        code, title = GENERATED_SECTION
        sections = [LayoutSectionRead(code=code, title=title, fields=list(fields), default=True)]
        kept_off: set[str] = set()
    else:
        sections = _stored_sections(layout, fields)
        kept_off = set(layout.hidden)
        placed = {c for s in sections for c in s.fields} | kept_off
        default = next((s for s in sections if s.default), sections[0])
        default.fields.extend(c for c in fields if c not in placed)
    left_out = kept_off | set(hidden_by_role)
    shown = [
        CardSection(code=s.code, title=s.title, fields=[fields[c] for c in s.fields if c not in left_out])
        for s in sections
    ]
    return CardRead(
        entity_type=meta.code,
        pipeline_id=pipeline_id,
        layout_id=layout.id if layout else None,
        layout_name=layout.name if layout else GENERATED_NAME,
        sections=[s for s in shown if s.fields],
    )


def card_for(source: CardSource, actor: Actor, pipeline_id: uuid.UUID | None) -> CardRead:
    """The type's card for elements of `pipeline_id` (none: the layouts of no pipeline) as the actor sees it."""
    if pipeline_id is not None and pipeline_id not in source.meta.pipelines:
        raise NotFound(f"Pipeline {pipeline_id} not found on entity type {source.meta.code!r}")
    return _card(source, actor, pipeline_id)


def _card(source: CardSource, actor: Actor, pipeline_id: uuid.UUID | None) -> CardRead:
    layout = choose(source.layouts, pipeline_id, role_ids(actor))
    return resolve(source.meta, layout, pipeline_id, actor.on(source.meta).hidden)


def element_card(source: CardSource, actor: Actor, element: ElementRead) -> ElementCardRead:
    """The element's card with its values (`element` as the actor reads it: hidden values are not in it)."""
    card = _card(source, actor, element.pipeline_id)
    data = element.model_dump(mode="json")
    values: dict[str, Any] = data["values"]

    def value(field: CardField) -> Any:
        return data.get(field.code) if field.system else values.get(field.code)

    return ElementCardRead(
        element_id=element.id,
        entity_type=card.entity_type,
        pipeline_id=card.pipeline_id,
        layout_id=card.layout_id,
        layout_name=card.layout_name,
        sections=[
            ElementCardSection(
                code=s.code,
                title=s.title,
                fields=[ElementCardField(**f.model_dump(), value=value(f)) for f in s.fields],
            )
            for s in card.sections
        ],
    )


async def _layouts_of(session: AsyncSession, workspace_id: uuid.UUID, type_ids: list[uuid.UUID]) -> list[CardLayout]:
    return list(
        await session.scalars(
            select(CardLayout)
            .where(CardLayout.workspace_id == workspace_id, CardLayout.entity_type_id.in_(type_ids))
            .order_by(CardLayout.created_at, CardLayout.id)
        )
    )


async def _seen_meta(session: AsyncSession, actor: Actor, type_ref: str) -> TypeMeta:
    meta = await cached_type_meta(session, actor.workspace_id, type_ref)
    ensure_sees_type(actor, meta.id, meta.code, f"Entity type {type_ref!r} not found")
    return meta


async def card_sources(session: AsyncSession, actor: Actor, type_refs: list[str]) -> dict[str, CardSource]:
    """The card sources of several types the actor may see (codes or ids), their layouts in one query; the others
    are missing from the answer (GraphQL DataLoaders)."""
    metas: dict[str, TypeMeta] = {}
    for ref in dict.fromkeys(type_refs):
        try:
            metas[ref] = await _seen_meta(session, actor, ref)
        except NotFound:
            continue
    layouts = await _layouts_of(session, actor.workspace_id, list({m.id for m in metas.values()}))
    return {
        ref: CardSource(meta, [layout for layout in layouts if layout.entity_type_id == meta.id])
        for ref, meta in metas.items()
    }


async def _source(session: AsyncSession, actor: Actor, type_ref: str) -> CardSource:
    meta = await _seen_meta(session, actor, type_ref)
    return CardSource(meta, await _layouts_of(session, actor.workspace_id, [meta.id]))


async def effective_card(session: AsyncSession, actor: Actor, type_ref: str, pipeline_id: uuid.UUID | None) -> CardRead:
    return card_for(await _source(session, actor, type_ref), actor, pipeline_id)


async def get_element_card(session: AsyncSession, actor: Actor, element_id: uuid.UUID) -> ElementCardRead:
    """An element's card: its type's card for its pipeline and the actor's roles, with its values."""
    element = await element_service.get_element(session, actor, element_id)
    return element_card(await _source(session, actor, element.entity_type), actor, element)


# --- reading and changing layouts -------------------------------------------------------------------------------


def _read(meta: TypeMeta, layout: CardLayout) -> LayoutRead:
    shown = card_fields(meta)
    return LayoutRead(
        id=layout.id,
        entity_type=meta.code,
        name=layout.name,
        pipeline_id=layout.pipeline_id,
        role_id=layout.role_id,
        sections=_stored_sections(layout, shown),
        hidden=[c for c in layout.hidden if c in shown],
        created_at=layout.created_at,
        updated_at=layout.updated_at,
    )


async def list_layouts(session: AsyncSession, actor: Actor, type_ref: str) -> list[LayoutRead]:
    source = await _source(session, actor, type_ref)
    return [_read(source.meta, layout) for layout in source.layouts]


async def _layout_of(session: AsyncSession, actor: Actor, meta: TypeMeta, layout_id: uuid.UUID) -> CardLayout:
    layout = await session.scalar(
        select(CardLayout).where(
            CardLayout.workspace_id == actor.workspace_id,
            CardLayout.entity_type_id == meta.id,
            CardLayout.id == layout_id,
        )
    )
    if layout is None:
        raise NotFound(f"Layout {layout_id} not found on entity type {meta.code!r}")
    return layout


async def get_layout(session: AsyncSession, actor: Actor, type_ref: str, layout_id: uuid.UUID) -> LayoutRead:
    meta = await _seen_meta(session, actor, type_ref)
    return _read(meta, await _layout_of(session, actor, meta, layout_id))


async def _check_scope(
    session: AsyncSession,
    actor: Actor,
    meta: TypeMeta,
    pipeline_id: uuid.UUID | None,
    role_id: uuid.UUID | None,
    errors: ErrorCollector,
) -> None:
    if pipeline_id is not None and pipeline_id not in meta.pipelines:
        errors.add("pipeline_id", f"pipeline {pipeline_id} not found on entity type {meta.code!r}")
    if role_id is not None:
        known = await session.scalar(
            select(AccessRole.id).where(AccessRole.workspace_id == actor.workspace_id, AccessRole.id == role_id)
        )
        if known is None:
            errors.add("role_id", f"role {role_id} not found in this workspace")


def _check_fields(meta: TypeMeta, sections: list[LayoutSection], hidden: list[str], errors: ErrorCollector) -> None:
    """Every code a field of the type, each placed once (in a section or among the hidden); section codes unique,
    at most one default section."""
    known = card_fields(meta)
    unknown: list[str] = []
    placed: dict[str, str] = {}
    twice: list[str] = []

    def place(code: str, where: str) -> None:
        if code not in known:
            unknown.append(code)
            errors.add(where, f"{code!r} is no field of entity type {meta.code!r}")
        elif code in placed:
            twice.append(code)
            errors.add(where, f"{code!r} is placed twice (first at {placed[code]})")
        else:
            placed[code] = where

    section_codes: dict[str, int] = {}
    defaults = 0
    for i, section in enumerate(sections):
        if section.code in section_codes:
            errors.add(f"sections[{i}].code", f"section code {section.code!r} is used twice")
        section_codes.setdefault(section.code, i)
        if section.default:
            defaults += 1
            if defaults > 1:
                errors.add(f"sections[{i}].default", "only one section can be the default one")
        for j, code in enumerate(section.fields):
            place(code, f"sections[{i}].fields[{j}]")
    for k, code in enumerate(hidden):
        place(code, f"hidden[{k}]")


def _section_rows(sections: list[LayoutSection]) -> list[dict[str, Any]]:
    return [s.model_dump() for s in sections]


async def _flush(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent write of a layout for the same scope
        raise Conflict("A layout for this pipeline and role exists already") from exc


async def _scope_taken(
    session: AsyncSession,
    meta: TypeMeta,
    pipeline_id: uuid.UUID | None,
    role_id: uuid.UUID | None,
    other_than: uuid.UUID | None = None,
) -> None:
    statement = select(CardLayout.id).where(
        CardLayout.workspace_id == meta.entity_type.workspace_id,
        CardLayout.entity_type_id == meta.id,
        CardLayout.pipeline_id.is_(None) if pipeline_id is None else CardLayout.pipeline_id == pipeline_id,
        CardLayout.role_id.is_(None) if role_id is None else CardLayout.role_id == role_id,
    )
    if other_than is not None:
        statement = statement.where(CardLayout.id != other_than)
    taken = await session.scalar(statement)
    if taken is not None:
        raise Conflict(f"Layout {taken} is already the one for this pipeline and role: change it instead")


async def _writable_meta(session: AsyncSession, actor: Actor, type_ref: str) -> TypeMeta:
    """The type, for someone who may change its configuration (as its fields)."""
    actor.ensure_can_write()
    return await cached_type_meta(session, actor.workspace_id, type_ref)


async def create_layout(session: AsyncSession, actor: Actor, type_ref: str, data: LayoutCreate) -> LayoutRead:
    meta = await _writable_meta(session, actor, type_ref)
    errors = ErrorCollector()
    await _check_scope(session, actor, meta, data.pipeline_id, data.role_id, errors)
    _check_fields(meta, data.sections, data.hidden, errors)
    errors.raise_if_any("The layout is not valid")
    await _scope_taken(session, meta, data.pipeline_id, data.role_id)
    count = await session.scalar(
        select(func.count()).select_from(CardLayout).where(CardLayout.entity_type_id == meta.id)
    )
    if (count or 0) >= MAX_LAYOUTS_PER_TYPE:
        raise Conflict(f"Entity type {meta.code!r} has {MAX_LAYOUTS_PER_TYPE} layouts: delete one first")
    now = datetime.now(UTC)
    layout = CardLayout(
        workspace_id=actor.workspace_id,
        entity_type_id=meta.id,
        pipeline_id=data.pipeline_id,
        role_id=data.role_id,
        name=data.name,
        sections=_section_rows(data.sections),
        hidden=list(data.hidden),
        created_at=now,
        updated_at=now,
    )
    session.add(layout)
    await _flush(session)
    return _read(meta, layout)


async def update_layout(
    session: AsyncSession, actor: Actor, type_ref: str, layout_id: uuid.UUID, data: LayoutUpdate
) -> LayoutRead:
    meta = await _writable_meta(session, actor, type_ref)
    layout = await _layout_of(session, actor, meta, layout_id)
    changes = data.model_fields_set
    pipeline_id = data.pipeline_id if "pipeline_id" in changes else layout.pipeline_id
    role_id = data.role_id if "role_id" in changes else layout.role_id
    current = _read(meta, layout)
    sections = (
        data.sections
        if data.sections is not None
        else [LayoutSection.model_validate(s.model_dump()) for s in current.sections]
    )
    hidden = data.hidden if data.hidden is not None else current.hidden
    errors = ErrorCollector()
    if {"pipeline_id", "role_id"} & changes:
        await _check_scope(session, actor, meta, pipeline_id, role_id, errors)
    _check_fields(meta, sections, hidden, errors)
    errors.raise_if_any("The layout is not valid")
    if (pipeline_id, role_id) != (layout.pipeline_id, layout.role_id):
        await _scope_taken(session, meta, pipeline_id, role_id, other_than=layout.id)
    layout.pipeline_id, layout.role_id = pipeline_id, role_id
    if data.name is not None:
        layout.name = data.name
    layout.sections = _section_rows(sections)
    layout.hidden = list(hidden)
    layout.updated_at = datetime.now(UTC)
    await _flush(session)
    return _read(meta, layout)


async def delete_layout(session: AsyncSession, actor: Actor, type_ref: str, layout_id: uuid.UUID) -> None:
    meta = await _writable_meta(session, actor, type_ref)
    await session.delete(await _layout_of(session, actor, meta, layout_id))
    await session.flush()
