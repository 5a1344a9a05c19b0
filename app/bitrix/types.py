"""`crm.type.*`: smart processes are Stageflow's entity types; `entityTypeId` (≥ 128) is the type's number, and the
`Y`/`N` flags are the type's settings."""

from __future__ import annotations

import re
from typing import Any

from app.bitrix import numbers
from app.bitrix.common import Answer, Call, direction, method, start_of, to_flag, to_int, window, yn
from app.bitrix.errors import BitrixError, invalid, not_found
from app.entity_types import service as entity_type_service
from app.entity_types.models import EntityType
from app.entity_types.schemas import CODE_PATTERN, EntityTypeCreate, EntityTypeSettings, EntityTypeUpdate
from app.errors import NotFound

# Bitrix24 flag -> Stageflow setting.
FLAGS = {
    "isCategoriesEnabled": "pipelines_enabled",
    "isStagesEnabled": "stages_enabled",
    "isAutomationEnabled": "automation_enabled",
    "isRecyclebinEnabled": "recycle_bin_enabled",
    "isObserversEnabled": "observers_enabled",
    "isBeginCloseDatesEnabled": "begin_close_dates_enabled",
    "isClientEnabled": "client_enabled",
    "isSourceEnabled": "source_enabled",
    "isLinkWithProductsEnabled": "products_enabled",
    "isSetOpenPermissions": "open_new_pipelines",
}
# Flags Bitrix24 has and Stageflow does not: always `N`, ignored when sent.
UNSUPPORTED_FLAGS = (
    "isUseInUserfieldEnabled",
    "isMycompanyEnabled",
    "isDocumentsEnabled",
    "isBizProcEnabled",
    "isPaymentsEnabled",
    "isCountersEnabled",
)
FLAG_NAMES = {name.lower(): name for name in FLAGS}
TYPE_FIELDS: dict[str, tuple[str, str]] = {
    "id": ("integer", "ID"),
    "title": ("string", "Title"),
    "code": ("string", "Code"),
    "entityTypeId": ("integer", "Entity type id"),
    "createdTime": ("datetime", "Created"),
    "updatedTime": ("datetime", "Updated"),
    **{name: ("char", name) for name in (*FLAGS, *UNSUPPORTED_FLAGS)},
}


def type_view(entity_type: EntityType, number: int) -> dict[str, Any]:
    settings = EntityTypeSettings.model_validate(entity_type.settings)
    view: dict[str, Any] = {
        "id": number,
        "title": entity_type.title,
        "code": entity_type.code,
        "createdBy": None,
        "entityTypeId": number,
        "customSectionId": None,
        "createdTime": entity_type.created_at.isoformat(timespec="seconds"),
        "updatedTime": entity_type.updated_at.isoformat(timespec="seconds"),
    }
    for flag, setting in FLAGS.items():
        view[flag] = yn(bool(getattr(settings, setting)))
    for flag in UNSUPPORTED_FLAGS:
        view[flag] = "N"
    return view


def _settings_patch(fields: dict[str, Any]) -> dict[str, bool]:
    patch: dict[str, bool] = {}
    for key, value in fields.items():
        flag = FLAG_NAMES.get(key.lower())
        if flag is not None:
            patch[FLAGS[flag]] = to_flag(value, flag)
    return patch


def _text(fields: dict[str, Any], name: str) -> str | None:
    value = next((v for k, v in fields.items() if k.lower() == name.lower()), None)
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise invalid(f"{name} must be a string")
    return str(value)


async def type_by_number(call: Call, number: int) -> EntityType:
    """The caller's entity type numbered `number` (NOT_FOUND for any other workspace's or an unknown number)."""
    type_id = await numbers.object_of(call.session, call.workspace_id, numbers.TYPE, number)
    try:
        if type_id is None:
            raise NotFound("")
        return await entity_type_service.get_entity_type_by_ref(call.session, call.actor, str(type_id))
    except NotFound as exc:
        raise not_found(f"Smart process {number} not found") from exc


async def _code_for(call: Call, fields: dict[str, Any], title: str) -> str:
    """The Stageflow code: the `code` sent when it fits, else one made from the title, else `smart_process_<n>`."""
    taken = {t.code for t in await entity_type_service.all_entity_types(call.session, call.workspace_id)}
    wanted = _text(fields, "code")
    candidates = [wanted.lower()] if wanted else []
    slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:60]
    candidates.append(slug)
    for candidate in candidates:
        if re.fullmatch(CODE_PATTERN, candidate) and candidate not in taken:
            return candidate
    if wanted:
        raise invalid(f"code {wanted!r} is taken or not a code ({CODE_PATTERN})")
    counter = len(taken) + 1
    while f"smart_process_{counter}" in taken:
        counter += 1
    return f"smart_process_{counter}"


@method("crm.type.add")
async def add_type(call: Call) -> Answer:
    fields = call.map("fields")
    title = _text(fields, "title")
    if not title:
        raise BitrixError("ERROR_ARGUMENT", "fields[title] is required")
    code = await _code_for(call, fields, title)
    data = EntityTypeCreate.model_validate({"code": code, "title": title, "settings": _settings_patch(fields)})
    entity_type = await entity_type_service.create_entity_type(call.session, call.actor, data)
    number = await numbers.number_of(call.session, call.workspace_id, numbers.TYPE, entity_type.id)
    return Answer({"type": type_view(entity_type, number)})


@method("crm.type.get", "crm.type.getByEntityTypeId")
async def get_type(call: Call) -> Answer:
    number = call.integer("id", "entityTypeId")
    assert number is not None  # noqa: S101  (required)
    entity_type = await type_by_number(call, number)
    return Answer({"type": type_view(entity_type, number)})


@method("crm.type.list")
async def list_types(call: Call) -> Answer:
    rows = await entity_type_service.list_entity_types(call.session, call.actor)
    numbered = await numbers.numbers_of(call.session, call.workspace_id, numbers.TYPE, [t.id for t in rows])
    views = [type_view(t, numbered[t.id]) for t in rows]
    views = [v for v in views if _matches(v, call.map("filter"))]
    for key, value in reversed(list(call.map("order").items())):
        name = _view_key(key)
        descending = direction(value, key)
        views.sort(key=lambda v: (v[name] is None, v[name]), reverse=descending)
    chunk, total, after = window(views, start_of(call))
    return Answer({"types": chunk}, total=total, next=after)


def _view_key(key: str) -> str:
    match = next((name for name in TYPE_FIELDS if name.lower() == key.lower()), None)
    if match is None:
        raise invalid(f"unknown field {key!r}")
    return match


def _matches(view: dict[str, Any], filter_: dict[str, Any]) -> bool:
    for key, value in filter_.items():
        name = _view_key(key.lstrip("="))
        expected = view[name]
        if isinstance(expected, int):
            if expected != to_int(value, name):
                return False
        elif str(expected) != str(value):
            return False
    return True


@method("crm.type.update")
async def update_type(call: Call) -> Answer:
    number = call.integer("id", "entityTypeId")
    assert number is not None  # noqa: S101
    entity_type = await type_by_number(call, number)
    fields = call.map("fields")
    data = EntityTypeUpdate.model_validate({"title": _text(fields, "title"), "settings": _settings_patch(fields)})
    updated = await entity_type_service.update_entity_type(call.session, call.actor, str(entity_type.id), data)
    return Answer({"type": type_view(updated, number)})


@method("crm.type.delete")
async def delete_type(call: Call) -> Answer:
    """Refused while the type has items (Bitrix24 refuses it too); Stageflow's REST can force it."""
    number = call.integer("id", "entityTypeId")
    assert number is not None  # noqa: S101
    entity_type = await type_by_number(call, number)
    await entity_type_service.delete_entity_type(call.session, call.actor, str(entity_type.id), force=False)
    return Answer([])


@method("crm.type.fields")
async def type_fields(call: Call) -> Answer:
    return Answer({"fields": {name: _field_description(kind, title) for name, (kind, title) in TYPE_FIELDS.items()}})


def _field_description(kind: str, title: str, *, required: bool = False, read_only: bool = False) -> dict[str, Any]:
    return {
        "type": kind,
        "isRequired": required,
        "isReadOnly": read_only,
        "isImmutable": False,
        "isMultiple": False,
        "isDynamic": False,
        "title": title,
    }
