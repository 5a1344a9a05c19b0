"""automation variants: A/B variants of a rule, the experiment's options and state, and each element's assignment

Revision ID: 20261201_automation_variants
Revises: 20261201_analytics
Create Date: 2026-12-01 16:00:00

`automation_rules.variants` and `.experiment` are nullable JSONB columns (null: a plain rule), so adding them
rewrites nothing. `automation_variant_assignments` holds one row per (rule, element): the variant the element got the
first time the rule ran for it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261201_automation_variants"
down_revision: str | None = "20261201_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column("automation_rules", sa.Column("variants", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("automation_rules", sa.Column("experiment", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_table(
        "automation_variant_assignments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("rule_id", sa.UUID(), nullable=False),
        sa.Column("element_id", sa.UUID(), nullable=False),
        sa.Column("variant", sa.String(length=40), nullable=False),
        sa.Column("bucket", sa.Float(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_automation_variant_assignments_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["automation_rules.id"],
            name=op.f("fk_automation_variant_assignments_rule_id_automation_rules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["element_id"],
            ["elements.id"],
            name=op.f("fk_automation_variant_assignments_element_id_elements"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_variant_assignments")),
        sa.UniqueConstraint(
            "workspace_id",
            "rule_id",
            "element_id",
            name=op.f("uq_automation_variant_assignments_workspace_id_rule_id_element_id"),
        ),
    )
    op.create_index(
        "ix_automation_variant_assignments_rule", "automation_variant_assignments", ["rule_id", "variant"]
    )


def downgrade() -> None:
    op.drop_index("ix_automation_variant_assignments_rule", table_name="automation_variant_assignments")
    op.drop_table("automation_variant_assignments")
    op.drop_column("automation_rules", "experiment")
    op.drop_column("automation_rules", "variants")
