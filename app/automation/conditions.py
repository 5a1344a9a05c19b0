"""A rule's condition, typed by the rule's entity type.

When the rule is saved every condition is checked as the SQL filter checks it (unknown fields, operators that do not
apply, operands of the wrong type are a 422 naming each). When a run is created the condition is evaluated in
memory with the SQL filter's meaning: operands are parsed with the field's kind exactly as the SQL side parses them
(`parse_operand`), and so are the element's values, so `{"field": "budget", "op": "gte", "value": "100"}` compares
two numbers in memory as it does in PostgreSQL instead of a number with a string.
"""

import enum
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from app.activities.models import ActivityDirection, ActivityKind, ActivityStatus, CallOutcome
from app.entity_types.fields import (
    DateKind,
    DateTimeKind,
    EnumKind,
    FieldKind,
    FieldSpec,
    IdKind,
    IntegerKind,
    TextKind,
    ValueRejected,
)
from app.entity_types.meta import TypeMeta
from app.errors import ErrorCollector, Invalid
from app.kit.filters import Condition, Node, conditions, evaluate, parse_filter

# The SQL filter's own field table and operand parsing: one meaning for both evaluators (the automation package
# reads them only through this module).
from app.readmodel.compiler import STAGE_CODE_OPS, SYSTEM_FIELDS, parse_operand

__all__ = ["ACTIVITY_FIELDS", "SYSTEM_FIELDS", "check_condition", "matches"]
BODY = "body."
ACTIVITY = "activity."


def _enum(code: str, values: type[enum.StrEnum]) -> tuple[FieldKind, FieldSpec]:
    return EnumKind(), FieldSpec(code, "enum", {}, frozenset(v.value for v in values))


# The activity an `activity.created` / `activity.completed` event carries, typed as the API types it.
ACTIVITY_FIELDS: dict[str, tuple[FieldKind, FieldSpec]] = {
    "activity.kind": _enum("activity.kind", ActivityKind),
    "activity.direction": _enum("activity.direction", ActivityDirection),
    "activity.status": _enum("activity.status", ActivityStatus),
    "activity.outcome": _enum("activity.outcome", CallOutcome),
    "activity.subject": (TextKind(), FieldSpec("activity.subject", "string", {"max_length": 500})),
    "activity.duration_seconds": (IntegerKind(), FieldSpec("activity.duration_seconds", "integer", {})),
    "activity.starts_at": (DateTimeKind(), FieldSpec("activity.starts_at", "datetime", {})),
    "activity.ends_at": (DateTimeKind(), FieldSpec("activity.ends_at", "datetime", {})),
    "activity.completed_at": (DateTimeKind(), FieldSpec("activity.completed_at", "datetime", {})),
    "activity.responsible_user_id": (IdKind(), FieldSpec("activity.responsible_user_id", "user", {})),
}


def _field(meta: TypeMeta, code: str) -> tuple[FieldKind, FieldSpec | None] | None:
    if code.startswith(ACTIVITY):
        return ACTIVITY_FIELDS.get(code)
    system = SYSTEM_FIELDS.get(code)
    if system is not None:
        return system.kind, None
    field_meta = meta.fields.get(code)
    return (field_meta.kind, field_meta.spec) if field_meta is not None else None


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_condition(
    meta: TypeMeta,
    raw: Any,
    errors: ErrorCollector,
    *,
    location: str = "condition",
    hook: bool = False,
    activity: bool = False,
    templated: bool = False,
) -> Node | None:
    """Report every problem of a filter over `meta`'s elements; `hook` allows `body.*` fields (an incoming hook's
    body), `activity` the `activity.*` fields (the activity of an activity trigger's event), `templated` lets
    operands be templates (rendered at run time, so checked then)."""
    try:
        node = parse_filter(raw, location=location)
    except Invalid as exc:
        for error in exc.errors:
            errors.add(error.field, error.message)
        return None
    for cond in conditions(node):
        _check(meta, cond, errors, hook=hook, activity=activity, templated=templated)
    return node


def _out_of_scope(cond: Condition, *, hook: bool, activity: bool) -> str | None:
    """Why a `body.*` or `activity.*` field cannot be used here ("" when it can and needs no typing); None for the
    element's own fields."""
    if cond.field.startswith(BODY):
        return "" if hook else "body.* is an incoming hook's body: only webhook.received rules have one"
    if cond.field.startswith(ACTIVITY) and not activity:
        return "activity.* is the event's activity: only activity.created and activity.completed rules have one"
    return None


def _check(
    meta: TypeMeta,
    cond: Condition,
    errors: ErrorCollector,
    *,
    hook: bool,
    activity: bool = False,
    templated: bool = False,
) -> None:
    problem = _out_of_scope(cond, hook=hook, activity=activity)
    if problem is not None:
        if problem:
            errors.add(f"{cond.path}.field", problem)
        return
    if cond.field == "stage_code":
        if cond.op not in STAGE_CODE_OPS:
            errors.add(f"{cond.path}.op", f"stage_code takes {', '.join(sorted(STAGE_CODE_OPS))}")
            return
        known = {stage.code for stage in meta.stages.values()}
        codes = cond.value if isinstance(cond.value, list) else [cond.value]
        unknown = [c for c in codes if not (templated and _is_template(c)) and c not in known]
        if unknown:
            errors.add(f"{cond.path}.value", f"no stage of {meta.code!r} has the code {unknown[0]!r}")
        return
    found = _field(meta, cond.field)
    if found is None:
        what = "an activity" if cond.field.startswith(ACTIVITY) else f"entity type {meta.code!r}"
        errors.add(f"{cond.path}.field", f"unknown field {cond.field!r} on {what}")
        return
    kind, spec = found
    if cond.op not in kind.ops:
        allowed = ", ".join(sorted(kind.ops))
        errors.add(f"{cond.path}.op", f"{cond.op!r} does not apply to field {cond.field!r} ({allowed})")
        return
    if cond.op == "is_null":
        return
    items = cond.value if cond.op in ("in", "nin", "between") else [cond.value]
    for item in items:
        if templated and _is_template(item):
            continue
        try:
            parse_operand(kind, item, spec)
        except ValueRejected as exc:
            errors.add(f"{cond.path}.value", f"{cond.field}: {exc}")
            return


def _typed(kind: FieldKind, spec: FieldSpec | None, value: Any) -> Any:
    """An element's value as the SQL column holds it (what the filter's operands are compared with)."""
    if isinstance(kind, DateTimeKind) and isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(kind, DateKind) and isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(kind, IdKind) and isinstance(value, uuid.UUID):
        return value
    try:
        return parse_operand(kind, value, spec)
    except ValueRejected:
        return value  # e.g. an enum option deleted since: compared as it is (and never equal to a typed operand)


def _operand_parser(kind: FieldKind, spec: FieldSpec | None) -> Callable[[Any], Any]:
    return lambda raw: parse_operand(kind, raw, spec)


def matches(meta: TypeMeta, node: Node | None, record: dict[str, Any]) -> bool:
    """Whether `record` (the engine's `record_of`) satisfies the condition, as the SQL filter would decide.

    Raises Invalid when the condition no longer fits the type (a field deleted or retyped since it was saved).
    """
    errors = ErrorCollector()
    for cond in conditions(node):
        _check(meta, cond, errors, hook=True, activity=True)
    errors.raise_if_any("The rule's condition no longer fits its entity type")
    typed = dict(record)
    coerce: dict[str, Callable[[Any], Any]] = {}
    for cond in conditions(node):
        found = _field(meta, cond.field) if not cond.field.startswith(BODY) else None
        if found is None or cond.field in coerce:
            continue
        kind, spec = found
        coerce[cond.field] = _operand_parser(kind, spec)
        value = record.get(cond.field)
        if isinstance(value, list):
            typed[cond.field] = [_typed(kind, spec, item) for item in value if item is not None]
        elif value is not None:
            typed[cond.field] = _typed(kind, spec, value)
    return evaluate(node, typed, coerce)
