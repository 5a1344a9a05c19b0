import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, PrimaryKeyConstraint, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk, workspace_fk


class Relation(Base):
    """A declared parent -> child link between two entity types."""

    __tablename__ = "relations"
    __table_args__ = (UniqueConstraint("workspace_id", "parent_type_id", "child_type_id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    parent_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("entity_types.id", ondelete="CASCADE"), nullable=False)
    child_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("entity_types.id", ondelete="CASCADE"), nullable=False)
    created_at: Mapped[datetime] = created_at_column()


class ElementLink(Base):
    __tablename__ = "element_links"
    __table_args__ = (
        PrimaryKeyConstraint("parent_id", "child_id"),
        Index("ix_element_links_child", "child_id"),
    )

    parent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("elements.id", ondelete="CASCADE"), nullable=False)
    child_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("elements.id", ondelete="CASCADE"), nullable=False)
    relation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("relations.id", ondelete="CASCADE"), nullable=False)
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    created_at: Mapped[datetime] = created_at_column()
