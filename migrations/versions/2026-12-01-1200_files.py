"""files: uploaded files, and triggers that purge the files of deleted elements and fields

Revision ID: 20261201_files
Revises: 20261201_activities
Create Date: 2026-12-01 12:00:00

`files` holds each upload's metadata (the bytes are in the file storage, app/files/storage.py). A file an element's
file field names is bound to that element and field; the two statement-level triggers mark the files of deleted
elements and fields as purged in the deleting transaction, whatever deleted them (an element deleted for good, a type
deleted with its elements, a field deleted, a workspace's cascade), so no purge path can leave a readable file behind.
The bytes and then the rows go after the commit (app/files/service.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261201_files"
down_revision: str | None = "20261201_activities"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ELEMENTS_FUNCTION = """
CREATE FUNCTION files_purge_with_elements() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE files f SET purged_at = now() FROM old_rows o WHERE f.element_id = o.id AND f.purged_at IS NULL;
    RETURN NULL;
END $$
"""
FIELDS_FUNCTION = """
CREATE FUNCTION files_purge_with_fields() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE files f SET purged_at = now() FROM old_rows o WHERE f.field_id = o.id AND f.purged_at IS NULL;
    RETURN NULL;
END $$
"""
TRIGGERS = {"elements": "files_purge_with_elements", "fields": "files_purge_with_fields"}


def upgrade() -> None:
    # Never wait long for a lock on a live table: fail fast and retry the deploy instead.
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_table(
        "files",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("mime_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("element_id", sa.UUID(), nullable=True),
        sa.Column("field_id", sa.UUID(), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_files_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
    )
    op.create_index("ix_files_element", "files", ["element_id"], postgresql_where=sa.text("element_id IS NOT NULL"))
    op.create_index("ix_files_field", "files", ["field_id"], postgresql_where=sa.text("field_id IS NOT NULL"))
    op.create_index(
        "ix_files_purged", "files", ["workspace_id", "purged_at"], postgresql_where=sa.text("purged_at IS NOT NULL")
    )
    op.create_index(
        "ix_files_unbound",
        "files",
        ["workspace_id", "created_at"],
        postgresql_where=sa.text("element_id IS NULL AND purged_at IS NULL"),
    )
    op.execute(ELEMENTS_FUNCTION)
    op.execute(FIELDS_FUNCTION)
    for table, function in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {function} AFTER DELETE ON {table} "
            f"REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )


def downgrade() -> None:
    for table, function in TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {function} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_table("files")
