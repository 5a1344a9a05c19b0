import enum
import uuid
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk, workspace_fk


class EventKind(enum.StrEnum):
    meeting = "meeting"
    call = "call"
    deadline = "deadline"
    other = "other"


class CalendarEvent(Base):
    """A planned meeting, call or deadline of one user (its owner), optionally about an element, with attendees.

    `starts_at`/`ends_at` always hold the event's span in UTC, so every range query is one overlap test. An all-day
    event also keeps its local days (`start_date`..`end_date`, both inclusive); its span is those days from local
    midnight to local midnight in the event's `timezone`, so a day when the clocks change is 23 or 25 hours long.
    """

    __tablename__ = "calendar_events"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("all_day = (start_date IS NOT NULL AND end_date IS NOT NULL)", name="all_day_has_dates"),
        CheckConstraint("end_date >= start_date", name="end_date_not_before_start"),
        Index("ix_calendar_events_owner", "workspace_id", "owner_id", "starts_at"),
        # "The events I attend": `attendee_ids @> ARRAY[me]`.
        Index("ix_calendar_events_attendees", "attendee_ids", postgresql_using="gin"),
        Index("ix_calendar_events_element", "element_id", postgresql_where=text("element_id IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(500))
    kind: Mapped[EventKind] = mapped_column(Enum(EventKind, name="calendar_event_kind"), nullable=False)
    all_day: Mapped[bool] = mapped_column(Boolean, nullable=False)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False)
    # A purged element leaves the event, unbound.
    element_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("elements.id", ondelete="SET NULL"))
    # Users of the workspace; one who is deleted later simply matches nobody.
    attendee_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(PgUUID(as_uuid=True)), nullable=False, default=list, server_default="{}"
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class CalendarFeed(Base):
    """A user's iCalendar feed: the secret of its URL, stored as a SHA-256 only (the URL is shown once)."""

    __tablename__ = "calendar_feeds"
    __table_args__ = (UniqueConstraint("workspace_id", "user_id"), UniqueConstraint("secret_hash"))

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
