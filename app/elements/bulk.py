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
Shape = tuple[tuple[str, tuple[str, ...]], ...]
_statements: dict[Shape, Any] = {}


def _insert_sql(table: Table, columns: tuple[str, ...]) -> str:
    """One table's INSERT; its parameters are named `<table>__<column>`, so several can share a statement."""
    casts = ", ".join(
        f"CAST(:{table.name}__{name} AS {table.c[name].type.compile(dialect=_DIALECT)}[])" for name in columns
    )
    names = ", ".join(f'"{name}"' for name in columns)
    return f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({casts})'  # noqa: S608


def _statement(tables: list[tuple[Table, tuple[str, ...]]]) -> Any:
    key: Shape = tuple((table.name, columns) for table, columns in tables)
    statement = _statements.get(key)
    if statement is None:
        inserts = [_insert_sql(table, columns) for table, columns in tables]
        # Several tables: data-modifying CTEs, one statement and one round trip (foreign keys are checked at its end).
        ctes = ", ".join(f"i{n} AS ({sql})" for n, sql in enumerate(inserts[:-1]))
        statement = text(f"WITH {ctes} {inserts[-1]}" if ctes else inserts[-1])
        _statements[key] = statement
    return statement


Rows = list[dict[str, Any]] | dict[str, list[Any]]


async def insert_all(session: AsyncSession, batches: list[tuple[type[Base], Rows]]) -> None:
    """Insert rows into one or more tables, in one statement. Rows come as dicts of column values, or already as
    columns (name -> one value per row, every list as long), which saves building a dict per row on big batches.

    A column no row mentions is left to its server default; a column some rows leave out is NULL for them.
    Python-side column defaults are not applied, so rows carry every value they need.
    """
    tables: list[tuple[Table, tuple[str, ...]]] = []
    params: dict[str, list[Any]] = {}
    for model, rows in batches:
        if not rows:
            continue
        table = cast(Table, model.__table__)
        by_column = rows if isinstance(rows, dict) else _columns_of(rows)
        columns = tuple(column.name for column in table.columns if column.name in by_column)
        tables.append((table, columns))
        for name in columns:
            values = by_column[name]
            if isinstance(table.c[name].type, JSONB):
                # SQLAlchemy's asyncpg jsonb codec takes JSON text.
                values = [None if v is None else orjson.dumps(v).decode() for v in values]
            params[f"{table.name}__{name}"] = values
    if tables:
        await session.execute(_statement(tables), params)


def _columns_of(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    present: set[str] = set().union(*rows)
    return {name: [row.get(name) for row in rows] for name in present}
