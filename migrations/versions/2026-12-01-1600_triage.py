"""triage: per entity type, the request triage configuration and model (JSON), and the vectors of labelled elements

Revision ID: 20261201_triage
Revises: 20261201_analytics
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261201_triage"
down_revision: str | None = "20261201_automation_variants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "triage_models",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("workspace_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("entity_type_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("entity_types.id", ondelete="CASCADE"), nullable=False),
        sa.Column("text_fields", postgresql.JSONB(), nullable=False),
        sa.Column("category_field", sa.String(100), nullable=False),
        sa.Column("urgency_field", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("encoder", sa.String(20)),
        sa.Column("params", postgresql.JSONB()),
        sa.Column("metrics", postgresql.JSONB()),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("workspace_id", "entity_type_id"),
    )
    op.create_table(
        "triage_vectors",
        sa.Column("element_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("elements.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("workspace_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("triage_models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("vector", postgresql.ARRAY(sa.REAL()), nullable=False),
        sa.Column("category", sa.String(200), nullable=False),
        sa.Column("urgency", sa.String(200), nullable=False),
    )
    op.create_index("ix_triage_vectors_model", "triage_vectors", ["model_id"])


def downgrade() -> None:
    op.drop_table("triage_vectors")
    op.drop_table("triage_models")
