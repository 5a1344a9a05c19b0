"""activities: calls, meetings, e-mails and messages bound to elements

Revision ID: 20261201_activities
Revises: 20261201_bitrix
Create Date: 2026-12-01 10:00:00

Two new tables, nothing on existing ones. `activities` is indexed by (workspace, kind, start) for the call history
the smart layer reads ("best time to call") and by (workspace, start, id) for the list's pages; `activity_elements`
binds an activity to its elements, keyed by (element, activity) for an element's timeline, with the reverse index
for an activity's elements.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261201_activities"
down_revision: str | None = "20261201_bitrix"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENUMS = {
    "activity_kind": ("call", "meeting", "email", "message"),
    "activity_direction": ("incoming", "outgoing"),
    "activity_status": ("planned", "completed"),
    "call_outcome": ("answered", "no_answer", "busy", "voicemail"),
}


def upgrade() -> None:
    # Never wait long for a lock on a live table: fail fast and retry the deploy instead.
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_table(
        "activities",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.Enum(*ENUMS["activity_kind"], name="activity_kind"), nullable=False),
        sa.Column("direction", sa.Enum(*ENUMS["activity_direction"], name="activity_direction"), nullable=True),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("status", sa.Enum(*ENUMS["activity_status"], name="activity_status"), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Enum(*ENUMS["call_outcome"], name="call_outcome"), nullable=True),
        sa.Column("responsible_user_id", sa.UUID(), nullable=True),
        sa.Column(
            "participants", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column(
            "payload", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column("run_id", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_activities_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activities")),
    )
    op.create_index("ix_activities_workspace_kind_starts", "activities", ["workspace_id", "kind", "starts_at"])
    op.create_index("ix_activities_workspace_starts", "activities", ["workspace_id", "starts_at", "id"])
    op.create_table(
        "activity_elements",
        sa.Column("element_id", sa.UUID(), nullable=False),
        sa.Column("activity_id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["activities.id"],
            name=op.f("fk_activity_elements_activity_id_activities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["element_id"], ["elements.id"], name=op.f("fk_activity_elements_element_id_elements"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_activity_elements_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("element_id", "activity_id", name=op.f("pk_activity_elements")),
    )
    op.create_index("ix_activity_elements_activity", "activity_elements", ["activity_id"])


def downgrade() -> None:
    op.drop_table("activity_elements")
    op.drop_table("activities")
    for name in ENUMS:
        sa.Enum(name=name).drop(op.get_bind(), checkfirst=True)
