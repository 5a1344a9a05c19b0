"""`crm.item.*`: a smart process's items are its elements, written and read through the element services and
the read model's filter compiler; an item's `id` is the element's `number`."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on

from app.bitrix.common import (
    PAGE_SIZE,
    Answer,
    Call,
    direction,
    iso,
    method,
    start_of,
    to_date,
    to_datetime,
    to_decimal,
    to_flag,
    to_int,
)
from app.bitrix.context import TypeContext, loose, type_context
from app.bitrix.errors import invalid, not_found
from app.bitrix.transport import as_list, as_map, param
from app.bitrix.userfields import USER_TYPE_IDS
from app.bitrix.values import Lookups, filter_operand, lookups_for, user_by_number, value_in, value_out
from app.db import session_connection
from app.elements import reads
from app.elements import service as element_service
from app.elements.models import Element, StageHistory
from app.elements.schemas import ElementCreate, ElementMove, ElementUpdate
from app.readmodel.numbered import NUMBER, numbered_page

# Bitrix24 item field -> (Stageflow field, Bitrix24 type, title, read only).
SYSTEM: dict[str, tuple[str, str, str, bool]] = {
    "id": (NUMBER, "integer", "ID", True),
    "title": ("title", "string", "Title", False),
    "createdTime": ("created_at", "datetime", "Created on", True),
    "updatedTime": ("updated_at", "datetime", "Updated on", True),
    "movedTime": ("moved_at", "datetime", "Moved on", True),
    "categoryId": ("pipeline_id", "crm_category", "Pipeline", False),
    "stageId": ("stage_id", "crm_status", "Stage", False),
    "previousStageId": ("", "crm_status", "Previous stage", True),
    "begindate": ("begin_date", "date", "Start date", False),
    "closedate": ("close_date", "date", "End date", False),
    "opportunity": ("amount", "double", "Amount", False),
    "currencyId": ("currency", "crm_currency", "Currency", False),
    "sourceId": ("source", "crm_status", "Source", False),
    "assignedById": ("assigned_to", "user", "Responsible person", False),
    "entityTypeId": ("", "integer", "Entity type id", True),
}
SYSTEM_BY_LOOSE = {loose(name): name for name in SYSTEM}
PREFIX = re.compile(r"^(!=|!@|!%|>=|<=|!|=|>|<|%|@)?(.+)$", re.DOTALL)
OPS = {"": "eq", "=": "eq", "!": "ne", "!=": "ne", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
MAX_SELECT = 500


# --- reading ----------------------------------------------------------------------------------------------------


async def _previous_stages(call: Call, element_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID | None]:
    """Where each element was before its last move (none for one never moved)."""
    if not element_ids:
        return {}
    rows = await call.session.execute(
        select(StageHistory.element_id, StageHistory.from_stage_id)
        .where(StageHistory.workspace_id == call.workspace_id, StageHistory.element_id.in_(element_ids))
        .ext(distinct_on(StageHistory.element_id))
        .order_by(StageHistory.element_id, StageHistory.moved_at.desc(), StageHistory.id.desc())
    )
    return {row[0]: row[1] for row in rows}


def _item(
    context: TypeContext,
    row: dict[str, Any],
    number: int,
    previous: uuid.UUID | None,
    lookups: Lookups,
    *,
    original_names: bool,
) -> dict[str, Any]:
    amount = row.get("amount")
    item: dict[str, Any] = {
        "id": number,
        "title": row["title"],
        "createdTime": iso(_when(row.get("created_at"))),
        "updatedTime": iso(_when(row.get("updated_at"))),
        "movedTime": iso(_when(row.get("moved_at"))),
        "categoryId": context.category_of(_uuid(row.get("pipeline_id"))),
        "stageId": context.status_of(row.get("stage_id")),
        "previousStageId": context.status_of(previous),
        "begindate": iso(to_date(row["begin_date"], "begindate")) if row.get("begin_date") else None,
        "closedate": iso(to_date(row["close_date"], "closedate")) if row.get("close_date") else None,
        "opportunity": float(amount) if amount is not None else 0.0,
        "currencyId": row.get("currency"),
        "sourceId": row.get("source"),
        "assignedById": lookups.users.get(row["assigned_to"]) if row.get("assigned_to") else None,
        "entityTypeId": context.number,
    }
    values = row.get("values") or {}
    for code, view in context.fields.items():
        key = view.uf_name if original_names else view.item_key
        item[key] = value_out(context, view, values.get(code), lookups, row.get("currency"))
    return item


def _when(value: Any) -> Any:
    return to_datetime(value, "time") if isinstance(value, str) else None


def _uuid(value: Any) -> uuid.UUID | None:
    return uuid.UUID(str(value)) if value else None


def _selected(item: dict[str, Any], select_: list[str] | None) -> dict[str, Any]:
    if not select_ or "*" in select_:
        return item
    wanted = {loose(name) for name in select_}
    every_uf = bool(wanted & {"uf*", "ufcrm*"})
    return {
        key: value
        for key, value in item.items()
        if key == "id" or loose(key) in wanted or (every_uf and loose(key).startswith("ufcrm"))
    }


async def read_items(
    call: Call,
    context: TypeContext,
    *,
    node: Any = None,
    order: list[tuple[str, bool]] | None = None,
    start: int = 0,
    limit: int = PAGE_SIZE,
    element_ids: list[uuid.UUID] | None = None,
    with_total: bool = True,
) -> tuple[list[dict[str, Any]], int, bool]:
    """Items as the caller may see them (hidden fields left out, rows they may not read skipped)."""
    view, access = reads.readable(context.meta, call.actor)
    connection = await session_connection(call.session)
    page = await numbered_page(
        connection,
        view,
        call.workspace_id,
        node,
        order=order or [],
        start=start,
        limit=limit,
        access=access,
        element_ids=element_ids,
        with_total=with_total,
    )
    rows = [(orjson.loads(body), number) for body, number in page.rows]
    lookups = await lookups_for(call, context, [row for row, _ in rows])
    previous = await _previous_stages(call, [uuid.UUID(row["id"]) for row, _ in rows])
    original_names = to_flag(call.get("useOriginalUfNames") or "N", "useOriginalUfNames")
    shown = TypeContext(
        number=context.number,
        meta=context.meta,
        categories=context.categories,
        pipelines_by_number=context.pipelines_by_number,
        options=context.options,
        options_by_number=context.options_by_number,
        fields={code: f for code, f in context.fields.items() if code in view.fields},
        fields_by_loose_name=context.fields_by_loose_name,
    )
    items = [
        _item(shown, row, number, previous.get(uuid.UUID(row["id"])), lookups, original_names=original_names)
        for row, number in rows
    ]
    return items, page.total, page.more


async def _context(call: Call) -> TypeContext:
    number = call.integer("entityTypeId", "entityTypeID")
    assert number is not None  # noqa: S101  (required)
    return await type_context(call, number)


async def _element_id(call: Call, context: TypeContext, number: int) -> uuid.UUID:
    element_id = await call.session.scalar(
        select(Element.id).where(
            Element.workspace_id == call.workspace_id,
            Element.entity_type_id == context.meta.id,
            Element.number == number,
            Element.deleted_at.is_(None),
        )
    )
    if element_id is None:
        raise not_found(f"Item {number} not found")
    return element_id


async def _one(call: Call, context: TypeContext, element_id: uuid.UUID, number: int) -> dict[str, Any]:
    items, _, _ = await read_items(call, context, element_ids=[element_id], limit=1, with_total=False)
    if not items:
        raise not_found(f"Item {number} not found")
    return _selected(items[0], _select(call))


def _select(call: Call) -> list[str] | None:
    raw = call.get("select")
    if raw is None or raw == "":
        return None
    names = as_list(raw) if not isinstance(raw, str) else [raw]
    if names is None or len(names) > MAX_SELECT:
        raise invalid("select must be a list of field names")
    return [str(name) for name in names]


@method("crm.item.list")
async def list_items(call: Call) -> Answer:
    context = await _context(call)
    node = await compile_filter(call, context, call.map("filter"))
    order = _order(context, call.map("order"))
    start = start_of(call)
    items, total, more = await read_items(call, context, node=node, order=order, start=start)
    select_ = _select(call)
    return Answer(
        {"items": [_selected(item, select_) for item in items]}, total=total, next=start + PAGE_SIZE if more else None
    )


@method("crm.item.get")
async def get_item(call: Call) -> Answer:
    context = await _context(call)
    number = call.integer("id")
    assert number is not None  # noqa: S101
    element_id = await _element_id(call, context, number)
    return Answer({"item": await _one(call, context, element_id, number)})


# --- writing ----------------------------------------------------------------------------------------------------


async def _writes(call: Call, context: TypeContext, fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The element's fields and custom values from an item's `fields`; unknown fields are ignored (as by
    Bitrix24); stageId and categoryId are returned under their own names for the caller to place the element."""
    data: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for key, raw in fields.items():
        name = SYSTEM_BY_LOOSE.get(loose(key))
        if name is None:
            view = context.field(key)
            if view is not None:
                values[view.code] = await value_in(call, context, view, raw)
            continue
        data.update(await _system_write(call, name, raw))
    if values:
        data["values"] = values
    return data, data.pop("_placement", {})


async def _system_write(call: Call, name: str, raw: Any) -> dict[str, Any]:
    blank = raw is None or (isinstance(raw, str) and raw.strip() == "")
    if name == "title":
        return {"title": "" if blank else str(raw)}
    if name == "opportunity":
        return {"amount": None if blank else to_decimal(raw, name)}
    if name == "currencyId":
        return {"currency": None if blank else str(raw).upper()}
    if name == "sourceId":
        return {"source": None if blank else str(raw)}
    if name in ("begindate", "closedate"):
        column = "begin_date" if name == "begindate" else "close_date"
        return {column: None if blank else to_date(raw, name)}
    if name == "assignedById":
        return {"assigned_to": None if blank or str(raw) == "0" else await user_by_number(call, raw, name)}
    if name in ("stageId", "categoryId"):
        return {"_placement": {name: raw}} if not blank else {}
    return {}  # read-only fields (id, times, previousStageId, entityTypeId) are ignored, as Bitrix24 does


def _placement(
    context: TypeContext, placement: dict[str, Any], current_pipeline: uuid.UUID | None
) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """(pipeline id, stage id) from categoryId and stageId; a bare stage code is looked up in that pipeline."""
    pipeline_id = current_pipeline
    if "categoryId" in placement:
        pipeline_id = context.pipeline(to_int(placement["categoryId"], "categoryId")).id
    if "stageId" in placement:
        stage = context.stage(str(placement["stageId"]), pipeline_id)
        if "categoryId" in placement and stage.pipeline_id != pipeline_id:
            raise invalid(f"stage {placement['stageId']!r} is not in category {placement['categoryId']}")
        return stage.pipeline_id, stage.id
    if "categoryId" in placement and pipeline_id is not None:
        first = context.meta.stages_of(pipeline_id)
        return pipeline_id, first[0].id if first else None
    return None, None


@method("crm.item.add")
async def add_item(call: Call) -> Answer:
    context = await _context(call)
    data, placement = await _writes(call, context, call.map("fields"))
    pipeline_id, stage_id = _placement(context, placement, None)
    create = ElementCreate.model_validate({**data, "pipeline_id": pipeline_id, "stage_id": stage_id})
    created = await element_service.create_element(call.session, call.actor, str(context.meta.id), create)
    number = await call.session.scalar(select(Element.number).where(Element.id == created.id))
    return Answer({"item": await _one(call, context, created.id, int(number or 0))})


@method("crm.item.update")
async def update_item(call: Call) -> Answer:
    """A partial update: only the fields sent change; `stageId` (with `categoryId` to change pipelines) moves it."""
    context = await _context(call)
    number = call.integer("id")
    assert number is not None  # noqa: S101
    element_id = await _element_id(call, context, number)
    data, placement = await _writes(call, context, call.map("fields"))
    if data:
        await element_service.update_element(call.session, call.actor, element_id, ElementUpdate.model_validate(data))
    if placement:
        current = await call.session.scalar(select(Element.pipeline_id).where(Element.id == element_id))
        pipeline_id, stage_id = _placement(context, placement, current)
        if stage_id is not None:
            move = ElementMove(stage_id=stage_id, pipeline_id=pipeline_id)
            await element_service.move_element(call.session, call.actor, element_id, move)
    return Answer({"item": await _one(call, context, element_id, number)})


@method("crm.item.delete")
async def delete_item(call: Call) -> Answer:
    context = await _context(call)
    number = call.integer("id")
    assert number is not None  # noqa: S101
    await element_service.delete_element(call.session, call.actor, await _element_id(call, context, number))
    return Answer([])


@method("crm.item.fields")
async def item_fields(call: Call) -> Answer:
    context = await _context(call)
    original_names = to_flag(call.get("useOriginalUfNames") or "N", "useOriginalUfNames")
    fields: dict[str, Any] = {}
    for name, (_, kind, title, read_only) in SYSTEM.items():
        fields[name] = _description(kind, title, read_only=read_only, required=False, multiple=False)
    for view in context.fields.values():
        row = view.meta.row
        fields[view.uf_name if original_names else view.item_key] = {
            **_description(
                USER_TYPE_IDS.get(row.type, "string"),
                row.label,
                read_only=False,
                required=row.required,
                multiple=row.multiple,
            ),
            "isDynamic": True,
            "upperName": view.uf_name,
        }
    return Answer({"fields": fields})


def _description(kind: str, title: str, *, read_only: bool, required: bool, multiple: bool) -> dict[str, Any]:
    return {
        "type": kind,
        "isRequired": required,
        "isReadOnly": read_only,
        "isImmutable": False,
        "isMultiple": multiple,
        "isDynamic": False,
        "title": title,
    }


# --- filters and order ------------------------------------------------------------------------------------------


def _order(context: TypeContext, order: dict[str, Any]) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    for key, value in order.items():
        descending = direction(value, key)
        name = SYSTEM_BY_LOOSE.get(loose(key))
        if name is not None and SYSTEM[name][0]:
            keys.append((SYSTEM[name][0], descending))
            continue
        view = context.field(key)
        if view is None:
            raise invalid(f"cannot order by unknown field {key!r}")
        keys.append((view.code, descending))
    if len(keys) > 3:
        raise invalid("order takes at most 3 fields")
    return keys


async def compile_filter(call: Call, context: TypeContext, filter_: dict[str, Any]) -> Any:
    """A Bitrix24 filter as the filter language's tree (the compiler then checks each operator against its field)."""
    from app.kit.filters import parse_filter

    tree = await _group(call, context, filter_, "AND", 0)
    return parse_filter(tree) if tree else None


async def _group(call: Call, context: TypeContext, filter_: dict[str, Any], logic: str, level: int) -> Any:
    if level > 5:
        raise invalid("filter groups nest at most 5 levels")
    items: list[Any] = []
    for key, value in filter_.items():
        if key.lower() == "logic":
            continue
        sub = as_map(value) if isinstance(value, dict | list) else None
        if key.isdigit() or (sub is not None and PREFIX.match(key) and _is_group(sub)):
            if sub is None:
                raise invalid(f"filter group {key!r} must be an object")
            sub_logic = str(param(sub, "logic") or "AND").upper()
            if sub_logic not in ("AND", "OR"):
                raise invalid(f"filter logic must be AND or OR, not {sub_logic[:20]!r}")
            group = await _group(call, context, sub, sub_logic, level + 1)
            if group is not None:
                items.append(group)
            continue
        items.append(await _condition(call, context, key, value))
    if not items:
        return None
    if len(items) == 1:
        return items[0]
    return {"or" if logic == "OR" else "and": items}


def _is_group(sub: dict[str, Any]) -> bool:
    return any(key.lower() == "logic" for key in sub) or any(isinstance(v, dict) for v in sub.values())


async def _condition(call: Call, context: TypeContext, key: str, value: Any) -> Any:
    match = PREFIX.match(key.strip())
    prefix, name = (match.group(1) or "", match.group(2)) if match else ("", key)
    system = SYSTEM_BY_LOOSE.get(loose(name))
    view = None if system is not None else context.field(name)
    if system is None and view is None:
        raise invalid(f"unknown filter field {name[:100]!r}")
    field = SYSTEM[system][0] if system is not None else view.code  # type: ignore[union-attr]
    if not field:
        raise invalid(f"cannot filter on {name!r}")
    values = as_list(value) if isinstance(value, list | dict) else None
    if prefix in ("@", "!@") or (values is not None and prefix in ("", "=", "!", "!=")):
        items = values if values is not None else [value]
        if not items:
            return {"field": "id", "op": "is_null", "value": True} if prefix in ("", "=", "@") else None
        operands = [await _operand(call, context, system, view, item) for item in items]
        return {"field": field, "op": "nin" if prefix.startswith("!") else "in", "value": operands}
    if values is not None:
        raise invalid(f"filter {key!r} takes one value")
    if prefix in ("%", "!%"):
        condition = {"field": field, "op": "icontains", "value": str(value)}
        return {"not": condition} if prefix == "!%" else condition
    blank = value is None or (isinstance(value, str) and value == "") or (value is False and system is None)
    if blank and prefix in ("", "=", "!", "!="):
        return {"field": field, "op": "is_null", "value": prefix in ("", "=")}
    return {"field": field, "op": OPS[prefix], "value": await _operand(call, context, system, view, value)}


async def _operand(call: Call, context: TypeContext, system: str | None, view: Any, raw: Any) -> Any:
    if view is not None:
        return await filter_operand(call, context, view, raw)
    if system == "id":
        return to_int(raw, "id")
    if system == "stageId":
        return str(context.stage(str(raw)).id)
    if system == "categoryId":
        return str(context.pipeline(to_int(raw, "categoryId")).id)
    if system == "assignedById":
        return str(await user_by_number(call, raw, "assignedById"))
    if system == "opportunity":
        return str(to_decimal(raw, "opportunity"))
    if system in ("begindate", "closedate"):
        return to_date(raw, system).isoformat()
    if system in ("createdTime", "updatedTime", "movedTime"):
        return to_datetime(raw, system).isoformat()
    if system == "entityTypeId":
        return to_int(raw, system)
    return str(raw) if not isinstance(raw, Decimal) else raw
