import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, SmallInteger, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class AuditEntry(Base):
    """One committed write through the API: who (user or key), from where, what, when.

    Append-only history: no foreign keys but the workspace's, so deleting a user, key or element keeps its trail.
    The primary key leads with (workspace_id, at) so it is also the per-workspace timeline index (and lets the table
    be partitioned by time later).
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index(
            "ix_audit_log_element",
            "workspace_id",
            "element_id",
            "at",
            "id",
            postgresql_where=text("element_id IS NOT NULL"),
        ),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), primary_key=True, server_default=func.clock_timestamp()
    )
    id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid())
    user_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    address: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(300), nullable=False)
    object_type: Mapped[str] = mapped_column(String(100), nullable=False)
    object_id: Mapped[str | None] = mapped_column(String(200))
    element_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    status: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
