"""bitrix: integer numbers for the Bitrix24 facade, and a form-encoded flavour of webhooks

Revision ID: 20261201_bitrix
Revises: 20261201_calendar
Create Date: 2026-12-01 14:00:00

`elements.number` is a stable integer id from one sequence: added without a default (nothing rewritten), then the
default is set for new rows, existing rows are numbered in creation order (one pass; a new installation has none)
and the column made NOT NULL. `bitrix_numbers` maps the other rows the facade shows (types, pipelines, stages,
fields, options, users) to numbers per workspace and kind. Webhook subscriptions and deliveries get a nullable
`format` (NULL: Standard Webhooks JSON; `bitrix`: a form-encoded Bitrix24 event).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261201_bitrix"
down_revision: str | None = "20261201_calendar"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE elements_number_seq AS bigint")
    op.add_column("elements", sa.Column("number", sa.BigInteger(), nullable=True))
    op.execute("ALTER SEQUENCE elements_number_seq OWNED BY elements.number")
    op.execute("ALTER TABLE elements ALTER COLUMN number SET DEFAULT nextval('elements_number_seq')")
    op.execute(
        "UPDATE elements e SET number = n.number FROM ("
        " SELECT id, nextval('elements_number_seq') AS number FROM ("
        "  SELECT id FROM elements WHERE number IS NULL ORDER BY created_at, id) ordered) n "
        "WHERE e.id = n.id"
    )
    op.alter_column("elements", "number", nullable=False)
    op.create_index("ix_elements_type_number", "elements", ["entity_type_id", "number"])
    op.create_table(
        "bitrix_numbers",
        sa.Column("workspace_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("object_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_bitrix_numbers_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "kind", "number", name=op.f("pk_bitrix_numbers")),
        sa.UniqueConstraint(
            "workspace_id", "kind", "object_id", name=op.f("uq_bitrix_numbers_workspace_id_kind_object_id")
        ),
    )
    op.add_column("webhook_subscriptions", sa.Column("format", sa.String(length=20), nullable=True))
    op.add_column("webhook_deliveries", sa.Column("format", sa.String(length=20), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_deliveries", "format")
    op.drop_column("webhook_subscriptions", "format")
    op.drop_table("bitrix_numbers")
    op.drop_index("ix_elements_type_number", table_name="elements")
    op.drop_column("elements", "number")
