import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk, workspace_fk

LIVE = text("deleted_at IS NULL")


class Element(Base):
    __tablename__ = "elements"
    __table_args__ = (
        Index("ix_elements_type_created", "entity_type_id", "created_at", "id", postgresql_where=LIVE),
        Index("ix_elements_stage", "stage_id", "created_at", "id", postgresql_where=LIVE),
        Index(
            "ix_elements_type_deleted", "entity_type_id", "deleted_at", postgresql_where=text("deleted_at IS NOT NULL")
        ),
        # Filters and sorts on the system field `score`, and a user's load (open elements assigned to them).
        Index("ix_elements_type_score", "entity_type_id", "score", "id", postgresql_where=LIVE),
        # The `own` and `department` permission scopes: assigned to or created by one of some people.
        Index("ix_elements_type_assigned", "entity_type_id", "assigned_to", postgresql_where=LIVE),
        Index("ix_elements_type_creator", "entity_type_id", "created_by", postgresql_where=LIVE),
        # A person's board: their elements of a stage, newest first, and their counts and sums without the heap.
        Index(
            "ix_elements_assignee_stage",
            "assigned_to",
            "stage_id",
            "created_at",
            "id",
            postgresql_where=LIVE,
            postgresql_include=["workspace_id", "pipeline_id", "amount"],
        ),
        Index(
            "ix_elements_creator_stage",
            "created_by",
            "stage_id",
            "created_at",
            "id",
            postgresql_where=LIVE,
            postgresql_include=["workspace_id", "pipeline_id", "amount", "assigned_to"],
        ),
        # The Bitrix24 facade's item ids: `order: {ID: ASC}` pages and `>ID` filters walk it (app/bitrix).
        Index("ix_elements_type_number", "entity_type_id", "number"),
        Index(
            "ix_elements_assigned",
            "workspace_id",
            "assigned_to",
            postgresql_where=text("deleted_at IS NULL AND assigned_to IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    entity_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("entity_types.id", ondelete="CASCADE"), nullable=False)
    # A stable integer id (one sequence for the instance), given by the database on insert: what integrations that
    # expect integer ids see (the Bitrix24 facade's item `id`).
    number: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default=text("nextval('elements_number_seq')")
    )
    pipeline_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("pipelines.id", ondelete="RESTRICT"))
    stage_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("stages.id", ondelete="RESTRICT"))
    title: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    assigned_to: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    source: Mapped[str | None] = mapped_column(String(100))
    begin_date: Mapped[date | None] = mapped_column(Date)
    close_date: Mapped[date | None] = mapped_column(Date)
    score: Mapped[int | None] = mapped_column(Integer)
    # The read path: a snapshot of the custom values (field code -> JSON value), kept in step with element_values.
    values: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict, server_default="{}")
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_by: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    updated_by: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    moved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The element's API JSON, rendered by a trigger on every write (app/readmodel/compiler.py:row_json reads it):
    # never loaded into ORM objects.
    body: Mapped[Any] = mapped_column(JSON, nullable=True, deferred=True)
    # When the element outstayed its stage's time limit; kept by triggers and the counters' timer (app/counters).
    overdue_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ElementValue(Base):
    """One custom value: (element, field, position) with one typed column filled in."""

    __tablename__ = "element_values"
    __table_args__ = (
        PrimaryKeyConstraint("element_id", "field_id", "position"),
        # No other index: filters and sorts read the type's read model (app/readmodel); these rows are the record.
    )

    # No foreign keys on purpose (migration 0004): the three per-row RI checks were two thirds of the cost of
    # writing a batch's ~20,000 value rows. Only this package writes these rows, from a validated element, field and
    # workspace in the same transaction; statement-level triggers on `elements` and `fields` delete them in bulk
    # (workspaces cascade to both).
    element_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), nullable=False)
    field_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    workspace_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), nullable=False)
    value_text: Mapped[str | None] = mapped_column(Text)
    value_number: Mapped[Decimal | None] = mapped_column(Numeric)
    value_bool: Mapped[bool | None] = mapped_column(Boolean)
    value_date: Mapped[date | None] = mapped_column(Date)
    value_datetime: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    value_ref: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))


class StageHistory(Base):
    __tablename__ = "stage_history"
    __table_args__ = (Index("ix_stage_history_element", "element_id", "moved_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    element_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("elements.id", ondelete="CASCADE"), nullable=False)
    from_pipeline_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    from_stage_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    to_pipeline_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    to_stage_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    moved_by: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    moved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class StageTotal(Base):
    """Live element count and amount sum per stage, kept by triggers on `elements` (migration 0004).

    A board of a million elements would otherwise count and sum half a million rows on every request. Each stage has
    up to STAGE_TOTAL_SLOTS rows (one per slot, picked from the writing backend) so concurrent writers to one stage
    rarely wait on the same row; readers add the slots up.
    """

    __tablename__ = "stage_totals"
    __table_args__ = (
        PrimaryKeyConstraint("stage_id", "slot"),
        Index("ix_stage_totals_pipeline", "pipeline_id"),
    )

    stage_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stages.id", ondelete="CASCADE"), nullable=False)
    slot: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    pipeline_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    amount_sum: Mapped[Decimal] = mapped_column(Numeric, nullable=False, default=0)


STAGE_TOTAL_SLOTS = 16
