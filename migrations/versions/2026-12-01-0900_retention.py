"""retention: per-workspace settings, and indexes that let the worker prune old rows cheaply

Revision ID: 20261201_retention
Revises: 20261130_owner_board
Create Date: 2026-12-01 09:00:00

`workspaces.settings` holds a workspace's own settings (the first: `retention`); adding a column with a constant
default rewrites nothing. Each index starts with the workspace and ends with the age the pruning compares, partial
where only finished rows may go (app/retention). They are built CONCURRENTLY, outside the migration's transaction,
so an existing installation keeps writing to these (busy) tables meanwhile.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261201_retention"
down_revision: str | None = "20261130_owner_board"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES: list[tuple[str, str, list[str], str | None]] = [
    (
        "ix_automation_runs_finished",
        "automation_runs",
        ["workspace_id", "finished_at"],
        "status IN ('succeeded', 'failed', 'skipped')",
    ),
    (
        "ix_webhook_deliveries_finished",
        "webhook_deliveries",
        ["workspace_id", "created_at"],
        "status IN ('succeeded', 'failed')",
    ),
    (
        "ix_outbox_events_workspace_dispatched",
        "outbox_events",
        ["workspace_id", "dispatched_at"],
        "dispatched_at IS NOT NULL",
    ),
    ("ix_timeline_entries_workspace_created", "timeline_entries", ["workspace_id", "created_at"], None),
]


def upgrade() -> None:
    op.add_column(
        "workspaces",
        sa.Column("settings", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    with op.get_context().autocommit_block():
        for name, table, columns, where in INDEXES:
            # A build interrupted earlier leaves an invalid index of that name: drop it so this one is built.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.create_index(
                name,
                table,
                columns,
                postgresql_where=sa.text(where) if where else None,
                postgresql_concurrently=True,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, _, _ in reversed(INDEXES):
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
    op.drop_column("workspaces", "settings")
