import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk, workspace_fk
from app.outbox.models import OutboxEvent


class RunStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"


class AutomationRule(Base):
    """Trigger + optional condition + ordered actions, attached to a type and optionally a pipeline and a stage."""

    __tablename__ = "automation_rules"
    __table_args__ = (
        Index("ix_automation_rules_match", "workspace_id", "entity_type_id", "trigger_type"),
        UniqueConstraint("workspace_id", "hook_token_hash"),
        # Incoming hooks are looked up by their token alone (the URL carries no workspace).
        Index(
            "ix_automation_rules_hook_token_hash",
            "hook_token_hash",
            postgresql_where=text("hook_token_hash IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    entity_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("entity_types.id", ondelete="CASCADE"), nullable=False)
    pipeline_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"))
    stage_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("stages.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    trigger_type: Mapped[str] = mapped_column(String(40), nullable=False)
    trigger: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    condition: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    sort: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # SHA-256 (hex) of the secret path segment of a `webhook.received` rule's incoming URL. The token itself is
    # shown once (at creation or rotation) and never stored, as for API keys.
    hook_token_hash: Mapped[str | None] = mapped_column(String(64))
    # A/B variants (app.automation.experiments): a list of {key, weight, actions}; null for a plain rule. While the
    # experiment runs, each element gets one variant's actions; `actions` is the fallback for runs without an element
    # and, once a winner is promoted, the winner's actions.
    variants: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    # The experiment's options (metric, auto_promote, threshold, min_sample, horizon_days) and its state
    # (status running / promoted, winner, promoted_at, promoted_by, reason).
    experiment: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class VariantAssignment(Base):
    """Which variant of an A/B rule an element got: recorded the first time the rule runs for it, never changed."""

    __tablename__ = "automation_variant_assignments"
    __table_args__ = (
        UniqueConstraint("workspace_id", "rule_id", "element_id"),
        Index("ix_automation_variant_assignments_rule", "rule_id", "variant"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    rule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("automation_rules.id", ondelete="CASCADE"), nullable=False)
    element_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("elements.id", ondelete="CASCADE"), nullable=False)
    variant: Mapped[str] = mapped_column(String(40), nullable=False)
    bucket: Mapped[float] = mapped_column(Float, nullable=False)
    assigned_at: Mapped[datetime] = created_at_column()


class AutomationRun(Base):
    """One rule run for one event: the source of truth for its state; Redis only wakes workers."""

    __tablename__ = "automation_runs"
    __table_args__ = (
        UniqueConstraint("workspace_id", "event_id", "rule_id"),
        Index("ix_automation_runs_rule", "rule_id", "created_at"),
        Index("ix_automation_runs_element", "element_id", "created_at"),
        # What the sweeper looks at: runs that are not finished.
        Index("ix_automation_runs_open", "resume_at", postgresql_where=text("status IN ('queued', 'running')")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    rule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("automation_rules.id", ondelete="CASCADE"), nullable=False)
    event_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), nullable=False)
    event_type: Mapped[str] = mapped_column(String(60), nullable=False)
    element_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    status: Mapped[RunStatus] = mapped_column(Enum(RunStatus, name="automation_run_status"), nullable=False)
    depth: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The index of the next action to run: a run resumes there after a delay or a failure.
    step: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    context: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    resume_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer)


class AutomationTimer(Base):
    """A time-based trigger waiting for its due time (time_in_stage, date_reached, schedule)."""

    __tablename__ = "automation_timers"
    __table_args__ = (
        UniqueConstraint("workspace_id", "key"),
        Index("ix_automation_timers_due", "due_at", postgresql_where=text("fired_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    rule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("automation_rules.id", ondelete="CASCADE"), nullable=False)
    element_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    key: Mapped[str] = mapped_column(String(200), nullable=False)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # What must still hold when it fires (e.g. the element's moved_at for time_in_stage).
    anchor: Mapped[str | None] = mapped_column(String(100))
    fired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()


class HandledEvent(Base):
    """Marks an outbox event as handled by the automation engine, in the transaction that created its runs.

    The sweeper re-enqueues dispatched events without a mark, so a worker killed mid-event loses nothing.
    """

    __tablename__ = "automation_handled_events"

    event_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    handled_at: Mapped[datetime] = created_at_column()


# The sweeper looks for recently dispatched events: an index on the outbox it owns, declared here so the core
# outbox model stays untouched.
ix_outbox_dispatched = Index("ix_outbox_events_dispatched_at", OutboxEvent.dispatched_at)
