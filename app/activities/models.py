import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Enum, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk, workspace_fk


class ActivityKind(enum.StrEnum):
    call = "call"
    meeting = "meeting"
    email = "email"
    message = "message"


class ActivityDirection(enum.StrEnum):
    incoming = "incoming"
    outgoing = "outgoing"


class ActivityStatus(enum.StrEnum):
    planned = "planned"
    completed = "completed"


class CallOutcome(enum.StrEnum):
    answered = "answered"
    no_answer = "no_answer"
    busy = "busy"
    voicemail = "voicemail"


class Activity(Base):
    """A call, meeting, e-mail or message about one or more elements: planned, or completed with an outcome."""

    __tablename__ = "activities"
    __table_args__ = (
        # The call history the smart layer reads ("best time to call"): a workspace's calls by start time.
        Index("ix_activities_workspace_kind_starts", "workspace_id", "kind", "starts_at"),
        Index("ix_activities_workspace_starts", "workspace_id", "starts_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    kind: Mapped[ActivityKind] = mapped_column(Enum(ActivityKind, name="activity_kind"), nullable=False)
    direction: Mapped[ActivityDirection | None] = mapped_column(Enum(ActivityDirection, name="activity_direction"))
    subject: Mapped[str] = mapped_column(String(500), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[ActivityStatus] = mapped_column(Enum(ActivityStatus, name="activity_status"), nullable=False)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[CallOutcome | None] = mapped_column(Enum(CallOutcome, name="call_outcome"))
    # A user of the workspace (no foreign key, as a task's assignee: the history keeps who it was).
    responsible_user_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    participants: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    # The automation run that logged it (a rule's `log_activity`), if one did.
    run_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class ActivityElement(Base):
    """An activity bound to an element; an activity has one or more."""

    __tablename__ = "activity_elements"
    __table_args__ = (
        # An element's activities (its timeline, the list's element filter) first; an activity's elements second.
        PrimaryKeyConstraint("element_id", "activity_id"),
        Index("ix_activity_elements_activity", "activity_id"),
    )

    element_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("elements.id", ondelete="CASCADE"), nullable=False)
    activity_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"), nullable=False)
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
