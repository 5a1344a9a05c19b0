"""The one module that runs DDL at run time: each entity type's read model table, its columns and their indexes.

`element_values` is the record of what was written; reads filter, sort and page on a flat projection instead: one
table per entity type (`rm_<type id hex>`), one typed column per custom field named after the field's code, one row
per element. Triggers on `elements` (migration 0005) keep it in the same transaction as the element's `values`
snapshot, so it is never stale, whichever code path wrote the element.

Everything here is idempotent and recorded in `read_model_fields` (one row per field: its column, SQL type and
index state). An index on a table that already holds rows is built with CREATE INDEX CONCURRENTLY after the
field's transaction commits; its progress shows on the field (`index_state`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import no_statement_timeout
from app.kit import background

logger = logging.getLogger(__name__)

SQL_TYPES: dict[str, str] = {
    "string": "text",
    "text": "text",
    "email": "text",
    "phone": "text",
    "url": "text",
    "enum": "text",
    "integer": "numeric",
    "decimal": "numeric",
    "money": "numeric",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamptz",
    "user": "uuid",
    "reference": "uuid",
    "file": "uuid",
}
# Free text is indexed on request only (a trigram index, which also takes values of any length).
TEXT_TYPES = frozenset({"string", "text", "email", "phone", "url"})
# Never indexed: a file field is only tested for presence, which an index on the ids would not serve.
UNINDEXED_TYPES = frozenset({"file"})


RUNTIME_PREFIXES = ("rm_", "rmix_")
RUNTIME_INDEXES = frozenset({"ix_elements_title_trgm"})  # exists only where pg_trgm does


def is_runtime_object(name: str | None) -> bool:
    """Tables and indexes this module (or an optional extension) makes: not in the models, by design."""
    return bool(name) and (str(name).startswith(RUNTIME_PREFIXES) or name in RUNTIME_INDEXES)


def table_name(entity_type_id: uuid.UUID) -> str:
    return f"rm_{entity_type_id.hex}"


def index_name(field_id: uuid.UUID) -> str:
    return f"rmix_{field_id.hex}"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def column_type(field_type: str, multiple: bool) -> str:
    base = SQL_TYPES[field_type]
    return f"{base}[]" if multiple else base


@dataclass(frozen=True)
class ColumnSpec:
    """What the read model needs to know of a field."""

    field_id: uuid.UUID
    entity_type_id: uuid.UUID
    workspace_id: uuid.UUID
    code: str
    type: str
    multiple: bool
    indexed: bool

    @property
    def sql_type(self) -> str:
        return column_type(self.type, self.multiple)

    def wants_index(self) -> bool:
        return self.type not in UNINDEXED_TYPES and (self.indexed or self.type not in TEXT_TYPES)

    def index_sql(self, *, concurrently: bool) -> str:
        table, column = table_name(self.entity_type_id), quote(self.code)
        how = "CONCURRENTLY " if concurrently else ""
        if self.multiple:
            method = f"USING gin ({column})"
        elif self.type in TEXT_TYPES:
            method = f"USING gin ({column} gin_trgm_ops)"
        else:
            # (value, id): the page's ORDER BY value, id and its keyset condition are one index range.
            method = f"({column}, id)"
        return f"CREATE INDEX {how}IF NOT EXISTS {index_name(self.field_id)} ON {table} {method}"


def create_table_sql(entity_type_id: uuid.UUID) -> str:
    return f"CREATE TABLE IF NOT EXISTS {table_name(entity_type_id)} (id uuid PRIMARY KEY)"


async def create_table(session: AsyncSession, entity_type_id: uuid.UUID) -> None:
    """A new type's (empty) read model, in the caller's transaction."""
    await session.execute(text(create_table_sql(entity_type_id)))


# pg_trgm is optional (the embedded PostgreSQL has none): text indexes, title search and /readyz ask this.
HAS_TRIGRAMS_SQL = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')"


async def has_trigrams(session: AsyncSession) -> bool:
    return bool(await session.scalar(text(HAS_TRIGRAMS_SQL)))


async def _table_has_rows(session: AsyncSession, entity_type_id: uuid.UUID) -> bool:
    return bool(await session.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {table_name(entity_type_id)})")))


def _later(session: AsyncSession, spec: ColumnSpec) -> None:
    """Build the index concurrently once the session's transaction commits."""
    sessionmaker = async_sessionmaker(session.bind, expire_on_commit=False)
    background.after_commit(session, lambda: build_index(sessionmaker, spec))


async def add_column(session: AsyncSession, spec: ColumnSpec) -> str:
    """A new field's column (no table rewrite: nullable, no default) and its index.

    On an empty table the index is built at once, in the caller's transaction; otherwise it is built concurrently
    once that transaction commits, and `index_state` says `building` until then.
    """
    table = table_name(spec.entity_type_id)
    await session.execute(text(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {quote(spec.code)} {spec.sql_type}"))
    await _record(session, spec, "none")
    return await _index(session, spec) if spec.wants_index() else "none"


async def drop_column(session: AsyncSession, entity_type_id: uuid.UUID, field_id: uuid.UUID, code: str) -> None:
    """Drop a field's column (and with it its index); metadata only, no table rewrite."""
    await session.execute(text(f"ALTER TABLE {table_name(entity_type_id)} DROP COLUMN IF EXISTS {quote(code)}"))
    await session.execute(text("DELETE FROM read_model_fields WHERE field_id = :id"), {"id": field_id})


async def replace_column(session: AsyncSession, spec: ColumnSpec) -> None:
    """A field whose type or `multiple` changed (only allowed while it holds no values)."""
    await drop_column(session, spec.entity_type_id, spec.field_id, spec.code)
    await add_column(session, spec)


NO_TRIGRAMS = "pg_trgm is not installed on this server: text searches scan instead"


async def _index(session: AsyncSession, spec: ColumnSpec) -> str:
    """Build at once on an empty table (in the caller's transaction), otherwise concurrently after the commit."""
    if spec.type in TEXT_TYPES and not spec.multiple and not await has_trigrams(session):
        await _record(session, spec, "failed", NO_TRIGRAMS)
        return "failed"
    if await _table_has_rows(session, spec.entity_type_id):
        await _record(session, spec, "building")
        _later(session, spec)
        return "building"
    await session.execute(text(spec.index_sql(concurrently=False)))
    await _record(session, spec, "ready")
    return "ready"


async def set_indexed(session: AsyncSession, spec: ColumnSpec) -> None:
    """Index a text field on request, or drop the index of one that no longer wants it."""
    state = await session.scalar(
        text("SELECT index_state FROM read_model_fields WHERE field_id = :id"), {"id": spec.field_id}
    )
    if spec.wants_index():
        if state not in ("ready", "building"):
            await _index(session, spec)
        return
    await session.execute(text(f"DROP INDEX IF EXISTS {index_name(spec.field_id)}"))
    await _record(session, spec, "none")


async def _record(session: AsyncSession, spec: ColumnSpec, state: str, error: str | None = None) -> None:
    await session.execute(
        text(
            "INSERT INTO read_model_fields "
            "(field_id, workspace_id, entity_type_id, column_name, sql_type, index_name, index_state, index_error) "
            "VALUES (:field_id, :workspace_id, :entity_type_id, :column, :sql_type, :index, :state, :error) "
            "ON CONFLICT (field_id) DO UPDATE SET column_name = excluded.column_name, sql_type = excluded.sql_type, "
            "index_state = excluded.index_state, index_error = excluded.index_error, updated_at = now()"
        ),
        {
            "field_id": spec.field_id,
            "workspace_id": spec.workspace_id,
            "entity_type_id": spec.entity_type_id,
            "column": spec.code,
            "sql_type": spec.sql_type,
            "index": index_name(spec.field_id),
            "state": state,
            "error": error,
        },
    )


async def build_index(sessionmaker: async_sessionmaker[AsyncSession], spec: ColumnSpec) -> None:
    """CREATE INDEX CONCURRENTLY outside any transaction, then record the outcome on the field."""
    state, error = "ready", None
    async with sessionmaker() as session:
        connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        try:
            # Past the API's statement timeout: a build over a large table takes minutes.
            async with no_statement_timeout(connection):
                # A failed concurrent build leaves an invalid index behind: drop it so the next attempt starts clean.
                await connection.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {index_name(spec.field_id)}"))
                await connection.execute(text(spec.index_sql(concurrently=True)))
        except Exception as exc:  # recorded on the field, where the admin sees it
            logger.warning("read model index %s failed: %s", index_name(spec.field_id), exc)
            state, error = "failed", type(exc).__name__
    async with sessionmaker() as session:
        await session.execute(
            text(
                "UPDATE read_model_fields SET index_state = :state, index_error = :error, updated_at = now() "
                "WHERE field_id = :id AND index_state = 'building'"
            ),
            {"state": state, "error": error, "id": spec.field_id},
        )
        await session.commit()


async def resume_index_builds(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Build the indexes a stopped process left `building` (called at start-up)."""
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT r.field_id, r.entity_type_id, r.workspace_id, f.code, f.type, f.multiple "
                    "FROM read_model_fields r JOIN fields f ON f.id = r.field_id WHERE r.index_state = 'building'"
                )
            )
        ).all()
    for row in rows:
        await build_index(
            sessionmaker,
            ColumnSpec(row.field_id, row.entity_type_id, row.workspace_id, row.code, row.type, row.multiple, True),
        )
    return len(rows)
