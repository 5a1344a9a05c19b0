"""Time-dependent features of an element, from its stage history: what a deal's close probability is learned from.

A learned model may list these beside its fields (a custom field of the same code wins; `stage_code` is reserved):
- `stage_code`: the stage it is in (categorical);
- `days_in_stage`: days since it entered that stage;
- `stage_moves`: how many times it has changed stage;
- `age_days`: days since it was created;
- `activity_count`: completed activities (calls, meetings…) bound to it so far, when the workspace has an activities
  table (`ACTIVITY_SOURCE`; missing otherwise, and the model learns nothing from it).

Training cannot read these off a closed element (its stage is the outcome), so it replays each closed element's stage
history: a snapshot every `step` of the time it spent in process stages (from a phase fixed by its id), each one a
training row with the features as they were then and the element's final outcome as the label. A fixed step weighs
each element by the time it was open, as a look at the open pipeline on any day sees them (one snapshot per element
would under-weigh the long-lived ones, and those are mostly the won ones); the step is set for SNAPSHOTS per element
on average. Snapshots of one element stay on one side of the hold-out split. Custom fields are read as they are now:
their history is not kept.
"""

import bisect
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.elements.models import Element, StageHistory
from app.entity_types.meta import TypeMeta
from app.pipelines.models import StageSemantic

logger = logging.getLogger(__name__)

HISTORY_FEATURES = {
    "stage_code": "categorical",
    "days_in_stage": "numeric",
    "stage_moves": "numeric",
    "age_days": "numeric",
    "activity_count": "numeric",
}
SNAPSHOTS = 8  # per element, on average
MAX_SNAPSHOTS = 100  # per element: one that stayed open for ages does not swamp the rest
_DAY = 86400.0

# (workspace, [(element id, moment)]) -> completed activities of each element up to its moment, or None when the
# workspace keeps no activities.
ActivitySource = Callable[[AsyncSession, uuid.UUID, list[tuple[uuid.UUID, datetime]]], Awaitable[list[int] | None]]

_ACTIVITY_COUNTS = text(
    """
    SELECT count(a.id) AS n
    FROM unnest(CAST(:ids AS uuid[]), CAST(:moments AS timestamptz[])) WITH ORDINALITY AS p(element_id, moment, i)
    LEFT JOIN activity_elements ae ON ae.element_id = p.element_id
    LEFT JOIN activities a
      ON a.id = ae.activity_id AND a.workspace_id = :workspace_id
     AND a.status::text = 'completed' AND a.starts_at <= p.moment
    GROUP BY p.i ORDER BY p.i
    """
)


async def activity_table_counts(
    session: AsyncSession, workspace_id: uuid.UUID, points: list[tuple[uuid.UUID, datetime]]
) -> list[int] | None:
    """The default source: the `activities` / `activity_elements` tables (app.activities), read with plain SQL so
    scoring does not import that package; None while those tables do not exist or cannot be read."""
    if not points:
        return []
    exists = await session.scalar(
        text("SELECT to_regclass('activities') IS NOT NULL AND to_regclass('activity_elements') IS NOT NULL")
    )
    if not exists:
        return None
    try:
        async with session.begin_nested():  # a failed read must not spoil the caller's transaction
            result = await session.execute(
                _ACTIVITY_COUNTS,
                {
                    "ids": [element_id for element_id, _ in points],
                    "moments": [moment for _, moment in points],
                    "workspace_id": workspace_id,
                },
            )
            return [int(n) for n in result.scalars()]
    except DBAPIError:
        logger.warning("activity counts are not readable: the activity_count feature is left missing", exc_info=True)
        return None


# The hook: replace (e.g. in tests, or when activities move) with any source of the same shape.
ACTIVITY_SOURCE: ActivitySource = activity_table_counts


def uses_history(features: Sequence[str], meta: TypeMeta) -> bool:
    return any(code in HISTORY_FEATURES and code not in meta.fields for code in features)


def _days(later: datetime, earlier: datetime) -> float:
    return max(0.0, (later - earlier).total_seconds() / _DAY)


# --- now: the features of elements being scored ----------------------------------------------------------------


async def current_features(
    session: AsyncSession,
    meta: TypeMeta,
    elements: Sequence[Any],
    wanted: frozenset[str],
    *,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The history features of each element at `now` (one query for the moves, one for activities if wanted).
    Elements not written yet (a create being scored) have no history: no moves, no activities."""
    now = now or datetime.now(UTC)
    moves: dict[uuid.UUID, int] = {}
    ids = [e.id for e in elements]
    if "stage_moves" in wanted and ids:
        counted = await session.execute(
            select(StageHistory.element_id, func.count())
            .where(
                StageHistory.workspace_id == meta.entity_type.workspace_id,
                StageHistory.element_id.in_(ids),
                StageHistory.from_stage_id.is_not(None),
            )
            .group_by(StageHistory.element_id)
        )
        moves = {element_id: int(n) for element_id, n in counted.all()}
    activities = None
    if "activity_count" in wanted and ids:
        activities = await ACTIVITY_SOURCE(session, meta.entity_type.workspace_id, [(i, now) for i in ids])
    out = []
    for index, element in enumerate(elements):
        created = element.created_at or now
        entered = element.moved_at or created
        stage = meta.stages.get(element.stage_id) if element.stage_id else None
        features: dict[str, Any] = {
            "stage_code": stage.code if stage else None,
            "days_in_stage": round(_days(now, entered), 4),
            "stage_moves": moves.get(element.id, 0),
            "age_days": round(_days(now, created), 4),
            "activity_count": activities[index] if activities is not None else None,
        }
        out.append({code: value for code, value in features.items() if code in wanted})
    return out


# --- training: snapshots replayed from the stage history -------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    stage_id: uuid.UUID
    start: datetime
    end: datetime | None


@dataclass
class Snapshots:
    rows: list[dict[str, Any]]
    labels: list[int]
    groups: list[int]  # the element each snapshot belongs to (index in closed elements)


def visits(element: Element, history: list[StageHistory]) -> list[Visit]:
    """The element's stays in stages, in order, from its history (its creation row, then one row per move)."""
    out: list[Visit] = []
    if history and history[0].from_stage_id is not None:  # no creation row: the first stay started at creation
        out.append(Visit(history[0].from_stage_id, element.created_at, history[0].moved_at))
    for index, row in enumerate(history):
        if row.to_stage_id is None:
            continue
        end = history[index + 1].moved_at if index + 1 < len(history) else None
        out.append(Visit(row.to_stage_id, row.moved_at, end))
    if not out and element.stage_id is not None:
        out.append(Visit(element.stage_id, element.created_at, None))
    return out


def _open_seconds(stays: list[Visit]) -> float:
    return sum((v.end - v.start).total_seconds() for v in stays if v.end is not None)


def _moments(stays: list[Visit], step: float, phase: float) -> list[tuple[Visit, datetime]]:
    """Moments `phase`·step, (1 + `phase`)·step… into the process stays' time (seconds), each with its stay."""
    out: list[tuple[Visit, datetime]] = []
    elapsed = 0.0
    offset = phase * step
    for stay in stays:
        assert stay.end is not None  # noqa: S101
        length = (stay.end - stay.start).total_seconds()
        while offset < elapsed + length and len(out) < MAX_SNAPSHOTS:
            out.append((stay, stay.start + timedelta(seconds=offset - elapsed)))
            offset += step
        elapsed += length
    return out


async def training_snapshots(
    session: AsyncSession,
    meta: TypeMeta,
    rows_of: Callable[[Element], dict[str, Any]],
    wanted: frozenset[str],
) -> Snapshots:
    """Snapshots of the type's live elements that reached a success or failure stage (see the module's doc)."""
    workspace_id = meta.entity_type.workspace_id
    closing = {s.id: s.semantic for s in meta.stages.values() if s.semantic != StageSemantic.process}
    elements = list(
        await session.scalars(
            select(Element)
            .where(
                Element.workspace_id == workspace_id,
                Element.entity_type_id == meta.id,
                Element.deleted_at.is_(None),
                Element.stage_id.in_(list(closing)),
            )
            .order_by(Element.created_at, Element.title, Element.id)  # a stable order: the split is reproducible
        )
    )
    history: dict[uuid.UUID, list[StageHistory]] = {}
    rows = await session.scalars(
        select(StageHistory)
        .join(Element, Element.id == StageHistory.element_id)
        .where(
            StageHistory.workspace_id == workspace_id,
            Element.entity_type_id == meta.id,
            Element.deleted_at.is_(None),
            Element.stage_id.in_(list(closing)),
        )
        .order_by(StageHistory.element_id, StageHistory.moved_at, StageHistory.id)
    )
    for row in rows:
        history.setdefault(row.element_id, []).append(row)

    lives: list[tuple[int, Element, list[Visit]]] = []
    for group, element in enumerate(elements):
        stays = [v for v in visits(element, history.get(element.id, [])) if _is_process(meta, v.stage_id)]
        stays = [v for v in stays if v.end is not None]  # a closed element's process stays all ended
        if _open_seconds(stays) > 0:  # else created closed (an import of outcomes): never seen open
            lives.append((group, element, stays))
    step = sum(_open_seconds(stays) for _, _, stays in lives) / max(1, SNAPSHOTS * len(lives))
    planned: list[tuple[int, Element, Visit, datetime, int]] = []
    for group, element, stays in lives:
        move_times = sorted(r.moved_at for r in history.get(element.id, []) if r.from_stage_id is not None)
        phase = (element.id.int % 1_000_003) / 1_000_003  # fixed per element: retraining replays the same moments
        for stay, moment in _moments(stays, step, phase):
            planned.append((group, element, stay, moment, bisect.bisect_right(move_times, moment)))
    activities = None
    if "activity_count" in wanted and planned:
        activities = await ACTIVITY_SOURCE(session, workspace_id, [(p[1].id, p[3]) for p in planned])
    snapshots = Snapshots(rows=[], labels=[], groups=[])
    for index, (group, element, stay, moment, moves) in enumerate(planned):
        features = {
            "stage_code": meta.stages[stay.stage_id].code,
            "days_in_stage": round(_days(moment, stay.start), 4),
            "stage_moves": moves,
            "age_days": round(_days(moment, element.created_at), 4),
            "activity_count": activities[index] if activities is not None else None,
        }
        snapshots.rows.append(rows_of(element) | {c: v for c, v in features.items() if c in wanted})
        snapshots.labels.append(1 if closing[element.stage_id] == StageSemantic.success else 0)  # type: ignore[index]
        snapshots.groups.append(group)
    return snapshots


def _is_process(meta: TypeMeta, stage_id: uuid.UUID) -> bool:
    stage = meta.stages.get(stage_id)
    return stage is not None and stage.semantic == StageSemantic.process
