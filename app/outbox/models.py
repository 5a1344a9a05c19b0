import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, workspace_fk


class OutboxEvent(Base):
    """A domain event written in the same transaction as the change; a dispatcher hands it on later."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_pending", "id", postgresql_where=text("dispatched_at IS NULL")),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), nullable=False, unique=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    event_type: Mapped[str] = mapped_column(String(60), nullable=False)
    entity_type_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    element_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    created_at: Mapped[datetime] = created_at_column()
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
