"""A/B variants of automation rules: assignment when a run starts, the per-variant report, and promotion.

A rule with `variants` runs, for each element, the actions of ONE variant: the first time the rule runs for an
element, the element's bucket (app.automation.abstats.bucket, sha256 of the rule and element ids) picks a variant
by the weights; the choice is stored in `automation_variant_assignments` (unique per rule and element: a retry, a
duplicate event or a second trigger reuses it) and written once on the element's timeline. Outcomes come from the
stage history: a success stage (or a failure stage) reached after the assignment, within `horizon_days` if set.
Promotion (by hand, or automatically once one variant's P(best) passes the threshold with `min_sample` outcomes for
every variant) makes the winner's actions the rule's own and stops assigning; assignments and the report stay.
"""

import copy
import logging
import statistics
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.visibility import ensure_reads_logs, ensure_sees_type
from app.audit import service as audit
from app.auth.actor import Actor, system_actor
from app.automation import abstats
from app.automation.models import AutomationRule, AutomationRun, VariantAssignment
from app.automation.schemas import ExperimentReport, RuleExperimentState, VariantOutcome, VariantPromote
from app.elements.models import StageHistory
from app.entity_types.meta import get_type_meta_by_id
from app.errors import Conflict, FieldError, Invalid, NotFound
from app.outbox.service import record_event
from app.pipelines.models import StageSemantic
from app.timeline.service import add_entry

logger = logging.getLogger("stageflow.automation")
DAY = 86400.0
CHECK_BATCH = 200


def running(rule: AutomationRule) -> bool:
    """Whether the rule is assigning variants: it has some and no winner was promoted."""
    return bool(rule.variants) and (rule.experiment or {}).get("status", "running") == "running"


def _variant(rule: AutomationRule, key: str) -> dict[str, Any] | None:
    return next((v for v in rule.variants or [] if v["key"] == key), None)


def share(rule: AutomationRule, variant: dict[str, Any]) -> float:
    total = sum(float(v["weight"]) for v in rule.variants or [])
    return float(variant["weight"]) / total if total else 0.0


async def assign(
    session: AsyncSession, rule: AutomationRule, element_id: uuid.UUID, at: datetime | None = None
) -> dict[str, Any] | None:
    """The element's variant: the stored one, else the one its bucket picks (stored now and put on its timeline).

    None when the rule assigns no variants (none, or promoted) or the stored variant is no longer one of the rule's.
    """
    if not running(rule):
        return None
    variants = rule.variants or []
    point = abstats.bucket(rule.id, element_id)
    chosen = variants[abstats.pick([float(v["weight"]) for v in variants], point)]
    inserted = await session.scalar(
        pg_insert(VariantAssignment)
        .values(
            id=uuid.uuid4(),
            workspace_id=rule.workspace_id,
            rule_id=rule.id,
            element_id=element_id,
            variant=chosen["key"],
            bucket=point,
            assigned_at=at or datetime.now(UTC),
        )
        .on_conflict_do_nothing()
        .returning(VariantAssignment.id)
    )
    if inserted is None:  # assigned before (a retry, a duplicate event, another trigger): keep that choice
        stored = await session.scalar(
            select(VariantAssignment.variant).where(
                VariantAssignment.workspace_id == rule.workspace_id,
                VariantAssignment.rule_id == rule.id,
                VariantAssignment.element_id == element_id,
            )
        )
        return _variant(rule, stored) if stored is not None else None
    percent = share(rule, chosen) * 100
    add_entry(
        session,
        system_actor(rule.workspace_id),
        "automation_variant",
        element_id=element_id,
        data={
            "rule_id": str(rule.id),
            "rule": rule.name,
            "variant": chosen["key"],
            "weight": chosen["weight"],
            "share": round(percent / 100, 4),
            "bucket": round(point, 4),
            "explanation": f"Rule {rule.name}: variant {chosen['key']}, weight {percent:.0f} %, "
            f"bucket {point:.2f} (sha256 of rule and element ids, by cumulative weights)",
        },
    )
    return chosen


async def actions_for(
    session: AsyncSession, rule: AutomationRule, run: AutomationRun, element_id: uuid.UUID | None
) -> list[dict[str, Any]]:
    """The actions a run executes: its variant's (kept in the run's context, so a resumed run keeps it), else the
    rule's own."""
    key = run.context.get("variant")
    if key is not None:
        kept = _variant(rule, key)
        return kept["actions"] if kept else rule.actions
    if element_id is None or not running(rule):
        return rule.actions
    chosen = await assign(session, rule, element_id, run.created_at)
    if chosen is None:
        return rule.actions
    run.context = {**run.context, "variant": chosen["key"]}
    actions: list[dict[str, Any]] = chosen["actions"]
    return actions


# --- outcomes and the report -------------------------------------------------------------------------------------


@dataclass
class Tally:
    key: str
    weight: float
    active: bool
    assigned: int = 0
    successes: int = 0
    failures: int = 0
    expired: int = 0
    open: int = 0
    exposure_days: float = 0.0
    days_to_close: list[float] = field(default_factory=list)

    @property
    def decided(self) -> int:
        return self.successes + self.failures


def _first_move(semantic: StageSemantic, stage_ids: list[uuid.UUID]) -> Any:
    return (
        select(func.min(StageHistory.moved_at))
        .where(
            StageHistory.workspace_id == VariantAssignment.workspace_id,
            StageHistory.element_id == VariantAssignment.element_id,
            StageHistory.to_stage_id.in_(stage_ids),
            StageHistory.moved_at >= VariantAssignment.assigned_at,
        )
        .correlate(VariantAssignment)
        .scalar_subquery()
        .label(semantic.value)
    )


async def tally(session: AsyncSession, rule: AutomationRule, now: datetime | None = None) -> list[Tally]:
    """Each variant's assignments and outcomes, from the stage history after each assignment."""
    meta = await get_type_meta_by_id(session, rule.workspace_id, rule.entity_type_id)
    won = [s.id for s in meta.stages.values() if s.semantic == StageSemantic.success]
    lost = [s.id for s in meta.stages.values() if s.semantic == StageSemantic.failure]
    statement: Select[Any] = select(
        VariantAssignment.variant,
        VariantAssignment.assigned_at,
        _first_move(StageSemantic.success, won),
        _first_move(StageSemantic.failure, lost),
    ).where(VariantAssignment.workspace_id == rule.workspace_id, VariantAssignment.rule_id == rule.id)
    tallies = {v["key"]: Tally(v["key"], float(v["weight"]), True) for v in rule.variants or []}
    horizon_days = (rule.experiment or {}).get("horizon_days")
    horizon = timedelta(days=horizon_days) if horizon_days else None
    now = now or datetime.now(UTC)
    for key, assigned_at, won_at, lost_at in await session.execute(statement):
        entry = tallies.setdefault(key, Tally(key, 0.0, False))
        entry.assigned += 1
        end = assigned_at + horizon if horizon else None
        if end is not None:
            won_at = won_at if won_at is not None and won_at <= end else None
            lost_at = lost_at if lost_at is not None and lost_at <= end else None
        if won_at is not None:
            entry.successes += 1
            days = (won_at - assigned_at).total_seconds() / DAY
            entry.days_to_close.append(days)
            entry.exposure_days += days
        elif lost_at is not None:
            entry.failures += 1
            entry.exposure_days += (lost_at - assigned_at).total_seconds() / DAY
        elif end is not None and now > end:
            entry.failures += 1
            entry.expired += 1
            entry.exposure_days += (end - assigned_at).total_seconds() / DAY
        else:
            entry.open += 1
            entry.exposure_days += max((now - assigned_at).total_seconds(), 0.0) / DAY
    return list(tallies.values())


def _posterior(metric: str, entry: Tally) -> abstats.Posterior:
    if metric == "time_to_close":
        return abstats.gamma_posterior(entry.successes, entry.exposure_days)
    return abstats.beta_posterior(entry.successes, entry.failures)


def _sample(metric: str, entry: Tally) -> int:
    """What `min_sample` counts: decided outcomes (success), or assigned elements (time to close, censored)."""
    return entry.assigned if metric == "time_to_close" else entry.decided


def evaluate(rule: AutomationRule, tallies: list[Tally]) -> tuple[list[VariantOutcome], str | None, bool]:
    """The per-variant outcomes, the variant to promote (None: not yet), and whether every variant has its sample."""
    options = RuleExperimentState.model_validate(rule.experiment or {})
    active = [t for t in tallies if t.active]
    posteriors = [_posterior(options.metric, t) for t in active]
    best = dict(zip((t.key for t in active), abstats.prob_best(posteriors), strict=True)) if active else {}
    ready = bool(active) and all(_sample(options.metric, t) >= options.min_sample for t in active)
    chosen = (
        abstats.winner(
            [best[t.key] for t in active],
            [_sample(options.metric, t) for t in active],
            threshold=options.threshold,
            min_sample=options.min_sample,
        )
        if active
        else None
    )
    outcomes = []
    for entry in tallies:
        posterior = _posterior(options.metric, entry)
        low, high = abstats.interval(posterior)
        if options.metric == "time_to_close":  # a hazard per day -> mean days to close
            estimate, low, high = 1 / posterior.mean, 1 / max(high, 1e-12), 1 / max(low, 1e-12)
        else:
            estimate = posterior.mean
        outcomes.append(
            VariantOutcome(
                key=entry.key,
                weight=entry.weight,
                active=entry.active,
                assigned=entry.assigned,
                successes=entry.successes,
                failures=entry.failures,
                expired=entry.expired,
                open=entry.open,
                rate=entry.successes / entry.decided if entry.decided else None,
                estimate=round(estimate, 6),
                interval=(round(low, 6), round(high, 6)),
                p_best=round(best.get(entry.key, 0.0), 6),
                mean_days_to_close=round(statistics.fmean(entry.days_to_close), 4) if entry.days_to_close else None,
                median_days_to_close=round(statistics.median(entry.days_to_close), 4) if entry.days_to_close else None,
            )
        )
    return outcomes, (active[chosen].key if chosen is not None else None), ready


def _report(rule: AutomationRule, outcomes: list[VariantOutcome], ready: bool) -> ExperimentReport:
    state = RuleExperimentState.model_validate(rule.experiment or {})
    leader = max((o for o in outcomes if o.active), key=lambda o: o.p_best, default=None)
    return ExperimentReport(
        rule_id=rule.id,
        rule=rule.name,
        metric=state.metric,
        status=state.status,
        winner=state.winner,
        promoted_at=state.promoted_at,
        promoted_by=state.promoted_by,
        reason=state.reason,
        auto_promote=state.auto_promote,
        threshold=state.threshold,
        min_sample=state.min_sample,
        horizon_days=state.horizon_days,
        ready=ready,
        leader=leader.key if leader else None,
        variants=outcomes,
    )


async def _experiment_rule(session: AsyncSession, actor: Actor, rule_id: uuid.UUID, *, lock: bool = False) -> Any:
    statement = select(AutomationRule).where(
        AutomationRule.workspace_id == actor.workspace_id, AutomationRule.id == rule_id
    )
    rule = await session.scalar(statement.with_for_update() if lock else statement)
    if rule is None:
        raise NotFound(f"Rule {rule_id} not found")
    meta = await get_type_meta_by_id(session, actor.workspace_id, rule.entity_type_id)
    ensure_sees_type(actor, meta.id, meta.code, f"Rule {rule_id} not found")
    if not rule.variants or not rule.experiment:
        raise NotFound(f"Rule {rule_id} has no variants")
    return rule


async def get_report(session: AsyncSession, actor: Actor, rule_id: uuid.UUID) -> ExperimentReport:
    """The experiment's report; reading it also promotes the winner when `auto_promote` is on and one is due.

    Like the runs, it is made of every assigned element's outcome: only roles that read every element may read it."""
    rule = await _experiment_rule(session, actor, rule_id)
    ensure_reads_logs(actor, "experiment reports")
    outcomes, chosen, ready = evaluate(rule, await tally(session, rule))
    if chosen is not None and running(rule) and (rule.experiment or {}).get("auto_promote"):
        await session.refresh(rule, with_for_update=True)
        if running(rule):
            await _promote(session, rule, chosen, by="auto", reason=_auto_reason(outcomes, chosen, rule))
            await _audit_auto(session, rule, chosen)
    return _report(rule, outcomes, ready)


def _auto_reason(outcomes: list[VariantOutcome], chosen: str, rule: AutomationRule) -> str:
    state = RuleExperimentState.model_validate(rule.experiment or {})
    top = next(o for o in outcomes if o.key == chosen)
    sizes = ", ".join(f"{o.key}: {o.successes}/{o.successes + o.failures}" for o in outcomes if o.active)
    return (
        f"P(best) of {chosen} = {top.p_best:.3f} >= {state.threshold:g} with every variant at >= "
        f"{state.min_sample} outcomes ({state.metric}; successes/decided {sizes})"
    )


async def _promote(session: AsyncSession, rule: AutomationRule, key: str, *, by: str, reason: str | None) -> None:
    chosen = _variant(rule, key)
    if chosen is None:
        raise Invalid(
            f"Rule {rule.id} has no variant {key!r}", errors=[FieldError("variant", f"not a variant: {key!r}")]
        )
    now = datetime.now(UTC)
    rule.actions = copy.deepcopy(chosen["actions"])
    rule.experiment = {
        **(rule.experiment or {}),
        "status": "promoted",
        "winner": key,
        "promoted_at": now.isoformat(),
        "promoted_by": by,
        "reason": reason,
    }
    rule.updated_at = now
    await session.flush()
    record_event(session, rule.workspace_id, "automation_rule.updated", payload={"id": str(rule.id), "promoted": key})
    logger.info("rule %s: variant %s promoted by %s (%s)", rule.id, key, by, reason)


async def _audit_auto(session: AsyncSession, rule: AutomationRule, key: str) -> None:
    """An automatic promotion has no request to be audited at: it is recorded here, as the system's."""
    await audit.record(
        session,
        system_actor(rule.workspace_id),
        None,
        audit.Change(
            action="automation experiment auto-promote",
            object_type="automation_rule",
            object_id=str(rule.id),
            details={"winner": key, "reason": (rule.experiment or {}).get("reason")},
        ),
    )


async def promote(session: AsyncSession, actor: Actor, rule_id: uuid.UUID, data: VariantPromote) -> ExperimentReport:
    """Promote a variant by hand (the rule's update permission): its actions become the rule's; assigning stops."""
    actor.ensure_can_write()
    rule = await _experiment_rule(session, actor, rule_id, lock=True)
    if not running(rule):
        winner = (rule.experiment or {}).get("winner")
        raise Conflict(f"Rule {rule_id} has promoted {winner!r} already; send new variants to start again")
    who = str(actor.principal_id) if actor.principal_id else "admin"
    await _promote(session, rule, data.variant, by=who, reason=data.reason or "promoted by hand")
    outcomes, _, ready = evaluate(rule, await tally(session, rule))
    return _report(rule, outcomes, ready)


async def check_due(session: AsyncSession, *, limit: int = CHECK_BATCH) -> int:
    """The scheduled check (worker cron): promote the winners of running auto-promote experiments; idempotent."""
    rules = list(
        await session.scalars(
            select(AutomationRule)
            .where(
                AutomationRule.variants.is_not(None),
                AutomationRule.experiment["auto_promote"].as_boolean().is_(True),
                AutomationRule.experiment["status"].as_string() == "running",
            )
            # In random order: with more due rules than a batch, each gets its turn.
            .order_by(func.random())
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    promoted = 0
    for rule in rules:
        outcomes, chosen, _ = evaluate(rule, await tally(session, rule))
        if chosen is not None and running(rule):
            await _promote(session, rule, chosen, by="auto", reason=_auto_reason(outcomes, chosen, rule))
            await _audit_auto(session, rule, chosen)
            promoted += 1
    return promoted
