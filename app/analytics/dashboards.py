"""A manager's and a head's dashboard over one type's pipeline: rollups for the numbers, the elements for the list.

- **Manager** (`/dashboards/manager`): the caller's own: a person's token only (an API key is nobody: 403). My open
  elements by score, then longest in their stage; my KPIs of the period against the previous one.
- **Head** (`/dashboards/head`): the team's KPIs against the previous period, the leaders, the stages that slowed
  down, the team's funnel and the problem areas. It needs a role that reads the team's elements: a read scope of
  `all` on the pipeline (the team is everyone, or the people of `department_id` and below) or `department` (the
  team is the caller's department and below). Scope `own` or `none`: 403.
"""

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.permissions import PermissionDenied, Scope
from app.analytics import service, stats
from app.analytics.models import NOBODY
from app.analytics.schemas import (
    GroupBy,
    HeadDashboard,
    Kpi,
    Leader,
    ManagerDashboard,
    Period,
    PriorityElement,
    ProblemArea,
    ProblemKind,
    SlowStage,
)
from app.auth.actor import Actor
from app.counters.models import user_counters
from app.errors import Forbidden, NotFound
from app.pipelines.models import StageSemantic
from app.users.models import User

MAX_DAYS = 366
SLOWER = 1.2  # a stage is slowing down when its mean time grew by more than 20 %
WORSE = 0.2  # a conversion or loss share that moved the wrong way by more than 20 %
MIN_VOLUME = 5


def _periods(days: int, today: date) -> tuple[Period, Period]:
    days = min(max(days, 1), MAX_DAYS)
    current = Period(start=today - timedelta(days=days - 1), end=today, days=days)
    previous = Period(start=current.start - timedelta(days=days), end=current.start - timedelta(days=1), days=days)
    return current, previous


def _total(sums: dict[uuid.UUID, service.Sums]) -> service.Sums:
    total = service.Sums()
    for one in sums.values():
        total.add(one)
    return total


def _figures(target: service.Target, sums: dict[uuid.UUID, service.Sums]) -> dict[str, float | None]:
    group = service.funnel_group(target, None, sums)
    total = _total(sums)
    closing = [s.id for s in target.stages if s.semantic is not StageSemantic.process]
    closes = sum(sums[s].entered for s in closing if s in sums)
    return {
        "created": group.created,
        "won_count": group.won,
        "won_amount": group.won_amount,
        "lost": group.lost,
        "win_rate": group.win_rate,
        "moves": group.moves,
        "avg_time_in_stage_seconds": stats.ratio(total.exited_seconds, total.exited),
        "avg_time_to_close_seconds": stats.ratio(sum(sums[s].closed_seconds for s in closing if s in sums), closes),
    }


def _kpis(current: dict[str, float | None], previous: dict[str, float | None]) -> list[Kpi]:
    kpis = []
    for name, value in current.items():
        before = previous.get(name)
        change = value / before - 1 if value is not None and before else None
        kpis.append(Kpi(name=name, current=value, previous=before, change=change))
    return kpis


# --- manager ------------------------------------------------------------------------------------------------------


async def manager(
    session: AsyncSession,
    actor: Actor,
    type_ref: str,
    *,
    pipeline_id: uuid.UUID | None = None,
    days: int = 30,
    limit: int = 50,
    now: datetime | None = None,
) -> ManagerDashboard:
    if actor.user_id is None:
        raise Forbidden("A manager's dashboard is a person's: call with a user's access token, not an API key")
    me = actor.user_id
    target = replace(await service.resolve_target(session, actor, type_ref, pipeline_id), owners=(me,))
    moment = now or datetime.now(UTC)
    current, previous = _periods(days, moment.date())
    mine_now = (await service.stage_sums(session, target, current.start, current.end)).get(None, {})
    mine_before = (await service.stage_sums(session, target, previous.start, previous.end)).get(None, {})
    process = {s.id: s for s in target.of(StageSemantic.process)}
    limits = {s.id: s.time_limit_minutes for s in process.values()}
    rows = (
        await session.execute(
            text(
                """SELECT id, title, stage_id, score, amount, moved_at, overdue_since
                FROM elements
                WHERE workspace_id = :workspace_id AND assigned_to = :me AND pipeline_id = :pipeline_id
                    AND stage_id = ANY(:stages) AND deleted_at IS NULL
                ORDER BY score DESC NULLS LAST, moved_at ASC NULLS LAST, id
                LIMIT :limit"""
            ).bindparams(bindparam("stages", type_=service.UUIDS)),
            {
                "workspace_id": actor.workspace_id,
                "me": me,
                "pipeline_id": target.pipeline.id,
                "stages": list(process),
                "limit": min(max(limit, 1), 500),
            },
        )
    ).all()
    totals = (
        await session.execute(
            text(
                """SELECT count(*), coalesce(sum(amount), 0) FROM elements
                WHERE workspace_id = :workspace_id AND assigned_to = :me AND pipeline_id = :pipeline_id
                    AND stage_id = ANY(:stages) AND deleted_at IS NULL"""
            ).bindparams(bindparam("stages", type_=service.UUIDS)),
            {"workspace_id": actor.workspace_id, "me": me, "pipeline_id": target.pipeline.id, "stages": list(process)},
        )
    ).one()
    priority = []
    for row in rows:
        stay = (moment - row.moved_at).total_seconds() if row.moved_at else 0.0
        limit_minutes = limits.get(row.stage_id)
        priority.append(
            PriorityElement(
                id=row.id,
                title=row.title,
                stage_id=row.stage_id,
                stage_code=process[row.stage_id].code,
                score=row.score,
                amount=float(row.amount) if row.amount is not None else None,
                moved_at=row.moved_at,
                seconds_in_stage=max(0.0, stay),
                overdue=row.overdue_since is not None or (limit_minutes is not None and stay > limit_minutes * 60),
            )
        )
    return ManagerDashboard(
        user_id=me,
        entity_type=target.meta.code,
        pipeline_id=target.pipeline.id,
        period=current,
        previous_period=previous,
        open_count=int(totals[0]),
        open_amount=float(totals[1]),
        priority=priority,
        kpis=_kpis(_figures(target, mine_now), _figures(target, mine_before)),
    )


# --- head ---------------------------------------------------------------------------------------------------------


async def _department_people(session: AsyncSession, actor: Actor, department_id: uuid.UUID) -> tuple[uuid.UUID, ...]:
    """The active people of a department of the workspace and of every department below it."""
    rows = await session.execute(
        text(
            """WITH RECURSIVE tree AS (
                SELECT id FROM departments WHERE workspace_id = :workspace_id AND id = :department_id
                UNION SELECT d.id FROM departments d JOIN tree t ON d.parent_id = t.id
            )
            SELECT (SELECT count(*) FROM tree) AS departments, coalesce(array_agg(u.id), '{}') AS people
            FROM users u WHERE u.workspace_id = :workspace_id AND u.department_id IN (SELECT id FROM tree)"""
        ),
        {"workspace_id": actor.workspace_id, "department_id": department_id},
    )
    found = rows.one()
    if not found.departments:
        raise NotFound(f"Department {department_id} not found")
    return tuple(found.people)


async def _team(
    session: AsyncSession, actor: Actor, target: service.Target, department_id: uuid.UUID | None
) -> tuple[uuid.UUID, ...] | None:
    access = actor.on(target.meta)
    scope = Scope.all if access.full else access.scope("read", target.pipeline.id)
    if scope is Scope.department:
        team = access.department
        if department_id is not None:
            team = tuple(sorted(set(team) & set(await _department_people(session, actor, department_id))))
        return team
    if scope is not Scope.all:
        raise PermissionDenied(
            f"{target.meta.code}.read",
            "The head's dashboard needs a role that reads the team's elements (scope `department` or `all`)",
        )
    if department_id is not None:
        return await _department_people(session, actor, department_id)
    return None


async def head(
    session: AsyncSession,
    actor: Actor,
    type_ref: str,
    *,
    pipeline_id: uuid.UUID | None = None,
    days: int = 30,
    department_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> HeadDashboard:
    target = await service.resolve_target(session, actor, type_ref, pipeline_id)
    team = await _team(session, actor, target, department_id)
    target = replace(target, owners=team)
    moment = now or datetime.now(UTC)
    current, previous = _periods(days, moment.date())
    team_now = (await service.stage_sums(session, target, current.start, current.end)).get(None, {})
    team_before = (await service.stage_sums(session, target, previous.start, previous.end)).get(None, {})
    kpis = _kpis(_figures(target, team_now), _figures(target, team_before))
    funnel_now = service.funnel_group(target, None, team_now)
    funnel_before = service.funnel_group(target, None, team_before)

    per_person = await service.stage_sums(session, target, current.start, current.end, GroupBy.assignee)
    names = dict(
        (
            await session.execute(
                select(User.id, User.name).where(
                    User.workspace_id == actor.workspace_id,
                    User.id.in_([uuid.UUID(k) for k in per_person if k is not None]),
                )
            )
        ).all()
    )
    leaders = []
    for key, sums in per_person.items():
        figures = _figures(target, sums)
        user_id = uuid.UUID(key) if key is not None else None
        leaders.append(
            Leader(
                user_id=user_id,
                name=names.get(user_id) if user_id else None,
                won_count=int(figures["won_count"] or 0),
                won_amount=float(figures["won_amount"] or 0),
                created=int(figures["created"] or 0),
                win_rate=figures["win_rate"],
                avg_time_in_stage_seconds=figures["avg_time_in_stage_seconds"],
            )
        )
    leaders.sort(key=lambda leader: (-leader.won_amount, -leader.won_count, str(leader.user_id)))

    slowing: list[SlowStage] = []
    problems: list[ProblemArea] = []
    for stage in target.of(StageSemantic.process):
        now_sums, before_sums = team_now.get(stage.id, service.Sums()), team_before.get(stage.id, service.Sums())
        if now_sums.exited >= MIN_VOLUME and before_sums.exited >= MIN_VOLUME:
            mean_now = now_sums.exited_seconds / now_sums.exited
            mean_before = before_sums.exited_seconds / before_sums.exited
            if mean_before > 0 and mean_now > mean_before * SLOWER:
                change = mean_now / mean_before - 1
                slowing.append(
                    SlowStage(
                        stage_id=stage.id,
                        code=stage.code,
                        current_seconds=mean_now,
                        previous_seconds=mean_before,
                        change=change,
                    )
                )
                problems.append(
                    ProblemArea(
                        kind=ProblemKind.slow_stage,
                        stage_id=stage.id,
                        user_id=None,
                        current=mean_now,
                        previous=mean_before,
                        detail=f"{stage.code}: mean time in stage up {change:.0%}",
                    )
                )
            lost_now, lost_before = now_sums.lost / now_sums.exited, before_sums.lost / before_sums.exited
            if lost_now > lost_before * (1 + WORSE) and lost_now - lost_before > 0.02:
                problems.append(
                    ProblemArea(
                        kind=ProblemKind.losses_up,
                        stage_id=stage.id,
                        user_id=None,
                        current=lost_now,
                        previous=lost_before,
                        detail=f"{stage.code}: {lost_now:.0%} of exits lost, was {lost_before:.0%}",
                    )
                )
        one_now = next(s for s in funnel_now.stages if s.stage_id == stage.id)
        one_before = next(s for s in funnel_before.stages if s.stage_id == stage.id)
        if (
            one_now.conversion_to_next is not None
            and one_before.conversion_to_next
            and one_now.entered >= MIN_VOLUME
            and one_before.entered >= MIN_VOLUME
            and one_now.conversion_to_next < one_before.conversion_to_next * (1 - WORSE)
        ):
            problems.append(
                ProblemArea(
                    kind=ProblemKind.conversion_drop,
                    stage_id=stage.id,
                    user_id=None,
                    current=one_now.conversion_to_next,
                    previous=one_before.conversion_to_next,
                    detail=f"{stage.code}: conversion to the next stage "
                    f"{one_now.conversion_to_next:.0%}, was {one_before.conversion_to_next:.0%}",
                )
            )
    slowing.sort(key=lambda s: -s.change)
    problems += await _overdue(session, actor, target, team)
    return HeadDashboard(
        entity_type=target.meta.code,
        pipeline_id=target.pipeline.id,
        period=current,
        previous_period=previous,
        team=list(team) if team is not None else None,
        kpis=kpis,
        leaders=leaders[:10],
        slowing_stages=slowing,
        funnel=funnel_now.stages,
        problems=problems,
    )


async def _overdue(
    session: AsyncSession, actor: Actor, target: service.Target, team: tuple[uuid.UUID, ...] | None
) -> list[ProblemArea]:
    """People of the team with elements of the type past their stage's time limit (the kept counters: no scan)."""
    c = user_counters.c
    statement = (
        select(c.user_id, func.sum(c.overdue_elements))
        .where(c.workspace_id == actor.workspace_id, c.entity_type_id == target.meta.id)
        .group_by(c.user_id)
        .having(func.sum(c.overdue_elements) > 0)
        .order_by(func.sum(c.overdue_elements).desc())
        .limit(10)
    )
    if team is not None:
        statement = statement.where(c.user_id.in_(team))
    return [
        ProblemArea(
            kind=ProblemKind.overdue,
            stage_id=None,
            user_id=user_id,
            current=float(count),
            previous=None,
            detail=f"{count} element(s) past their stage's time limit",
        )
        for user_id, count in await session.execute(statement)
        if user_id != NOBODY
    ]
