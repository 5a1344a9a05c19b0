"""The indexes that keep pruning cheap, declared here so the tables' own models stay untouched.

Each starts with the workspace (retention is per workspace) and ends with the age the pruning compares; the partial
ones hold only rows that may ever be pruned, so a pass walks straight to its batch and never over live work.
"""

from sqlalchemy import Index, text

from app.automation.models import AutomationRun
from app.outbox.models import OutboxEvent
from app.timeline.models import TimelineEntry
from app.webhooks.models import WebhookDelivery

FINISHED_RUN = "status IN ('succeeded', 'failed', 'skipped')"
FINISHED_DELIVERY = "status IN ('succeeded', 'failed')"

ix_runs_finished = Index(
    "ix_automation_runs_finished",
    AutomationRun.workspace_id,
    AutomationRun.finished_at,
    postgresql_where=text(FINISHED_RUN),
)
ix_deliveries_finished = Index(
    "ix_webhook_deliveries_finished",
    WebhookDelivery.workspace_id,
    WebhookDelivery.created_at,
    postgresql_where=text(FINISHED_DELIVERY),
)
ix_outbox_dispatched = Index(
    "ix_outbox_events_workspace_dispatched",
    OutboxEvent.workspace_id,
    OutboxEvent.dispatched_at,
    postgresql_where=text("dispatched_at IS NOT NULL"),
)
ix_timeline_created = Index(
    "ix_timeline_entries_workspace_created", TimelineEntry.workspace_id, TimelineEntry.created_at
)
