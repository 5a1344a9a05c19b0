import enum
import uuid
from datetime import datetime

from sqlalchemy import DateTime, Enum, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk, workspace_fk


class TaskStatus(enum.StrEnum):
    open = "open"
    done = "done"
    cancelled = "cancelled"


class Task(Base):
    """A to-do for a person, often about an element (created by hand or by a rule's `create_task`)."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_workspace_status", "workspace_id", "status", "created_at"),
        Index("ix_tasks_element", "element_id"),
        # What the counters' timer looks for: open tasks whose due time may have come (app/counters).
        Index(
            "ix_tasks_due",
            "due_at",
            postgresql_where=text("status = 'open' AND overdue_since IS NULL AND due_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    element_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    status: Mapped[TaskStatus] = mapped_column(Enum(TaskStatus, name="task_status"), nullable=False)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    run_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The type of the task's element, so the assignee's overdue count per type needs no join (and survives the
    # element's purge); a deleted type leaves its tasks counted with the ones about no element.
    entity_type_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("entity_types.id", ondelete="SET NULL"))
    # When the due time passed (set by triggers and the counters' timer while the task is open).
    overdue_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Notification(Base):
    """A stored message for a user (a rule's `notify`); read by the user's client."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user", "workspace_id", "user_id", "created_at"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    user_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), nullable=False)
    element_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    message: Mapped[str] = mapped_column(Text, nullable=False)
    run_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    created_at: Mapped[datetime] = created_at_column()
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
