"""`crm.stagehistory.list`: the elements' stage history, as Bitrix24 reports it for smart processes."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, or_, select, true

from app.access.permissions import TypeAccess
from app.bitrix.common import PAGE_SIZE, Answer, Call, direction, iso, method, start_of, to_datetime, to_int
from app.bitrix.context import SEMANTIC_IDS, TypeContext, type_context
from app.bitrix.errors import invalid
from app.bitrix.transport import as_list
from app.elements import reads
from app.elements.models import Element, StageHistory
from app.pipelines.models import Stage, StageSemantic

PREFIX = re.compile(r"^(!=|>=|<=|!|=|>|<|@|!@)?(.+)$")
FINAL = (StageSemantic.success, StageSemantic.failure)
TYPE_ID = case(
    (StageHistory.from_stage_id.is_(None), 1),
    (Stage.semantic.in_(FINAL), 3),
    else_=2,
)
SEMANTIC_ID = case(
    (Stage.semantic == StageSemantic.success, "S"), (Stage.semantic == StageSemantic.failure, "F"), else_="P"
)
COLUMNS: dict[str, Any] = {
    "ID": StageHistory.id,
    "TYPE_ID": TYPE_ID,
    "OWNER_ID": Element.number,
    "CREATED_TIME": StageHistory.moved_at,
    "CATEGORY_ID": StageHistory.to_pipeline_id,
    "STAGE_ID": StageHistory.to_stage_id,
    "STAGE_SEMANTIC_ID": SEMANTIC_ID,
}


def _readable(access: TypeAccess, context: TypeContext) -> ColumnElement[bool]:
    """The elements `access` may read, as a condition on `Element` (the read model's read scope, in SQLAlchemy)."""
    groups = access.read_groups(context.meta.pipelines)
    if groups is None:
        return true()
    parts: list[ColumnElement[bool]] = []
    for group in groups:
        conditions: list[ColumnElement[bool]] = []
        if not group.every_pipeline:
            pipelines: list[ColumnElement[bool]] = []
            if group.pipeline_ids:
                pipelines.append(Element.pipeline_id.in_(list(group.pipeline_ids)))
            if group.no_pipeline:
                pipelines.append(Element.pipeline_id.is_(None))
            if not pipelines:
                continue
            conditions.append(or_(*pipelines))
        owners = access.owner_ids(group.scope)
        if owners is not None:
            conditions.append(or_(Element.assigned_to.in_(list(owners)), Element.created_by.in_(list(owners))))
        parts.append(and_(*conditions) if conditions else true())
    return or_(*parts) if parts else false()


def _operand(context: TypeContext, name: str, raw: Any) -> Any:
    if name == "CREATED_TIME":
        return to_datetime(raw, name)
    if name == "CATEGORY_ID":
        return context.pipeline(to_int(raw, name)).id
    if name == "STAGE_ID":
        return context.stage(str(raw)).id
    if name == "STAGE_SEMANTIC_ID":
        return str(raw).upper()
    return to_int(raw, name)


def _condition(context: TypeContext, key: str, value: Any) -> ColumnElement[bool]:
    match = PREFIX.match(key.strip())
    prefix, name = (match.group(1) or "", match.group(2).upper()) if match else ("", key.upper())
    column = COLUMNS.get(name)
    if column is None:
        raise invalid(f"unknown filter field {name[:100]!r}; one of {', '.join(COLUMNS)}")
    values = as_list(value) if isinstance(value, list | dict) else None
    if prefix in ("@", "!@") or values is not None:
        operands = [_operand(context, name, item) for item in (values if values is not None else [value])]
        test: ColumnElement[bool] = column.in_(operands)
        return ~test if prefix.startswith("!") else test
    operand = _operand(context, name, value)
    comparisons: dict[str, ColumnElement[bool]] = {
        "": column == operand,
        "=": column == operand,
        "!": column != operand,
        "!=": column != operand,
        ">": column > operand,
        ">=": column >= operand,
        "<": column < operand,
        "<=": column <= operand,
    }
    return comparisons[prefix]


@method("crm.stagehistory.list")
async def list_history(call: Call) -> Answer:
    number = call.integer("entityTypeId")
    assert number is not None  # noqa: S101  (required)
    context = await type_context(call, number)
    _, access = reads.readable(context.meta, call.actor)
    where = [
        StageHistory.workspace_id == call.workspace_id,
        Element.entity_type_id == context.meta.id,
        Element.deleted_at.is_(None),
        _readable(access, context),
    ]
    where += [_condition(context, key, value) for key, value in call.map("filter").items()]
    order = []
    for key, value in call.map("order").items():
        column = COLUMNS.get(key.upper())
        if column is None:
            raise invalid(f"cannot order by {key!r}")
        order.append(column.desc() if direction(value, key) else column.asc())
    order.append(StageHistory.id.asc())
    base = (
        select(
            StageHistory.id,
            TYPE_ID,
            Element.number,
            StageHistory.moved_at,
            StageHistory.to_pipeline_id,
            StageHistory.to_stage_id,
            SEMANTIC_ID,
        )
        .join(Element, Element.id == StageHistory.element_id)
        .outerjoin(Stage, Stage.id == StageHistory.to_stage_id)
        .where(*where)
    )
    start = start_of(call)
    rows = list(await call.session.execute(base.order_by(*order).limit(PAGE_SIZE + 1).offset(start)))
    total = await call.session.scalar(select(func.count()).select_from(base.subquery()))
    items = [
        {
            "ID": row[0],
            "TYPE_ID": row[1],
            "OWNER_ID": row[2],
            "CREATED_TIME": iso(row[3]),
            "CATEGORY_ID": context.category_of(row[4]),
            "STAGE_SEMANTIC_ID": row[6] if row[5] in context.meta.stages else SEMANTIC_IDS["process"],
            "STAGE_ID": context.status_of(row[5]),
        }
        for row in rows[:PAGE_SIZE]
    ]
    return Answer({"items": items}, total=int(total or 0), next=start + PAGE_SIZE if len(rows) > PAGE_SIZE else None)
