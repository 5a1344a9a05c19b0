"""Imports every model so Alembic and the mappers see the whole schema."""

from app.access.models import AccessRole, Department, UserRole
from app.activities.models import Activity, ActivityElement
from app.analytics.models import AlertEvent, AlertRule, Distribution, StageDay
from app.audit.models import AuditEntry
from app.auth.models import ApiKey, RefreshToken
from app.automation.models import AutomationRule, AutomationRun, AutomationTimer, HandledEvent
from app.bitrix.models import BitrixNumber
from app.calendar.models import CalendarEvent, CalendarFeed
from app.counters.models import CounterDeadline, user_counters
from app.elements.models import Element, ElementValue, StageHistory, StageTotal
from app.entity_types.models import EntityType, Field, FieldOption
from app.files.models import StoredFile
from app.idempotency.models import IdempotencyKey
from app.imports.models import ImportJob
from app.layouts.models import CardLayout
from app.outbox.models import OutboxEvent
from app.pipelines.models import Pipeline, Stage
from app.readmodel.models import ReadModelField
from app.relations.models import ElementLink, Relation
from app.retention import models as retention_indexes  # noqa: F401  (indexes on other domains' tables)
from app.routing.models import RoutingPolicy
from app.scoring.models import ScoringModel
from app.tasks.models import Notification, Task
from app.timeline.models import TimelineEntry
from app.triage.models import TriageModel, TriageVector
from app.users.models import User
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from app.workplaces.models import Workplace
from app.workspaces.models import Workspace

__all__ = [
    "AccessRole",
    "Activity",
    "ActivityElement",
    "AlertEvent",
    "AlertRule",
    "ApiKey",
    "AuditEntry",
    "AutomationRule",
    "AutomationRun",
    "AutomationTimer",
    "BitrixNumber",
    "CalendarEvent",
    "CalendarFeed",
    "CardLayout",
    "CounterDeadline",
    "Department",
    "Distribution",
    "Element",
    "ElementLink",
    "ElementValue",
    "EntityType",
    "Field",
    "FieldOption",
    "HandledEvent",
    "IdempotencyKey",
    "ImportJob",
    "Notification",
    "OutboxEvent",
    "Pipeline",
    "ReadModelField",
    "RefreshToken",
    "Relation",
    "RoutingPolicy",
    "ScoringModel",
    "Stage",
    "StageDay",
    "StageHistory",
    "StageTotal",
    "StoredFile",
    "Task",
    "TimelineEntry",
    "TriageModel",
    "TriageVector",
    "User",
    "UserRole",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
    "Workplace",
    "Workspace",
    "user_counters",
]
