import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Enum, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk, workspace_fk


class StageSemantic(enum.StrEnum):
    process = "process"
    success = "success"
    failure = "failure"


class Pipeline(Base):
    __tablename__ = "pipelines"
    __table_args__ = (
        Index("ix_pipelines_entity_type_id", "entity_type_id"),
        # Exactly one default pipeline per entity type, kept by the database itself.
        Index(
            "uq_pipelines_default_per_type",
            "workspace_id",
            "entity_type_id",
            unique=True,
            postgresql_where=text("is_default"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    entity_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("entity_types.id", ondelete="CASCADE"), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    sort: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = created_at_column()


# A year: longer limits are a mistake, not a process.
MAX_TIME_LIMIT_MINUTES = 366 * 24 * 60


class Stage(Base):
    __tablename__ = "stages"
    __table_args__ = (
        UniqueConstraint("workspace_id", "pipeline_id", "code"),
        Index("ix_stages_pipeline_id", "pipeline_id"),
        CheckConstraint(f"time_limit_minutes BETWEEN 1 AND {MAX_TIME_LIMIT_MINUTES}", name="time_limit_minutes_range"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    pipeline_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False)
    code: Mapped[str] = mapped_column(String(63), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    semantic: Mapped[StageSemantic] = mapped_column(Enum(StageSemantic, name="stage_semantic"), nullable=False)
    color: Mapped[str | None] = mapped_column(String(20))
    sort: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # How long an element may stay here before it counts as overdue for its assignee (app/counters); none: forever.
    time_limit_minutes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at_column()
