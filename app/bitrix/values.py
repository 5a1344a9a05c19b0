"""Custom field values in Bitrix24's formats: enum options by their number, `Y`/`N` booleans, `150.00|USD`
money, dates with an offset, crm links and users by their numbers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from app.bitrix import numbers
from app.bitrix.common import Call, iso, to_date, to_datetime, to_decimal, to_flag, to_int
from app.bitrix.context import FieldView, TypeContext
from app.bitrix.errors import invalid
from app.bitrix.transport import as_list
from app.elements.models import Element

DEFAULT_CURRENCY = "USD"
TEXT_TYPES = frozenset({"string", "text", "email", "phone", "url"})


@dataclass
class Lookups:
    """Numbers of the elements and users a page of items points to (looked up once per page)."""

    elements: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)


async def lookups_for(call: Call, context: TypeContext, rows: list[dict[str, Any]]) -> Lookups:
    element_ids: set[str] = set()
    user_ids: set[str] = set()
    for row in rows:
        if row.get("assigned_to"):
            user_ids.add(row["assigned_to"])
        for code, value in (row.get("values") or {}).items():
            view = context.fields.get(code)
            if view is None or value is None:
                continue
            found = {str(v) for v in (value if isinstance(value, list) else [value]) if v}
            if view.meta.row.type == "reference":
                element_ids |= found
            elif view.meta.row.type == "user":
                user_ids |= found
    lookups = Lookups()
    if element_ids:
        rows_found = await call.session.execute(
            select(Element.id, Element.number).where(
                Element.workspace_id == call.workspace_id, Element.id.in_([uuid.UUID(i) for i in element_ids])
            )
        )
        lookups.elements = {str(row[0]): int(row[1]) for row in rows_found}
    if user_ids:
        numbered = await numbers.numbers_of(
            call.session, call.workspace_id, numbers.USER, [uuid.UUID(i) for i in sorted(user_ids)]
        )
        lookups.users = {str(k): v for k, v in numbered.items()}
    return lookups


def value_out(context: TypeContext, view: FieldView, value: Any, lookups: Lookups, currency: str | None) -> Any:
    field_type = view.meta.row.type

    def one(item: Any) -> Any:
        if item is None:
            return None
        if field_type == "enum":
            option = next((o for o in view.meta.options if o.value == item), None)
            return context.options.get(option.id) if option else None
        if field_type == "boolean":
            return "Y" if item else "N"
        if field_type == "date":
            return iso(date.fromisoformat(str(item)))
        if field_type == "datetime":
            return iso(datetime.fromisoformat(str(item)))
        if field_type == "money":
            return f"{Decimal(str(item)):.2f}|{currency or DEFAULT_CURRENCY}"
        if field_type == "reference":
            return lookups.elements.get(str(item))
        if field_type == "user":
            return lookups.users.get(str(item))
        return item

    if view.meta.row.multiple:
        return [one(item) for item in (value or [])]
    if field_type == "boolean" and value is None:
        return "N"
    return one(value)


def _blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and raw.strip() == "")


async def value_in(call: Call, context: TypeContext, view: FieldView, raw: Any) -> Any:
    """A Bitrix24 value as the Stageflow value of the field (None clears it)."""
    if view.meta.row.multiple:
        items = as_list(raw) if isinstance(raw, list | dict | tuple) else [raw]
        converted = [await _one_in(call, context, view, item) for item in items or [] if not _blank(item)]
        return converted or None
    if isinstance(raw, list | dict):
        items = as_list(raw) or []
        if len(items) > 1:
            raise invalid(f"{view.item_key} takes one value")
        raw = items[0] if items else None
    if _blank(raw) and view.meta.row.type != "boolean":
        return None
    return await _one_in(call, context, view, raw)


async def _one_in(call: Call, context: TypeContext, view: FieldView, raw: Any) -> Any:
    field_type, name = view.meta.row.type, view.item_key
    if isinstance(raw, dict | list):
        raise invalid(f"{name} takes a plain value")
    if field_type == "enum":
        return enum_value(context, view, raw)
    if field_type == "boolean":
        return to_flag(raw, name)
    if field_type == "date":
        return to_date(raw, name).isoformat()
    if field_type == "datetime":
        return to_datetime(raw, name).isoformat()
    if field_type == "integer":
        return to_int(raw, name)
    if field_type in ("decimal", "money"):
        text = str(raw).split("|", 1)[0] if field_type == "money" and isinstance(raw, str) else raw
        return str(to_decimal(text, name))
    if field_type == "reference":
        return str(await element_by_number(call, view, raw))
    if field_type == "user":
        return str(await user_by_number(call, raw, name))
    if isinstance(raw, bool):
        return "Y" if raw else "N"
    return str(raw)


def enum_value(context: TypeContext, view: FieldView, raw: Any) -> str:
    """An option by its number (Bitrix24's enum id), or by its value or label."""
    text = str(raw).strip()
    if text.isdigit():
        option = context.options_by_number.get(int(text))
        if option is not None and option.field_id == view.meta.row.id:
            return option.value
    for option in view.meta.options:
        if text in (option.value, option.label):
            return option.value
    raise invalid(f"{view.item_key}: {text[:50]!r} is not one of its options")


async def element_by_number(call: Call, view: FieldView, raw: Any) -> uuid.UUID:
    """A crm link: an item number, or Bitrix24's `T{hex etid}_{id}` form."""
    text = str(raw).strip()
    if "_" in text:
        text = text.rsplit("_", 1)[1]
    number = to_int(text, view.item_key)
    statement = select(Element.id).where(
        Element.workspace_id == call.workspace_id, Element.number == number, Element.deleted_at.is_(None)
    )
    if view.meta.row.target_type_id is not None:
        statement = statement.where(Element.entity_type_id == view.meta.row.target_type_id)
    element_id = await call.session.scalar(statement)
    if element_id is None:
        raise invalid(f"{view.item_key}: item {number} not found")
    return element_id


async def user_by_number(call: Call, raw: Any, name: str) -> uuid.UUID:
    number = to_int(raw, name)
    user_id = await numbers.object_of(call.session, call.workspace_id, numbers.USER, number)
    if user_id is None:
        raise invalid(f"{name}: user {number} not found")
    return user_id


async def filter_operand(call: Call, context: TypeContext, view: FieldView, raw: Any) -> Any:
    """A filter operand for a custom field: as a stored value, but any text may be searched for."""
    if view.meta.row.type in TEXT_TYPES:
        return str(raw)
    return await _one_in(call, context, view, raw)
