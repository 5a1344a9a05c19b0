import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class ReadModelField(Base):
    """One field's column in its type's read model table, and the state of that column's index."""

    __tablename__ = "read_model_fields"
    __table_args__ = (
        Index("ix_read_model_fields_building", "index_state", postgresql_where=text("index_state = 'building'")),
    )

    field_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("fields.id", ondelete="CASCADE", name="fk_read_model_fields_field_id"), primary_key=True
    )
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE", name="fk_read_model_fields_workspace_id"), nullable=False
    )
    entity_type_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("entity_types.id", ondelete="CASCADE", name="fk_read_model_fields_entity_type_id"), nullable=False
    )
    column_name: Mapped[str] = mapped_column(String(63), nullable=False)
    sql_type: Mapped[str] = mapped_column(String(40), nullable=False)
    index_name: Mapped[str] = mapped_column(String(63), nullable=False)
    index_state: Mapped[str] = mapped_column(String(20), nullable=False)
    index_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
