"""Card layouts: how an entity type's card is laid out, per type and optionally per pipeline and per role."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk, workspace_fk


class CardLayout(Base):
    """Named sections of ordered field codes (custom and system fields) and the codes kept off the card.

    One layout per scope (type, pipeline or none, role or none): the unique index treats nulls as equal. A layout
    dies with its type, pipeline or role. Field codes are not foreign keys: a field deleted since is dropped when the
    layout is read, and a field added since lands in the layout's default section.
    """

    __tablename__ = "card_layouts"
    __table_args__ = (
        Index(
            "uq_card_layouts_scope",
            "workspace_id",
            "entity_type_id",
            "pipeline_id",
            "role_id",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    entity_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("entity_types.id", ondelete="CASCADE"), nullable=False)
    pipeline_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"))
    role_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # [{"code", "title", "fields": [field codes], "default": bool}], in card order.
    sections: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    # Field codes kept off the card (they stay in the API: a layout is presentation only).
    hidden: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list, server_default="[]")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
