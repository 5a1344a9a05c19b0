"""The filter language: a JSON tree of and / or / not over {field, op, value}, parsed into a typed AST.

This module knows no tables: `app.readmodel.compiler` compiles the AST to SQL, and `evaluate()` runs it in memory
(automation conditions, webhook filters), with the same meaning.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast, get_args

from app.errors import FieldError, Invalid
from app.kit.jsonlimits import check_depth

Op = Literal[
    "eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "contains", "icontains", "starts_with", "is_null", "between"
]
OPS: frozenset[str] = frozenset(get_args(Op))
MAX_DEPTH = 8
MAX_CONDITIONS = 50


@dataclass(frozen=True)
class Condition:
    field: str
    op: Op
    value: Any
    path: str


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node: TypeAlias = Condition | And | Or | Not


def parse_filter(raw: Any, *, location: str = "filter") -> Node | None:
    """Parse a filter given as a JSON string, a dict or None; every problem is reported with its path."""
    if isinstance(raw, str):
        raw = decode_filter_json(raw, location=location)
    if raw is None or raw == {}:
        return None
    errors: list[FieldError] = []
    counter = [0]
    node = _parse_node(raw, location, 0, errors, counter)
    if errors or node is None:
        raise Invalid("The filter is not valid", errors=errors or [FieldError(location, "empty filter")])
    return node


def decode_filter_json(raw: str | None, *, location: str = "filter") -> Any:
    """Decode a filter passed as a JSON string (a query parameter); an empty string means no filter."""
    if not raw:
        return None
    check_depth(raw, location=location)  # before json.loads, which recurses
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Invalid("The filter is not valid JSON", errors=[FieldError(location, str(exc))]) from exc


def _parse_node(raw: Any, path: str, depth: int, errors: list[FieldError], counter: list[int]) -> Node | None:
    if depth > MAX_DEPTH:
        errors.append(FieldError(path, f"filters nest at most {MAX_DEPTH} levels"))
        return None
    if not isinstance(raw, dict):
        errors.append(FieldError(path, "must be an object: {field, op, value} or {and|or: [...]} or {not: {...}}"))
        return None
    keys = set(raw)
    if keys in ({"and"}, {"or"}):
        key = next(iter(keys))
        items = raw[key]
        if not isinstance(items, list) or not items:
            errors.append(FieldError(f"{path}.{key}", "must be a non-empty list"))
            return None
        parsed = [_parse_node(item, f"{path}.{key}[{i}]", depth + 1, errors, counter) for i, item in enumerate(items)]
        nodes = tuple(n for n in parsed if n is not None)
        return And(nodes) if key == "and" else Or(nodes)
    if keys == {"not"}:
        inner = _parse_node(raw["not"], f"{path}.not", depth + 1, errors, counter)
        return Not(inner) if inner is not None else None
    if "field" in keys and "op" in keys and keys <= {"field", "op", "value"}:
        return _parse_condition(raw, path, errors, counter)
    errors.append(FieldError(path, f"unexpected keys {sorted(keys)}; use field/op/value, and, or, not"))
    return None


def _parse_condition(raw: dict[str, Any], path: str, errors: list[FieldError], counter: list[int]) -> Condition | None:
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        if counter[0] == MAX_CONDITIONS + 1:
            errors.append(FieldError(path, f"a filter holds at most {MAX_CONDITIONS} conditions"))
        return None
    field, op, value = raw["field"], raw["op"], raw.get("value")
    if not isinstance(field, str) or not field:
        errors.append(FieldError(f"{path}.field", "must be a field code"))
        return None
    if op not in OPS:
        errors.append(FieldError(f"{path}.op", f"unknown operator {op!r}; one of {', '.join(sorted(OPS))}"))
        return None
    shape_error = _value_shape_error(op, value)
    if shape_error:
        errors.append(FieldError(f"{path}.value", shape_error))
        return None
    return Condition(field=field, op=cast(Op, op), value=value, path=path)


def _value_shape_error(op: str, value: Any) -> str | None:
    if op in ("in", "nin"):
        if not isinstance(value, list) or not value or len(value) > 500:
            return f"{op} takes a list of 1 to 500 values"
    elif op == "between":
        if not isinstance(value, list) or len(value) != 2:
            return "between takes [low, high]"
    elif op == "is_null":
        if not isinstance(value, bool):
            return "is_null takes true or false"
    elif value is None or isinstance(value, list | dict):
        return f"{op} takes one value"
    return None


def conditions(node: Node | None) -> list[Condition]:
    """Every condition of the tree, in order."""
    if node is None:
        return []
    if isinstance(node, Condition):
        return [node]
    if isinstance(node, Not):
        return conditions(node.item)
    return [c for item in node.items for c in conditions(item)]


# --- in-memory evaluation --------------------------------------------------------------------------------------

Coerce = Callable[[Any], Any]


def evaluate(node: Node | None, record: Mapping[str, Any], coerce: Mapping[str, Coerce] | None = None) -> bool:
    """Evaluate a filter against one record (field -> value or list of values), as the SQL compiler would.

    `coerce` turns filter operands into the record's Python types per field (dates, decimals…).
    """
    if node is None:
        return True
    if isinstance(node, And):
        return all(evaluate(item, record, coerce) for item in node.items)
    if isinstance(node, Or):
        return any(evaluate(item, record, coerce) for item in node.items)
    if isinstance(node, Not):
        return not evaluate(node.item, record, coerce)
    convert = (coerce or {}).get(node.field, _identity)
    raw = record.get(node.field)
    values: Sequence[Any] = (
        [v for v in raw if v is not None] if isinstance(raw, list) else ([] if raw is None else [raw])
    )
    return _match(node, values, convert)


def _identity(value: Any) -> Any:
    return value


def _match(cond: Condition, values: Sequence[Any], convert: Coerce) -> bool:
    op = cond.op
    if op == "is_null":
        return (not values) == bool(cond.value)
    # Negative operators hold when no value matches (an empty field is "not equal" to anything).
    if op == "ne":
        target = convert(cond.value)
        return all(v != target for v in values)
    if op == "nin":
        targets = [convert(t) for t in cond.value]
        return all(v not in targets for v in values)
    return any(_positive(op, v, cond.value, convert) for v in values)


def _positive(op: str, value: Any, operand: Any, convert: Coerce) -> bool:
    if op in ("contains", "icontains", "starts_with"):
        text, needle = str(value), str(operand)
        if op == "contains":
            return needle in text
        if op == "icontains":
            return needle.lower() in text.lower()
        return text.startswith(needle)
    if op == "in":
        return value in [convert(t) for t in operand]
    try:
        if op == "between":
            low, high = convert(operand[0]), convert(operand[1])
            return bool(low <= value <= high)
        return _COMPARISONS[op](value, convert(operand))
    except TypeError:
        return False  # values of different types are not ordered: no match (PostgreSQL would refuse the filter)


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: bool(a == b),
    "lt": lambda a, b: bool(a < b),
    "lte": lambda a, b: bool(a <= b),
    "gt": lambda a, b: bool(a > b),
    "gte": lambda a, b: bool(a >= b),
}
