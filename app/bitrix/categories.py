"""`crm.category.*` (a smart process's pipelines) and `crm.status.list` (their stages)."""

from __future__ import annotations

import re
from typing import Any

from app.bitrix import numbers
from app.bitrix.common import Answer, Call, direction, method, start_of, to_flag, to_int, window
from app.bitrix.context import SEMANTICS, TypeContext, type_context
from app.bitrix.errors import BitrixError, invalid, not_found
from app.bitrix.transport import param
from app.bitrix.types import type_by_number
from app.entity_types import service as entity_type_service
from app.pipelines import service as pipeline_service
from app.pipelines.models import Pipeline, Stage
from app.pipelines.schemas import PipelineCreate, PipelineUpdate

ENTITY_ID = re.compile(r"^DYNAMIC_(\d+)_STAGE_(\d+)$")


def category_view(context: TypeContext, pipeline: Pipeline) -> dict[str, Any]:
    return {
        "id": context.categories[pipeline.id],
        "name": pipeline.title,
        "sort": pipeline.sort,
        "entityTypeId": context.number,
        "isDefault": "Y" if pipeline.is_default else "N",
    }


async def _context(call: Call) -> TypeContext:
    number = call.integer("entityTypeId")
    assert number is not None  # noqa: S101  (required)
    return await type_context(call, number)


def _category(context: TypeContext, call: Call) -> Pipeline:
    number = call.integer("id")
    assert number is not None  # noqa: S101
    pipeline_id = context.pipelines_by_number.get(number)
    if pipeline_id is None or pipeline_id not in context.meta.pipelines:
        raise not_found(f"Category {number} not found")
    return context.meta.pipelines[pipeline_id]


def _pipeline_fields(fields: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    name = param(fields, "name", "title")
    if name is not None:
        if not isinstance(name, str | int | float) or isinstance(name, bool):
            raise invalid("fields[name] must be a string")
        data["title"] = str(name)
    sort = param(fields, "sort")
    if sort is not None and sort != "":
        data["sort"] = to_int(sort, "sort")
    is_default = param(fields, "isDefault")
    if is_default is not None:
        data["is_default"] = to_flag(is_default, "isDefault")
    return data


async def _reloaded(call: Call, number: int, pipeline_id: Any) -> Answer:
    context = await type_context(call, number)
    return Answer({"category": category_view(context, context.meta.pipelines[pipeline_id])})


@method("crm.category.list")
async def list_categories(call: Call) -> Answer:
    context = await _context(call)
    views = [category_view(context, p) for p in context.meta.pipelines.values()]
    views.sort(key=lambda v: (v["sort"], v["id"]))
    chunk, total, after = window(views, start_of(call))
    return Answer({"categories": chunk}, total=total, next=after)


@method("crm.category.get")
async def get_category(call: Call) -> Answer:
    context = await _context(call)
    return Answer({"category": category_view(context, _category(context, call))})


@method("crm.category.add")
async def add_category(call: Call) -> Answer:
    context = await _context(call)
    data = _pipeline_fields(call.map("fields"))
    if not data.get("title"):
        raise BitrixError("ERROR_ARGUMENT", "fields[name] is required")
    created = await pipeline_service.create_pipeline(
        call.session, call.actor, str(context.meta.id), PipelineCreate.model_validate(data)
    )
    await numbers.number_of(call.session, call.workspace_id, numbers.CATEGORY, created.id)
    return await _reloaded(call, context.number, created.id)


@method("crm.category.update")
async def update_category(call: Call) -> Answer:
    context = await _context(call)
    pipeline = _category(context, call)
    data = PipelineUpdate.model_validate(_pipeline_fields(call.map("fields")))
    await pipeline_service.update_pipeline(call.session, call.actor, pipeline.id, data)
    return await _reloaded(call, context.number, pipeline.id)


@method("crm.category.delete")
async def delete_category(call: Call) -> Answer:
    """Refused while the category holds items, and for the default category (as Bitrix24 does)."""
    context = await _context(call)
    pipeline = _category(context, call)
    await pipeline_service.delete_pipeline(call.session, call.actor, pipeline.id, move_to=None)
    return Answer([])


@method("crm.category.fields")
async def category_fields(call: Call) -> Answer:
    names = {"id": "integer", "name": "string", "sort": "integer", "entityTypeId": "integer", "isDefault": "char"}
    return Answer({"fields": {k: {"type": v, "title": k, "isRequired": k == "name"} for k, v in names.items()}})


# --- crm.status.list: the stages of smart processes ----------------------------------------------------------

STATUS_FILTERS = ("ENTITY_ID", "STATUS_ID", "CATEGORY_ID", "SEMANTICS", "NAME")
STATUS_ORDERS = ("SORT", "ID", "NAME", "STATUS_ID")


def status_view(context: TypeContext, stage: Stage, number: int, system: bool) -> dict[str, Any]:
    """As Bitrix24 answers crm.status.list: strings, as its older methods write every value."""
    return {
        "ID": str(number),
        "ENTITY_ID": context.entity_id(stage.pipeline_id),
        "STATUS_ID": context.status_id(stage),
        "NAME": stage.title,
        "NAME_INIT": "",
        "SORT": str(stage.sort),
        "SYSTEM": "Y" if system else "N",
        "COLOR": stage.color or "",
        "SEMANTICS": SEMANTICS[stage.semantic.value],
        "CATEGORY_ID": str(context.categories[stage.pipeline_id]),
        "EXTRA": {"SEMANTICS": stage.semantic.value, "COLOR": stage.color or ""},
    }


async def _contexts_for(call: Call, entity_ids: list[str]) -> list[TypeContext]:
    """The smart processes the ENTITY_ID filter names, or every one the caller sees."""
    wanted: list[int] = []
    for entity_id in entity_ids:
        match = ENTITY_ID.match(entity_id)
        if match is None:
            return []  # STATUS, DEAL_STAGE…: Bitrix24's own lists, which Stageflow does not have
        wanted.append(int(match.group(1)))
    if not entity_ids:
        rows = await entity_type_service.list_entity_types(call.session, call.actor)
        numbered = await numbers.numbers_of(call.session, call.workspace_id, numbers.TYPE, [t.id for t in rows])
        wanted = sorted(numbered.values())
    contexts = []
    for number in dict.fromkeys(wanted):
        try:
            await type_by_number(call, number)
        except BitrixError:
            continue
        contexts.append(await type_context(call, number))
    return contexts


@method("crm.status.list", "crm.status.entity.items")
async def list_statuses(call: Call) -> Answer:
    """A bare array (as Bitrix24 answers), sorted by SORT unless `order` says otherwise."""
    filter_ = {key.upper().lstrip("="): value for key, value in call.map("filter").items()}
    unknown = [key for key in filter_ if key not in STATUS_FILTERS]
    if unknown:
        raise invalid(f"unknown filter field {unknown[0]!r}; one of {', '.join(STATUS_FILTERS)}")
    entity_id = filter_.get("ENTITY_ID") or call.get("entityId")
    entity_ids = [str(entity_id)] if entity_id else []
    views: list[dict[str, Any]] = []
    for context in await _contexts_for(call, entity_ids):
        stage_numbers = await numbers.numbers_of(
            call.session, call.workspace_id, numbers.STAGE, list(context.meta.stages)
        )
        for pipeline_id in context.meta.pipelines:
            for position, stage in enumerate(context.meta.stages_of(pipeline_id)):
                views.append(status_view(context, stage, stage_numbers[stage.id], system=position == 0))
    views = [v for v in views if all(str(v[key]) == str(value) for key, value in filter_.items())]
    order = call.map("order") or {"SORT": "ASC"}
    for key, value in reversed(list(order.items())):
        name = key.upper()
        if name not in STATUS_ORDERS:
            raise invalid(f"cannot order by {key!r}; one of {', '.join(STATUS_ORDERS)}")
        descending = direction(value, key)
        numeric = name in ("SORT", "ID")
        views.sort(key=lambda v: int(v[name]) if numeric else str(v[name]), reverse=descending)
    return Answer(views, total=len(views))
