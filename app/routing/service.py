"""Routing: score tiers -> eligible users -> the user with the most free capacity, under a lock so concurrent
routings never overbook; plus the tier's priority, stage and script. Decisions and reasons go on the timeline."""

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.visibility import ensure_sees_type, sees_type
from app.auth.actor import Actor
from app.elements import service as element_service
from app.elements.models import Element
from app.elements.schemas import ElementMove, ElementUpdate
from app.entity_types.fields import ValueRejected, parse_value
from app.entity_types.meta import TypeMeta, get_type_meta, get_type_meta_by_id
from app.entity_types.models import EntityType
from app.errors import Conflict, ErrorCollector, NotFound
from app.outbox.service import record_event
from app.routing.models import RoutingPolicy
from app.routing.schemas import (
    DEFAULT_TIERS,
    RouteDecision,
    RoutingPolicyCreate,
    RoutingPolicyRead,
    RoutingPolicyUpdate,
    TierSpec,
)
from app.scoring import service as scoring_service
from app.tasks import service as task_service
from app.tasks.schemas import TaskCreate
from app.timeline.service import add_entry
from app.users import service as user_service
from app.users.models import User

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


# --- policies --------------------------------------------------------------------------------------------------


async def _check_tiers(
    session: AsyncSession, actor: Actor, meta: TypeMeta, tiers: list[TierSpec], errors: ErrorCollector
) -> None:
    if len({t.min_score for t in tiers}) != len(tiers):
        errors.add("tiers", "two tiers start at the same score")
    if len({t.name for t in tiers}) != len(tiers):
        errors.add("tiers", "two tiers have the same name")
    if min(t.min_score for t in tiers) != 0:
        errors.add("tiers", "the lowest tier must start at 0 so every score has a tier")
    stage_codes = {s.code for s in meta.stages.values()}
    for index, tier in enumerate(tiers):
        path = f"tiers[{index}]"
        if tier.user_tier is not None and tier.user_ids:
            errors.add(path, "give user_tier or user_ids, not both")
        if tier.stage_code is not None and tier.stage_code not in stage_codes:
            errors.add(f"{path}.stage_code", f"entity type {meta.code!r} has no stage {tier.stage_code!r}")
        if tier.priority is not None:
            field_meta = meta.fields.get(tier.priority.field)
            if field_meta is None:
                errors.add(f"{path}.priority.field", f"unknown field {tier.priority.field!r} on {meta.code!r}")
            else:
                try:
                    parse_value(tier.priority.value, field_meta.spec)
                except ValueRejected as exc:
                    errors.add(f"{path}.priority.value", str(exc))
        if tier.user_ids:
            await user_service.check_assignees(
                session, actor.workspace_id, ((f"{path}.user_ids", u) for u in tier.user_ids), errors
            )


def _read(policy: RoutingPolicy, type_code: str) -> RoutingPolicyRead:
    return RoutingPolicyRead(
        id=policy.id,
        name=policy.name,
        entity_type=type_code,
        tiers=[TierSpec.model_validate(t) for t in policy.tiers],
        active=policy.active,
        created_at=policy.created_at,
        updated_at=policy.updated_at,
    )


def _sorted(tiers: list[TierSpec]) -> list[dict[str, Any]]:
    return [t.model_dump(mode="json") for t in sorted(tiers, key=lambda t: -t.min_score)]


async def _flush(session: AsyncSession, name: str) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"A routing policy named {name!r} exists already for this type") from exc


async def create_policy(session: AsyncSession, actor: Actor, data: RoutingPolicyCreate) -> RoutingPolicyRead:
    actor.ensure_can_write()
    meta = await get_type_meta(session, actor.workspace_id, data.entity_type)
    tiers = data.tiers or DEFAULT_TIERS
    errors = ErrorCollector()
    await _check_tiers(session, actor, meta, tiers, errors)
    errors.raise_if_any("The routing policy is not valid")
    now = datetime.now(UTC)
    policy = RoutingPolicy(
        workspace_id=actor.workspace_id,
        entity_type_id=meta.id,
        name=data.name,
        tiers=_sorted(tiers),
        active=data.active,
        created_at=now,
        updated_at=now,
    )
    session.add(policy)
    await _flush(session, data.name)
    return _read(policy, meta.code)


async def _get(session: AsyncSession, actor: Actor, policy_id: uuid.UUID) -> RoutingPolicy:
    policy = await session.scalar(
        select(RoutingPolicy).where(RoutingPolicy.workspace_id == actor.workspace_id, RoutingPolicy.id == policy_id)
    )
    if policy is None:
        raise NotFound(f"Routing policy {policy_id} not found")
    return policy


async def get_policy(session: AsyncSession, actor: Actor, policy_id: uuid.UUID) -> RoutingPolicyRead:
    policy = await _get(session, actor, policy_id)
    meta = await get_type_meta_by_id(session, actor.workspace_id, policy.entity_type_id)
    ensure_sees_type(actor, meta.id, meta.code, f"Routing policy {policy_id} not found")
    return _read(policy, meta.code)


async def list_policies(
    session: AsyncSession, actor: Actor, *, entity_type: str | None = None
) -> list[RoutingPolicyRead]:
    statement = (
        select(RoutingPolicy, EntityType.code)
        .join(EntityType, EntityType.id == RoutingPolicy.entity_type_id)
        .where(RoutingPolicy.workspace_id == actor.workspace_id)
        .order_by(EntityType.code, RoutingPolicy.created_at)
    )
    if entity_type is not None:
        meta = await get_type_meta(session, actor.workspace_id, entity_type)
        ensure_sees_type(actor, meta.id, meta.code, f"Entity type {entity_type!r} not found")
        statement = statement.where(RoutingPolicy.entity_type_id == meta.id)
    rows = (await session.execute(statement)).all()
    return [_read(p, code) for p, code in rows if sees_type(actor, p.entity_type_id, code)]


async def update_policy(
    session: AsyncSession, actor: Actor, policy_id: uuid.UUID, data: RoutingPolicyUpdate
) -> RoutingPolicyRead:
    actor.ensure_can_write()
    policy = await _get(session, actor, policy_id)
    meta = await get_type_meta_by_id(session, actor.workspace_id, policy.entity_type_id)
    if data.tiers is not None:
        errors = ErrorCollector()
        await _check_tiers(session, actor, meta, data.tiers, errors)
        errors.raise_if_any("The routing policy is not valid")
        policy.tiers = _sorted(data.tiers)
    if data.name is not None:
        policy.name = data.name
    if data.active is not None:
        policy.active = data.active
    policy.updated_at = datetime.now(UTC)
    await _flush(session, policy.name)
    return _read(policy, meta.code)


async def delete_policy(session: AsyncSession, actor: Actor, policy_id: uuid.UUID) -> None:
    actor.ensure_can_write()
    await session.delete(await _get(session, actor, policy_id))
    await session.flush()


async def policy_problem(session: AsyncSession, actor: Actor, policy_id: Any, entity_type_id: uuid.UUID) -> str | None:
    """Why a policy id cannot route elements of a type (for automation rules), or None."""
    try:
        policy_uuid = uuid.UUID(str(policy_id))
    except ValueError:
        return "must be a routing policy id"
    policy = await session.scalar(
        select(RoutingPolicy).where(RoutingPolicy.workspace_id == actor.workspace_id, RoutingPolicy.id == policy_uuid)
    )
    if policy is None:
        return f"routing policy {policy_id} not found"
    if policy.entity_type_id != entity_type_id:
        return "the routing policy is for another entity type"
    return None


# --- routing ---------------------------------------------------------------------------------------------------


async def _policy_for(
    session: AsyncSession, actor: Actor, element: Element, policy_id: uuid.UUID | None
) -> RoutingPolicy:
    if policy_id is not None:
        policy = await _get(session, actor, policy_id)
        if policy.entity_type_id != element.entity_type_id:
            raise Conflict("The routing policy is for another entity type")
        return policy
    found = await session.scalar(
        select(RoutingPolicy)
        .where(
            RoutingPolicy.workspace_id == actor.workspace_id,
            RoutingPolicy.entity_type_id == element.entity_type_id,
            RoutingPolicy.active.is_(True),
        )
        .order_by(RoutingPolicy.created_at.desc())
        .limit(1)
    )
    if found is None:
        raise Conflict("The element's entity type has no active routing policy")
    return found


async def _eligible(session: AsyncSession, actor: Actor, tier: TierSpec) -> list[User]:
    """The tier's active users, locked in id order: concurrent routings over the same users take turns here."""
    if tier.user_tier is None and not tier.user_ids:
        return []
    match = User.tier == tier.user_tier if tier.user_tier is not None else User.id.in_(tier.user_ids or [])
    rows = await session.scalars(
        select(User)
        .where(User.workspace_id == actor.workspace_id, User.active.is_(True), match)
        .order_by(User.id)
        .with_for_update()
    )
    return list(rows)


def _pick(users: list[User], loads: dict[uuid.UUID, int]) -> tuple[User, bool]:
    """Most free capacity wins; ties go to whoever was routed to longest ago (round robin). When everyone is full,
    the least loaded user gets it, flagged as over capacity."""

    def waited(user: User) -> tuple[int, float]:
        return (0, 0.0) if user.last_routed_at is None else (1, user.last_routed_at.timestamp())

    with_room = [u for u in users if loads[u.id] < u.capacity]
    if with_room:
        return min(with_room, key=lambda u: (-(u.capacity - loads[u.id]), *waited(u), str(u.id))), False
    return min(users, key=lambda u: (loads[u.id], *waited(u), str(u.id))), True


def render(template: str, context: dict[str, Any]) -> str:
    """`{{ name }}` placeholders only: no expressions, so a template cannot reach anything else."""

    def value(match: re.Match[str]) -> str:
        found = context.get(match.group(1).removeprefix("values."))
        return "" if found is None else str(found)

    return PLACEHOLDER.sub(value, template)


async def _ensure_score(session: AsyncSession, actor: Actor, element: Element) -> int:
    if element.score is not None:
        return element.score
    try:
        return (await scoring_service.score_element(session, actor, element.id)).score
    except Conflict as exc:
        raise Conflict("The element has no score and its type has no active scoring model to give it one") from exc


async def route_element(
    session: AsyncSession, actor: Actor, element_id: uuid.UUID, *, policy_id: uuid.UUID | None = None
) -> RouteDecision:
    actor.ensure_can_write()
    element = await element_service.load_element_row(session, actor, element_id, lock=True, action="update")
    if element.deleted_at is not None:
        raise Conflict("The element is in the recycle bin")
    policy = await _policy_for(session, actor, element, policy_id)
    score = await _ensure_score(session, actor, element)
    tiers = [TierSpec.model_validate(t) for t in policy.tiers]
    tier = next(t for t in tiers if score >= t.min_score)
    reasons = [f"score {score} is in tier {tier.name!r} ({tier.min_score}+)"]
    users = await _eligible(session, actor, tier)
    assignee: User | None = None
    over_capacity = False
    load = None
    if tier.user_tier is None and not tier.user_ids:
        reasons.append(f"tier {tier.name!r} has no users: handled automatically")
    elif not users:
        reasons.append(f"tier {tier.name!r} has no active eligible users: left unassigned")
    else:
        loads = await user_service.loads(
            session,
            actor.workspace_id,
            [u.id for u in users],
            entity_type_ids=[policy.entity_type_id],
            exclude_element=element.id,
        )
        assignee, over_capacity = _pick(users, loads)
        load = loads[assignee.id]
        summary = ", ".join(f"{u.name} {loads[u.id]}/{u.capacity}" for u in users)
        reasons.append(f"eligible users (load/capacity): {summary}")
        if over_capacity:
            reasons.append(f"every eligible user is full: {assignee.name} is the least loaded (over capacity)")
        else:
            reasons.append(f"{assignee.name} has the most free capacity ({assignee.capacity - load})")
        assignee.last_routed_at = datetime.now(UTC)
    update = ElementUpdate()
    if assignee is not None:
        update.assigned_to = assignee.id
    if tier.priority is not None:
        update.values = {tier.priority.field: tier.priority.value}
        reasons.append(f"{tier.priority.field} set to {tier.priority.value!r}")
    if update.model_fields_set:
        await element_service.update_element(session, actor, element.id, update)
    meta = await get_type_meta_by_id(session, actor.workspace_id, element.entity_type_id)
    current = meta.stages.get(element.stage_id) if element.stage_id else None
    if tier.stage_code is not None and (current is None or current.code != tier.stage_code):
        await element_service.move_element(session, actor, element.id, ElementMove(stage_code=tier.stage_code))
        reasons.append(f"moved to stage {tier.stage_code}")
    script = None
    if tier.script:
        context = {**element.values, "title": element.title, "score": score, "tier": tier.name}
        context["assignee"] = assignee.name if assignee else ""
        script = render(tier.script, context)
    decision = RouteDecision(
        element_id=element.id,
        policy_id=policy.id,
        score=score,
        tier=tier.name,
        assigned_to=assignee.id if assignee else None,
        assignee_name=assignee.name if assignee else None,
        over_capacity=over_capacity,
        load=load,
        capacity=assignee.capacity if assignee else None,
        priority=tier.priority.value if tier.priority else None,
        stage_code=tier.stage_code,
        script=script,
        reasons=reasons,
    )
    await _record(session, actor, element, decision)
    await session.flush()
    return decision


async def _record(session: AsyncSession, actor: Actor, element: Element, decision: RouteDecision) -> None:
    if decision.script:
        # The personalised script becomes a task for the assignee (it also shows on the timeline).
        task = await task_service.create_task(
            session,
            actor,
            TaskCreate(
                title=f"Follow up: {element.title or decision.tier}"[:500],
                description=decision.script,
                element_id=element.id,
                assignee_id=decision.assigned_to,
            ),
        )
        decision.task_id = task.id
    data = decision.model_dump(mode="json", exclude={"element_id", "script"})
    add_entry(session, actor, "routed", element_id=element.id, data=data)
    record_event(
        session,
        actor.workspace_id,
        "element.routed",
        entity_type_id=element.entity_type_id,
        element_id=element.id,
        payload={"element_id": str(element.id), **data},
    )
