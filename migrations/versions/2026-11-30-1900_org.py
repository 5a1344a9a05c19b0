"""workplaces (sections of entity types per role) and the audit log of API writes

Revision ID: 20261130_org
Revises: 20261130_people
Create Date: 2026-11-30 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

revision: str = "20261130_org"
down_revision: str | None = "20261130_people"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_table(
        "workplaces",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), server_default="", nullable=False),
        sa.Column("sort", sa.Integer(), server_default="0", nullable=False),
        sa.Column("entity_type_ids", postgresql.ARRAY(sa.UUID()), server_default="{}", nullable=False),
        sa.Column("role_ids", postgresql.ARRAY(sa.UUID()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_workplaces_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workplaces")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_workplaces_workspace_id_name")),
    )
    op.create_table(
        "audit_log",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("api_key_id", sa.UUID(), nullable=True),
        sa.Column("address", sa.String(length=100), nullable=True),
        sa.Column("action", sa.String(length=300), nullable=False),
        sa.Column("object_type", sa.String(length=100), nullable=False),
        sa.Column("object_id", sa.String(length=200), nullable=True),
        sa.Column("element_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_audit_log_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        # Also the per-workspace timeline index: newest first is a backward scan of it.
        sa.PrimaryKeyConstraint("workspace_id", "at", "id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        "ix_audit_log_element",
        "audit_log",
        ["workspace_id", "element_id", "at", "id"],
        postgresql_where=text("element_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_element", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("workplaces")
