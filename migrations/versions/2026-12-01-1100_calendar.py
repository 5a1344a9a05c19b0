"""calendar: users' events, their iCalendar feeds, and each user's weekly working hours

Revision ID: 20261201_calendar
Revises: 20261201_layouts
Create Date: 2026-12-01 11:00:00

`users.working_hours` is a nullable column (null: the default week), so adding it rewrites nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261201_calendar"
down_revision: str | None = "20261201_layouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_KIND = postgresql.ENUM("meeting", "call", "deadline", "other", name="calendar_event_kind", create_type=False)


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column("users", sa.Column("working_hours", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    EVENT_KIND.create(op.get_bind(), checkfirst=False)
    op.create_table(
        "calendar_events",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("location", sa.String(length=500), nullable=True),
        sa.Column("kind", EVENT_KIND, nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("element_id", sa.UUID(), nullable=True),
        sa.Column("attendee_ids", postgresql.ARRAY(sa.UUID()), server_default="{}", nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_calendar_events_ends_after_start")),
        sa.CheckConstraint(
            "all_day = (start_date IS NOT NULL AND end_date IS NOT NULL)",
            name=op.f("ck_calendar_events_all_day_has_dates"),
        ),
        sa.CheckConstraint("end_date >= start_date", name=op.f("ck_calendar_events_end_date_not_before_start")),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_calendar_events_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_calendar_events_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["element_id"], ["elements.id"], name=op.f("fk_calendar_events_element_id_elements"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_events")),
    )
    op.create_index("ix_calendar_events_owner", "calendar_events", ["workspace_id", "owner_id", "starts_at"])
    op.create_index("ix_calendar_events_attendees", "calendar_events", ["attendee_ids"], postgresql_using="gin")
    op.create_index(
        "ix_calendar_events_element",
        "calendar_events",
        ["element_id"],
        postgresql_where=sa.text("element_id IS NOT NULL"),
    )
    op.create_table(
        "calendar_feeds",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_calendar_feeds_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_calendar_feeds_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_feeds")),
        sa.UniqueConstraint("workspace_id", "user_id", name=op.f("uq_calendar_feeds_workspace_id_user_id")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_calendar_feeds_secret_hash")),
    )


def downgrade() -> None:
    op.drop_table("calendar_feeds")
    op.drop_index("ix_calendar_events_element", table_name="calendar_events")
    op.drop_index("ix_calendar_events_attendees", table_name="calendar_events")
    op.drop_index("ix_calendar_events_owner", table_name="calendar_events")
    op.drop_table("calendar_events")
    EVENT_KIND.drop(op.get_bind(), checkfirst=False)
    op.drop_column("users", "working_hours")
