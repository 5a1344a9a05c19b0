import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk, workspace_fk


class ScoringModel(Base):
    """One version of a scoring model. A trained version is immutable: retraining makes a new version."""

    __tablename__ = "scoring_models"
    __table_args__ = (
        UniqueConstraint("workspace_id", "entity_type_id", "name", "version"),
        # One active model per entity type.
        Index(
            "ix_scoring_models_active",
            "workspace_id",
            "entity_type_id",
            unique=True,
            postgresql_where=text("is_active"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    entity_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("entity_types.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    # draft | training | trained | failed
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    # What the user asked for: factors, or features and training options.
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    # The learned artefact as plain data (coefficients, encodings, bins): never a pickle.
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = created_at_column()
    # When the current training run started: a run older than the lease (its process died) may be taken over.
    training_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    trained_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
