"""Multi-row inserts as one statement: `INSERT … SELECT * FROM unnest($1::type[], $2::type[], …)`.

An executemany through asyncpg sends one Bind/Execute per row; a 1,000-element batch writes ~24,000 rows, so that is
~24,000 round trips of protocol work. One statement per table with one array per column is a single round trip, and
the server reads the arrays about as fast as COPY, inside the caller's transaction.
"""

from typing import Any, cast

import orjson
from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Base

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_statements: dict[tuple[str, tuple[str, ...]], Any] = {}


def _statement(table: Table, columns: tuple[str, ...]) -> Any:
    key = (table.name, columns)
    statement = _statements.get(key)
    if statement is None:
        casts = ", ".join(f"CAST(:{name} AS {table.c[name].type.compile(dialect=_DIALECT)}[])" for name in columns)
        names = ", ".join(f'"{name}"' for name in columns)
        statement = text(f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({casts})')  # noqa: S608
        _statements[key] = statement
    return statement


async def bulk_insert(session: AsyncSession, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (dicts of column values) in one statement.

    A column no row mentions is left to its server default; a column some rows leave out is NULL for them.
    Python-side column defaults are not applied, so rows carry every value they need.
    """
    if not rows:
        return
    table = cast(Table, model.__table__)
    present = set().union(*(row.keys() for row in rows))
    columns = tuple(column.name for column in table.columns if column.name in present)
    params: dict[str, list[Any]] = {}
    for name in columns:
        values = [row.get(name) for row in rows]
        if isinstance(table.c[name].type, JSONB):
            # SQLAlchemy's asyncpg jsonb codec takes JSON text.
            values = [None if v is None else orjson.dumps(v).decode() for v in values]
        params[name] = values
    await session.execute(_statement(table, columns), params)
