import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import REAL, DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk, workspace_fk


class TriageModel(Base):
    """An entity type's triage: which fields hold the text, the category and the urgency, and the model learned from
    its labelled elements (plain JSON: the encoder's vocabulary or name, the classifiers' weights; never a pickle)."""

    __tablename__ = "triage_models"
    __table_args__ = (UniqueConstraint("workspace_id", "entity_type_id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    entity_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("entity_types.id", ondelete="CASCADE"), nullable=False)
    text_fields: Mapped[list[str]] = mapped_column(JSONB, nullable=False)
    category_field: Mapped[str] = mapped_column(String(100), nullable=False)
    urgency_field: Mapped[str] = mapped_column(String(100), nullable=False)
    # untrained | trained | failed
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="untrained")
    encoder: Mapped[str | None] = mapped_column(String(20))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()
    trained_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TriageVector(Base):
    """The similarity vector of a labelled element as of the last training (unit length; the model's encoder): the
    solved ones are suggested as similar requests, the labelled ones explain an embedding's decision."""

    __tablename__ = "triage_vectors"
    __table_args__ = (Index("ix_triage_vectors_model", "model_id"),)

    element_id: Mapped[uuid.UUID] = mapped_column(
        PgUUID(as_uuid=True), ForeignKey("elements.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("triage_models.id", ondelete="CASCADE"), nullable=False)
    vector: Mapped[list[float]] = mapped_column(ARRAY(REAL), nullable=False)
    category: Mapped[str] = mapped_column(String(200), nullable=False)
    urgency: Mapped[str] = mapped_column(String(200), nullable=False)
