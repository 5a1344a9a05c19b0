"""Rollups of stage history, kept in the transaction of every move, and alert rules with their history.

Triggers on `stage_history` (migration 20261201_analytics) fold each statement's new rows into these tables, whatever
wrote them (REST, GraphQL, batch, import, automation): reading a funnel sums a few rows per day and stage, never the
elements. Each key has up to ROLLUP_SLOTS rows (one per slot, picked from the writing backend) so concurrent writers
rarely wait on the same row; readers add the slots up.
"""

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk, workspace_fk
from app.elements.models import StageHistory

ROLLUP_SLOTS = 8
# Rollup rows of elements assigned to nobody carry this id (a primary key column cannot be null).
NOBODY = uuid.UUID(int=0)
# The rows summed over every assignee (what a whole pipeline's funnel reads: one row per day and stage).
EVERYONE = uuid.UUID(int=(1 << 128) - 1)
DAY, MONTH = 0, 1


class StageDay(Base):
    """What happened in one stage on one UTC day, per assignee (at the time of the move), and for all of them
    together (`assignee_id` = EVERYONE)."""

    __tablename__ = "analytics_stage_days"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id", "pipeline_id", "day", "stage_id", "assignee_id", "slot"),
        Index("ix_analytics_stage_days_assignee", "workspace_id", "assignee_id", "pipeline_id", "day"),
    )

    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    pipeline_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    stage_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stages.id", ondelete="CASCADE"), nullable=False)
    assignee_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), nullable=False)
    slot: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    # Elements entering the stage for the first time (created in it, or moved into it).
    entered: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Entries of elements that had been in the stage before.
    reentered: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Entries that were creations.
    created: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Moves into the stage with no author: made by automation rules (and other system work).
    by_rules: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Moves out of the stage, and the time the elements had spent in it.
    exited: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    exited_seconds: Mapped[float] = mapped_column(Double, nullable=False, default=0)
    # Moves out of the stage into a failure stage / a success stage.
    lost: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    won: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # For first entries: the elements' amounts when they entered, and (into a success or failure stage) the time
    # since the element's creation. Closes are counted once per element and closing stage.
    entered_amount: Mapped[Any] = mapped_column(Numeric, nullable=False, default=0)
    closed_seconds: Mapped[float] = mapped_column(Double, nullable=False, default=0)


class Distribution(Base):
    """Histograms per stage and UTC day (grain DAY) or month (grain MONTH, dated the 1st): how long elements stayed
    (kind 0, the stage they left), how long they took from creation to a closing stage (kind 1, the closing stage)
    and the score they closed with (kind 2)."""

    __tablename__ = "analytics_distributions"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id", "pipeline_id", "grain", "day", "kind", "stage_id", "bucket", "slot"),
    )

    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    pipeline_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False)
    grain: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    kind: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    stage_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stages.id", ondelete="CASCADE"), nullable=False)
    # Durations: 0 below a second, else 1 + floor(8 · log2(seconds)) (eight buckets per doubling). Scores: score + 1
    # (0: closed unscored).
    bucket: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    slot: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class AlertRule(Base):
    """A metric of a type's pipeline, checked on a schedule against a threshold or the band of its recent past."""

    __tablename__ = "analytics_alert_rules"
    __table_args__ = (
        Index("ix_analytics_alert_rules_workspace", "workspace_id", "created_at"),
        Index("ix_analytics_alert_rules_due", "next_check_at", postgresql_where=text("enabled")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    entity_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("entity_types.id", ondelete="CASCADE"), nullable=False)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False)
    stage_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("stages.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    metric: Mapped[str] = mapped_column(String(40), nullable=False)
    # {"kind": "threshold", "op": "lt", "value": 0.2} or {"kind": "anomaly", "k": 3, "periods": 14, "direction": …}
    condition: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    window_days: Mapped[int] = mapped_column(Integer, nullable=False)
    min_volume: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    check_every_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    notify_user_ids: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # ok | firing: a breach fires once, and the rule stays firing (silent) until the metric is back in band.
    state: Mapped[str] = mapped_column(String(20), nullable=False, default="ok")
    last_value: Mapped[float | None] = mapped_column(Double)
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_check_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class AlertEvent(Base):
    """One change of an alert's state: fired (the metric left its band) or resolved (it came back)."""

    __tablename__ = "analytics_alert_events"
    __table_args__ = (Index("ix_analytics_alert_events_rule", "rule_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    rule_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("analytics_alert_rules.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    value: Mapped[float | None] = mapped_column(Double)
    low: Mapped[float | None] = mapped_column(Double)
    high: Mapped[float | None] = mapped_column(Double)
    window_start: Mapped[date] = mapped_column(Date, nullable=False)
    window_end: Mapped[date] = mapped_column(Date, nullable=False)
    notified: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The outbox event that carries it to webhook subscriptions (`alert.fired` / `alert.resolved`).
    event_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), nullable=False)
    at: Mapped[datetime] = created_at_column()


# Stage history of one pipeline over a period: what groupings by source or by a custom field read (they are not
# rolled up: any enum field may be asked for). Declared here so the core history model stays untouched.
ix_stage_history_pipeline_moved = Index(
    "ix_stage_history_pipeline_moved", StageHistory.to_pipeline_id, StageHistory.moved_at
)
