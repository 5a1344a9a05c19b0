"""read model: a typed table per entity type kept by triggers on elements; trigram title search; cache notifications

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.readmodel import ddl

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RM = "'rm_' || replace({}::text, '-', '')"

# Inserts: one set-based INSERT per entity type of the statement (a batch of 1,000 is one statement), the typed
# row read from the element's `values` snapshot by jsonb_populate_record (keys without a column are ignored).
INSERT_FUNCTION = f"""
CREATE FUNCTION read_model_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE type_id uuid;
BEGIN
    FOR type_id IN SELECT DISTINCT entity_type_id FROM new_rows LOOP
        EXECUTE format(
            'INSERT INTO %1$I SELECT r.* FROM new_rows n CROSS JOIN LATERAL '
            'jsonb_populate_record(NULL::%1$I, n.values || jsonb_build_object(''id'', n.id)) r '
            'WHERE n.entity_type_id = $1', {RM.format("type_id")}
        ) USING type_id;
    END LOOP;
    RETURN NULL;
END $$
"""
# Updates: per row, and only when `values` changed (the trigger's WHEN skips moves and system-field edits in C).
UPDATE_FUNCTION = f"""
CREATE FUNCTION read_model_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE name text := {RM.format("NEW.entity_type_id")};
BEGIN
    EXECUTE format('DELETE FROM %I WHERE id = $1', name) USING NEW.id;
    EXECUTE format('INSERT INTO %1$I SELECT * FROM jsonb_populate_record(NULL::%1$I, $1)', name)
        USING NEW.values || jsonb_build_object('id', NEW.id);
    RETURN NULL;
END $$
"""
# Deletes (purges, and cascades from a type or workspace): the type's table may already be gone.
DELETE_FUNCTION = f"""
CREATE FUNCTION read_model_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE type_id uuid;
BEGIN
    FOR type_id IN SELECT DISTINCT entity_type_id FROM old_rows LOOP
        IF to_regclass({RM.format("type_id")}) IS NOT NULL THEN
            EXECUTE format('DELETE FROM %I r USING old_rows o WHERE r.id = o.id', {RM.format("type_id")});
        END IF;
    END LOOP;
    RETURN NULL;
END $$
"""
DROP_TABLES_FUNCTION = f"""
CREATE FUNCTION read_model_drop() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE type_id uuid;
BEGIN
    FOR type_id IN SELECT id FROM old_rows LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', {RM.format("type_id")});
    END LOOP;
    RETURN NULL;
END $$
"""
# In-process caches (API keys, type metadata) drop an entry when this says it changed.
NOTIFY_FUNCTION = """
CREATE FUNCTION stageflow_cache_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'workspaces' THEN
        PERFORM pg_notify('stageflow_cache', 'meta:' || NEW.id::text);
    ELSE
        PERFORM pg_notify('stageflow_cache', 'key:' || OLD.prefix);
    END IF;
    RETURN NULL;
END $$
"""

# Timestamps in the API's JSON as pydantic writes them (UTC, "Z", microseconds only when there are any), so a body
# PostgreSQL builds is the body the ORM path built.
JSON_TS_FUNCTION = """
CREATE FUNCTION sf_json_ts(ts timestamptz) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT to_char(ts AT TIME ZONE 'UTC',
    CASE WHEN date_part('microseconds', ts)::bigint % 1000000 = 0 THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
    ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END)
$$
"""

# Dates as the ORM read them: asyncpg writes date.max/date.min as infinity/-infinity and reads them back so.
# STABLE like to_char, so PostgreSQL inlines it (an IMMUTABLE wrapper around it is a function call per value).
JSON_DATE_FUNCTION = """
CREATE FUNCTION sf_json_date(d date) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE WHEN d = 'infinity' THEN '9999-12-31' WHEN d = '-infinity' THEN '0001-01-01'
    ELSE to_char(d, 'YYYY-MM-DD') END
$$
"""

OLD_VALUE_INDEXES = ("text", "number", "bool", "date", "datetime", "ref")
OLD_STATISTICS = ("text", "number", "date", "bool")


def _backfill() -> None:
    connection = op.get_bind()
    types = connection.execute(sa.text("SELECT id, workspace_id FROM entity_types")).all()
    for type_id, workspace_id in types:
        op.execute(ddl.create_table_sql(type_id))
        fields = connection.execute(
            sa.text("SELECT id, code, type, multiple FROM fields WHERE entity_type_id = :t"), {"t": type_id}
        ).all()
        specs = [ddl.ColumnSpec(f.id, type_id, workspace_id, f.code, f.type, f.multiple, False) for f in fields]
        table = ddl.table_name(type_id)
        for spec in specs:
            op.execute(f"ALTER TABLE {table} ADD COLUMN {ddl.quote(spec.code)} {spec.sql_type}")
        op.execute(
            f"INSERT INTO {table} SELECT r.* FROM elements e CROSS JOIN LATERAL "  # noqa: S608
            f"jsonb_populate_record(NULL::{table}, e.values || jsonb_build_object('id', e.id)) r "
            f"WHERE e.entity_type_id = '{type_id}'"
        )
        for spec in specs:
            if spec.wants_index():
                op.execute(spec.index_sql(concurrently=False))
            connection.execute(
                sa.text(
                    "INSERT INTO read_model_fields (field_id, workspace_id, entity_type_id, column_name, sql_type, "
                    "index_name, index_state) VALUES (:f, :w, :t, :c, :s, :i, :state)"
                ),
                {
                    "f": spec.field_id,
                    "w": workspace_id,
                    "t": type_id,
                    "c": spec.code,
                    "s": spec.sql_type,
                    "i": ddl.index_name(spec.field_id),
                    "state": "ready" if spec.wants_index() else "none",
                },
            )


def upgrade() -> None:
    op.execute(
        "DO $$ BEGIN "
        "IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN "
        "CREATE EXTENSION IF NOT EXISTS pg_trgm; END IF; "
        "EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'pg_trgm not installed: no trigram search'; END $$"
    )
    op.add_column("fields", sa.Column("indexed", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "read_model_fields",
        sa.Column("field_id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("entity_type_id", sa.UUID(), nullable=False),
        sa.Column("column_name", sa.String(63), nullable=False),
        sa.Column("sql_type", sa.String(40), nullable=False),
        sa.Column("index_name", sa.String(63), nullable=False),
        sa.Column("index_state", sa.String(20), nullable=False),
        sa.Column("index_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["field_id"], ["fields.id"], name="fk_read_model_fields_field_id", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["entity_type_id"], ["entity_types.id"], name="fk_read_model_fields_entity_type_id", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name="fk_read_model_fields_workspace_id", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("field_id", name="pk_read_model_fields"),
    )
    op.create_index(
        "ix_read_model_fields_building",
        "read_model_fields",
        ["index_state"],
        postgresql_where=sa.text("index_state = 'building'"),
    )
    _backfill()
    for function in (JSON_TS_FUNCTION, JSON_DATE_FUNCTION, INSERT_FUNCTION, UPDATE_FUNCTION, DELETE_FUNCTION, DROP_TABLES_FUNCTION, NOTIFY_FUNCTION):
        op.execute(function)
    op.execute(
        "CREATE TRIGGER elements_read_model_insert AFTER INSERT ON elements REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION read_model_insert()"
    )
    op.execute(
        "CREATE TRIGGER elements_read_model_update AFTER UPDATE OF values ON elements FOR EACH ROW "
        "WHEN (OLD.values IS DISTINCT FROM NEW.values) EXECUTE FUNCTION read_model_update()"
    )
    op.execute(
        "CREATE TRIGGER elements_read_model_delete AFTER DELETE ON elements REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION read_model_delete()"
    )
    op.execute(
        "CREATE TRIGGER entity_types_read_model_drop AFTER DELETE ON entity_types REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION read_model_drop()"
    )
    op.execute(
        "CREATE TRIGGER workspaces_cache_notify AFTER UPDATE OF metadata_version ON workspaces FOR EACH ROW "
        "EXECUTE FUNCTION stageflow_cache_notify()"
    )
    op.execute(
        "CREATE TRIGGER api_keys_cache_notify AFTER UPDATE OR DELETE ON api_keys FOR EACH ROW "
        "EXECUTE FUNCTION stageflow_cache_notify()"
    )
    # Filters and sorts read the typed tables now: the value rows keep only their primary key, and writing a
    # batch's 20,000 value rows no longer maintains six more indexes.
    for suffix in OLD_VALUE_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS ix_element_values_{suffix}")
    for suffix in OLD_STATISTICS:
        op.execute(f"DROP STATISTICS IF EXISTS st_element_values_{suffix}")
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN "
        "CREATE INDEX IF NOT EXISTS ix_elements_title_trgm ON elements USING gin (title gin_trgm_ops) "
        "WHERE deleted_at IS NULL; END IF; END $$"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_elements_title_trgm")
    for suffix, column in zip(
        OLD_VALUE_INDEXES,
        ("value_text", "value_number", "value_bool", "value_date", "value_datetime", "value_ref"),
        strict=True,
    ):
        op.execute(
            f"CREATE INDEX IF NOT EXISTS ix_element_values_{suffix} ON element_values (field_id, {column}, element_id) "
            f"WHERE {column} IS NOT NULL"
        )
    for trigger, table in (
        ("elements_read_model_insert", "elements"),
        ("elements_read_model_update", "elements"),
        ("elements_read_model_delete", "elements"),
        ("entity_types_read_model_drop", "entity_types"),
        ("workspaces_cache_notify", "workspaces"),
        ("api_keys_cache_notify", "api_keys"),
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for function in (
        "read_model_insert",
        "read_model_update",
        "read_model_delete",
        "read_model_drop",
        "stageflow_cache_notify",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    connection = op.get_bind()
    for (type_id,) in connection.execute(sa.text("SELECT id FROM entity_types")).all():
        op.execute(f"DROP TABLE IF EXISTS {ddl.table_name(type_id)}")
    op.drop_table("read_model_fields")
    op.drop_column("fields", "indexed")
