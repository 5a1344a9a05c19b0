import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import delete, exists, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.visibility import configures, ensure_sees_type, sees_type
from app.auth.actor import Actor
from app.elements.models import Element, ElementValue
from app.entity_types.fields import (
    RESERVED_CODES,
    FieldSpec,
    PatternRejected,
    ValueRejected,
    compile_pattern,
    kind_of,
    parse_value,
)
from app.entity_types.meta import FieldMeta, TypeMeta, get_entity_type, get_type_meta
from app.entity_types.models import EntityType, Field, FieldOption
from app.entity_types.schemas import (
    EntityTypeCreate,
    EntityTypeSettings,
    EntityTypeSettingsPatch,
    EntityTypeUpdate,
    FieldCreate,
    FieldOptionIn,
    FieldOptionRead,
    FieldRead,
    FieldUpdate,
)
from app.errors import Conflict, ErrorCollector, NotFound
from app.files.binding import purge_after_commit
from app.outbox.service import record_event
from app.pipelines import service as pipeline_service
from app.pipelines.models import Pipeline
from app.readmodel import ddl as readmodel
from app.readmodel.models import ReadModelField
from app.workspaces.service import bump_metadata_version

PRESETS: dict[str, EntityTypeSettings] = {
    "blank": EntityTypeSettings(),
    "list": EntityTypeSettings(stages_enabled=False, pipelines_enabled=False),
    "full": EntityTypeSettings(**dict.fromkeys(EntityTypeSettings.model_fields, True)),
}
NUMERIC_TYPES = frozenset({"integer", "decimal", "money"})
TEXT_TYPES = frozenset({"string", "text", "email", "phone", "url"})


def _apply(settings: EntityTypeSettings, patch: EntityTypeSettingsPatch | None) -> EntityTypeSettings:
    changes = patch.model_dump(exclude_none=True) if patch else {}
    return settings.model_copy(update=changes)


async def _changed(session: AsyncSession, actor: Actor, event_type: str, payload: dict[str, Any]) -> None:
    await bump_metadata_version(session, actor.workspace_id)
    record_event(session, actor.workspace_id, event_type, payload=payload)


# --- entity types ----------------------------------------------------------------------------------------------


async def all_entity_types(session: AsyncSession, workspace_id: uuid.UUID) -> list[EntityType]:
    """Every type of the workspace, whoever asks (the workspace's GraphQL schema is built from them)."""
    rows = await session.scalars(
        select(EntityType).where(EntityType.workspace_id == workspace_id).order_by(EntityType.created_at)
    )
    return list(rows)


async def list_entity_types(session: AsyncSession, actor: Actor) -> list[EntityType]:
    """The types the actor may see: those they may read elements of, or all for who configures them."""
    rows = await all_entity_types(session, actor.workspace_id)
    return [row for row in rows if sees_type(actor, row.id, row.code)]


async def get_entity_type_by_ref(session: AsyncSession, actor: Actor, ref: str) -> EntityType:
    entity_type = await get_entity_type(session, actor.workspace_id, ref)
    ensure_sees_type(actor, entity_type.id, entity_type.code, f"Entity type {ref!r} not found")
    return entity_type


async def create_entity_type(session: AsyncSession, actor: Actor, data: EntityTypeCreate) -> EntityType:
    actor.ensure_can_write()
    taken = await session.scalar(
        select(exists().where(EntityType.workspace_id == actor.workspace_id, EntityType.code == data.code))
    )
    if taken:
        raise Conflict(f"Entity type code {data.code!r} is already used in this workspace")
    settings = _apply(PRESETS[data.preset], data.settings)
    entity_type = EntityType(
        workspace_id=actor.workspace_id, code=data.code, title=data.title, settings=settings.model_dump()
    )
    session.add(entity_type)
    await session.flush()
    await readmodel.create_table(session, entity_type.id)
    if settings.stages_enabled:
        await pipeline_service.add_pipeline(
            session, entity_type, title="Default", is_default=True, sort=pipeline_service.SORT_STEP, stages=None
        )
    await _changed(session, actor, "entity_type.created", {"id": str(entity_type.id), "code": entity_type.code})
    await session.refresh(entity_type)
    return entity_type


async def update_entity_type(session: AsyncSession, actor: Actor, ref: str, data: EntityTypeUpdate) -> EntityType:
    actor.ensure_can_write()
    entity_type = await get_entity_type(session, actor.workspace_id, ref)
    if data.title is not None:
        entity_type.title = data.title
    if data.settings is not None:
        before = EntityTypeSettings.model_validate(entity_type.settings)
        after = _apply(before, data.settings)
        await _switch_stages(session, entity_type, before, after)
        entity_type.settings = after.model_dump()
    await session.flush()
    await _changed(session, actor, "entity_type.updated", {"id": str(entity_type.id), "code": entity_type.code})
    await session.refresh(entity_type)
    return entity_type


async def _switch_stages(
    session: AsyncSession, entity_type: EntityType, before: EntityTypeSettings, after: EntityTypeSettings
) -> None:
    pipelines = list(await session.scalars(select(Pipeline).where(Pipeline.entity_type_id == entity_type.id)))
    if after.stages_enabled and not before.stages_enabled and not pipelines:
        await pipeline_service.add_pipeline(
            session, entity_type, title="Default", is_default=True, sort=pipeline_service.SORT_STEP, stages=None
        )
        await session.execute(
            update(Element)
            .where(Element.entity_type_id == entity_type.id)
            .values(pipeline_id=select(Pipeline.id).where(Pipeline.entity_type_id == entity_type.id).scalar_subquery())
        )
    if (
        before.stages_enabled
        and not after.stages_enabled
        and await session.scalar(select(exists().where(Element.entity_type_id == entity_type.id)))
    ):
        raise Conflict("Stages cannot be turned off while the type has elements")
    if before.pipelines_enabled and not after.pipelines_enabled and len(pipelines) > 1:
        raise Conflict("The type has several pipelines: delete all but the default one first")


async def delete_entity_type(session: AsyncSession, actor: Actor, ref: str, *, force: bool) -> None:
    actor.ensure_can_write()
    entity_type = await get_entity_type(session, actor.workspace_id, ref)
    referencing = list(
        await session.scalars(
            select(Field.code).where(Field.target_type_id == entity_type.id, Field.entity_type_id != entity_type.id)
        )
    )
    if referencing:
        raise Conflict(f"Reference fields of other types point to this type: {', '.join(sorted(referencing))}")
    if await session.scalar(select(exists().where(Element.entity_type_id == entity_type.id))):
        if not force:
            raise Conflict("The entity type has elements: pass ?force=true to delete them with it")
        await session.execute(delete(Element).where(Element.entity_type_id == entity_type.id))
    await session.delete(entity_type)
    await session.flush()
    purge_after_commit(session, actor.workspace_id)  # files of its elements and fields, purged by the triggers
    await _changed(session, actor, "entity_type.deleted", {"id": str(entity_type.id), "code": entity_type.code})


# --- fields ----------------------------------------------------------------------------------------------------


def field_read(meta: FieldMeta) -> FieldRead:
    row = meta.row
    return FieldRead(
        id=row.id,
        code=row.code,
        label=row.label,
        type=row.type,
        required=row.required,
        multiple=row.multiple,
        default=row.default,
        options=[FieldOptionRead(value=o.value, label=o.label) for o in meta.options] if row.type == "enum" else None,
        min=row.validation.get("min"),
        max=row.validation.get("max"),
        max_length=row.validation.get("max_length"),
        pattern=row.validation.get("pattern"),
        target_type=meta.target_type_code,
        sort=row.sort,
        indexed=row.indexed,
        index_state=meta.index_state,
        max_size_bytes=row.validation.get("max_size_bytes"),
        allowed_mime_types=row.validation.get("allowed_mime_types"),
    )


def _shown_fields(actor: Actor, meta: TypeMeta, type_ref: str) -> dict[str, FieldMeta]:
    """The type's fields for someone who may see the type: without those their roles hide (all for who configures)."""
    ensure_sees_type(actor, meta.id, meta.code, f"Entity type {type_ref!r} not found")
    hidden = frozenset() if configures(actor) else actor.on(meta).hidden
    return {code: f for code, f in meta.fields.items() if code not in hidden}


async def list_fields(session: AsyncSession, actor: Actor, type_ref: str) -> list[FieldRead]:
    meta = await get_type_meta(session, actor.workspace_id, type_ref)
    return [field_read(f) for f in _shown_fields(actor, meta, type_ref).values()]


def _field_of(meta: TypeMeta, code: str) -> FieldMeta:
    field_meta = meta.fields.get(code)
    if field_meta is None:
        raise NotFound(f"Field {code!r} not found on entity type {meta.code!r}")
    return field_meta


async def get_field(session: AsyncSession, actor: Actor, type_ref: str, code: str) -> FieldRead:
    meta = await get_type_meta(session, actor.workspace_id, type_ref)
    field_meta = _shown_fields(actor, meta, type_ref).get(code)
    if field_meta is None:
        raise NotFound(f"Field {code!r} not found on entity type {meta.code!r}")
    return field_read(field_meta)


def _check_field_settings(
    errors: ErrorCollector, field_type: str, values: dict[str, Any], options: list[FieldOptionIn] | None
) -> None:
    _check_options(errors, field_type, options)
    _check_bounds(errors, field_type, values)
    if field_type != "file":
        for name in ("max_size_bytes", "allowed_mime_types"):
            if values.get(name):
                errors.add(name, f"only file fields take {name}")
    if field_type == "reference" and not values.get("target_type"):
        errors.add("target_type", "a reference field needs target_type")
    if field_type != "reference" and values.get("target_type"):
        errors.add("target_type", "only reference fields take target_type")


def _check_options(errors: ErrorCollector, field_type: str, options: list[FieldOptionIn] | None) -> None:
    if field_type == "enum":
        if not options:
            errors.add("options", "an enum field needs at least one option")
        else:
            seen: set[str] = set()
            for index, option in enumerate(options):
                if option.value in seen:
                    errors.add(f"options[{index}].value", f"duplicate option {option.value!r}")
                seen.add(option.value)
    elif options:
        errors.add("options", "only enum fields take options")


def _check_bounds(errors: ErrorCollector, field_type: str, values: dict[str, Any]) -> None:
    if field_type not in NUMERIC_TYPES:
        for name in ("min", "max"):
            if values.get(name) is not None:
                errors.add(name, f"only numeric fields take {name}")
    elif values.get("min") is not None and values.get("max") is not None and values["min"] > values["max"]:
        errors.add("min", "must not be greater than max")
    if field_type not in TEXT_TYPES:
        for name in ("max_length", "pattern"):
            if values.get(name) is not None:
                errors.add(name, f"only text fields take {name}")
    if values.get("pattern"):
        try:
            compile_pattern(values["pattern"])
        except PatternRejected as exc:
            errors.add("pattern", f"is not a regular expression the linear-time engine (RE2) accepts: {exc}")


def _check_default(errors: ErrorCollector, default: Any, spec: FieldSpec, *, multiple: bool, field_type: str) -> Any:
    """Validate a default value and return it in its JSON form."""
    if default is None:
        return None
    if field_type in ("reference", "user", "file"):
        errors.add("default", f"{field_type} fields take no default")
        return None
    raw_items = default if multiple and isinstance(default, list) else [default]
    if isinstance(default, list) and not multiple:
        errors.add("default", "a single-value field takes one default value")
        return None
    kind = kind_of(field_type)
    out = []
    for raw in raw_items:
        try:
            out.append(kind.to_json(parse_value(raw, spec)))
        except ValueRejected as exc:
            errors.add("default", str(exc))
            return None
    return out if multiple else out[0]


VALIDATION_KEYS = ("min", "max", "max_length", "pattern", "max_size_bytes", "allowed_mime_types")


def _validation(values: dict[str, Any]) -> dict[str, Any]:
    # An empty list of MIME types means any, as none at all does.
    return {k: values[k] for k in VALIDATION_KEYS if values.get(k) is not None and values[k] != []}


async def create_field(session: AsyncSession, actor: Actor, type_ref: str, data: FieldCreate) -> FieldRead:
    actor.ensure_can_write()
    meta = await get_type_meta(session, actor.workspace_id, type_ref)
    errors = ErrorCollector()
    if data.code in RESERVED_CODES:
        errors.add("code", f"{data.code!r} is a system field name")
    values = data.model_dump()
    _check_field_settings(errors, data.type, values, data.options)
    target: EntityType | None = None
    if data.type == "reference" and data.target_type:
        try:
            target = await get_entity_type(session, actor.workspace_id, data.target_type)
        except NotFound:
            errors.add("target_type", f"entity type {data.target_type!r} not found")
    spec = FieldSpec(
        code=data.code,
        type=data.type,
        validation=_validation(values),
        options=frozenset(o.value for o in data.options or []),
    )
    default = _check_default(errors, data.default, spec, multiple=data.multiple, field_type=data.type)
    errors.raise_if_any(f"The field {data.code!r} is not valid")
    if data.code in meta.fields:
        raise Conflict(f"Field {data.code!r} already exists on {meta.code!r}")
    row = Field(
        workspace_id=actor.workspace_id,
        entity_type_id=meta.id,
        code=data.code,
        label=data.label or data.code,
        type=data.type,
        required=data.required,
        multiple=data.multiple,
        default=default,
        validation=_validation(values),
        target_type_id=target.id if target else None,
        sort=data.sort if data.sort is not None else (len(meta.fields) + 1) * 10,
        indexed=data.indexed,
    )
    session.add(row)
    await session.flush()
    index_state = await readmodel.add_column(session, _column_spec(row))
    options = _option_rows(actor, row.id, data.options or [])
    session.add_all(options)
    await session.flush()
    await _changed(session, actor, "field.created", {"entity_type": meta.code, "code": row.code})
    return field_read(
        FieldMeta(row=row, options=options, target_type_code=target.code if target else None, index_state=index_state)
    )


def _option_rows(actor: Actor, field_id: uuid.UUID, options: list[FieldOptionIn]) -> list[FieldOption]:
    return [
        FieldOption(
            workspace_id=actor.workspace_id,
            field_id=field_id,
            value=o.value,
            label=o.label or o.value,
            sort=(i + 1) * 10,
        )
        for i, o in enumerate(options)
    ]


def _read_model_change(
    row: Field, new_type: str, multiple: bool, indexed: bool | None
) -> Callable[[AsyncSession, readmodel.ColumnSpec], Awaitable[object]] | None:
    """What a field update does to its read-model column: a new column for a new shape, an index on request."""
    if new_type != row.type or multiple != row.multiple:
        return readmodel.replace_column
    if indexed is not None and indexed != row.indexed:
        return readmodel.set_indexed
    return None


def _column_spec(row: Field) -> readmodel.ColumnSpec:
    return readmodel.ColumnSpec(
        row.id, row.entity_type_id, row.workspace_id, row.code, row.type, row.multiple, row.indexed
    )


async def _field_has_values(session: AsyncSession, row: Field) -> bool:
    table, column = readmodel.table_name(row.entity_type_id), readmodel.quote(row.code)
    statement = text(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {column} IS NOT NULL)")  # noqa: S608
    return bool(await session.scalar(statement))


async def update_field(session: AsyncSession, actor: Actor, type_ref: str, code: str, data: FieldUpdate) -> FieldRead:
    actor.ensure_can_write()
    meta = await get_type_meta(session, actor.workspace_id, type_ref)
    field_meta = _field_of(meta, code)
    row = field_meta.row
    changes = data.model_dump(exclude_unset=True)
    new_type = changes.get("type") or row.type
    merged = {**row.validation, "target_type": field_meta.target_type_code}
    merged.update({k: v for k, v in changes.items() if k in (*VALIDATION_KEYS, "target_type")})
    options = (
        data.options
        if "options" in changes
        else [FieldOptionIn(value=o.value, label=o.label) for o in field_meta.options]
    )
    errors = ErrorCollector()
    _check_field_settings(errors, new_type, merged, options if new_type == "enum" else (data.options or None))
    has_values = await _field_has_values(session, row)
    if new_type != row.type and has_values:
        raise Conflict(f"Field {code!r} has values: its type cannot change from {row.type} to {new_type}")
    if "multiple" in changes and changes["multiple"] != row.multiple and has_values:
        raise Conflict(f"Field {code!r} has values: multiple cannot change")
    target_id = row.target_type_id
    if new_type == "reference" and "target_type" in changes and changes["target_type"]:
        if has_values:
            raise Conflict(f"Field {code!r} has values: its target type cannot change")
        try:
            target_id = (await get_entity_type(session, actor.workspace_id, changes["target_type"])).id
        except NotFound:
            errors.add("target_type", f"entity type {changes['target_type']!r} not found")
    multiple = changes.get("multiple", row.multiple)
    spec = FieldSpec(
        code=code,
        type=new_type,
        validation=_validation(merged),
        options=frozenset(o.value for o in options or []),
    )
    default = _check_default(
        errors,
        changes.get("default", row.default),
        spec,
        multiple=multiple,
        field_type=new_type,
    )
    errors.raise_if_any(f"The field {code!r} is not valid")
    if new_type == "enum" and "options" in changes and has_values:
        await _refuse_removing_used_options(session, row, field_meta, {o.value for o in options or []})
    reshape = _read_model_change(row, new_type, multiple, data.indexed)
    row.type = new_type
    row.multiple = multiple
    if data.indexed is not None:
        row.indexed = data.indexed
    row.default = default
    row.validation = _validation(merged)
    row.target_type_id = target_id if new_type == "reference" else None
    for name in ("label", "required", "sort"):
        if changes.get(name) is not None:
            setattr(row, name, changes[name])
    if "options" in changes or new_type != "enum":
        await session.execute(delete(FieldOption).where(FieldOption.field_id == row.id))
        field_meta.options = _option_rows(actor, row.id, (options or []) if new_type == "enum" else [])
        session.add_all(field_meta.options)
    await session.flush()
    if reshape is not None:
        await reshape(session, _column_spec(row))
    await _changed(session, actor, "field.updated", {"entity_type": meta.code, "code": row.code})
    refreshed = await get_type_meta(session, actor.workspace_id, str(meta.id))
    return field_read(refreshed.fields[code])


async def _refuse_removing_used_options(
    session: AsyncSession, row: Field, field_meta: FieldMeta, kept: set[str]
) -> None:
    removed = {o.value for o in field_meta.options} - kept
    if not removed:
        return
    table, column = readmodel.table_name(row.entity_type_id), readmodel.quote(row.code)
    values = f"unnest({column})" if row.multiple else f"(SELECT {column})"
    statement = text(
        f"SELECT DISTINCT v FROM {table}, {values} AS v WHERE v = ANY(CAST(:removed AS text[]))"  # noqa: S608
    )
    used = list(await session.scalars(statement, {"removed": sorted(removed)}))
    if used:
        raise Conflict(f"Options still used by elements cannot be removed: {', '.join(sorted(v or '' for v in used))}")


async def delete_field(session: AsyncSession, actor: Actor, type_ref: str, code: str) -> None:
    actor.ensure_can_write()
    meta = await get_type_meta(session, actor.workspace_id, type_ref)
    row = _field_of(meta, code).row
    await readmodel.drop_column(session, meta.id, row.id, code)
    await session.execute(delete(ElementValue).where(ElementValue.field_id == row.id))
    await session.execute(
        update(Element)
        .where(Element.entity_type_id == meta.id, Element.values.has_key(code))
        .values(values=Element.values.op("-")(text(":code").bindparams(code=code)), updated_at=func.now())
    )
    await session.delete(row)
    await session.flush()
    if row.type == "file":
        purge_after_commit(session, actor.workspace_id)  # the field's files, purged by the delete's trigger
    await _changed(session, actor, "field.deleted", {"entity_type": meta.code, "code": code})


async def fields_by_type(
    session: AsyncSession, actor: Actor, type_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[FieldRead]]:
    """The fields of several entity types in three queries (GraphQL DataLoaders)."""
    fields = list(
        await session.scalars(
            select(Field)
            .where(Field.workspace_id == actor.workspace_id, Field.entity_type_id.in_(type_ids))
            .order_by(Field.sort, Field.created_at)
        )
    )
    options: dict[uuid.UUID, list[FieldOption]] = {}
    codes: dict[uuid.UUID, str] = {}
    if fields:
        for option in await session.scalars(
            select(FieldOption).where(FieldOption.field_id.in_([f.id for f in fields])).order_by(FieldOption.sort)
        ):
            options.setdefault(option.field_id, []).append(option)
        target_ids = {f.target_type_id for f in fields if f.target_type_id}
        if target_ids:
            rows = await session.execute(select(EntityType.id, EntityType.code).where(EntityType.id.in_(target_ids)))
            codes = {row.id: row.code for row in rows}
    states: dict[uuid.UUID, str] = {}
    if fields:
        rows = await session.execute(
            select(ReadModelField.field_id, ReadModelField.index_state).where(
                ReadModelField.entity_type_id.in_(type_ids)
            )
        )
        states = {row.field_id: row.index_state for row in rows}
    grouped: dict[uuid.UUID, list[FieldRead]] = {type_id: [] for type_id in type_ids}
    for f in fields:
        target = codes.get(f.target_type_id) if f.target_type_id else None
        grouped[f.entity_type_id].append(
            field_read(
                FieldMeta(
                    row=f, options=options.get(f.id, []), target_type_code=target, index_state=states.get(f.id, "none")
                )
            )
        )
    return grouped
