"""Custom values: validation against the type's fields, and their two stored forms (rows and JSON snapshot)."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.elements.models import Element
from app.entity_types.fields import ValueRejected, parse_value
from app.entity_types.meta import FieldMeta, TypeMeta
from app.errors import ErrorCollector
from app.users.service import check_assignees


@dataclass
class ParsedValues:
    """Validated values of one element: field code -> typed values (an empty list clears the field)."""

    by_code: dict[str, list[Any]] = field(default_factory=dict)

    def snapshot(self, meta: TypeMeta) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for code, items in self.by_code.items():
            if not items:
                continue
            field_meta = meta.fields[code]
            json_items = [field_meta.kind.to_json(v) for v in items]
            out[code] = json_items if field_meta.multiple else json_items[0]
        return out


class ValueColumns:
    """Many elements' value rows for one bulk INSERT, kept as a list per column rather than a dict per row."""

    def __init__(self, workspace_id: uuid.UUID) -> None:
        self.workspace_id = workspace_id
        self.element_id: list[uuid.UUID] = []
        self.field_id: list[uuid.UUID] = []
        self.position: list[int] = []
        self.typed: dict[str, list[tuple[int, Any]]] = {}  # value column -> (row number, value)

    def add(self, meta: TypeMeta, element_id: uuid.UUID, parsed: ParsedValues) -> None:
        for code, items in parsed.by_code.items():
            field_meta = meta.fields[code]
            typed = self.typed.setdefault(field_meta.kind.column, [])
            for position, value in enumerate(items):
                typed.append((len(self.element_id), value))
                self.element_id.append(element_id)
                self.field_id.append(field_meta.field_id)
                self.position.append(position)

    def columns(self) -> dict[str, list[Any]]:
        count = len(self.element_id)
        if not count:
            return {}
        out: dict[str, list[Any]] = {
            "element_id": self.element_id,
            "field_id": self.field_id,
            "position": self.position,
            "workspace_id": [self.workspace_id] * count,
        }
        for column, pairs in self.typed.items():
            values: list[Any] = [None] * count
            for row, value in pairs:
                values[row] = value
            out[column] = values
        return out


def parse_values(
    meta: TypeMeta, raw: dict[str, Any], errors: ErrorCollector, *, prefix: str, creating: bool
) -> ParsedValues:
    """Check raw values against their fields, collecting every problem; fill defaults when creating."""
    parsed = ParsedValues()
    for code, value in raw.items():
        field_meta = meta.fields.get(code)
        path = f"{prefix}values.{code}"
        if field_meta is None:
            errors.add(path, f"unknown field {code!r} on entity type {meta.code!r}")
        elif isinstance(value, list) and not field_meta.multiple:
            errors.add(path, "takes a single value, not a list")
        else:
            parsed.by_code[code] = _parse_items(field_meta, value, path, errors)
    if creating:
        for code, field_meta in meta.fields.items():
            if code not in raw and field_meta.row.default is not None:
                default = field_meta.row.default
                defaults = default if isinstance(default, list) else [default]
                parsed.by_code[code] = [parse_value(item, field_meta.spec) for item in defaults]
    for code, field_meta in meta.fields.items():
        if not field_meta.row.required or parsed.by_code.get(code) or not (creating or code in raw):
            continue
        path = f"{prefix}values.{code}"
        if not any(e.field == path or e.field.startswith(path + "[") for e in errors.errors):
            errors.add(path, "is required")
    return parsed


def _parse_items(field_meta: FieldMeta, value: Any, path: str, errors: ErrorCollector) -> list[Any]:
    items = value if isinstance(value, list) else ([] if value is None else [value])
    typed = []
    for index, item in enumerate(items):
        item_path = f"{path}[{index}]" if isinstance(value, list) else path
        if item is None:
            errors.add(item_path, "a list of values may not hold null")
            continue
        try:
            typed.append(parse_value(item, field_meta.spec))
        except ValueRejected as exc:
            errors.add(item_path, str(exc))
    return typed


@dataclass(frozen=True)
class ReferenceCheck:
    """An id in a value: an element of `target_type_id` (a `reference` field) or, with `user=True`, a user."""

    path: str
    element_id: uuid.UUID
    target_type_id: uuid.UUID | None
    target_code: str
    user: bool = False


def references_of(meta: TypeMeta, parsed: ParsedValues, prefix: str) -> list[ReferenceCheck]:
    checks = []
    for code, items in parsed.by_code.items():
        field_meta = meta.fields[code]
        if field_meta.row.type == "reference":
            for item in items:
                checks.append(
                    ReferenceCheck(
                        f"{prefix}values.{code}", item, field_meta.row.target_type_id, field_meta.target_type_code or ""
                    )
                )
        elif field_meta.row.type == "user":
            checks.extend(ReferenceCheck(f"{prefix}values.{code}", item, None, "", user=True) for item in items)
    return checks


async def check_references(
    session: AsyncSession, workspace_id: uuid.UUID, checks: Iterable[ReferenceCheck], errors: ErrorCollector
) -> None:
    """Every referenced element must exist, live, in this workspace and be of the field's target type, and every
    user of a `user` field must be a user of this workspace: one query each."""
    checks = list(checks)
    users = [(c.path, c.element_id) for c in checks if c.user]
    checks = [c for c in checks if not c.user]
    await check_assignees(session, workspace_id, users, errors)
    if not checks:
        return
    ids = {c.element_id for c in checks}
    rows = await session.execute(
        select(Element.id, Element.entity_type_id).where(
            Element.workspace_id == workspace_id, Element.id.in_(ids), Element.deleted_at.is_(None)
        )
    )
    found = {row.id: row.entity_type_id for row in rows}
    for check in checks:
        type_id = found.get(check.element_id)
        if type_id is None:
            errors.add(check.path, f"element {check.element_id} not found")
        elif type_id != check.target_type_id:
            errors.add(check.path, f"element {check.element_id} is not a {check.target_code!r}")
