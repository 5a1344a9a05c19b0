import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, workspace_fk


class TimelineEntry(Base):
    """The audit trail: what happened to an element (or to the workspace's metadata), by whom, when."""

    __tablename__ = "timeline_entries"
    __table_args__ = (Index("ix_timeline_entries_element", "element_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    element_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    kind: Mapped[str] = mapped_column(String(50), nullable=False)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    created_at: Mapped[datetime] = created_at_column()
