"""Pages by position (`start`), in any order of fields, each row with the element's integer number.

For integrations that page by offset and address elements by integer ids (the Bitrix24 facade, app/bitrix): the
filter, the read scope and the element JSON are the compiler's own; what this adds is the element's `number` as a
field (`NUMBER`, a name no custom field code can take), an ORDER BY ending with it, and OFFSET paging with the
count of every match.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.access.permissions import TypeAccess
from app.entity_types.fields import IntegerKind
from app.entity_types.meta import TypeMeta
from app.errors import FieldError, Invalid
from app.kit.filters import Node
from app.readmodel.compiler import (
    SYSTEM_FIELDS,
    FilterCompiler,
    Params,
    SystemField,
    from_clause,
    read_scope,
    type_row_json,
)
from app.readmodel.ddl import quote

NUMBER = "#number"
EXTRA_FIELDS = {NUMBER: SystemField("e.number", IntegerKind(), "number", nullable=False)}
MAX_OFFSET = 10_000_000


@dataclass
class NumberedPage:
    """Rows of `(element JSON, number)`, at most `limit`; `total` counts every match."""

    rows: list[tuple[str, int]]
    total: int
    more: bool


def _order_by(meta: TypeMeta, order: Sequence[tuple[str, bool]]) -> tuple[str, bool]:
    """ORDER BY for (field, descending) pairs, the number last; whether it reads the type's read model."""
    parts: list[str] = []
    joined = False
    errors: list[FieldError] = []
    for code, descending in order:
        direction = "DESC" if descending else "ASC"
        if code == NUMBER:
            parts.append(f"e.number {direction}")
        elif code in SYSTEM_FIELDS:
            parts.append(f"{SYSTEM_FIELDS[code].column} {direction}")
        elif code in meta.fields and meta.fields[code].kind.sortable:
            field_meta = meta.fields[code]
            parts.append(f"r.{quote(code)}{'[1]' if field_meta.row.multiple else ''} {direction}")
            joined = True
        else:
            errors.append(FieldError("order", f"cannot sort on {code!r}"))
    if errors:
        raise Invalid("The order is not valid", errors=errors)
    if not any(code == NUMBER for code, _ in order):
        parts.append("e.number ASC")
    return "ORDER BY " + ", ".join(parts), joined


async def numbered_page(
    connection: Any,
    meta: TypeMeta,
    workspace_id: uuid.UUID,
    node: Node | None,
    *,
    order: Sequence[tuple[str, bool]],
    start: int,
    limit: int,
    access: TypeAccess | None,
    element_ids: Sequence[uuid.UUID] | None = None,
    with_total: bool = True,
) -> NumberedPage:
    """`meta` is the reader's view of the type (hidden fields left out); `access` limits rows to what they may read."""
    if not 0 <= start <= MAX_OFFSET:
        raise Invalid("The start is out of range", errors=[FieldError("start", f"between 0 and {MAX_OFFSET}")])
    params = Params([workspace_id, meta.id])
    compiler = FilterCompiler(meta, params, extra=EXTRA_FIELDS)
    where = compiler.compile(node)
    readable = read_scope(access, meta, params)
    if readable != "true":
        where = f"{where} AND {readable}"
    if element_ids is not None:
        where = f"{where} AND e.id = ANY({params.add(list(element_ids))}::uuid[])"
    order_by, sorts_read_model = _order_by(meta, order)
    scope = f"WHERE e.workspace_id = $1 AND e.entity_type_id = $2 AND e.deleted_at IS NULL AND {where}"
    count_params = list(params.values)
    count_sql = f"SELECT count(*) {from_clause(meta, compiler.uses_read_model)} {scope}"
    limit_param, offset_param = params.add(limit + 1), params.add(start)
    sql = (
        f"SELECT {type_row_json(meta)} AS body, e.number "
        f"{from_clause(meta, compiler.uses_read_model or sorts_read_model)} {scope} {order_by} "
        f"LIMIT {limit_param} OFFSET {offset_param}"
    )
    rows = await connection.fetch(sql, *params.values)
    total = int(await connection.fetchval(count_sql, *count_params)) if with_total else 0
    return NumberedPage(rows=[(row[0], int(row[1])) for row in rows[:limit]], total=total, more=len(rows) > limit)
