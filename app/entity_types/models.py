import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk, workspace_fk


class EntityType(Base):
    __tablename__ = "entity_types"
    __table_args__ = (UniqueConstraint("workspace_id", "code"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    code: Mapped[str] = mapped_column(String(63), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    settings: Mapped[dict[str, bool]] = mapped_column(JSONB, nullable=False, default=dict)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class Field(Base):
    __tablename__ = "fields"
    __table_args__ = (
        UniqueConstraint("workspace_id", "entity_type_id", "code"),
        Index("ix_fields_entity_type_id", "entity_type_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    entity_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("entity_types.id", ondelete="CASCADE"), nullable=False)
    code: Mapped[str] = mapped_column(String(63), nullable=False)
    label: Mapped[str] = mapped_column(String(200), nullable=False)
    type: Mapped[str] = mapped_column(String(20), nullable=False)
    required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    multiple: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    default: Mapped[Any] = mapped_column(JSONB, nullable=True)
    # Validation settings: min, max, max_length, pattern.
    validation: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    target_type_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("entity_types.id", ondelete="RESTRICT"))
    sort: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Text fields only: a trigram index on the read model for contains/icontains (other kinds are always indexed).
    indexed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="false")
    created_at: Mapped[datetime] = created_at_column()


class FieldOption(Base):
    __tablename__ = "field_options"
    __table_args__ = (UniqueConstraint("workspace_id", "field_id", "value"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    field_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("fields.id", ondelete="CASCADE"), nullable=False)
    value: Mapped[str] = mapped_column(String(100), nullable=False)
    label: Mapped[str] = mapped_column(String(200), nullable=False)
    sort: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
