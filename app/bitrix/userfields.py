"""`userfieldconfig.*`: a smart process's custom fields (`UF_CRM_{etid}_NAME`) are the entity type's fields."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import delete

from app.bitrix import numbers
from app.bitrix.common import Answer, Call, method, start_of, to_flag, to_int, window, yn
from app.bitrix.context import FieldView, TypeContext, code_of_uf, type_context
from app.bitrix.errors import BitrixError, invalid, not_found
from app.bitrix.models import BitrixNumber
from app.bitrix.transport import as_list, as_map, param
from app.entity_types import service as entity_type_service
from app.entity_types.schemas import FieldCreate, FieldUpdate

# Bitrix24 userTypeId -> Stageflow field type.
FIELD_TYPES = {
    "string": "string",
    "url": "url",
    "integer": "integer",
    "double": "decimal",
    "money": "money",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "enumeration": "enum",
    "employee": "user",
    "crm": "reference",
}
USER_TYPE_IDS = {
    "string": "string",
    "text": "string",
    "email": "string",
    "phone": "string",
    "url": "url",
    "integer": "integer",
    "decimal": "double",
    "money": "money",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "enum": "enumeration",
    "user": "employee",
    "reference": "crm",
}
ENTITY_ID = re.compile(r"^CRM_(\d+)$", re.IGNORECASE)
DYNAMIC = re.compile(r"^DYNAMIC_(\d+)$", re.IGNORECASE)
LABELS = ("editFormLabel", "listColumnLabel", "listFilterLabel")
MAX_OPTIONS = 500


def _label(value: Any) -> str | None:
    if isinstance(value, dict):
        texts = [str(v) for v in value.values() if isinstance(v, str | int | float) and str(v)]
        return texts[0] if texts else None
    if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
        return str(value)
    return None


def field_view(context: TypeContext, view: FieldView, number: int, target: int | None = None) -> dict[str, Any]:
    row = view.meta.row
    label = {"en": row.label}
    result: dict[str, Any] = {
        "id": number,
        "entityId": f"CRM_{context.number}",
        "fieldName": view.uf_name,
        "userTypeId": USER_TYPE_IDS.get(row.type, "string"),
        "xmlId": row.code,
        "sort": row.sort,
        "multiple": yn(row.multiple),
        "mandatory": yn(row.required),
        "showFilter": "E",
        "showInList": "Y",
        "editInList": "Y",
        "isSearchable": "N",
        "editFormLabel": label,
        "listColumnLabel": label,
        "listFilterLabel": label,
        "errorMessage": {"en": ""},
        "helpMessage": {"en": ""},
        "settings": {},
    }
    if row.type == "enum":
        result["enum"] = [
            {"id": context.options[o.id], "value": o.label, "def": "N", "sort": o.sort, "xmlId": o.value}
            for o in view.meta.options
        ]
    if target is not None:
        result["settings"] = {f"DYNAMIC_{target}": "Y"}
    return result


async def _field_number(call: Call, context: TypeContext, view: FieldView) -> int:
    return await numbers.number_of(call.session, call.workspace_id, numbers.FIELD, view.meta.row.id)


async def _view(call: Call, context: TypeContext, view: FieldView) -> dict[str, Any]:
    target_id = view.meta.row.target_type_id
    target = await numbers.number_of(call.session, call.workspace_id, numbers.TYPE, target_id) if target_id else None
    return field_view(context, view, await _field_number(call, context, view), target)


def _module(call: Call) -> None:
    module = call.get("moduleId")
    if module is not None and str(module).lower() != "crm":
        raise invalid(f"moduleId {str(module)[:20]!r}: only crm fields are here")


def _type_number(entity_id: Any) -> int:
    match = ENTITY_ID.match(str(entity_id or "").strip())
    if match is None:
        raise invalid(f"entityId must be CRM_<entityTypeId>, not {str(entity_id)[:50]!r}")
    return int(match.group(1))


def _options(raw: Any) -> list[dict[str, str]]:
    items = as_list(raw) if raw not in (None, "") else []
    if items is None or len(items) > MAX_OPTIONS:
        raise invalid(f"enum must be a list of at most {MAX_OPTIONS} options")
    options = []
    for item in items:
        option = as_map(item)
        if option is None:
            raise invalid("each enum option must be an object with a value")
        text = _label(param(option, "value"))
        if not text:
            raise invalid("each enum option needs a value")
        code = _label(param(option, "xmlId", "XML_ID")) or text
        options.append({"value": code[:100], "label": text[:200]})
    return options


async def _target_type(call: Call, settings: dict[str, Any]) -> str | None:
    """A crm link's target: the one smart process its settings turn on (`DYNAMIC_128: Y`)."""
    for key, value in settings.items():
        match = DYNAMIC.match(key)
        if match and to_flag(value, key):
            context = await type_context(call, int(match.group(1)))
            return str(context.meta.id)
    return None


@method("userfieldconfig.add")
async def add_field(call: Call) -> Answer:
    _module(call)
    field = call.map("field")
    context = await type_context(call, _type_number(param(field, "entityId")))
    name = param(field, "fieldName")
    user_type = str(param(field, "userTypeId") or "").lower()
    if not name or user_type not in FIELD_TYPES:
        raise BitrixError(
            "ERROR_ARGUMENT", f"field[fieldName] and field[userTypeId] ({', '.join(FIELD_TYPES)}) are required"
        )
    data: dict[str, Any] = {
        "code": code_of_uf(context.number, str(name)),
        "type": FIELD_TYPES[user_type],
        "label": next((_label(param(field, key)) for key in LABELS if _label(param(field, key))), None),
        "multiple": to_flag(param(field, "multiple") or "N", "multiple"),
        "required": to_flag(param(field, "mandatory") or "N", "mandatory"),
    }
    sort = param(field, "sort")
    if sort not in (None, ""):
        data["sort"] = to_int(sort, "sort")
    if data["type"] == "enum":
        data["options"] = _options(param(field, "enum"))
    if data["type"] == "reference":
        data["target_type"] = await _target_type(call, as_map(param(field, "settings")) or {})
        if data["target_type"] is None:
            raise invalid("a crm field needs settings[DYNAMIC_<entityTypeId>]=Y naming the smart process it links")
    created = await entity_type_service.create_field(
        call.session, call.actor, str(context.meta.id), FieldCreate.model_validate(data)
    )
    await numbers.number_of(call.session, call.workspace_id, numbers.FIELD, created.id)
    return await _answer(call, context.number, created.code)


async def _answer(call: Call, type_number: int, code: str) -> Answer:
    context = await type_context(call, type_number)
    return Answer({"field": await _view(call, context, context.fields[code])})


async def _by_id(call: Call) -> tuple[TypeContext, FieldView]:
    _module(call)
    number = call.integer("id")
    assert number is not None  # noqa: S101  (required)
    field_id = await numbers.object_of(call.session, call.workspace_id, numbers.FIELD, number)
    found = await _field_row(call, field_id) if field_id else None
    if found is None:
        raise not_found(f"Field {number} not found")
    return found


async def _field_row(call: Call, field_id: uuid.UUID) -> tuple[TypeContext, FieldView] | None:
    rows = await entity_type_service.list_entity_types(call.session, call.actor)
    type_numbers = await numbers.numbers_of(call.session, call.workspace_id, numbers.TYPE, [t.id for t in rows])
    for entity_type in rows:
        context = await type_context(call, type_numbers[entity_type.id])
        view = next((v for v in context.fields.values() if v.meta.row.id == field_id), None)
        if view is not None:
            return context, view
    return None


@method("userfieldconfig.get")
async def get_field(call: Call) -> Answer:
    context, view = await _by_id(call)
    return Answer({"field": await _view(call, context, view)})


@method("userfieldconfig.list")
async def list_fields(call: Call) -> Answer:
    _module(call)
    filter_ = {key.lstrip("=").lower(): value for key, value in call.map("filter").items()}
    unknown = set(filter_) - {"entityid", "fieldname", "usertypeid", "id"}
    if unknown:
        raise invalid(f"unknown filter field {sorted(unknown)[0]!r}")
    if "entityid" in filter_:
        type_numbers = [_type_number(filter_["entityid"])]
    else:
        rows = await entity_type_service.list_entity_types(call.session, call.actor)
        numbered = await numbers.numbers_of(call.session, call.workspace_id, numbers.TYPE, [t.id for t in rows])
        type_numbers = sorted(numbered.values())
    views: list[dict[str, Any]] = []
    for type_number in type_numbers:
        context = await type_context(call, type_number)
        for view in context.fields.values():
            views.append(await _view(call, context, view))
    checks = {"fieldname": "fieldName", "usertypeid": "userTypeId", "id": "id"}
    views = [v for v in views if all(str(v[checks[k]]) == str(value) for k, value in filter_.items() if k in checks)]
    views.sort(key=lambda v: (v["entityId"], v["sort"], v["id"]))
    chunk, total, after = window(views, start_of(call))
    return Answer({"fields": chunk}, total=total, next=after)


@method("userfieldconfig.update")
async def update_field(call: Call) -> Answer:
    """Label, mandatory, sort and enum options change; an option keeps its number while its value stays."""
    context, view = await _by_id(call)
    field = call.map("field")
    data: dict[str, Any] = {}
    label = next((_label(param(field, key)) for key in LABELS if _label(param(field, key))), None)
    if label:
        data["label"] = label
    if param(field, "mandatory") is not None:
        data["required"] = to_flag(param(field, "mandatory"), "mandatory")
    if param(field, "sort") not in (None, ""):
        data["sort"] = to_int(param(field, "sort"), "sort")
    kept: dict[str, int] = {}
    if view.meta.row.type == "enum" and param(field, "enum") is not None:
        options = _options(param(field, "enum"))
        existing = {o.value: context.options[o.id] for o in view.meta.options}
        kept = {o["value"]: existing[o["value"]] for o in options if o["value"] in existing}
        data["options"] = options
    await entity_type_service.update_field(
        call.session, call.actor, str(context.meta.id), view.code, FieldUpdate.model_validate(data)
    )
    if "options" in data:
        await _keep_option_numbers(call, context, view, kept)
    return await _answer(call, context.number, view.code)


async def _keep_option_numbers(call: Call, context: TypeContext, view: FieldView, kept: dict[str, int]) -> None:
    """Options are rows made anew on every change: the ones whose value stayed take their old numbers back."""
    old_ids = [o.id for o in view.meta.options]
    await call.session.execute(
        delete(BitrixNumber).where(
            BitrixNumber.workspace_id == call.workspace_id,
            BitrixNumber.kind == numbers.OPTION,
            BitrixNumber.object_id.in_(old_ids),
        )
    )
    fresh = await type_context_without_numbers(call, context.number, view.code)
    for option in fresh:
        if option.value in kept:
            call.session.add(
                BitrixNumber(
                    workspace_id=call.workspace_id,
                    kind=numbers.OPTION,
                    number=kept[option.value],
                    object_id=option.id,
                )
            )
    await call.session.flush()


async def type_context_without_numbers(call: Call, type_number: int, code: str) -> list[Any]:
    from app.bitrix.types import type_by_number
    from app.entity_types.meta import get_type_meta

    entity_type = await type_by_number(call, type_number)
    meta = await get_type_meta(call.session, call.workspace_id, str(entity_type.id))
    return list(meta.fields[code].options)


@method("userfieldconfig.delete")
async def delete_field(call: Call) -> Answer:
    context, view = await _by_id(call)
    await entity_type_service.delete_field(call.session, call.actor, str(context.meta.id), view.code)
    return Answer(True)
