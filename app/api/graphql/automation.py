"""Automation rules and runs, tasks and webhook subscriptions in GraphQL: thin resolvers over the same services as REST.

A rule's trigger, condition and actions are JSON in the REST shape (`{"type": "create_task", "params": {…}}`), so a
client can send the same documents to either API.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, TypeAlias

import strawberry
from strawberry.scalars import JSON

from app.api.graphql.context import Info
from app.api.graphql.errors import ErrorTypes, mutate, parse, plain
from app.api.graphql.types import Deleted, DeleteResult, PageInfo, User, check_first, load_user
from app.automation import experiments
from app.automation import service as automation_service
from app.automation.models import RunStatus as RunStatusEnum
from app.automation.schemas import (
    ExperimentReport,
    RuleCreate,
    RuleOrder,
    RuleRead,
    RuleUpdate,
    RunRead,
    VariantPromote,
)
from app.tasks import service as task_service
from app.tasks.models import TaskStatus as TaskStatusEnum
from app.tasks.schemas import TaskCreate, TaskRead, TaskUpdate
from app.webhooks import service as webhook_service
from app.webhooks.schemas import SubscriptionCreate, SubscriptionCreated, SubscriptionRead, SubscriptionUpdate

UNSET: Any = strawberry.UNSET
RunStatus = strawberry.enum(RunStatusEnum, name="AutomationRunStatus")
TaskStatus = strawberry.enum(TaskStatusEnum, name="TaskStatus")
MAX_RUNS = 500
MAX_TASKS = 500

# --- rules ------------------------------------------------------------------------------------------------------


@strawberry.type(description="An automation rule: a trigger, an optional condition and ordered actions")
class AutomationRule:
    id: uuid.UUID
    name: str
    entity_type: str
    pipeline_id: uuid.UUID | None
    stage_id: uuid.UUID | None
    trigger: JSON = strawberry.field(description='{"type": "element.entered_stage", …trigger parameters}')
    condition: JSON | None = strawberry.field(description="A filter in the common filter language")
    actions: JSON = strawberry.field(description='[{"type": "create_task", "params": {…}}, …]')
    variants: JSON | None = strawberry.field(
        description='A/B variants: [{"key": "A", "weight": 50, "actions": […]}, …]; null for a plain rule'
    )
    experiment: JSON | None = strawberry.field(
        description="The variants' experiment: options (metric, auto_promote, threshold, min_sample, horizon_days) "
        "and state (status, winner, promoted_at, promoted_by, reason)"
    )
    enabled: bool
    sort: int
    hook_url: str | None = strawberry.field(
        description="The incoming URL of a `webhook.received` rule, with its secret token: returned once, when the "
        "rule gets it and by `rotateAutomationRuleHook`; null otherwise"
    )
    webhook_secrets: JSON | None = strawberry.field(
        description="Signing secrets of new `webhook` actions by action index; returned once, when created"
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_read(cls, read: RuleRead) -> AutomationRule:
        # trigger, condition, actions, variants and experiment as the JSON REST shows
        return cls(**{**read.model_dump(), **read.model_dump(mode="json", include={"variants", "experiment"})})


@strawberry.input
class AutomationRuleCreateInput:
    name: str
    entity_type: str = strawberry.field(description="The entity type's code or id")
    pipeline_id: uuid.UUID | None = UNSET
    stage_id: uuid.UUID | None = UNSET
    trigger: JSON = strawberry.field(description='{"type": …, …trigger parameters}, as in REST')
    condition: JSON | None = strawberry.field(default=UNSET, description="A filter (the common filter language)")
    actions: JSON = strawberry.field(description='[{"type": …, "params": {…}}], as in REST')
    variants: JSON | None = strawberry.field(default=UNSET, description="A/B variants, as in REST")
    experiment: JSON | None = strawberry.field(default=UNSET, description="The experiment's options, as in REST")
    enabled: bool = True


@strawberry.input(description="Only the fields given change; `condition: null` removes the condition")
class AutomationRuleUpdateInput:
    name: str | None = UNSET
    pipeline_id: uuid.UUID | None = UNSET
    stage_id: uuid.UUID | None = UNSET
    trigger: JSON | None = UNSET
    condition: JSON | None = UNSET
    actions: JSON | None = UNSET
    variants: JSON | None = UNSET
    experiment: JSON | None = UNSET
    enabled: bool | None = UNSET


@strawberry.type
class AutomationRuleList:
    items: list[AutomationRule]


@strawberry.type(description="One rule run for one event: status, attempts, error, timing")
class AutomationRun:
    id: uuid.UUID
    rule_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    element_id: uuid.UUID | None
    status: RunStatus  # type: ignore[valid-type]
    depth: int
    step: int
    attempts: int
    error: str | None
    resume_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None

    @classmethod
    def from_read(cls, read: RunRead) -> AutomationRun:
        return cls(**read.model_dump())


@strawberry.type(description="A page of runs, newest first; pass `pageInfo.endCursor` as `after` for the next one")
class AutomationRunConnection:
    nodes: list[AutomationRun]
    page_info: PageInfo


@strawberry.type(description="One variant of an A/B rule: its traffic, outcomes and posterior")
class AutomationVariantOutcome:
    key: str
    weight: float
    active: bool
    assigned: int
    successes: int
    failures: int
    expired: int
    open: int
    rate: float | None = strawberry.field(description="successes / (successes + failures)")
    estimate: float = strawberry.field(description="Posterior mean: success rate, or mean days to close")
    interval: list[float] = strawberry.field(description="95 % credible interval of `estimate` [low, high]")
    p_best: float = strawberry.field(description="Posterior probability that this variant is the best")
    mean_days_to_close: float | None
    median_days_to_close: float | None


@strawberry.type(description="An A/B rule's variants compared (as `GET /automation/rules/{id}/experiment`)")
class AutomationExperiment:
    rule_id: uuid.UUID
    rule: str
    metric: str
    status: str
    winner: str | None
    promoted_at: datetime | None
    promoted_by: str | None
    reason: str | None
    auto_promote: bool
    threshold: float
    min_sample: int
    horizon_days: int | None
    ready: bool
    leader: str | None
    variants: list[AutomationVariantOutcome]

    @classmethod
    def from_read(cls, read: ExperimentReport) -> AutomationExperiment:
        data = read.model_dump(exclude={"variants"})
        outcomes = [AutomationVariantOutcome(**{**v.model_dump(), "interval": list(v.interval)}) for v in read.variants]
        return cls(**data, variants=outcomes)


AutomationExperimentResult: TypeAlias = Annotated[
    AutomationExperiment | ErrorTypes, strawberry.union("AutomationExperimentResult")
]
AutomationRuleResult: TypeAlias = Annotated[AutomationRule | ErrorTypes, strawberry.union("AutomationRuleResult")]
AutomationRuleListResult: TypeAlias = Annotated[
    AutomationRuleList | ErrorTypes, strawberry.union("AutomationRuleListResult")
]
AutomationRunResult: TypeAlias = Annotated[AutomationRun | ErrorTypes, strawberry.union("AutomationRunResult")]


# --- tasks ------------------------------------------------------------------------------------------------------


@strawberry.type
class Task:
    id: uuid.UUID
    element_id: uuid.UUID | None
    title: str
    description: str | None
    assignee_id: uuid.UUID | None
    status: TaskStatus  # type: ignore[valid-type]
    due_at: datetime | None
    run_id: uuid.UUID | None = strawberry.field(description="The automation run that created it, if one did")
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_read(cls, read: TaskRead) -> Task:
        return cls(**read.model_dump())

    @strawberry.field
    async def assignee(self, info: Info) -> User | None:
        return await load_user(info, self.assignee_id)


@strawberry.input
class TaskCreateInput:
    title: str
    description: str | None = UNSET
    element_id: uuid.UUID | None = UNSET
    assignee_id: uuid.UUID | None = UNSET
    due_at: datetime | None = UNSET


@strawberry.input
class TaskUpdateInput:
    title: str | None = UNSET
    description: str | None = UNSET
    assignee_id: uuid.UUID | None = UNSET
    due_at: datetime | None = UNSET
    status: TaskStatus | None = UNSET  # type: ignore[valid-type]


TaskResult: TypeAlias = Annotated[Task | ErrorTypes, strawberry.union("TaskResult")]


# --- webhook subscriptions ----------------------------------------------------------------------------------------


@strawberry.type(description="An outgoing webhook subscription; deliveries are signed as Standard Webhooks says")
class WebhookSubscription:
    id: uuid.UUID
    url: str
    events: list[str]
    filter: JSON | None
    description: str | None
    enabled: bool
    created_at: datetime

    @classmethod
    def from_read(cls, read: SubscriptionRead) -> WebhookSubscription:
        return cls(**read.model_dump())


@strawberry.type(description="A new subscription with its signing secret, shown only now")
class WebhookSubscriptionCreated(WebhookSubscription):
    secret: str

    @classmethod
    def from_created(cls, read: SubscriptionCreated) -> WebhookSubscriptionCreated:
        return cls(**read.model_dump())


@strawberry.input
class WebhookCreateInput:
    url: str
    events: list[str] = strawberry.field(description="Event types, e.g. `element.moved`, or `*` for every event")
    filter: JSON | None = strawberry.field(default=UNSET, description="Only events whose element matches it")
    description: str | None = UNSET
    enabled: bool = True


@strawberry.input
class WebhookUpdateInput:
    url: str | None = UNSET
    events: list[str] | None = UNSET
    filter: JSON | None = UNSET
    description: str | None = UNSET
    enabled: bool | None = UNSET


WebhookCreatedResult: TypeAlias = Annotated[
    WebhookSubscriptionCreated | ErrorTypes, strawberry.union("WebhookCreatedResult")
]
WebhookResult: TypeAlias = Annotated[WebhookSubscription | ErrorTypes, strawberry.union("WebhookResult")]


# --- the root fields ----------------------------------------------------------------------------------------------


@strawberry.type
class AutomationQuery:
    @strawberry.field(description="Rules in the order they run, optionally of one entity type (code or id)")
    async def automation_rules(self, info: Info, entity_type: str | None = None) -> list[AutomationRule]:
        rules = await automation_service.list_rules(info.context.session, info.context.who, entity_type=entity_type)
        return [AutomationRule.from_read(r) for r in rules.items]

    @strawberry.field
    async def automation_rule(self, info: Info, id: uuid.UUID) -> AutomationRule:
        return AutomationRule.from_read(await automation_service.get_rule(info.context.session, info.context.who, id))

    @strawberry.field(description="An A/B rule's variants compared: outcomes, credible intervals, P(best)")
    async def automation_experiment(self, info: Info, rule_id: uuid.UUID) -> AutomationExperiment:
        report = await experiments.get_report(info.context.session, info.context.who, rule_id)
        return AutomationExperiment.from_read(report)

    @strawberry.field(description="Rule runs, newest first, a page at a time")
    async def automation_runs(
        self,
        info: Info,
        rule_id: uuid.UUID | None = None,
        element_id: uuid.UUID | None = None,
        status: RunStatus | None = None,  # type: ignore[valid-type]
        first: int = 50,
        after: str | None = None,
    ) -> AutomationRunConnection:
        page = await automation_service.list_runs(
            info.context.session,
            info.context.who,
            rule_id=rule_id,
            element_id=element_id,
            status=status,
            limit=check_first(first, maximum=MAX_RUNS),
            cursor=after,
        )
        info_ = PageInfo(
            has_next_page=page.next_cursor is not None,
            has_previous_page=after is not None,
            start_cursor=None,
            end_cursor=page.next_cursor,
        )
        return AutomationRunConnection(nodes=[AutomationRun.from_read(r) for r in page.items], page_info=info_)

    @strawberry.field
    async def automation_run(self, info: Info, id: uuid.UUID) -> AutomationRun:
        return AutomationRun.from_read(await automation_service.get_run(info.context.session, info.context.who, id))

    @strawberry.field(description="Tasks, newest first, optionally of one element, assignee or status")
    async def tasks(
        self,
        info: Info,
        element_id: uuid.UUID | None = None,
        assignee_id: uuid.UUID | None = None,
        status: TaskStatus | None = None,  # type: ignore[valid-type]
        first: int = 100,
    ) -> list[Task]:
        found = await task_service.list_tasks(
            info.context.session,
            info.context.who,
            element_id=element_id,
            assignee_id=assignee_id,
            status=status,
            limit=check_first(first, maximum=MAX_TASKS),
        )
        return [Task.from_read(t) for t in found.items]

    @strawberry.field
    async def task(self, info: Info, id: uuid.UUID) -> Task:
        return Task.from_read(await task_service.get_task(info.context.session, info.context.who, id))

    @strawberry.field(description="Outgoing webhook subscriptions (their secrets are shown only when created)")
    async def webhooks(self, info: Info) -> list[WebhookSubscription]:
        found = await webhook_service.list_subscriptions(info.context.session, info.context.who)
        return [WebhookSubscription.from_read(s) for s in found.items]

    @strawberry.field
    async def webhook(self, info: Info, id: uuid.UUID) -> WebhookSubscription:
        read = await webhook_service.get_subscription(info.context.session, info.context.who, id)
        return WebhookSubscription.from_read(read)


@strawberry.type
class AutomationMutation:
    # --- rules ---

    @strawberry.mutation
    async def create_automation_rule(self, info: Info, input: AutomationRuleCreateInput) -> AutomationRuleResult:
        async def run() -> AutomationRule:
            data = parse(RuleCreate, plain(input))
            return AutomationRule.from_read(
                await automation_service.create_rule(info.context.session, info.context.who, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def update_automation_rule(
        self, info: Info, id: uuid.UUID, input: AutomationRuleUpdateInput
    ) -> AutomationRuleResult:
        async def run() -> AutomationRule:
            data = parse(RuleUpdate, plain(input))
            return AutomationRule.from_read(
                await automation_service.update_rule(info.context.session, info.context.who, id, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def enable_automation_rule(self, info: Info, id: uuid.UUID) -> AutomationRuleResult:
        return await _set_enabled(info, id, enabled=True)

    @strawberry.mutation
    async def disable_automation_rule(self, info: Info, id: uuid.UUID) -> AutomationRuleResult:
        return await _set_enabled(info, id, enabled=False)

    @strawberry.mutation
    async def delete_automation_rule(self, info: Info, id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await automation_service.delete_rule(info.context.session, info.context.who, id)
            return Deleted(ref=str(id))

        return await mutate(info, run)

    @strawberry.mutation(
        description="A new incoming URL for a `webhook.received` rule (in `hookUrl`, this once); the old one stops"
    )
    async def rotate_automation_rule_hook(self, info: Info, id: uuid.UUID) -> AutomationRuleResult:
        async def run() -> AutomationRule:
            read = await automation_service.rotate_hook(info.context.session, info.context.who, id)
            return AutomationRule.from_read(read)

        return await mutate(info, run)

    @strawberry.mutation(description="Make a variant's actions the A/B rule's own and stop assigning variants")
    async def promote_automation_variant(
        self, info: Info, rule_id: uuid.UUID, variant: str, reason: str | None = None
    ) -> AutomationExperimentResult:
        async def run() -> AutomationExperiment:
            data = parse(VariantPromote, {"variant": variant, "reason": reason})
            report = await experiments.promote(info.context.session, info.context.who, rule_id, data)
            return AutomationExperiment.from_read(report)

        return await mutate(info, run)

    @strawberry.mutation(description="Set the order rules run in (rule ids, first to last)")
    async def reorder_automation_rules(self, info: Info, ids: list[uuid.UUID]) -> AutomationRuleListResult:
        async def run() -> AutomationRuleList:
            data = parse(RuleOrder, {"ids": ids})
            rules = await automation_service.reorder_rules(info.context.session, info.context.who, data)
            return AutomationRuleList(items=[AutomationRule.from_read(r) for r in rules.items])

        return await mutate(info, run)

    @strawberry.mutation(description="Queue a failed run again with a fresh budget of attempts, from its failed step")
    async def retry_automation_run(self, info: Info, id: uuid.UUID) -> AutomationRunResult:
        async def run() -> AutomationRun:
            return AutomationRun.from_read(
                await automation_service.retry_run(info.context.session, info.context.who, id)
            )

        return await mutate(info, run)

    # --- tasks ---

    @strawberry.mutation
    async def create_task(self, info: Info, input: TaskCreateInput) -> TaskResult:
        async def run() -> Task:
            data = parse(TaskCreate, plain(input))
            return Task.from_read(await task_service.create_task(info.context.session, info.context.who, data))

        return await mutate(info, run)

    @strawberry.mutation
    async def update_task(self, info: Info, id: uuid.UUID, input: TaskUpdateInput) -> TaskResult:
        async def run() -> Task:
            data = parse(TaskUpdate, plain(input))
            return Task.from_read(await task_service.update_task(info.context.session, info.context.who, id, data))

        return await mutate(info, run)

    @strawberry.mutation
    async def delete_task(self, info: Info, id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await task_service.delete_task(info.context.session, info.context.who, id)
            return Deleted(ref=str(id))

        return await mutate(info, run)

    # --- webhook subscriptions ---

    @strawberry.mutation(description="Subscribe a URL to events; the result carries the signing secret, once")
    async def create_webhook(self, info: Info, input: WebhookCreateInput) -> WebhookCreatedResult:
        async def run() -> WebhookSubscriptionCreated:
            data = parse(SubscriptionCreate, plain(input))
            created = await webhook_service.create_subscription(info.context.session, info.context.who, data)
            return WebhookSubscriptionCreated.from_created(created)

        return await mutate(info, run)

    @strawberry.mutation
    async def update_webhook(self, info: Info, id: uuid.UUID, input: WebhookUpdateInput) -> WebhookResult:
        async def run() -> WebhookSubscription:
            data = parse(SubscriptionUpdate, plain(input))
            read = await webhook_service.update_subscription(info.context.session, info.context.who, id, data)
            return WebhookSubscription.from_read(read)

        return await mutate(info, run)

    @strawberry.mutation
    async def delete_webhook(self, info: Info, id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await webhook_service.delete_subscription(info.context.session, info.context.who, id)
            return Deleted(ref=str(id))

        return await mutate(info, run)


async def _set_enabled(info: Info, rule_id: uuid.UUID, *, enabled: bool) -> AutomationRule | ErrorTypes:
    async def run() -> AutomationRule:
        read = await automation_service.set_enabled(info.context.session, info.context.who, rule_id, enabled=enabled)
        return AutomationRule.from_read(read)

    return await mutate(info, run)
