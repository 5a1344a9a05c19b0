import uuid
from datetime import UTC, datetime

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.access.visibility import sees_type
from app.auth.actor import Actor
from app.elements.models import Element
from app.elements.schemas import ElementRead
from app.elements.service import load_element_row, shown, to_read
from app.entity_types.meta import TypeMeta, get_entity_type, load_type_meta
from app.entity_types.models import EntityType
from app.errors import Conflict, FieldError, Invalid, NotFound
from app.outbox.service import record_event
from app.relations.models import ElementLink, Relation
from app.relations.schemas import LinkDirection, LinkRead, RelationCreate, RelationRead
from app.timeline.service import add_entry


def _relation_read(relation: Relation, codes: dict[uuid.UUID, str]) -> RelationRead:
    return RelationRead(
        id=relation.id,
        parent_type=codes[relation.parent_type_id],
        child_type=codes[relation.child_type_id],
        created_at=relation.created_at,
    )


async def _type_codes(session: AsyncSession, workspace_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = await session.execute(select(EntityType.id, EntityType.code).where(EntityType.workspace_id == workspace_id))
    return {row.id: row.code for row in rows}


async def create_relation(session: AsyncSession, actor: Actor, data: RelationCreate) -> RelationRead:
    actor.ensure_can_write()
    parent = await get_entity_type(session, actor.workspace_id, data.parent_type)
    child = await get_entity_type(session, actor.workspace_id, data.child_type)
    taken = await session.scalar(
        select(
            exists().where(
                Relation.workspace_id == actor.workspace_id,
                Relation.parent_type_id == parent.id,
                Relation.child_type_id == child.id,
            )
        )
    )
    if taken:
        raise Conflict(f"A relation {parent.code} -> {child.code} already exists")
    relation = Relation(workspace_id=actor.workspace_id, parent_type_id=parent.id, child_type_id=child.id)
    session.add(relation)
    await session.flush()
    await session.refresh(relation)
    record_event(session, actor.workspace_id, "relation.created", payload={"id": str(relation.id)})
    return _relation_read(relation, {parent.id: parent.code, child.id: child.code})


async def list_relations(session: AsyncSession, actor: Actor) -> list[RelationRead]:
    relations = await session.scalars(
        select(Relation).where(Relation.workspace_id == actor.workspace_id).order_by(Relation.created_at)
    )
    codes = await _type_codes(session, actor.workspace_id)
    return [
        _relation_read(r, codes)
        for r in relations
        if sees_type(actor, r.parent_type_id, codes[r.parent_type_id])
        and sees_type(actor, r.child_type_id, codes[r.child_type_id])
    ]


async def delete_relation(session: AsyncSession, actor: Actor, relation_id: uuid.UUID) -> None:
    actor.ensure_can_write()
    relation = await session.scalar(
        select(Relation).where(Relation.workspace_id == actor.workspace_id, Relation.id == relation_id)
    )
    if relation is None:
        raise NotFound("Relation not found")
    await session.delete(relation)
    await session.flush()
    record_event(session, actor.workspace_id, "relation.deleted", payload={"id": str(relation_id)})


async def _element(session: AsyncSession, actor: Actor, element_id: uuid.UUID, action: str = "read") -> Element:
    return await load_element_row(session, actor, element_id, action=action)


def _readable(actor: Actor, metas: dict[uuid.UUID, TypeMeta], elements: list[Element]) -> list[ElementRead]:
    """Linked elements as the actor may see them: the ones they may read, without hidden fields."""
    shown_reads = []
    for element in elements:
        access = actor.on(metas[element.entity_type_id])
        if access.may("read", element.pipeline_id, element.assigned_to, element.created_by):
            shown_reads.append(shown(to_read(element, metas[element.entity_type_id]), access))
    return shown_reads


async def link(session: AsyncSession, actor: Actor, parent_id: uuid.UUID, child_id: uuid.UUID) -> LinkRead:
    if parent_id == child_id:
        raise Invalid("An element cannot be linked to itself", errors=[FieldError("child_id", "is the element itself")])
    parent = await _element(session, actor, parent_id, "update")
    try:
        child = await _element(session, actor, child_id)
    except NotFound as exc:
        raise Invalid("The child element does not exist", errors=[FieldError("child_id", "not found")]) from exc
    relation = await session.scalar(
        select(Relation).where(
            Relation.workspace_id == actor.workspace_id,
            Relation.parent_type_id == parent.entity_type_id,
            Relation.child_type_id == child.entity_type_id,
        )
    )
    if relation is None:
        raise Conflict("No relation is declared between these entity types: create one with POST /relations first")
    if await session.scalar(
        select(exists().where(ElementLink.parent_id == parent.id, ElementLink.child_id == child.id))
    ):
        raise Conflict("These elements are already linked")
    link_row = ElementLink(
        parent_id=parent.id,
        child_id=child.id,
        relation_id=relation.id,
        workspace_id=actor.workspace_id,
        created_at=datetime.now(UTC),
    )
    session.add(link_row)
    add_entry(session, actor, "linked", element_id=parent.id, data={"child_id": str(child.id)})
    record_event(
        session,
        actor.workspace_id,
        "element.linked",
        entity_type_id=parent.entity_type_id,
        element_id=parent.id,
        payload={"element_id": str(parent.id), "parent_id": str(parent.id), "child_id": str(child.id)},
    )
    await session.flush()
    return LinkRead(parent_id=parent.id, child_id=child.id, relation_id=relation.id, created_at=link_row.created_at)


async def unlink(session: AsyncSession, actor: Actor, parent_id: uuid.UUID, child_id: uuid.UUID) -> None:
    parent = await _element(session, actor, parent_id, "update")
    link_row = await session.scalar(
        select(ElementLink).where(
            ElementLink.workspace_id == actor.workspace_id,
            ElementLink.parent_id == parent.id,
            ElementLink.child_id == child_id,
        )
    )
    if link_row is None:
        raise NotFound("Link not found")
    await session.delete(link_row)
    add_entry(session, actor, "unlinked", element_id=parent.id, data={"child_id": str(child_id)})
    record_event(
        session,
        actor.workspace_id,
        "element.unlinked",
        entity_type_id=parent.entity_type_id,
        element_id=parent.id,
        payload={"element_id": str(parent.id), "parent_id": str(parent.id), "child_id": str(child_id)},
    )
    await session.flush()


async def linked_elements(
    session: AsyncSession,
    actor: Actor,
    element_id: uuid.UUID,
    *,
    direction: LinkDirection,
    type_ref: str | None,
    limit: int,
) -> list[ElementRead]:
    await _element(session, actor, element_id)
    other = aliased(Element)
    if direction == "children":
        statement = (
            select(other).join(ElementLink, ElementLink.child_id == other.id).where(ElementLink.parent_id == element_id)
        )
    else:
        statement = (
            select(other).join(ElementLink, ElementLink.parent_id == other.id).where(ElementLink.child_id == element_id)
        )
    statement = statement.where(ElementLink.workspace_id == actor.workspace_id, other.deleted_at.is_(None))
    if type_ref:
        entity_type = await get_entity_type(session, actor.workspace_id, type_ref)
        statement = statement.where(other.entity_type_id == entity_type.id)
    elements = list(await session.scalars(statement.order_by(ElementLink.created_at, other.id).limit(limit)))
    metas = {}
    for type_id in {e.entity_type_id for e in elements}:
        entity_type = await get_entity_type(session, actor.workspace_id, str(type_id))
        metas[type_id] = await load_type_meta(session, entity_type)
    return _readable(actor, metas, elements)


async def linked_elements_many(
    session: AsyncSession,
    actor: Actor,
    element_ids: list[uuid.UUID],
    *,
    direction: LinkDirection,
    type_ref: str | None,
    limit: int,
) -> dict[uuid.UUID, list[ElementRead]]:
    """The linked elements of many elements at once (up to `limit` each): one query plus the types' metadata."""
    other = aliased(Element)
    if direction == "children":
        owner, target = ElementLink.parent_id, ElementLink.child_id
    else:
        owner, target = ElementLink.child_id, ElementLink.parent_id
    number = func.row_number().over(partition_by=owner, order_by=(ElementLink.created_at, target)).label("number")
    ranked = (
        select(owner.label("owner_id"), target.label("target_id"), number)
        .join(other, other.id == target)
        .where(ElementLink.workspace_id == actor.workspace_id, owner.in_(element_ids), other.deleted_at.is_(None))
    )
    if type_ref:
        entity_type = await get_entity_type(session, actor.workspace_id, type_ref)
        ranked = ranked.where(other.entity_type_id == entity_type.id)
    links = ranked.subquery()
    rows = (
        await session.execute(
            select(links.c.owner_id, Element)
            .join(Element, Element.id == links.c.target_id)
            .where(links.c.number <= limit)
            .order_by(links.c.owner_id, links.c.number)
        )
    ).all()
    metas = {}
    for type_id in {row[1].entity_type_id for row in rows}:
        metas[type_id] = await load_type_meta(session, await get_entity_type(session, actor.workspace_id, str(type_id)))
    grouped: dict[uuid.UUID, list[ElementRead]] = {element_id: [] for element_id in element_ids}
    for owner_id, element in rows:
        grouped[owner_id].extend(_readable(actor, metas, [element]))
    return grouped
