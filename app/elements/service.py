import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.permissions import TypeAccess
from app.auth.actor import Actor
from app.elements import reads
from app.elements.bulk import insert_all
from app.elements.ids import new_id
from app.elements.meta_cache import cached_type_meta
from app.elements.models import Element, ElementValue, StageHistory
from app.elements.rows import ElementRow, lock_rows, lock_stage_rows, write_row, write_rows
from app.elements.schemas import (
    ElementBatch,
    ElementCreate,
    ElementMove,
    ElementPage,
    ElementRead,
    ElementSearch,
    ElementUpdate,
)
from app.elements.values import ParsedValues, ValueColumns, check_references, parse_values, references_of
from app.entity_types.meta import TypeMeta
from app.errors import Conflict, ErrorCollector, NotFound, VersionMismatch
from app.files.binding import bind_files, check_files, file_uses, purge_after_commit
from app.outbox.models import OutboxEvent
from app.outbox.service import origin_payload
from app.pipelines.models import Pipeline, Stage
from app.readmodel.reader import RawPage
from app.scoring.engine import autoscore
from app.timeline.models import TimelineEntry
from app.users.service import check_assignees

SYSTEM_UPDATABLE = ("title", "assigned_to", "amount", "currency", "source", "begin_date", "close_date")


def to_read(element: Element | ElementRow | SimpleNamespace, meta: TypeMeta) -> ElementRead:
    stage = meta.stages.get(element.stage_id) if element.stage_id else None
    return element_read(element, meta.code, stage.code if stage else None)


def element_read(
    element: Element | ElementRow | SimpleNamespace, type_code: str, stage_code: str | None
) -> ElementRead:
    """The API's view of an element row, for callers that know its type and stage codes without full metadata."""
    # Built from stored, typed columns: validating them again cost ~20 µs per element (a board builds 120, a batch
    # 1000) and could not fail.
    return ElementRead.model_construct(
        id=element.id,
        entity_type=type_code,
        pipeline_id=element.pipeline_id,
        stage_id=element.stage_id,
        stage_code=stage_code,
        title=element.title,
        assigned_to=element.assigned_to,
        amount=float(element.amount) if element.amount is not None else None,
        currency=element.currency,
        source=element.source,
        begin_date=element.begin_date,
        close_date=element.close_date,
        score=element.score,
        values=element.values,
        version=element.version,
        created_at=element.created_at,
        updated_at=element.updated_at,
        moved_at=element.moved_at,
        deleted_at=element.deleted_at,
    )


def _event(
    actor: Actor, meta: TypeMeta, element_id: uuid.UUID, event_type: str, payload: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "workspace_id": actor.workspace_id,
        "event_type": event_type,
        "entity_type_id": meta.id,
        "element_id": element_id,
        "payload": {"element_id": str(element_id), "entity_type": meta.code, **payload, **origin_payload()},
    }


def _entry(actor: Actor, element_id: uuid.UUID, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "workspace_id": actor.workspace_id,
        "element_id": element_id,
        "kind": kind,
        "actor_id": actor.principal_id,
        "data": data,
    }


async def _record(
    session: AsyncSession,
    events: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    history: list[dict[str, Any]] | None = None,
) -> None:
    """Outbox events, timeline entries (and stage history) in one statement, in the caller's transaction."""
    await insert_all(session, [(StageHistory, history or []), (OutboxEvent, events), (TimelineEntry, entries)])


# --- placing an element in a pipeline and stage ---------------------------------------------------------------


def _resolve_stage(
    meta: TypeMeta,
    errors: ErrorCollector,
    prefix: str,
    *,
    pipeline_id: uuid.UUID | None,
    stage_id: uuid.UUID | None,
    stage_code: str | None,
    current_pipeline_id: uuid.UUID | None = None,
) -> Stage | None:
    """Pick the stage an element goes to; the stage must belong to the (given or current or default) pipeline."""
    if not meta.settings.stages_enabled:
        if pipeline_id or stage_id or stage_code:
            errors.add(f"{prefix}stage_id", f"entity type {meta.code!r} has no stages")
        return None
    pipeline: Pipeline | None
    if pipeline_id is not None:
        pipeline = meta.pipelines.get(pipeline_id)
        if pipeline is None:
            errors.add(f"{prefix}pipeline_id", f"pipeline {pipeline_id} is not a pipeline of {meta.code!r}")
            return None
    elif stage_id is not None and stage_id in meta.stages and current_pipeline_id is None:
        pipeline = meta.pipelines[meta.stages[stage_id].pipeline_id]
    else:
        pipeline = meta.pipelines.get(current_pipeline_id) if current_pipeline_id else meta.default_pipeline()
    if pipeline is None:
        errors.add(f"{prefix}pipeline_id", f"entity type {meta.code!r} has no pipeline")
        return None
    stages = meta.stages_of(pipeline.id)
    if stage_id is not None:
        stage = meta.stages.get(stage_id)
        if stage is None or stage.pipeline_id != pipeline.id:
            errors.add(f"{prefix}stage_id", f"stage {stage_id} is not a stage of pipeline {pipeline.id}")
            return None
        return stage
    if stage_code is not None:
        match = next((s for s in stages if s.code == stage_code), None)
        if match is None:
            errors.add(f"{prefix}stage_code", f"pipeline {pipeline.id} has no stage {stage_code!r}")
        return match
    return stages[0] if stages else None


# --- create ----------------------------------------------------------------------------------------------------


PreparedCreate = tuple[ElementCreate, Stage | None, ParsedValues]


async def _validate_creates(
    session: AsyncSession,
    actor: Actor,
    meta: TypeMeta,
    items: Sequence[tuple[str, ElementCreate]],
    errors: ErrorCollector,
    *,
    action: str = "add",
) -> list[PreparedCreate]:
    prepared: list[tuple[ElementCreate, Stage | None, ParsedValues]] = []
    access = actor.on(meta)
    for prefix, data in items:
        stage = _resolve_stage(
            meta, errors, prefix, pipeline_id=data.pipeline_id, stage_id=data.stage_id, stage_code=data.stage_code
        )
        access.check_add(stage.pipeline_id if stage else None, action)
        access.check_fields(data.values or {})
        if stage is not None:
            access.check_move_into(stage.id, stage.code)
        prepared.append((data, stage, parse_values(meta, data.values, errors, prefix=prefix, creating=True)))
    await check_references(
        session,
        actor.workspace_id,
        (
            check
            for (prefix, _), (_, _, parsed) in zip(items, prepared, strict=True)
            for check in references_of(meta, parsed, prefix)
        ),
        errors,
    )
    uses = [
        use
        for (prefix, _), (_, _, parsed) in zip(items, prepared, strict=True)
        for use in file_uses(meta, parsed, prefix)
    ]
    await check_files(session, actor.workspace_id, uses, errors)
    await check_assignees(session, actor.workspace_id, ((f"{p}assigned_to", d.assigned_to) for p, d in items), errors)
    return prepared


async def _insert_creates(
    session: AsyncSession, actor: Actor, meta: TypeMeta, prepared: list[PreparedCreate]
) -> list[ElementRead]:
    """Insert validated elements, their values, history, events and timeline in a few bulk statements."""
    if not prepared:
        return []
    now = datetime.now(UTC)
    # Plain rows, not ORM objects: a batch builds a thousand of them and never needs the identity map.
    elements: list[SimpleNamespace] = []
    value_rows = ValueColumns(actor.workspace_id)
    events: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for data, stage, parsed in prepared:
        element = SimpleNamespace(
            id=new_id(),
            workspace_id=actor.workspace_id,
            entity_type_id=meta.id,
            pipeline_id=stage.pipeline_id if stage else None,
            stage_id=stage.id if stage else None,
            title=data.title,
            assigned_to=data.assigned_to,
            amount=data.amount,
            currency=data.currency,
            source=data.source,
            begin_date=data.begin_date,
            close_date=data.close_date,
            score=None,
            values=parsed.snapshot(meta),
            version=1,
            created_by=actor.principal_id,
            updated_by=actor.principal_id,
            created_at=now,
            updated_at=now,
            moved_at=now if stage else None,
            deleted_at=None,
        )
        elements.append(element)
        value_rows.add(meta, element.id, parsed)
        placement = {"pipeline_id": _str(element.pipeline_id), "stage_id": _str(element.stage_id)}
        events.append(_event(actor, meta, element.id, "element.created", placement))
        entries.append(_entry(actor, element.id, "created", {"title": element.title, **placement}))
        if stage:
            history.append(
                {
                    "workspace_id": actor.workspace_id,
                    "element_id": element.id,
                    "to_pipeline_id": stage.pipeline_id,
                    "to_stage_id": stage.id,
                    "moved_by": actor.principal_id,
                    "moved_at": now,
                }
            )
    await autoscore(session, meta, elements)
    # Elements first: the other rows' foreign keys are checked at the end of the one statement.
    await insert_all(
        session,
        [
            (Element, [vars(e) for e in elements]),
            (ElementValue, value_rows.columns()),
            (StageHistory, history),
            (OutboxEvent, events),
            (TimelineEntry, entries),
        ],
    )
    written = [(e.id, parsed) for e, (_, _, parsed) in zip(elements, prepared, strict=True)]
    await bind_files(session, meta, actor.workspace_id, written, replacing=False)
    access = actor.on(meta)
    return [shown(to_read(e, meta), access) for e in elements]


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None


async def create_element(session: AsyncSession, actor: Actor, type_ref: str, data: ElementCreate) -> ElementRead:
    meta = await cached_type_meta(session, actor.workspace_id, type_ref)
    errors = ErrorCollector()
    prepared = await _validate_creates(session, actor, meta, [("", data)], errors)
    errors.raise_if_any("The element is not valid")
    return (await _insert_creates(session, actor, meta, prepared))[0]


def shown(read: ElementRead, access: TypeAccess) -> ElementRead:
    """An element as someone who may not see the hidden fields gets it."""
    if not access.hidden or not read.values.keys() & access.hidden:
        return read
    return read.model_copy(update={"values": {k: v for k, v in read.values.items() if k not in access.hidden}})


# --- read ------------------------------------------------------------------------------------------------------


async def load_element_row(
    session: AsyncSession, actor: Actor, element_id: uuid.UUID, *, lock: bool = False, action: str | None = "read"
) -> Element:
    """The workspace's element row (locked FOR UPDATE when asked) once the actor may take `action` on it; NotFound
    when it is missing or the actor may not read it."""
    statement = select(Element).where(Element.workspace_id == actor.workspace_id, Element.id == element_id)
    element = await session.scalar(statement.with_for_update() if lock else statement)
    if element is None:
        raise NotFound(f"Element {element_id} not found")
    if action is not None and not actor.grants.full:
        _allowed(actor, await cached_type_meta(session, actor.workspace_id, element.entity_type_id), action, element)
    return element


async def get_element(session: AsyncSession, actor: Actor, element_id: uuid.UUID) -> ElementRead:
    return await reads.get_element(session, actor, element_id)


async def get_elements(
    session: AsyncSession, actor: Actor, meta: TypeMeta, element_ids: Sequence[uuid.UUID]
) -> list[ElementRead]:
    rows = await session.scalars(
        select(Element).where(Element.workspace_id == actor.workspace_id, Element.id.in_(list(element_ids)))
    )
    access = actor.on(meta)
    by_id = {e.id: e for e in rows if access.may("read", e.pipeline_id, e.assigned_to, e.created_by)}
    return [shown(to_read(by_id[i], meta), access) for i in element_ids if i in by_id]


async def list_elements(session: AsyncSession, actor: Actor, type_ref: str, search: ElementSearch) -> ElementPage:
    return await reads.list_elements(session, actor, type_ref, search)


async def list_element_rows(
    session: AsyncSession, actor: Actor, type_ref: str, search: ElementSearch
) -> tuple[RawPage, dict[uuid.UUID, Any]]:
    """The same page as `list_elements`, its rows left as the JSON PostgreSQL built (for answers built from it)."""
    return await reads.list_rows(session, actor, type_ref, search)


def _allowed(actor: Actor, meta: TypeMeta, action: str, element: Element | ElementRow) -> TypeAccess:
    """The actor's access to the type, once it allows `action` on this element (404 if they may not even read it)."""
    access = actor.on(meta)
    access.check(action, element.pipeline_id, element.assigned_to, element.created_by, element_id=element.id)
    return access


# --- update ----------------------------------------------------------------------------------------------------


def _check_version(element: Element | ElementRow, expected: int | None) -> None:
    if expected is not None and expected != element.version:
        raise VersionMismatch(f"The element is at version {element.version}, not {expected}: reload it and try again")


def _ensure_live(element: Element | ElementRow) -> None:
    if element.deleted_at is not None:
        raise Conflict("The element is in the recycle bin: restore it first")


async def _apply_update(
    session: AsyncSession,
    actor: Actor,
    meta: TypeMeta,
    element: Element | ElementRow,
    data: ElementUpdate,
    parsed: ParsedValues,
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Apply one validated update to the element and write its values; returns the outbox event and timeline entry
    that describe it, and the element's columns that changed (the ORM flushes an `Element`; a plain row's caller
    writes them)."""
    changes = data.model_dump(exclude_unset=True, include=set(SYSTEM_UPDATABLE))
    changed = [name for name, value in changes.items() if getattr(element, name) != value]
    columns = [*changed, "version", "updated_at", "updated_by"]
    for name in changed:
        setattr(element, name, changes[name])
    if parsed.by_code:
        field_ids = [meta.fields[code].field_id for code in parsed.by_code]
        await session.execute(
            delete(ElementValue).where(ElementValue.element_id == element.id, ElementValue.field_id.in_(field_ids))
        )
        values = ValueColumns(actor.workspace_id)
        values.add(meta, element.id, parsed)
        await insert_all(session, [(ElementValue, values.columns())])
        snapshot = {k: v for k, v in element.values.items() if k not in parsed.by_code}
        snapshot.update(parsed.snapshot(meta))
        changed_values = [code for code in parsed.by_code if element.values.get(code) != snapshot.get(code)]
        if snapshot != element.values:
            columns.append("values")
        element.values = snapshot
        changed.extend(f"values.{code}" for code in changed_values)
        await bind_files(session, meta, actor.workspace_id, [(element.id, parsed)], replacing=True)
    element.version += 1
    element.updated_at = datetime.now(UTC)
    element.updated_by = actor.principal_id
    return (
        _event(actor, meta, element.id, "element.updated", {"changed": changed}),
        _entry(actor, element.id, "updated", {"changed": changed}),
        columns,
    )


async def update_element(
    session: AsyncSession, actor: Actor, element_id: uuid.UUID, data: ElementUpdate, *, if_match: int | None = None
) -> ElementRead:
    element = await _lock_one(session, actor, element_id)
    meta = await cached_type_meta(session, actor.workspace_id, element.entity_type_id)
    access = _allowed(actor, meta, "update", element)
    access.check_fields(data.values or {})
    _check_version(element, if_match if if_match is not None else data.version)
    _ensure_live(element)
    errors = ErrorCollector()
    parsed = parse_values(meta, data.values or {}, errors, prefix="", creating=False)
    await check_references(session, actor.workspace_id, references_of(meta, parsed, ""), errors)
    await check_files(session, actor.workspace_id, file_uses(meta, parsed, "", element.id), errors)
    await check_assignees(session, actor.workspace_id, [("assigned_to", data.assigned_to)], errors)
    errors.raise_if_any("The element is not valid")
    event, entry, columns = await _apply_update(session, actor, meta, element, data, parsed)
    score = element.score
    await autoscore(session, meta, [element])
    if element.score != score:
        columns.append("score")
    await write_row(session, element, columns)
    await _record(session, [event], [entry])
    return shown(to_read(element, meta), access)


# --- move ------------------------------------------------------------------------------------------------------


async def _lock_one(session: AsyncSession, actor: Actor, element_id: uuid.UUID) -> ElementRow:
    """The workspace's element as a plain row, locked FOR UPDATE; NotFound when it is missing."""
    found = await lock_rows(session, actor.workspace_id, [element_id])
    if not found:
        raise NotFound(f"Element {element_id} not found")
    return found[0]


async def move_element(
    session: AsyncSession, actor: Actor, element_id: uuid.UUID, data: ElementMove, *, if_match: int | None = None
) -> ElementRead:
    element = await _lock_one(session, actor, element_id)
    meta = await cached_type_meta(session, actor.workspace_id, element.entity_type_id)
    access = _allowed(actor, meta, "update", element)
    _check_version(element, if_match if if_match is not None else data.version)
    _ensure_live(element)
    errors = ErrorCollector()
    stage = _resolve_stage(
        meta,
        errors,
        "",
        pipeline_id=data.pipeline_id,
        stage_id=data.stage_id,
        stage_code=data.stage_code,
        current_pipeline_id=data.pipeline_id or element.pipeline_id,
    )
    errors.raise_if_any("The move is not valid")
    if stage is None:
        raise Conflict(f"Entity type {meta.code!r} has no stages")
    if stage.id == element.stage_id:
        return shown(to_read(element, meta), access)
    access.check_move_into(stage.id, stage.code)
    if stage.pipeline_id != element.pipeline_id:
        access.check("update", stage.pipeline_id, element.assigned_to, element.created_by)
    await _apply_moves(session, actor, meta, [element], stage)
    return shown(to_read(element, meta), access)


async def move_stage_elements(session: AsyncSession, actor: Actor, source: Stage, target: Stage) -> None:
    """Move every element of a stage that is going away, with the same history, events and timeline as a move."""
    elements = await lock_stage_rows(session, source.id)
    if elements:
        meta = await cached_type_meta(session, actor.workspace_id, elements[0].entity_type_id)
        await _apply_moves(session, actor, meta, elements, target)


MOVED_COLUMNS = ("pipeline_id", "stage_id", "moved_at", "updated_at", "updated_by", "version")


async def _apply_moves(
    session: AsyncSession, actor: Actor, meta: TypeMeta, elements: Sequence[ElementRow], stage: Stage
) -> None:
    now = datetime.now(UTC)
    events, entries, history = [], [], []
    for element in elements:
        from_stage = meta.stages.get(element.stage_id) if element.stage_id else None
        history.append(
            {
                "workspace_id": actor.workspace_id,
                "element_id": element.id,
                "from_pipeline_id": element.pipeline_id,
                "from_stage_id": element.stage_id,
                "to_pipeline_id": stage.pipeline_id,
                "to_stage_id": stage.id,
                "moved_by": actor.principal_id,
                "moved_at": now,
            }
        )
        move = {
            "from_pipeline_id": _str(element.pipeline_id),
            "from_stage_id": _str(element.stage_id),
            "from_stage_code": from_stage.code if from_stage else None,
            "to_pipeline_id": str(stage.pipeline_id),
            "to_stage_id": str(stage.id),
            "to_stage_code": stage.code,
            "semantic": stage.semantic.value,
        }
        element.pipeline_id, element.stage_id = stage.pipeline_id, stage.id
        element.moved_at = element.updated_at = now
        element.updated_by = actor.principal_id
        element.version += 1
        events.append(_event(actor, meta, element.id, "element.moved", move))
        entries.append(_entry(actor, element.id, "moved", move))
    await write_rows(session, elements, MOVED_COLUMNS)
    await _record(session, events, entries, history)
    # A model that reads the stage (a deal's close probability) scores the move, once the history row is written.
    scores = [e.score for e in elements]
    await autoscore(session, meta, elements, moved=True)
    for element, score in zip(elements, scores, strict=True):
        if element.score != score:
            await write_row(session, element, ["score"])


# --- delete and restore ----------------------------------------------------------------------------------------


async def delete_element(session: AsyncSession, actor: Actor, element_id: uuid.UUID) -> None:
    element = await load_element_row(session, actor, element_id, lock=True, action=None)
    meta = await cached_type_meta(session, actor.workspace_id, element.entity_type_id)
    _allowed(actor, meta, "delete", element)
    if meta.settings.recycle_bin_enabled:
        _ensure_live(element)
        element.deleted_at = datetime.now(UTC)
        element.version += 1
        await session.flush()
        await _record(
            session,
            [_event(actor, meta, element.id, "element.deleted", {"recycle_bin": True})],
            [_entry(actor, element.id, "deleted", {"recycle_bin": True})],
        )
        return
    await session.delete(element)
    await session.flush()
    if any(f.row.type == "file" for f in meta.fields.values()):
        purge_after_commit(session, actor.workspace_id)  # the delete's trigger purged its files: their bytes go now
    # The number goes with the event: the row is gone when a subscriber's message is made (app/bitrix/events.py).
    deleted = {"recycle_bin": False, "number": element.number}
    await _record(session, [_event(actor, meta, element.id, "element.deleted", deleted)], [])


async def restore_element(session: AsyncSession, actor: Actor, element_id: uuid.UUID) -> ElementRead:
    element = await load_element_row(session, actor, element_id, lock=True, action=None)
    meta = await cached_type_meta(session, actor.workspace_id, element.entity_type_id)
    access = _allowed(actor, meta, "delete", element)
    if element.deleted_at is None:
        raise Conflict("The element is not in the recycle bin")
    element.deleted_at = None
    element.version += 1
    element.updated_at = datetime.now(UTC)
    await session.flush()
    await _record(
        session, [_event(actor, meta, element.id, "element.restored", {})], [_entry(actor, element.id, "restored", {})]
    )
    return shown(to_read(element, meta), access)


# --- batch -----------------------------------------------------------------------------------------------------


def _parse_item(
    model: type[ElementCreate] | type[ElementUpdate], data: dict[str, Any], prefix: str, errors: ErrorCollector
) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            location = ".".join(str(part) for part in error["loc"])
            errors.add(f"{prefix}{location}" if location else prefix.rstrip("."), error["msg"])
        return None


async def batch(
    session: AsyncSession, actor: Actor, type_ref: str, data: ElementBatch, *, action: str = "add"
) -> list[ElementRead]:
    """Up to 1000 creates or updates, all or nothing; every item's problems are reported with its index. An import
    creates under the role's `import` scope instead of `add`."""
    meta = await cached_type_meta(session, actor.workspace_id, type_ref)
    errors = ErrorCollector()
    creates: list[tuple[int, str, ElementCreate]] = []
    updates: list[tuple[int, str, uuid.UUID, ElementUpdate]] = []
    for index, item in enumerate(data.items):
        prefix = f"items[{index}]."
        if item.op == "create":
            parsed_create = _parse_item(ElementCreate, item.data, prefix, errors)
            if parsed_create is not None:
                creates.append((index, prefix, parsed_create))
        elif item.id is None:
            errors.add(f"{prefix}id", "an update needs the element id")
        else:
            parsed_update = _parse_item(ElementUpdate, item.data, prefix, errors)
            if parsed_update is not None:
                updates.append((index, prefix, item.id, parsed_update))
    planned = await _plan_updates(session, actor, meta, updates, errors)
    prepared = await _validate_creates(
        session, actor, meta, [(prefix, c) for _, prefix, c in creates], errors, action=action
    )
    errors.raise_if_any("Some elements are not valid")
    results = await _apply_updates(session, actor, meta, planned)
    created = await _insert_creates(session, actor, meta, prepared)
    results.update(zip((index for index, _, _ in creates), created, strict=True))
    return [results[i] for i in sorted(results)]


PlannedUpdate = tuple[int, Element, ElementUpdate, ParsedValues]


async def _plan_updates(
    session: AsyncSession,
    actor: Actor,
    meta: TypeMeta,
    updates: list[tuple[int, str, uuid.UUID, ElementUpdate]],
    errors: ErrorCollector,
) -> list[PlannedUpdate]:
    """Lock and validate the elements a batch updates; nothing is written."""
    if not updates:
        return []
    ids = [element_id for _, _, element_id, _ in updates]
    rows = await session.scalars(
        select(Element)
        .where(Element.workspace_id == actor.workspace_id, Element.entity_type_id == meta.id, Element.id.in_(ids))
        .order_by(Element.id)
        .with_for_update()
    )
    by_id = {e.id: e for e in rows}
    access = actor.on(meta)
    planned: list[PlannedUpdate] = []
    checks = []
    uses = []
    for index, prefix, element_id, update in updates:
        element = by_id.get(element_id)
        if element is None or not access.may("read", element.pipeline_id, element.assigned_to, element.created_by):
            errors.add(f"{prefix}id", f"element {element_id} not found in {meta.code!r}")
            continue
        access.check("update", element.pipeline_id, element.assigned_to, element.created_by)
        access.check_fields(update.values or {})
        if update.version is not None and update.version != element.version:
            errors.add(f"{prefix}version", f"the element is at version {element.version}")
        if element.deleted_at is not None:
            errors.add(f"{prefix}id", "the element is in the recycle bin")
        parsed = parse_values(meta, update.values or {}, errors, prefix=prefix, creating=False)
        checks.extend(references_of(meta, parsed, prefix))
        uses.extend(file_uses(meta, parsed, prefix, element.id))
        planned.append((index, element, update, parsed))
    await check_references(session, actor.workspace_id, checks, errors)
    await check_files(session, actor.workspace_id, uses, errors)
    await check_assignees(
        session, actor.workspace_id, ((f"{prefix}assigned_to", u.assigned_to) for _, prefix, _, u in updates), errors
    )
    return planned


async def _apply_updates(
    session: AsyncSession, actor: Actor, meta: TypeMeta, planned: list[PlannedUpdate]
) -> dict[int, ElementRead]:
    events, entries = [], []
    for _, element, update, parsed in planned:
        event, entry, _ = await _apply_update(session, actor, meta, element, update, parsed)
        events.append(event)
        entries.append(entry)
    await autoscore(session, meta, [element for _, element, _, _ in planned])
    await session.flush()
    await _record(session, events, entries)
    access = actor.on(meta)
    return {index: shown(to_read(element, meta), access) for index, element, _, _ in planned}
