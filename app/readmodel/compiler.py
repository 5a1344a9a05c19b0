"""Filters, sorts and keyset pages of one entity type, compiled to SQL over `elements` and the type's read model.

The output is SQL text with asyncpg's `$n` parameters. The parts that depend only on the type and the query's shape
(the JSON row builder, the joins, the ORDER BY) are cached per (type, metadata version, sort, …); a request walks its
filter once to add the WHERE and collect the operands, checking each against its field. PostgreSQL builds each
row's JSON (exactly the API's `ElementRead`), so a page is sent on as bytes.

Custom fields are columns of `rm_<type>` (alias `r`), system fields columns of `elements` (alias `e`).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from app.access.permissions import TypeAccess
from app.entity_types.fields import (
    DateKind,
    DateTimeKind,
    DecimalKind,
    FieldKind,
    IdKind,
    IntegerKind,
    TextKind,
    ValueRejected,
)
from app.entity_types.meta import FieldMeta, TypeMeta
from app.errors import ErrorCollector, FieldError, Invalid
from app.kit.cursor import decode_cursor, encode_cursor
from app.kit.filters import And, Condition, Node, Not, Or
from app.readmodel.ddl import SQL_TYPES, quote, table_name

MAX_SORT_KEYS = 3
Codec = str  # "text" | "number" | "bool" | "date" | "datetime" | "uuid"


@dataclass(frozen=True)
class SystemField:
    column: str
    kind: FieldKind
    codec: Codec
    nullable: bool = True


SYSTEM_FIELDS: dict[str, SystemField] = {
    "id": SystemField("e.id", IdKind(), "uuid", nullable=False),
    "title": SystemField("e.title", TextKind(), "text", nullable=False),
    "pipeline_id": SystemField("e.pipeline_id", IdKind(), "uuid"),
    "stage_id": SystemField("e.stage_id", IdKind(), "uuid"),
    "assigned_to": SystemField("e.assigned_to", IdKind(), "uuid"),
    "amount": SystemField("e.amount", DecimalKind(), "number"),
    "currency": SystemField("e.currency", TextKind(), "text"),
    "source": SystemField("e.source", TextKind(), "text"),
    "score": SystemField("e.score", IntegerKind(), "number"),
    "version": SystemField("e.version", IntegerKind(), "number", nullable=False),
    "begin_date": SystemField("e.begin_date", DateKind(), "date"),
    "close_date": SystemField("e.close_date", DateKind(), "date"),
    "created_at": SystemField("e.created_at", DateTimeKind(), "datetime", nullable=False),
    "updated_at": SystemField("e.updated_at", DateTimeKind(), "datetime", nullable=False),
    "moved_at": SystemField("e.moved_at", DateTimeKind(), "datetime"),
    "deleted_at": SystemField("e.deleted_at", DateTimeKind(), "datetime"),
}
CODECS: dict[str, Codec] = {
    "text": "text",
    "numeric": "number",
    "boolean": "bool",
    "date": "date",
    "timestamptz": "datetime",
    "uuid": "uuid",
}
STAGE_CODE_OPS = frozenset({"eq", "ne", "in", "nin"})
# Operators that only match an element that has a value for the field.
PRESENCE_OPS = frozenset({"eq", "lt", "lte", "gt", "gte", "in", "between", "contains", "icontains", "starts_with"})
COMPARISONS = {"eq": "=", "ne": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


# --- the JSON of one element, built by PostgreSQL ------------------------------------------------------------------


def row_json(
    type_code_sql: str, stage_code_sql: str, *, as_text: bool = True, hidden: frozenset[str] = frozenset()
) -> str:
    """The API's ElementRead of `e` as JSON (text), in its field order and formats (pydantic's datetimes).

    As rendered on write (`e.body`, migration 20261201_element_body), unless the reader may not see some fields.
    Reading the rendered body costs PostgreSQL about a tenth of building it (json_build_object over 19 keys: about
    21 µs a row, 1.1 ms of a 50-element page), and the statement is quicker to plan. A row without one (written with
    triggers off) is rendered by the same function the trigger calls."""
    json = built_json(type_code_sql, stage_code_sql, hidden) if hidden else "coalesce(e.body, sf_element_body(e))"
    return json + ("::text" if as_text else "")


def built_json(type_code_sql: str, stage_code_sql: str, hidden: frozenset[str] = frozenset()) -> str:
    """The JSON row_json reads, built from `e` (the trigger elements_render_body builds the same)."""
    values = "e.values" if not hidden else f"(e.values - {literal('{' + ','.join(sorted(hidden)) + '}')}::text[])"
    return (
        "json_build_object('id', e.id, 'entity_type', "
        + type_code_sql
        + ", 'pipeline_id', e.pipeline_id, 'stage_id', e.stage_id, 'stage_code', "
        + stage_code_sql
        + ", 'title', e.title, 'assigned_to', e.assigned_to, 'amount', e.amount::float8, 'currency', e.currency, "
        "'source', e.source, 'begin_date', sf_json_date(e.begin_date), "
        "'close_date', sf_json_date(e.close_date), 'score', e.score, "
        "'values', " + values + ", 'version', e.version, 'created_at', sf_json_ts(e.created_at), "
        "'updated_at', sf_json_ts(e.updated_at), 'moved_at', sf_json_ts(e.moved_at), "
        "'deleted_at', sf_json_ts(e.deleted_at))"
    )


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def stage_code_case(meta: TypeMeta) -> str:
    """The stage code from the type's own stages: no join per row."""
    if not meta.stages:
        return "NULL::text"
    whens = " ".join(f"WHEN '{stage.id}' THEN {literal(stage.code)}" for stage in meta.stages.values())
    return f"(CASE e.stage_id {whens} END)"


def type_row_json(meta: TypeMeta) -> str:
    return row_json(literal(meta.code), stage_code_case(meta), hidden=meta.hidden)


# --- filters ---------------------------------------------------------------------------------------------------


def parse_operand(kind: FieldKind, raw: Any, spec: Any) -> Any:
    """Filter operands are looser than stored values: any string may be searched for in a text field."""
    if isinstance(kind, TextKind):
        if not isinstance(raw, str):
            raise ValueRejected("must be a string")
        return raw
    if isinstance(kind, IntegerKind):
        return DecimalKind().parse(raw, spec)
    return kind.parse(raw, spec)


def operands(kind: FieldKind, cond: Condition, spec: Any) -> Any:
    if cond.op == "is_null":
        return cond.value
    if cond.op in ("in", "nin", "between"):
        return [parse_operand(kind, item, spec) for item in cond.value]
    return parse_operand(kind, cond.value, spec)


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_pattern(op: str, value: str) -> str:
    return f"{escape_like(value)}%" if op == "starts_with" else f"%{escape_like(value)}%"


@dataclass
class Params:
    """The statement's parameters, numbered as they are added."""

    values: list[Any] = field(default_factory=list)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def positive(column: str, op: str, value: Any, params: Params, cast: str = "") -> str:
    """`column op value` for a single value column."""
    if op in COMPARISONS:
        return f"{column} {COMPARISONS[op]} {params.add(value)}{cast}"
    if op in ("in", "nin"):
        return f"{column} = ANY({params.add(value)}{cast and cast + '[]'})"
    if op == "between":
        return f"{column} BETWEEN {params.add(value[0])}{cast} AND {params.add(value[1])}{cast}"
    like = "ILIKE" if op == "icontains" else "LIKE"
    return f"{column} {like} {params.add(_like_pattern(op, value))} ESCAPE '\\'"


class FilterCompiler:
    """One request's filter as a WHERE clause; every problem is collected and reported at once."""

    def __init__(self, meta: TypeMeta, params: Params, extra: dict[str, SystemField] | None = None) -> None:
        self.meta = meta
        self.params = params
        self.errors = ErrorCollector()
        self.uses_read_model = False
        # System fields one caller adds to the filter language (app/readmodel/numbered.py: `number`).
        self.extra = extra or {}

    def compile(self, node: Node | None) -> str:
        if node is None:
            return "true"
        clause = self._node(node)
        self.errors.raise_if_any("The filter is not valid")
        return clause

    def _node(self, node: Node) -> str:
        if isinstance(node, And):
            return "(" + " AND ".join(self._node(item) for item in node.items) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self._node(item) for item in node.items) + ")"
        if isinstance(node, Not):
            # A condition on a missing value is false, not unknown (as in the in-memory evaluator): so is its NOT.
            return f"(({self._node(node.item)}) IS NOT TRUE)"
        return self._condition(node)

    def _reject(self, cond: Condition, where: str, message: str) -> str:
        self.errors.add(f"{cond.path}.{where}", message)
        return "false"

    def _condition(self, cond: Condition) -> str:
        if cond.field == "stage_code":
            return self._stage_code(cond)
        system = SYSTEM_FIELDS.get(cond.field) or self.extra.get(cond.field)
        field_meta = self.meta.fields.get(cond.field)
        if system is None and field_meta is None:
            return self._reject(cond, "field", f"unknown field {cond.field!r} on entity type {self.meta.code!r}")
        kind = system.kind if system else field_meta.kind  # type: ignore[union-attr]
        type_name = field_meta.row.type if field_meta else cond.field
        if cond.op not in kind.ops:
            allowed = ", ".join(sorted(kind.ops))
            return self._reject(
                cond, "op", f"{cond.op!r} does not apply to {type_name} field {cond.field!r} ({allowed})"
            )
        try:
            operand = operands(kind, cond, field_meta.spec if field_meta else None)
        except ValueRejected as exc:
            return self._reject(cond, "value", f"{cond.field}: {exc}")
        if system is not None:
            return self._system(system, cond.op, operand)
        self.uses_read_model = True
        return self._custom(field_meta, cond.op, operand)  # type: ignore[arg-type]

    def _system(self, system: SystemField, op: str, operand: Any) -> str:
        column = system.column
        if op == "is_null":
            return f"{column} IS NULL" if operand else f"{column} IS NOT NULL"
        if op in ("ne", "nin"):
            # An empty value is "not equal" to anything, as in the in-memory evaluator.
            negative = f"NOT ({positive(column, 'eq' if op == 'ne' else 'in', operand, self.params)})"
            return f"({negative} OR {column} IS NULL)" if system.nullable else negative
        return positive(column, op, operand, self.params)

    def _custom(self, field_meta: FieldMeta, op: str, operand: Any) -> str:
        column = f"r.{quote(field_meta.row.code)}"
        if op == "is_null":
            return f"{column} IS NULL" if operand else f"{column} IS NOT NULL"
        if not field_meta.row.multiple:
            if op in ("ne", "nin"):
                matching = positive(column, "eq" if op == "ne" else "in", operand, self.params)
                return f"(NOT ({matching}) OR {column} IS NULL)"
            return positive(column, op, operand, self.params)
        base = "::" + SQL_TYPES[field_meta.row.type]
        if op in ("eq", "ne", "in", "nin"):
            items = [operand] if op in ("eq", "ne") else operand
            # Array containment and overlap: the GIN index on the column serves both.
            test = (
                f"{column} {'@>' if op in ('eq', 'ne') and len(items) == 1 else '&&'} {self.params.add(items)}{base}[]"
            )
            return test if op in ("eq", "in") else f"({column} IS NULL OR NOT {test})"
        return f"EXISTS (SELECT 1 FROM unnest({column}) AS v WHERE {positive('v', op, operand, self.params, base)})"

    def _stage_code(self, cond: Condition) -> str:
        if cond.op not in STAGE_CODE_OPS:
            return self._reject(cond, "op", f"stage_code takes {', '.join(sorted(STAGE_CODE_OPS))}")
        codes = cond.value if isinstance(cond.value, list) else [cond.value]
        stage_ids = [s.id for s in self.meta.stages.values() if s.code in codes]
        test = f"e.stage_id = ANY({self.params.add(stage_ids)}::uuid[])"
        return test if cond.op in ("eq", "in") else f"(NOT ({test}) OR e.stage_id IS NULL)"


# --- sorting and keyset pagination -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    name: str
    expression: str
    descending: bool
    codec: Codec
    nullable: bool

    def order(self) -> str:
        direction = "DESC" if self.descending else "ASC"
        return f"{self.expression} {direction}" + (" NULLS LAST" if self.nullable else "")


def required_fields(node: Node | None) -> set[str]:
    """Fields every match must have a value for (conditions of the top-level AND with a presence operator)."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, And):
            stack.extend(item.items)
        elif isinstance(item, Condition) and item.op in PRESENCE_OPS:
            found.add(item.field)
    return found


def parse_sort(meta: TypeMeta, sort: str | None, required: frozenset[str]) -> tuple[SortKey, ...]:
    """`-budget,created_at` as sort keys, the id last as the tie-breaker."""
    errors = ErrorCollector()
    keys: list[SortKey] = []
    names = [part.strip() for part in (sort or "-created_at").split(",") if part.strip()]
    if len(names) > MAX_SORT_KEYS:
        raise Invalid("Too many sort keys", errors=[FieldError("sort", f"at most {MAX_SORT_KEYS} keys")])
    id_expression = "e.id"
    for name in names:
        descending = name.startswith("-")
        code = name.lstrip("-+")
        system = SYSTEM_FIELDS.get(code)
        field_meta = meta.fields.get(code)
        if system is not None:
            keys.append(SortKey(code, system.column, descending, system.codec, system.nullable))
        elif field_meta is not None and field_meta.kind.sortable:
            column = f"r.{quote(code)}" + ("[1]" if field_meta.row.multiple else "")
            codec = CODECS[SQL_TYPES[field_meta.row.type]]
            # A value the filter requires is never NULL: no NULLS LAST, so the (value, id) index gives the order.
            nullable = code not in required or field_meta.row.multiple
            if not keys:
                id_expression = "r.id"
            keys.append(SortKey(code, column, descending, codec, nullable))
        elif field_meta is not None:
            errors.add("sort", f"field {code!r} ({field_meta.row.type}) cannot be sorted on")
        else:
            errors.add("sort", f"unknown field {code!r} on entity type {meta.code!r}")
    errors.raise_if_any("The sort is not valid")
    if not any(k.name == "id" for k in keys):
        keys.append(SortKey("id", id_expression, keys[-1].descending if keys else True, "uuid", False))
    return tuple(keys)


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Decimal | int | float):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


DECODERS: dict[str, Callable[[Any], Any]] = {
    "text": str,
    "number": lambda v: Decimal(str(v)),
    "bool": bool,
    "date": date.fromisoformat,
    "datetime": datetime.fromisoformat,
    "uuid": lambda v: uuid.UUID(str(v)),
}


def decode_sort_values(keys: tuple[SortKey, ...], cursor: str) -> list[Any]:
    raw = decode_cursor(cursor, len(keys))
    try:
        return [None if v is None else DECODERS[k.codec](v) for k, v in zip(keys, raw, strict=True)]
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise Invalid("The cursor is not valid", errors=[FieldError("cursor", "not a cursor of this list")]) from exc


def after(keys: tuple[SortKey, ...], values: list[Any], params: Params) -> str:
    """Rows strictly after `values` in the order of `keys` (NULLS LAST in both directions)."""
    if all(not k.nullable for k in keys) and len({k.descending for k in keys}) == 1:
        left = ", ".join(k.expression for k in keys)
        right = ", ".join(params.add(v) for v in values)
        return f"({left}) {'<' if keys[0].descending else '>'} ({right})"
    branches = []
    for i, key in enumerate(keys):
        value = values[i]
        if value is None:
            continue  # nothing sorts after NULL but ties, which the next key decides
        prefix = [
            f"{keys[j].expression} IS NULL" if values[j] is None else f"{keys[j].expression} = {params.add(values[j])}"
            for j in range(i)
        ]
        beyond = f"{key.expression} {'<' if key.descending else '>'} {params.add(value)}"
        if key.nullable:
            beyond = f"({beyond} OR {key.expression} IS NULL)"
        branches.append("(" + " AND ".join([*prefix, beyond]) + ")")
    return "(" + " OR ".join(branches) + ")" if branches else "false"


# --- one page ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """What a page statement's shape fixes: cached per type, metadata version, sort and filter's required fields."""

    keys: tuple[SortKey, ...]
    select: str
    order_by: str
    uses_read_model: bool


MAX_FRAMES = 256
# Set at start-up where the server has pg_trgm (the title's trigram index exists).
TRIGRAM_SEARCH = False
SEARCH_OPS = frozenset({"contains", "icontains", "starts_with"})
TIME_KEYS = frozenset({"created_at", "updated_at", "moved_at"})


def searches_title(node: Node | None) -> bool:
    """A substring the top-level AND requires of the title, long enough for the trigram index (3 characters)."""
    if not TRIGRAM_SEARCH:
        return False
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, And):
            stack.extend(item.items)
        elif (
            isinstance(item, Condition)
            and item.field == "title"
            and item.op in SEARCH_OPS
            and isinstance(item.value, str)
            and len(item.value) >= 3
        ):
            return True
    return False


def frame(meta: TypeMeta, sort: str | None, required: frozenset[str], *, searched: bool = False) -> Frame:
    """The cached frame; it lives on the (immutable, per metadata version) TypeMeta, so it is never stale."""
    frames: OrderedDict[tuple[Any, ...], Frame] = meta.compiled
    key = (sort, frozenset(code for code in required if code in meta.fields), searched)
    hit = frames.get(key)
    if hit is not None:
        return hit
    keys = parse_sort(meta, sort, required)
    if searched and keys[0].name in TIME_KEYS:
        # A title search: the planner, which cannot tell how rare a substring is, would walk the newest-first index
        # filtering every row (the whole type for a rare name). An order no index gives makes it collect the
        # matches through the trigram index and sort those instead.
        keys = (replace(keys[0], expression=f"({keys[0].expression} + interval '0 s')"), *keys[1:])
    sorts = ", ".join(f"{k.expression} AS sort_{i}" for i, k in enumerate(keys))
    built = Frame(
        keys=keys,
        select=f"SELECT {type_row_json(meta)} AS body, {sorts}",
        order_by="ORDER BY " + ", ".join(k.order() for k in keys),
        uses_read_model=any(k.expression.startswith("r.") for k in keys),
    )
    frames[key] = built
    while len(frames) > MAX_FRAMES:
        frames.popitem(last=False)
    return built


@dataclass
class PageStatement:
    sql: str
    count_sql: str
    count_params: list[Any]
    params: list[Any]
    keys: tuple[SortKey, ...]

    def cursor(self, row: Any) -> str:
        return encode_cursor([_encode(row[i + 1]) for i in range(len(self.keys))])


def read_scope(access: TypeAccess | None, meta: TypeMeta, params: Params, action: str = "read") -> str:
    """The elements `access` may read (or export), as a condition on `e`: by pipeline, then by whose they are."""
    groups = None if access is None else access.read_groups(meta.pipelines, action)
    if access is None or groups is None:
        return "true"
    parts = []
    for group in groups:
        conditions = []
        if not group.every_pipeline:
            pipelines = (
                [f"e.pipeline_id = ANY({params.add(list(group.pipeline_ids))}::uuid[])"] if group.pipeline_ids else []
            )
            if group.no_pipeline:
                pipelines.append("e.pipeline_id IS NULL")
            if not pipelines:
                continue
            conditions.append("(" + " OR ".join(pipelines) + ")")
        owners = access.owner_ids(group.scope)
        if owners is not None:
            if len(owners) == 1:
                me = params.add(owners[0])
                conditions.append(f"(e.assigned_to = {me} OR e.created_by = {me})")
            else:
                them = params.add(list(owners))
                conditions.append(f"(e.assigned_to = ANY({them}::uuid[]) OR e.created_by = ANY({them}::uuid[]))")
        parts.append(" AND ".join(conditions) or "true")
    return "(" + " OR ".join(parts) + ")" if parts else "false"


def owner_branches(
    access: TypeAccess | None, meta: TypeMeta, params: Params, action: str = "read"
) -> tuple[str, str] | None:
    """A read scope that is one owner group over every pipeline (`own` or `department` throughout), as two disjoint
    conditions: assigned to one of the owners, or created by one of them and assigned to none of them. Each can walk
    an index that starts with the owner (`ix_elements_assignee_stage`, `ix_elements_creator_stage`), where the OR
    of the two could only be a bitmap over every element of the owners. None for any other scope."""
    groups = None if access is None else access.read_groups(meta.pipelines, action)
    if access is None or groups is None or len(groups) != 1 or not groups[0].every_pipeline:
        return None
    owners = access.owner_ids(groups[0].scope)
    if owners is None:
        return None
    if len(owners) == 1:  # `=`, not `= ANY`: only an equality lets the index give its rows in order
        me = params.add(owners[0])
        return f"e.assigned_to = {me}", f"e.created_by = {me} AND e.assigned_to IS DISTINCT FROM {me}"
    them = params.add(list(owners))
    return (
        f"e.assigned_to = ANY({them}::uuid[])",
        f"e.created_by = ANY({them}::uuid[]) AND (e.assigned_to IS NULL OR NOT e.assigned_to = ANY({them}::uuid[]))",
    )


def from_clause(meta: TypeMeta, joined: bool, owned: bool = False) -> str:
    """`owned`: the elements start from the `owned` CTE (owned_ids)."""
    elements = "owned JOIN elements e ON e.id = owned.id" if owned else "elements e"
    return f"FROM {elements} JOIN {table_name(meta.id)} r ON r.id = e.id" if joined else f"FROM {elements}"


# A person with at most this many elements has a page started from their ids; one with more, from the sort's index.
OWNED_IDS_AT_MOST = 5000


def owned_ids(access: TypeAccess | None, meta: TypeMeta, params: Params, action: str) -> str | None:
    """For a person who may read only their own (or their department's) elements, the query of those elements' ids,
    read index-only from the two owner indexes; None for any other scope."""
    branches = owner_branches(access, meta, params, action)
    if branches is None:
        return None
    return " UNION ALL ".join(f"SELECT e.id FROM elements e WHERE e.deleted_at IS NULL AND {mine}" for mine in branches)


def owned_page(meta: TypeMeta, owned: str, shape: Frame, joined: bool, scope: str, limit: str) -> str:
    """A page of a person's own elements, by whichever way costs less for how many they have.

    Few (up to OWNED_IDS_AT_MOST): start from their ids and join the read model to them. Left to itself, PostgreSQL
    matched the filter over the whole type and hashed it against the person's elements (one in 50 of 100,000: 52 ms
    of CPU per filtered list; 6 ms this way). Many: that join costs a probe per element (20,000 of 1,000,000: 190 ms),
    and walking the sort key's index while checking the owner costs less (85 ms). The count of the ids, capped, is
    one InitPlan; the branch it rules out is not run."""
    few = f"(SELECT count(*) FROM owned) <= {OWNED_IDS_AT_MOST}"
    by_ids = f"{shape.select} {from_clause(meta, joined, owned=True)} {scope} AND {few}"
    by_index = f"{shape.select} {from_clause(meta, joined)} {scope} AND NOT {few}"
    # The two branches' rows, ordered again by their output columns (sort_0, sort_1…).
    merged = "ORDER BY " + ", ".join(replace(k, expression=f"sort_{i}").order() for i, k in enumerate(shape.keys))
    branches = f"({by_ids} {shape.order_by} LIMIT {limit}) UNION ALL ({by_index} {shape.order_by} LIMIT {limit})"
    return (
        f"WITH owned AS MATERIALIZED ({owned} LIMIT {OWNED_IDS_AT_MOST + 1}) "
        f"SELECT * FROM ({branches}) page {merged} LIMIT {limit}"
    )


def page_statement(
    meta: TypeMeta,
    workspace_id: uuid.UUID,
    node: Node | None,
    *,
    sort: str | None,
    limit: int,
    cursor: str | None,
    deleted: bool,
    access: TypeAccess | None = None,
    action: str = "read",
) -> PageStatement:
    """The page (limit + 1 rows, to tell whether more follow) and the statement that counts every match.

    `meta` is the reader's view of the type (hidden fields left out); `access` limits the rows to what they may read.
    """
    required = frozenset(required_fields(node))
    shape = frame(meta, sort, required, searched=searches_title(node))
    params = Params([workspace_id, meta.id])
    compiler = FilterCompiler(meta, params)
    where = compiler.compile(node)
    readable = read_scope(access, meta, params, action)
    if readable != "true":
        where = f"{where} AND {readable}"
    owned = None if deleted else owned_ids(access, meta, params, action)
    cte = f"WITH owned AS MATERIALIZED ({owned}) " if owned else ""
    joined = compiler.uses_read_model or shape.uses_read_model
    scope = (
        f"WHERE e.workspace_id = $1 AND e.entity_type_id = $2 AND e.deleted_at IS {'NOT ' if deleted else ''}NULL"
        f" AND {where}"
    )
    count_params = list(params.values)
    count_sql = f"{cte}SELECT count(*) {from_clause(meta, compiler.uses_read_model, bool(owned))} {scope}"
    if cursor:
        scope += f" AND {after(shape.keys, decode_sort_values(shape.keys, cursor), params)}"
    limit_param = params.add(limit + 1)
    if owned:
        sql = owned_page(meta, owned, shape, joined, scope, limit_param)
    else:
        sql = f"{shape.select} {from_clause(meta, joined)} {scope} {shape.order_by} LIMIT {limit_param}"
    return PageStatement(sql, count_sql, count_params, params.values, shape.keys)
