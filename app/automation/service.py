"""Automation rules (CRUD, enable/disable, order), runs (list, retry) and the incoming-hook trigger."""

import base64
import hashlib
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.visibility import ensure_reads_logs, ensure_sees_type, reads_everything, sees_type
from app.auth.actor import Actor
from app.auth.models import Role
from app.automation.actions import check_params
from app.automation.conditions import check_condition
from app.automation.models import AutomationRule, AutomationRun, AutomationTimer, RunStatus
from app.automation.schedule import next_time
from app.automation.schemas import (
    Action,
    RuleCreate,
    RuleExperiment,
    RuleExperimentState,
    RuleList,
    RuleOrder,
    RuleRead,
    RuleUpdate,
    RuleVariant,
    RunPage,
    RunRead,
)
from app.automation.templates import is_template
from app.automation.validation import ACTIVITY_TRIGGERS, TIME_UNITS, check_actions, check_trigger
from app.entity_types.meta import TypeMeta, get_type_meta, get_type_meta_by_id
from app.entity_types.models import EntityType
from app.errors import Conflict, ErrorCollector, FieldError, Forbidden, Invalid, NotFound
from app.kit.cursor import decode_cursor, encode_cursor
from app.outbox.models import OutboxEvent
from app.outbox.service import record_event
from app.routing.models import RoutingPolicy
from app.scoring.models import ScoringModel
from app.users import service as user_service

HOOK_PATH = "/api/v1/hooks/"


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def new_hook_token() -> tuple[str, str]:
    """(token, its SHA-256): the token goes in the URL, shown once; only the digest is stored."""
    token = secrets.token_urlsafe(24)
    return token, hook_token_hash(token)


def hook_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def duration_seconds(params: dict[str, Any]) -> float:
    return sum(float(params.get(unit) or 0) * factor for unit, factor in TIME_UNITS.items())


def _public_actions(actions: list[dict[str, Any]]) -> list[Action]:
    return [
        Action(type=a["type"], params={k: v for k, v in a.get("params", {}).items() if k != "secret"}) for a in actions
    ]


def to_read(
    rule: AutomationRule,
    type_code: str,
    *,
    webhook_secrets: dict[str, str] | None = None,
    hook_token: str | None = None,
) -> RuleRead:
    """The rule as clients see it; secrets only when the caller has just made them (`hook_token`, `webhook_secrets`)."""
    return RuleRead(
        id=rule.id,
        name=rule.name,
        entity_type=type_code,
        pipeline_id=rule.pipeline_id,
        stage_id=rule.stage_id,
        trigger=rule.trigger,
        condition=rule.condition,
        actions=_public_actions(rule.actions),
        variants=[
            RuleVariant(key=v["key"], weight=v["weight"], actions=_public_actions(v["actions"])) for v in rule.variants
        ]
        if rule.variants
        else None,
        experiment=RuleExperimentState.model_validate(rule.experiment) if rule.experiment else None,
        enabled=rule.enabled,
        sort=rule.sort,
        hook_url=HOOK_PATH + hook_token if hook_token else None,
        webhook_secrets=webhook_secrets or None,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


# --- validation ------------------------------------------------------------------------------------------------


def _check_placement(
    meta: TypeMeta, pipeline_id: uuid.UUID | None, stage_id: uuid.UUID | None, errors: ErrorCollector
) -> uuid.UUID | None:
    """The rule's pipeline and stage must belong to its type; a stage implies its pipeline."""
    if stage_id is not None:
        stage = meta.stages.get(stage_id)
        if stage is None:
            errors.add("stage_id", f"stage {stage_id} is not a stage of {meta.code!r}")
            return pipeline_id
        if pipeline_id is not None and stage.pipeline_id != pipeline_id:
            errors.add("stage_id", f"stage {stage_id} is not in pipeline {pipeline_id}")
        return stage.pipeline_id
    if pipeline_id is not None and pipeline_id not in meta.pipelines:
        errors.add("pipeline_id", f"pipeline {pipeline_id} is not a pipeline of {meta.code!r}")
    return pipeline_id


def _check_rule_condition(meta: TypeMeta, condition: Any, trigger: dict[str, Any], errors: ErrorCollector) -> None:
    """Besides the element, a condition may read an incoming hook's `body.*` or an activity event's `activity.*`."""
    hook, activity = trigger["type"] == "webhook.received", trigger["type"] in ACTIVITY_TRIGGERS
    check_condition(meta, condition, errors, hook=hook, activity=activity)


def _prepare_actions(actions: list[Action], errors: ErrorCollector) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Validate each action's parameters; give every `webhook` action without one a signing secret."""
    stored: list[dict[str, Any]] = []
    generated: dict[str, str] = {}
    for index, action in enumerate(actions):
        params = dict(action.params)
        check_params(action.type, params, f"actions[{index}].params", errors)
        if action.type == "webhook" and not params.get("secret"):
            params["secret"] = generated[str(index)] = new_webhook_secret()
        stored.append({"type": action.type, "params": params})
    return stored, generated


def _reference(params: dict[str, Any], key: str) -> uuid.UUID | None:
    """A parameter's id when it is a literal one (a template or a malformed id is checked elsewhere or at run time)."""
    value = params.get(key)
    if not isinstance(value, str) or is_template(value):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _check_references(
    session: AsyncSession, actor: Actor, meta: TypeMeta, actions: list[dict[str, Any]], errors: ErrorCollector
) -> None:
    """Every id an action names (users, stages, pipelines, routing policies, scoring models, entity types) must be
    of the workspace (and, where it matters, of the rule's type): ids from another workspace are refused here."""
    users = []
    for index, action in enumerate(actions):
        params = action["params"]
        at = f"actions[{index}].params"
        for user_key in USER_PARAMS.get(action["type"], ()):
            if (user_id := _reference(params, user_key)) is not None:
                users.append((f"{at}.{user_key}", user_id))
        # Stages, pipelines and a linked element's type are checked with the other action parameters
        # (app.automation.validation.check_actions).
        if action["type"] == "assign" and (policy_id := _reference(params, "policy_id")) is not None:
            policy_type = await session.scalar(
                select(RoutingPolicy.entity_type_id).where(
                    RoutingPolicy.workspace_id == actor.workspace_id, RoutingPolicy.id == policy_id
                )
            )
            _check_owned(meta, f"{at}.policy_id", "routing policy", policy_id, policy_type, errors)
        if action["type"] == "score" and (model_id := _reference(params, "model_id")) is not None:
            model_type = await session.scalar(
                select(ScoringModel.entity_type_id).where(
                    ScoringModel.workspace_id == actor.workspace_id, ScoringModel.id == model_id
                )
            )
            _check_owned(meta, f"{at}.model_id", "scoring model", model_id, model_type, errors)
    await user_service.check_assignees(session, actor.workspace_id, users, errors)


def _check_owned(
    meta: TypeMeta, path: str, what: str, ref: uuid.UUID, type_id: uuid.UUID | None, errors: ErrorCollector
) -> None:
    """`type_id` is the entity type of the workspace's object `ref`, None when the workspace has no such object."""
    if type_id is None:
        errors.add(path, f"unknown {what} {ref}")
    elif type_id != meta.id:
        errors.add(path, f"{what} {ref} is not for {meta.code!r}")


# The action parameters that name a user of the workspace.
USER_PARAMS: dict[str, tuple[str, ...]] = {
    "assign": ("user_id",),
    "set_fields": ("assigned_to",),
    "create_task": ("assignee_id",),
    "notify": ("user_id",),
    "log_activity": ("responsible_user_id",),
    "triage": ("escalation_assignee_id",),
}


def _check_webhook_actions(actor: Actor, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    """A `webhook` action sends element data to any URL: like a webhook subscription, only an admin may add one or
    change where and what it sends or how it signs. Other roles may keep the ones an admin made (resent as read)."""
    if actor.role == Role.admin:
        return

    def shape(params: dict[str, Any]) -> tuple[Any, Any, Any]:
        return params.get("url"), params.get("body"), params.get("secret")

    existing = [shape(a["params"]) for a in old if a["type"] == "webhook"]
    for index, action in enumerate(new):
        if action["type"] != "webhook":
            continue
        sent = shape(action["params"])
        if sent in existing:
            existing.remove(sent)
            continue
        raise Forbidden(
            "Only an admin key can add or change a webhook action",
            errors=[FieldError(f"actions[{index}]", "a webhook action needs an admin key")],
        )


def _keep_secrets(old: list[dict[str, Any]], new: list[Action]) -> list[Action]:
    """An update that resends a webhook action without its (hidden) secret keeps the old one for the same URL."""
    by_url = {a["params"].get("url"): a["params"].get("secret") for a in old if a["type"] == "webhook"}
    kept = []
    for action in new:
        params = dict(action.params)
        if action.type == "webhook" and not params.get("secret") and by_url.get(params.get("url")):
            params["secret"] = by_url[params.get("url")]
        kept.append(Action(type=action.type, params=params))
    return kept


async def _prepare_variants(
    session: AsyncSession,
    actor: Actor,
    meta: TypeMeta,
    variants: list[RuleVariant],
    old: list[dict[str, Any]] | None,
    errors: ErrorCollector,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Each variant's actions checked exactly as the rule's own (errors under `variants[i].`); keys unique.

    New `webhook` actions get signing secrets, returned keyed `variants.<key>.<action index>`."""
    old_by_key = {v["key"]: v["actions"] for v in old or []}
    stored: list[dict[str, Any]] = []
    generated: dict[str, str] = {}
    seen: set[str] = set()
    for index, variant in enumerate(variants):
        if variant.key in seen:
            errors.add(f"variants[{index}].key", f"the key {variant.key!r} is used twice")
        seen.add(variant.key)
        before = old_by_key.get(variant.key, [])
        inner = ErrorCollector()
        actions, secrets_made = _prepare_actions(_keep_secrets(before, variant.actions), inner)
        _check_webhook_actions(actor, before, actions)
        await _check_references(session, actor, meta, actions, inner)
        await check_actions(session, actor, meta, actions, inner)
        for error in inner.errors:
            errors.add(f"variants[{index}].{error.field}", error.message)
        generated.update({f"variants.{variant.key}.{i}": secret for i, secret in secrets_made.items()})
        stored.append({"key": variant.key, "weight": variant.weight, "actions": actions})
    return stored, generated


def _experiment_state(options: RuleExperiment | None, previous: dict[str, Any] | None) -> dict[str, Any]:
    """A (re)started experiment: the options given, else the previous ones, else the defaults; status running."""
    if options is None:
        options = RuleExperiment.model_validate(
            {k: v for k, v in (previous or {}).items() if k in RuleExperiment.model_fields}
        )
    return RuleExperimentState(**options.model_dump()).model_dump(mode="json")


# --- rules -----------------------------------------------------------------------------------------------------


async def _get(session: AsyncSession, actor: Actor, rule_id: uuid.UUID, *, lock: bool = False) -> AutomationRule:
    statement = select(AutomationRule).where(
        AutomationRule.workspace_id == actor.workspace_id, AutomationRule.id == rule_id
    )
    rule = await session.scalar(statement.with_for_update() if lock else statement)
    if rule is None:
        raise NotFound(f"Rule {rule_id} not found")
    return rule


async def _schedule_next(session: AsyncSession, rule: AutomationRule, *, after: datetime) -> None:
    """Keep one pending timer for an enabled `schedule` rule (its next cron time)."""
    if rule.trigger_type != "schedule" or not rule.enabled:
        return
    due = next_time(str(rule.trigger["cron"]), after)
    await session.execute(
        pg_insert(AutomationTimer)
        .values(
            workspace_id=rule.workspace_id,
            rule_id=rule.id,
            key=f"schedule:{rule.id}:{due.isoformat()}",
            due_at=due,
        )
        .on_conflict_do_nothing()
    )


async def create_rule(session: AsyncSession, actor: Actor, data: RuleCreate) -> RuleRead:
    actor.ensure_can_write()
    meta = await get_type_meta(session, actor.workspace_id, data.entity_type)
    errors = ErrorCollector()
    pipeline_id = _check_placement(meta, data.pipeline_id, data.stage_id, errors)
    trigger = data.trigger.model_dump()
    check_trigger(meta, trigger, data.stage_id, errors)
    if data.condition:
        _check_rule_condition(meta, data.condition, trigger, errors)
    actions, generated = _prepare_actions(data.actions, errors)
    _check_webhook_actions(actor, [], actions)
    await _check_references(session, actor, meta, actions, errors)
    await check_actions(session, actor, meta, actions, errors)
    variants, experiment = None, None
    if data.variants is not None:
        variants, more = await _prepare_variants(session, actor, meta, data.variants, None, errors)
        generated.update(more)
        experiment = _experiment_state(data.experiment, None)
    elif data.experiment is not None:
        errors.add("experiment", "an experiment needs variants")
    errors.raise_if_any("The rule is not valid")
    top = await session.scalar(
        select(func.coalesce(func.max(AutomationRule.sort), 0)).where(
            AutomationRule.workspace_id == actor.workspace_id, AutomationRule.entity_type_id == meta.id
        )
    )
    now = datetime.now(UTC)
    token, token_hash = new_hook_token() if trigger["type"] == "webhook.received" else (None, None)
    rule = AutomationRule(
        id=uuid.uuid4(),
        workspace_id=actor.workspace_id,
        entity_type_id=meta.id,
        pipeline_id=pipeline_id,
        stage_id=data.stage_id,
        name=data.name,
        trigger_type=trigger["type"],
        trigger=trigger,
        condition=data.condition or None,
        actions=actions,
        variants=variants,
        experiment=experiment,
        enabled=data.enabled,
        sort=(top or 0) + 10,
        hook_token_hash=token_hash,
        created_at=now,
        updated_at=now,
    )
    session.add(rule)
    await session.flush()
    await _schedule_next(session, rule, after=now)
    record_event(session, actor.workspace_id, "automation_rule.created", payload={"id": str(rule.id)})
    return to_read(rule, meta.code, webhook_secrets=generated, hook_token=token)


async def _updated_variants(
    session: AsyncSession,
    actor: Actor,
    meta: TypeMeta,
    rule: AutomationRule,
    data: RuleUpdate,
    generated: dict[str, str],
    errors: ErrorCollector,
) -> tuple[list[dict[str, Any]] | None, dict[str, Any] | None]:
    """The variants and experiment after an update: `variants: null` ends the experiment (assignments stay), new
    variants start a new one, the same ones resent (as read) or new options alone keep its state."""
    sent = data.model_fields_set
    variants, experiment = rule.variants, rule.experiment
    if "variants" in sent:
        if data.variants is None:
            return None, None
        variants, more = await _prepare_variants(session, actor, meta, data.variants, rule.variants, errors)
        generated.update(more)
        if variants != rule.variants:
            return variants, _experiment_state(data.experiment, rule.experiment)
    elif data.experiment is not None and not variants:
        errors.add("experiment", "an experiment needs variants")
        return variants, experiment
    if data.experiment is not None:
        experiment = {**(experiment or {}), **data.experiment.model_dump(mode="json")}
    return variants, experiment


async def update_rule(session: AsyncSession, actor: Actor, rule_id: uuid.UUID, data: RuleUpdate) -> RuleRead:
    actor.ensure_can_write()
    rule = await _get(session, actor, rule_id, lock=True)
    meta = await get_type_meta_by_id(session, actor.workspace_id, rule.entity_type_id)
    sent = data.model_fields_set
    stage_id = data.stage_id if "stage_id" in sent else rule.stage_id
    pipeline_id = data.pipeline_id if "pipeline_id" in sent else (None if "stage_id" in sent else rule.pipeline_id)
    errors = ErrorCollector()
    pipeline_id = _check_placement(meta, pipeline_id, stage_id, errors)
    trigger = data.trigger.model_dump() if data.trigger is not None else rule.trigger
    check_trigger(meta, trigger, stage_id, errors)
    condition = data.condition if "condition" in sent else rule.condition
    if condition and ("condition" in sent or data.trigger is not None):
        _check_rule_condition(meta, condition, trigger, errors)
    generated: dict[str, str] = {}
    actions = rule.actions
    if data.actions is not None:
        actions, generated = _prepare_actions(_keep_secrets(rule.actions, data.actions), errors)
        _check_webhook_actions(actor, rule.actions, actions)
        await _check_references(session, actor, meta, actions, errors)
        await check_actions(session, actor, meta, actions, errors)
    variants, experiment = await _updated_variants(session, actor, meta, rule, data, generated, errors)
    errors.raise_if_any("The rule is not valid")
    rule.actions = actions
    rule.variants, rule.experiment = variants, experiment
    rule.pipeline_id, rule.stage_id = pipeline_id, stage_id
    rule.trigger, rule.trigger_type = trigger, trigger["type"]
    token = None
    if trigger["type"] != "webhook.received":
        rule.hook_token_hash = None  # a rule that stops listening drops its URL; listening again gives a new one
    elif not rule.hook_token_hash:
        token, rule.hook_token_hash = new_hook_token()
    if "condition" in sent:
        rule.condition = data.condition or None
    if data.name is not None:
        rule.name = data.name
    if data.enabled is not None:
        rule.enabled = data.enabled
    rule.updated_at = datetime.now(UTC)
    await session.flush()
    await _schedule_next(session, rule, after=rule.updated_at)
    record_event(session, actor.workspace_id, "automation_rule.updated", payload={"id": str(rule.id)})
    return to_read(rule, meta.code, webhook_secrets=generated, hook_token=token)


async def rotate_hook(session: AsyncSession, actor: Actor, rule_id: uuid.UUID) -> RuleRead:
    """Give an incoming rule a new URL (returned in this answer only); the old one stops working at once."""
    actor.ensure_can_write()
    rule = await _get(session, actor, rule_id, lock=True)
    if rule.trigger_type != "webhook.received":
        raise Conflict(f"Rule {rule_id} has no incoming URL: its trigger is {rule.trigger_type}")
    token, rule.hook_token_hash = new_hook_token()
    rule.updated_at = datetime.now(UTC)
    await session.flush()
    record_event(session, actor.workspace_id, "automation_rule.updated", payload={"id": str(rule.id)})
    meta = await get_type_meta_by_id(session, actor.workspace_id, rule.entity_type_id)
    return to_read(rule, meta.code, hook_token=token)


async def set_enabled(session: AsyncSession, actor: Actor, rule_id: uuid.UUID, *, enabled: bool) -> RuleRead:
    return await update_rule(session, actor, rule_id, RuleUpdate(enabled=enabled))


async def get_rule(session: AsyncSession, actor: Actor, rule_id: uuid.UUID) -> RuleRead:
    rule = await _get(session, actor, rule_id)
    meta = await get_type_meta_by_id(session, actor.workspace_id, rule.entity_type_id)
    ensure_sees_type(actor, meta.id, meta.code, f"Rule {rule_id} not found")
    return to_read(rule, meta.code)


async def list_rules(session: AsyncSession, actor: Actor, *, entity_type: str | None = None) -> RuleList:
    """The rules of the types the actor may see (app.access.visibility), in the order they run."""
    statement = select(AutomationRule).where(AutomationRule.workspace_id == actor.workspace_id)
    if entity_type is not None:
        meta = await get_type_meta(session, actor.workspace_id, entity_type)
        ensure_sees_type(actor, meta.id, meta.code, f"Entity type {entity_type!r} not found")
        statement = statement.where(AutomationRule.entity_type_id == meta.id)
    rules = list(await session.scalars(statement.order_by(AutomationRule.sort, AutomationRule.created_at)))
    rows = await session.execute(
        select(EntityType.id, EntityType.code).where(EntityType.workspace_id == actor.workspace_id)
    )
    codes = {row.id: row.code for row in rows}
    return RuleList(
        items=[
            to_read(rule, codes.get(rule.entity_type_id, ""))
            for rule in rules
            if sees_type(actor, rule.entity_type_id, codes.get(rule.entity_type_id, ""))
        ]
    )


async def delete_rule(session: AsyncSession, actor: Actor, rule_id: uuid.UUID) -> None:
    actor.ensure_can_write()
    rule = await _get(session, actor, rule_id, lock=True)
    await session.delete(rule)
    await session.flush()
    record_event(session, actor.workspace_id, "automation_rule.deleted", payload={"id": str(rule_id)})


async def reorder_rules(session: AsyncSession, actor: Actor, data: RuleOrder) -> RuleList:
    """Rules run in `sort` order; the listed ones take positions 10, 20, … in the order given."""
    actor.ensure_can_write()
    if len(set(data.ids)) != len(data.ids):
        raise Conflict("A rule is listed twice")
    found = set(
        await session.scalars(
            select(AutomationRule.id).where(
                AutomationRule.workspace_id == actor.workspace_id, AutomationRule.id.in_(data.ids)
            )
        )
    )
    missing = [str(i) for i in data.ids if i not in found]
    if missing:
        raise NotFound(f"Rules not found: {', '.join(missing)}")
    for position, rule_id in enumerate(data.ids, start=1):
        await session.execute(
            update(AutomationRule)
            .where(AutomationRule.workspace_id == actor.workspace_id, AutomationRule.id == rule_id)
            .values(sort=position * 10)
        )
    return await list_rules(session, actor)


# --- runs ------------------------------------------------------------------------------------------------------


async def list_runs(
    session: AsyncSession,
    actor: Actor,
    *,
    rule_id: uuid.UUID | None = None,
    element_id: uuid.UUID | None = None,
    status: RunStatus | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> RunPage:
    """Newest first, keyset-paged on (created_at, id)."""
    ensure_reads_logs(actor, "automation runs")
    statement = select(AutomationRun).where(AutomationRun.workspace_id == actor.workspace_id)
    if rule_id is not None:
        statement = statement.where(AutomationRun.rule_id == rule_id)
    if element_id is not None:
        statement = statement.where(AutomationRun.element_id == element_id)
    if status is not None:
        statement = statement.where(AutomationRun.status == status)
    if cursor:
        created_raw, id_raw = decode_cursor(cursor, 2)
        try:
            created, last_id = datetime.fromisoformat(created_raw), uuid.UUID(id_raw)
        except (TypeError, ValueError) as exc:  # well-formed base64 JSON, but not one of our cursors
            raise Invalid(
                "The cursor is not valid", errors=[FieldError("cursor", "not a cursor of this list")]
            ) from exc
        statement = statement.where(
            (AutomationRun.created_at < created)
            | ((AutomationRun.created_at == created) & (AutomationRun.id < last_id))
        )
    rows = list(
        await session.scalars(
            statement.order_by(AutomationRun.created_at.desc(), AutomationRun.id.desc()).limit(limit + 1)
        )
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1].created_at.isoformat(), str(rows[-1].id)])
    return RunPage(items=[RunRead.model_validate(r) for r in rows], next_cursor=next_cursor)


async def get_run(session: AsyncSession, actor: Actor, run_id: uuid.UUID) -> RunRead:
    run = await session.scalar(
        select(AutomationRun).where(AutomationRun.workspace_id == actor.workspace_id, AutomationRun.id == run_id)
    )
    if run is None or not reads_everything(actor):
        raise NotFound(f"Run {run_id} not found")
    return RunRead.model_validate(run)


async def retry_run(session: AsyncSession, actor: Actor, run_id: uuid.UUID) -> RunRead:
    """Put a failed run back in the queue with a fresh budget of attempts; it resumes from its failed step."""
    actor.ensure_can_write()
    run = await session.scalar(
        select(AutomationRun)
        .where(AutomationRun.workspace_id == actor.workspace_id, AutomationRun.id == run_id)
        .with_for_update()
    )
    if run is None or not reads_everything(actor):
        raise NotFound(f"Run {run_id} not found")
    if run.status != RunStatus.failed:
        raise Conflict(f"Only a failed run can be retried; this one is {run.status.value}")
    run.status = RunStatus.queued
    run.context = {**run.context, "budget_from": run.attempts}
    run.resume_at = datetime.now(UTC)
    run.finished_at = None
    run.duration_ms = None
    await session.flush()
    return RunRead.model_validate(run)


# --- incoming hooks --------------------------------------------------------------------------------------------


async def receive_hook(session: AsyncSession, token: str, body: dict[str, Any]) -> uuid.UUID:
    """Record a `webhook.received` event for the rule whose token this is; the engine runs it."""
    digest = hook_token_hash(token)
    rule = await session.scalar(
        select(AutomationRule).where(
            AutomationRule.hook_token_hash == digest, AutomationRule.trigger_type == "webhook.received"
        )
    )
    if rule is None:
        raise NotFound("No incoming hook at this address")
    event_id = uuid.uuid4()
    session.add(
        OutboxEvent(
            event_id=event_id,
            workspace_id=rule.workspace_id,
            event_type="webhook.received",
            entity_type_id=rule.entity_type_id,
            payload={"rule_id": str(rule.id), "body": body},
        )
    )
    await session.flush()
    return event_id
