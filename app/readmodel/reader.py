"""Element reads as one statement each, whose rows PostgreSQL has already built as the API's JSON.

The functions take an asyncpg connection: the lean REST path gets one from the read pool (no transaction, no ORM),
the service layer the connection of its session (so a read inside a write transaction sees its own writes).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson

from app.access.permissions import Access, TypeAccess
from app.entity_types.meta import TypeMeta
from app.errors import NotFound
from app.kit.filters import Node
from app.readmodel.compiler import (
    FilterCompiler,
    PageStatement,
    Params,
    from_clause,
    owner_branches,
    page_statement,
    read_scope,
    row_json,
    stage_code_case,
)

GET_SQL = (
    "SELECT "
    + row_json("t.code", "s.code")
    + ", e.entity_type_id, t.code, e.pipeline_id, e.assigned_to, e.created_by"
    + " FROM elements e JOIN entity_types t ON t.id = e.entity_type_id LEFT JOIN stages s ON s.id = e.stage_id "
    "WHERE e.id = $1 AND e.workspace_id = $2"
)


@dataclass
class RawPage:
    """Rows of `(json, sort values…)`, at most `limit`, and what the page needs besides."""

    rows: list[Any]
    next_cursor: str | None
    total: int | None
    statement: PageStatement

    @cached_property
    def cursors(self) -> list[str]:
        """Each row's cursor, for GraphQL edges (a REST page gives only the next one, so it is built on demand)."""
        return [self.statement.cursor(row) for row in self.rows]

    def items_json(self) -> bytes:
        return b"[" + ",".join(row[0] for row in self.rows).encode() + b"]"

    def body(self) -> bytes:
        """The REST `ElementPage` body."""
        return (
            b'{"items":'
            + self.items_json()
            + b',"next_cursor":'
            + orjson.dumps(self.next_cursor)
            + b',"total":'
            + orjson.dumps(self.total)
            + b"}"
        )


async def list_page(
    connection: Any,
    meta: TypeMeta,
    workspace_id: uuid.UUID,
    node: Node | None,
    *,
    sort: str | None,
    limit: int,
    cursor: str | None,
    with_total: bool = False,
    deleted: bool = False,
    access: TypeAccess | None = None,
    action: str = "read",
) -> RawPage:
    statement = page_statement(
        meta, workspace_id, node, sort=sort, limit=limit, cursor=cursor, deleted=deleted, access=access, action=action
    )
    rows = await connection.fetch(statement.sql, *statement.params)
    has_more = len(rows) > limit
    rows = rows[:limit]
    total = None
    if with_total:
        total = await connection.fetchval(statement.count_sql, *statement.count_params)
    return RawPage(
        rows=rows,
        next_cursor=statement.cursor(rows[-1]) if has_more and rows else None,
        total=total,
        statement=statement,
    )


async def get_json(connection: Any, workspace_id: uuid.UUID, element_id: uuid.UUID, access: Access) -> str:
    """One element as the API's JSON, or NotFound: another workspace's element, or one `access` may not read."""
    row = await connection.fetchrow(GET_SQL, element_id, workspace_id)
    if row is None:
        raise NotFound(f"Element {element_id} not found")
    body, type_id, type_code, pipeline_id, assigned_to, created_by = row
    on_type = access.on(type_id, type_code)
    if not on_type.may("read", pipeline_id, assigned_to, created_by):
        raise NotFound(f"Element {element_id} not found")
    if on_type.hidden:
        element = orjson.loads(body)
        element["values"] = {k: v for k, v in element["values"].items() if k not in on_type.hidden}
        return orjson.dumps(element).decode()
    return str(body)


async def board_json(
    connection: Any,
    meta: TypeMeta,
    workspace_id: uuid.UUID,
    pipeline_id: uuid.UUID,
    node: Node | None,
    *,
    per_stage: int,
    access: TypeAccess | None = None,
) -> str:
    """The kanban of one pipeline as the API's `Board` JSON, in one statement.

    Unfiltered, the counts and sums come from the totals the triggers keep; filtered, from the matching elements.
    Each stage's first elements are the newest, a walk of the (stage, created_at, id) index that stops at the page.
    """
    params = Params([workspace_id, pipeline_id, per_stage])
    compiler = FilterCompiler(meta, params)
    where = compiler.compile(node)
    source = from_clause(meta, compiler.uses_read_model)
    element = row_json(_type_literal(meta), stage_code_case(meta), as_text=False, hidden=meta.hidden)
    base = f"e.workspace_id = $1 AND e.deleted_at IS NULL AND {where}"
    branches = owner_branches(access, meta, params)
    if branches is not None:
        # A person's own (or their department's) elements: each half walks an index that starts with the owner.
        totals = (
            "SELECT stage_id, count(*) AS count, coalesce(sum(amount), 0) AS amount_sum FROM ("
            + " UNION ALL ".join(
                f"SELECT e.stage_id, e.amount {source} WHERE e.pipeline_id = $2 AND {base} AND {mine}"
                for mine in branches
            )
            + ") m GROUP BY stage_id"
        )
        halves = " UNION ALL ".join(
            f"(SELECT {element} AS body, e.created_at, e.id {source} WHERE e.stage_id = s.id AND {base} AND {mine} "
            "ORDER BY e.created_at DESC, e.id DESC LIMIT $3)"
            for mine in branches
        )
        firsts = f"SELECT * FROM ({halves}) h ORDER BY h.created_at DESC, h.id DESC LIMIT $3"
    else:
        readable = read_scope(access, meta, params)
        live = f"{base} AND {readable}"
        if node is None and readable == "true":
            totals = (
                "SELECT stage_id, sum(count)::bigint AS count, sum(amount_sum) AS amount_sum FROM stage_totals "
                "WHERE workspace_id = $1 AND pipeline_id = $2 GROUP BY stage_id"
            )
        else:
            totals = (
                f"SELECT e.stage_id, count(*) AS count, coalesce(sum(e.amount), 0) AS amount_sum {source} "
                f"WHERE e.pipeline_id = $2 AND {live} GROUP BY e.stage_id"
            )
        firsts = (
            f"SELECT {element} AS body, e.created_at, e.id {source} "
            f"WHERE e.stage_id = s.id AND {live} ORDER BY e.created_at DESC, e.id DESC LIMIT $3"
        )
    sql = (
        "SELECT json_build_object('pipeline_id', $2::uuid, 'entity_type', "
        + _type_literal(meta)
        + ", 'stages', coalesce(json_agg(json_build_object("
        "'stage', json_build_object('id', s.id, 'pipeline_id', s.pipeline_id, 'code', s.code, 'title', s.title, "
        "'semantic', s.semantic, 'color', s.color, 'sort', s.sort, 'time_limit_minutes', s.time_limit_minutes), "
        "'count', coalesce(t.count, 0), 'amount_sum', coalesce(t.amount_sum, 0)::float8, "
        "'elements', coalesce((SELECT json_agg(f.body ORDER BY f.created_at DESC, f.id DESC) "
        f"FROM ({firsts}) f), '[]'::json)) ORDER BY s.sort, s.code), '[]'::json))::text "
        f"FROM stages s LEFT JOIN ({totals}) t ON t.stage_id = s.id WHERE s.pipeline_id = $2 AND s.workspace_id = $1"
    )
    body: str = await connection.fetchval(sql, *params.values)
    return body


def _type_literal(meta: TypeMeta) -> str:
    return "'" + meta.code.replace("'", "''") + "'"
