"""Each person's counters per entity type, kept by triggers (migration 20261130_counters) and the counters' timer."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, SmallInteger, Table
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base

# Rows per (person, type) that writers spread over (one per backend, like stage_totals): concurrent writes for one
# assignee rarely wait on each other's row. Readers add the slots up.
COUNTER_SLOTS = 16

# Deltas folded in by the triggers on elements and tasks; a repair (`user_counters_recount`) writes slot 0 afresh.
# A plain table, not a mapped class: it has no primary key, as `entity_type_id` is null for tasks about no element
# (the unique index treats nulls as equal, so ON CONFLICT finds those rows too).
user_counters = Table(
    "user_counters",
    Base.metadata,
    Column("workspace_id", ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", PgUUID(as_uuid=True), nullable=False),
    Column("entity_type_id", ForeignKey("entity_types.id", ondelete="CASCADE"), nullable=True),
    Column("slot", SmallInteger, nullable=False),
    # Assigned to the person, live, in the first stage of its pipeline.
    Column("new_elements", BigInteger, nullable=False, server_default="0"),
    # Assigned to the person, live, past its stage's time limit.
    Column("overdue_elements", BigInteger, nullable=False, server_default="0"),
    # Open tasks of the person whose due time has passed.
    Column("overdue_tasks", BigInteger, nullable=False, server_default="0"),
    Index(
        "uq_user_counters_key",
        "workspace_id",
        "user_id",
        "entity_type_id",
        "slot",
        unique=True,
        postgresql_nulls_not_distinct=True,
    ),
)


class CounterDeadline(Base):
    """When an element in a stage with a time limit becomes overdue: a row with a due time that the counters' timer
    claims (FOR UPDATE SKIP LOCKED), like the automation engine's timers. One per live element in such a stage; a
    move, a trip to the recycle bin or a new limit replaces or drops it."""

    __tablename__ = "counter_deadlines"
    __table_args__ = (Index("ix_counter_deadlines_due_at", "due_at"),)

    # No foreign keys: a batch of 1,000 elements into a stage with a limit writes 1,000 of these rows, and two checks
    # per row doubled the cost. The triggers drop the rows of purged elements (and so of deleted stages and
    # workspaces, whose elements go first); the timer drops any row whose element is no longer in its stage.
    element_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), nullable=False)
    stage_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), nullable=False)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
