"""One element's row read and written as plain SQL on the session's connection, for the single-write paths.

A stage move or a patch through the ORM built an `Element`, tracked it and flushed it: about a third of the request's
server CPU. These read the row into a plain `ElementRow`, change it in Python and write back only the columns that
changed, as the ORM's flush did (an `UPDATE OF values` trigger keeps the read model). An `Element` the session
already holds (routing and automation load one, then move or update it) is flushed first and kept in step after, so
ORM and plain writes can follow one another in one transaction.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.db import session_connection
from app.elements.models import Element


@dataclass(slots=True)
class ElementRow:
    id: uuid.UUID
    workspace_id: uuid.UUID
    entity_type_id: uuid.UUID
    number: int
    pipeline_id: uuid.UUID | None
    stage_id: uuid.UUID | None
    title: str
    assigned_to: uuid.UUID | None
    amount: Decimal | None
    currency: str | None
    source: str | None
    begin_date: date | None
    close_date: date | None
    score: int | None
    values: dict[str, Any]
    version: int
    created_by: uuid.UUID | None
    updated_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    moved_at: datetime | None
    deleted_at: datetime | None


COLUMNS = tuple(f.name for f in fields(ElementRow))
# `values` as text: the session's connection decodes jsonb to text anyway (SQLAlchemy's codec).
_SELECT = "SELECT " + ", ".join('"values"::text' if c == "values" else c for c in COLUMNS) + " FROM elements"  # noqa: S608
ROWS_BY_ID_SQL = _SELECT + " WHERE workspace_id = $1 AND id = ANY($2::uuid[]) ORDER BY id FOR UPDATE"
ROWS_OF_STAGE_SQL = _SELECT + " WHERE stage_id = $1 ORDER BY id FOR UPDATE"


def _held(session: AsyncSession, element_id: uuid.UUID) -> Element | None:
    held = session.sync_session.identity_map.get(session.identity_key(Element, element_id))
    return held if isinstance(held, Element) else None


async def _rows(session: AsyncSession, sql: str, *args: Any) -> list[ElementRow]:
    if session.sync_session.dirty:
        await session.flush()  # an Element changed in memory: the plain read must see what the ORM would have
    records = await (await session_connection(session)).fetch(sql, *args)
    return [ElementRow(**{**record, "values": orjson.loads(record["values"])}) for record in records]


async def lock_rows(session: AsyncSession, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[ElementRow]:
    """The workspace's elements among `ids`, locked FOR UPDATE (in id order, so concurrent writers cannot deadlock)."""
    return await _rows(session, ROWS_BY_ID_SQL, workspace_id, list(ids))


async def lock_stage_rows(session: AsyncSession, stage_id: uuid.UUID) -> list[ElementRow]:
    """Every element of a stage, locked FOR UPDATE."""
    return await _rows(session, ROWS_OF_STAGE_SQL, stage_id)


def _update_sql(columns: Sequence[str], *, many: bool) -> str:
    """`UPDATE elements SET <columns> = $2… WHERE id = $1`; `many`: every id of the uuid[] $1, to the same values."""
    sets = ", ".join(
        f'"{name}" = ${n}::jsonb' if name == "values" else f'"{name}" = ${n}' for n, name in enumerate(columns, 2)
    )
    target = "id = ANY($1::uuid[])" if many else "id = $1"
    return f"UPDATE elements SET {sets} WHERE {target}"  # noqa: S608 (column names are ElementRow's, never input)


def _value(row: ElementRow, name: str) -> Any:
    value = getattr(row, name)
    return orjson.dumps(value).decode() if name == "values" else value


async def write_row(session: AsyncSession, row: ElementRow, columns: Sequence[str]) -> None:
    """Write the row's `columns` (those that changed, as an ORM flush would: a column set is a column updated)."""
    connection = await session_connection(session)
    await connection.execute(_update_sql(columns, many=False), row.id, *(_value(row, c) for c in columns))
    _keep_held_in_step(session, [row], columns)


async def write_rows(session: AsyncSession, rows: Sequence[ElementRow], columns: Sequence[str]) -> None:
    """Write the same `columns` of several rows: one statement when the rows agree on them (a stage's elements moved
    at once get the same stage and time, and mostly the same version), else row by row."""
    first = rows[0]
    if any(_value(row, c) != _value(first, c) for row in rows for c in columns):
        for row in rows:
            await write_row(session, row, columns)
        return
    connection = await session_connection(session)
    await connection.execute(
        _update_sql(columns, many=True), [r.id for r in rows], *(_value(first, c) for c in columns)
    )
    _keep_held_in_step(session, rows, columns)


def _keep_held_in_step(session: AsyncSession, rows: Sequence[ElementRow], columns: Sequence[str]) -> None:
    """Copy what a plain write changed onto the Element the session holds for a row, if any, as committed state."""
    for row in rows:
        held = _held(session, row.id)
        if held is not None:
            for name in columns:
                set_committed_value(held, name, getattr(row, name))
