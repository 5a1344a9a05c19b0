"""Scoring models: create (factors or learned), train in the background, version, activate, score elements."""

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.access.visibility import ensure_sees_type, sees_type
from app.auth.actor import Actor, system_actor
from app.db import make_sessionmaker, unit_of_work
from app.elements import service as element_service
from app.elements.meta_cache import cached_type_meta
from app.elements.models import Element
from app.entity_types.meta import TypeMeta, get_type_meta, get_type_meta_by_id
from app.entity_types.models import EntityType
from app.errors import Conflict, ErrorCollector, FieldError, Invalid, NotFound
from app.kit import background
from app.outbox.service import record_event
from app.pipelines.models import Stage, StageSemantic
from app.scoring import history, learned
from app.scoring.engine import (
    SYSTEM_FEATURES,
    compile_model,
    element_row,
    load_model,
    model_rows,
    score_row,
    score_rows,
)
from app.scoring.models import ScoringModel
from app.scoring.schemas import (
    CloseProbabilityRead,
    ContainsFactor,
    Contribution,
    EnumFactor,
    Factor,
    ModelMetrics,
    RangeFactor,
    ScoreResult,
    ScoringModelCreate,
    ScoringModelRead,
    TrainingOptions,
)
from app.scoring.trees import TreeOptions
from app.timeline.service import add_entry
from app.workspaces.service import bump_metadata_version

logger = logging.getLogger(__name__)

NUMERIC_TYPES = frozenset({"integer", "decimal", "money"})
TEXT_TYPES = frozenset({"string", "text", "email", "phone", "url", "enum"})
SYSTEM_TYPES = {"title": "string", "source": "string", "currency": "string", "amount": "decimal"}
FEATURE_KINDS = {
    "enum": "categorical",
    "string": "categorical",
    "integer": "numeric",
    "decimal": "numeric",
    "money": "numeric",
    "boolean": "boolean",
}


def _field_type(meta: TypeMeta, code: str) -> str | None:
    if code in meta.fields:
        return meta.fields[code].row.type
    return SYSTEM_TYPES.get(code) if code in SYSTEM_FEATURES else None


def _check_factor(meta: TypeMeta, factor: Factor, path: str, errors: ErrorCollector) -> None:
    field_type = _field_type(meta, factor.field)
    if field_type is None:
        errors.add(f"{path}.field", f"unknown field {factor.field!r} on entity type {meta.code!r}")
        return
    if isinstance(factor, RangeFactor) and field_type not in NUMERIC_TYPES:
        errors.add(f"{path}.field", f"a range factor needs a number field, {factor.field!r} is {field_type}")
    elif isinstance(factor, ContainsFactor) and field_type not in TEXT_TYPES:
        errors.add(f"{path}.field", f"a contains factor needs a text field, {factor.field!r} is {field_type}")
    elif isinstance(factor, EnumFactor) and field_type == "enum":
        options = {option.value for option in meta.fields[factor.field].options}
        unknown = sorted(set(factor.points) - options)
        if unknown:
            errors.add(f"{path}.points", f"not options of {factor.field!r}: {', '.join(unknown)}")


def _feature_kinds(meta: TypeMeta, features: list[str], errors: ErrorCollector) -> list[tuple[str, str]]:
    out = []
    if len(set(features)) != len(features):
        errors.add("features", "lists a field twice")
    for index, code in enumerate(features):
        if code in history.HISTORY_FEATURES and code not in meta.fields:
            if not meta.stages:
                errors.add(f"features[{index}]", f"{code!r} reads the stage history; {meta.code!r} has no stages")
            out.append((code, history.HISTORY_FEATURES[code]))
            continue
        field_type = _field_type(meta, code)
        kind = FEATURE_KINDS.get(field_type or "")
        if field_type is None:
            errors.add(f"features[{index}]", f"unknown field {code!r} on entity type {meta.code!r}")
        elif kind is None:
            supported = ", ".join(sorted(FEATURE_KINDS))
            errors.add(
                f"features[{index}]",
                f"{code!r} is a {field_type} field; features can be {supported} fields, or the history features "
                + ", ".join(history.HISTORY_FEATURES),
            )
        else:
            out.append((code, kind))
    return out


def _read(row: ScoringModel, type_code: str) -> ScoringModelRead:
    return ScoringModelRead(
        id=row.id,
        name=row.name,
        entity_type=type_code,
        kind=row.kind,
        version=row.version,
        status=row.status,
        active=row.is_active,
        factors=row.config.get("factors"),
        features=row.config.get("features"),
        training=row.config.get("training"),
        metrics=ModelMetrics.model_validate(row.metrics) if row.metrics else None,
        error=row.error,
        algorithm=(row.params or {}).get("algorithm"),
        params=row.params,
        created_at=row.created_at,
        trained_at=row.trained_at,
    )


async def _get(session: AsyncSession, actor: Actor, model_id: uuid.UUID, *, lock: bool = False) -> ScoringModel:
    statement = select(ScoringModel).where(ScoringModel.workspace_id == actor.workspace_id, ScoringModel.id == model_id)
    row = await session.scalar(statement.with_for_update() if lock else statement)
    if row is None:
        raise NotFound(f"Scoring model {model_id} not found")
    return row


async def _type_code(session: AsyncSession, entity_type_id: uuid.UUID) -> str:
    return (await session.scalar(select(EntityType.code).where(EntityType.id == entity_type_id))) or ""


async def _next_version(session: AsyncSession, actor: Actor, entity_type_id: uuid.UUID, name: str) -> int:
    latest = await session.scalar(
        select(func.max(ScoringModel.version)).where(
            ScoringModel.workspace_id == actor.workspace_id,
            ScoringModel.entity_type_id == entity_type_id,
            ScoringModel.name == name,
        )
    )
    return (latest or 0) + 1


async def _insert(session: AsyncSession, row: ScoringModel) -> None:
    session.add(row)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:  # a concurrent create took the same version
        raise Conflict("Another version of this model was created at the same time: try again") from exc


async def create_model(session: AsyncSession, actor: Actor, data: ScoringModelCreate) -> ScoringModelRead:
    actor.ensure_can_write()
    meta = await get_type_meta(session, actor.workspace_id, data.entity_type)
    errors = ErrorCollector()
    config: dict[str, Any]
    if data.kind == "factors":
        for index, factor in enumerate(data.factors or []):
            _check_factor(meta, factor, f"factors[{index}]", errors)
        config = {"factors": [f.model_dump(mode="json") for f in data.factors or []]}
    else:
        _feature_kinds(meta, data.features or [], errors)
        config = {"features": data.features, "training": (data.training or TrainingOptions()).model_dump()}
    errors.raise_if_any("The scoring model is not valid")
    row = ScoringModel(
        workspace_id=actor.workspace_id,
        entity_type_id=meta.id,
        name=data.name,
        kind=data.kind,
        version=await _next_version(session, actor, meta.id, data.name),
        # Factors need no training: they are ready at once.
        status="trained" if data.kind == "factors" else "draft",
        config=config,
        is_active=False,
        created_at=datetime.now(UTC),
        trained_at=datetime.now(UTC) if data.kind == "factors" else None,
    )
    await _insert(session, row)
    return _read(row, meta.code)


async def get_model(session: AsyncSession, actor: Actor, model_id: uuid.UUID) -> ScoringModelRead:
    row = await _get(session, actor, model_id)
    type_code = await _type_code(session, row.entity_type_id)
    ensure_sees_type(actor, row.entity_type_id, type_code, f"Scoring model {model_id} not found")
    return _read(row, type_code)


async def list_models(session: AsyncSession, actor: Actor, *, entity_type: str | None = None) -> list[ScoringModelRead]:
    statement = (
        select(ScoringModel, EntityType.code)
        .join(EntityType, EntityType.id == ScoringModel.entity_type_id)
        .where(ScoringModel.workspace_id == actor.workspace_id)
        .order_by(EntityType.code, ScoringModel.name, ScoringModel.version)
    )
    if entity_type is not None:
        meta = await get_type_meta(session, actor.workspace_id, entity_type)
        ensure_sees_type(actor, meta.id, meta.code, f"Entity type {entity_type!r} not found")
        statement = statement.where(ScoringModel.entity_type_id == meta.id)
    rows = (await session.execute(statement)).all()
    return [_read(row, code) for row, code in rows if sees_type(actor, row.entity_type_id, code)]


async def activate_model(session: AsyncSession, actor: Actor, model_id: uuid.UUID) -> ScoringModelRead:
    """Make this version the type's one active model; new and changed elements are scored with it from now on."""
    actor.ensure_can_write()
    row = await _get(session, actor, model_id, lock=True)
    if row.status != "trained":
        raise Conflict(f"Only a trained model can be activated (this one is {row.status})")
    await session.execute(
        update(ScoringModel)
        .where(
            ScoringModel.workspace_id == actor.workspace_id,
            ScoringModel.entity_type_id == row.entity_type_id,
            ScoringModel.is_active.is_(True),
            ScoringModel.id != row.id,
        )
        .values(is_active=False)
    )
    row.is_active = True
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict("Another model of this type was activated at the same time: try again") from exc
    add_entry(session, actor, "scoring_model.activated", element_id=None, data={"model_id": str(row.id)})
    # Cached type metadata names the active model: make every process reload it.
    await bump_metadata_version(session, actor.workspace_id)
    engine = session.bind
    assert isinstance(engine, AsyncEngine)  # noqa: S101
    background.after_commit(session, partial(rescore_type, engine, actor.workspace_id, row.id))
    return _read(row, await _type_code(session, row.entity_type_id))


RESCORE_CHUNK = 1000
# A training run still `training` after this long is taken to be lost (its process stopped) and may be restarted.
TRAINING_LEASE = timedelta(minutes=30)


async def rescore_type(engine: AsyncEngine, workspace_id: uuid.UUID, model_id: uuid.UUID) -> int:
    """After an activation: give the type's existing elements their score from the new model, a chunk per
    transaction (in id order, like batch updates, so the row locks cannot deadlock). Stops if the model is
    no longer active. Returns how many elements were scored."""
    sessionmaker = make_sessionmaker(engine)
    after: uuid.UUID | None = None
    done = 0
    while True:
        async with unit_of_work(sessionmaker) as session:
            row = await session.get(ScoringModel, model_id)
            if row is None or row.workspace_id != workspace_id or not row.is_active:
                return done
            statement = select(Element).where(
                Element.workspace_id == workspace_id,
                Element.entity_type_id == row.entity_type_id,
                Element.deleted_at.is_(None),
            )
            if after is not None:
                statement = statement.where(Element.id > after)
            elements = list(
                await session.scalars(statement.order_by(Element.id).limit(RESCORE_CHUNK).with_for_update())
            )
            if not elements:
                return done
            model = compile_model(row)
            meta = await cached_type_meta(session, workspace_id, row.entity_type_id)
            scores = score_rows(model, await model_rows(session, meta, model, elements))
            changed = [{"id": e.id, "score": s} for e, s in zip(elements, scores, strict=True) if e.score != s]
            if changed:
                await session.execute(update(Element), changed)
            after, done = elements[-1].id, done + len(elements)


# --- training --------------------------------------------------------------------------------------------------


async def request_training(session: AsyncSession, actor: Actor, model_id: uuid.UUID) -> ScoringModelRead:
    """Queue a training run (202). A trained model is never changed: retraining makes its next version."""
    actor.ensure_can_write()
    row = await _get(session, actor, model_id, lock=True)
    if row.kind != "learned":
        raise Conflict("A factors model needs no training")
    now = datetime.now(UTC)
    if row.status == "training" and (row.training_started_at or now) > now - TRAINING_LEASE:
        raise Conflict("This model is being trained already")
    target = row
    if row.status == "trained":
        target = ScoringModel(
            workspace_id=row.workspace_id,
            entity_type_id=row.entity_type_id,
            name=row.name,
            kind=row.kind,
            version=await _next_version(session, actor, row.entity_type_id, row.name),
            status="training",
            config=row.config,
            is_active=False,
            created_at=now,
            training_started_at=now,
        )
        await _insert(session, target)
    else:
        target.status, target.error, target.training_started_at = "training", None, now
        await session.flush()
    engine = session.bind
    assert isinstance(engine, AsyncEngine)  # noqa: S101
    background.after_commit(session, partial(run_training, engine, actor.workspace_id, target.id))
    return _read(target, await _type_code(session, target.entity_type_id))


async def _training_data(
    session: AsyncSession, workspace_id: uuid.UUID, meta: TypeMeta
) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows and outcomes of the type's live elements that reached a success or failure stage."""
    result = await session.execute(
        select(Element, Stage.semantic)
        .join(Stage, Stage.id == Element.stage_id)
        .where(
            Element.workspace_id == workspace_id,
            Element.entity_type_id == meta.id,
            Element.deleted_at.is_(None),
            Stage.semantic.in_([StageSemantic.success, StageSemantic.failure]),
        )
        .order_by(Element.created_at, Element.title, Element.id)  # a stable order: the split is reproducible
    )
    rows, labels = [], []
    for element, semantic in result.all():
        rows.append(element_row(element))
        labels.append(1 if semantic == StageSemantic.success else 0)
    return rows, labels


async def run_training(engine: AsyncEngine, workspace_id: uuid.UUID, model_id: uuid.UUID) -> None:
    """The training job: read the outcomes, fit off the event loop, store the model and its metrics."""
    sessionmaker = make_sessionmaker(engine)
    try:
        async with unit_of_work(sessionmaker) as session:
            row = await session.get(ScoringModel, model_id)
            if row is None or row.workspace_id != workspace_id or row.status != "training":
                return
            meta = await get_type_meta_by_id(session, workspace_id, row.entity_type_id)
            errors = ErrorCollector()
            features = _feature_kinds(meta, row.config["features"], errors)
            if errors.errors:
                raise learned.TrainingError("; ".join(f"{e.field}: {e.message}" for e in errors.errors))
            options = TrainingOptions.model_validate(row.config.get("training") or {})
            wanted = frozenset(code for code, _ in features if code in history.HISTORY_FEATURES) - set(meta.fields)
            groups = None
            if wanted:
                snapshots = await history.training_snapshots(session, meta, element_row, wanted)
                rows, labels, groups = snapshots.rows, snapshots.labels, snapshots.groups
            else:
                rows, labels = await _training_data(session, workspace_id, meta)
        trained = await asyncio.to_thread(
            learned.train,
            rows,
            labels,
            features,
            holdout_fraction=options.holdout_fraction,
            l2=options.l2,
            bins=options.bins,
            min_category_count=options.min_category_count,
            seed=options.seed,
            algorithm=options.algorithm,
            tree_options=TreeOptions(
                num_leaves=options.num_leaves,
                learning_rate=options.learning_rate,
                max_trees=options.max_trees,
                seed=options.seed,
            ),
            groups=groups,
            baseline_feature="stage_code" if "stage_code" in wanted else None,
        )
        params = trained.params | ({"history_features": sorted(wanted)} if wanted else {})
        await _finish(sessionmaker, model_id, status="trained", params=params, metrics=trained.metrics)
    except learned.TrainingError as exc:
        await _finish(sessionmaker, model_id, status="failed", error=str(exc))
    except Exception as exc:
        logger.exception("training scoring model %s failed", model_id)
        await _finish(sessionmaker, model_id, status="failed", error=f"internal error: {type(exc).__name__}")


async def _finish(sessionmaker: Any, model_id: uuid.UUID, *, status: str, **values: Any) -> None:
    async with unit_of_work(sessionmaker) as session:
        await session.execute(
            update(ScoringModel)
            .where(ScoringModel.id == model_id)
            .values(status=status, trained_at=datetime.now(UTC) if status == "trained" else None, **values)
        )


# --- scoring ---------------------------------------------------------------------------------------------------


async def score_element(
    session: AsyncSession, actor: Actor, element_id: uuid.UUID, *, model_id: uuid.UUID | None = None
) -> ScoreResult:
    """Score one element with the type's active model (or a given trained one), store the score, explain it."""
    actor.ensure_can_write()
    element = await element_service.load_element_row(session, actor, element_id, lock=True, action="update")
    if model_id is not None:
        row = await _get(session, actor, model_id)
        if row.entity_type_id != element.entity_type_id:
            raise Invalid("The model scores another entity type", errors=[FieldError("model_id", "of another type")])
        if row.status != "trained":
            raise Conflict(f"The model is not trained (it is {row.status})")
    else:
        row_or_none = await session.scalar(
            select(ScoringModel).where(
                ScoringModel.workspace_id == actor.workspace_id,
                ScoringModel.entity_type_id == element.entity_type_id,
                ScoringModel.is_active.is_(True),
            )
        )
        if row_or_none is None:
            raise Conflict("The element's entity type has no active scoring model")
        row = row_or_none
    model = compile_model(row)
    meta = await cached_type_meta(session, actor.workspace_id, element.entity_type_id)
    result = score_row(model, (await model_rows(session, meta, model, [element]))[0])
    previous = element.score
    element.score = result.score
    await session.flush()
    data = {
        "score": result.score,
        "previous": previous,
        "model_id": str(row.id),
        "version": row.version,
        "explanation": _top(result.explanation),
    }
    add_entry(session, actor, "scored", element_id=element.id, data=data)
    record_event(
        session,
        actor.workspace_id,
        "element.scored",
        entity_type_id=element.entity_type_id,
        element_id=element.id,
        payload={"element_id": str(element.id), **data},
    )
    return result


def _top(explanation: list[Contribution], count: int = 5) -> list[dict[str, Any]]:
    """The strongest reasons, for the timeline (the full list is in the response)."""
    return [c.model_dump(mode="json") for c in explanation[:count]]


# --- deal close probability ------------------------------------------------------------------------------------

CLOSE_PROBABILITY_CHUNK = 1000


async def _close_probabilities(
    session: AsyncSession, actor: Actor, elements: list[Element], now: datetime, *, explain: bool
) -> list[CloseProbabilityRead]:
    """Each element's probability of reaching a success stage (1 or 0 once closed) from its type's active learned
    model, at `now`; elements whose type has no such model are left out."""
    by_type: dict[uuid.UUID, list[Element]] = {}
    for element in elements:
        by_type.setdefault(element.entity_type_id, []).append(element)
    out: list[CloseProbabilityRead] = []
    for type_id, members in by_type.items():
        meta = await cached_type_meta(session, actor.workspace_id, type_id)
        model = await load_model(session, meta.active_scoring_model_id) if meta.active_scoring_model_id else None
        learned_model = model if model is not None and model.predictor is not None else None
        open_members = []
        for element in members:
            stage = meta.stages.get(element.stage_id) if element.stage_id else None
            if stage is not None and stage.semantic != StageSemantic.process:
                won = stage.semantic == StageSemantic.success
                out.append(
                    CloseProbabilityRead(
                        element_id=element.id,
                        probability=1.0 if won else 0.0,
                        stage_code=stage.code,
                        closed=True,
                        computed_at=now,
                    )
                )
            elif learned_model is not None:
                open_members.append(element)
        if learned_model is None or not open_members:
            continue
        assert learned_model.predictor is not None  # noqa: S101
        rows = await model_rows(session, meta, learned_model, open_members, now=now)
        probabilities = learned_model.predictor.proba(rows)
        for element, row, probability in zip(open_members, rows, probabilities, strict=True):
            read = CloseProbabilityRead(
                element_id=element.id,
                probability=round(float(probability), 6),
                stage_code=row.get("stage_code") if "stage_code" in row else _stage_code(meta, element),
                closed=False,
                model_id=learned_model.id,
                version=learned_model.version,
                algorithm=(learned_model.params or {}).get("algorithm"),
                computed_at=now,
            )
            if explain:
                _, baseline, parts = learned_model.predictor.explain(row)
                read.baseline = round(baseline, 6)
                read.explanation = [Contribution(feature=f, value=v, contribution=round(c, 6)) for f, v, c in parts]
            out.append(read)
    return out


def _stage_code(meta: TypeMeta, element: Element) -> str | None:
    stage = meta.stages.get(element.stage_id) if element.stage_id else None
    return stage.code if stage else None


async def close_probability(
    session: AsyncSession, actor: Actor, element_ids: Sequence[uuid.UUID], *, now: datetime | None = None
) -> dict[uuid.UUID, float]:
    """For the weighted forecast: each element's probability of reaching a success stage, read-only (no timeline
    entry). 1.0 / 0.0 for elements already in a success / failure stage; an open element is scored by its type's
    active learned model (with its stage history as of `now`). Left out: elements that are missing, deleted or not
    readable by the actor, and open elements whose type has no active learned model."""
    now = now or datetime.now(UTC)
    wanted = list(dict.fromkeys(element_ids))
    out: dict[uuid.UUID, float] = {}
    for start in range(0, len(wanted), CLOSE_PROBABILITY_CHUNK):
        chunk = wanted[start : start + CLOSE_PROBABILITY_CHUNK]
        rows = await session.scalars(
            select(Element).where(
                Element.workspace_id == actor.workspace_id, Element.id.in_(chunk), Element.deleted_at.is_(None)
            )
        )
        readable = []
        for element in rows:
            meta = await cached_type_meta(session, actor.workspace_id, element.entity_type_id)
            if sees_type(actor, meta.id, meta.code) and actor.on(meta).may(
                "read", element.pipeline_id, element.assigned_to, element.created_by
            ):
                readable.append(element)
        for read in await _close_probabilities(session, actor, readable, now, explain=False):
            out[read.element_id] = read.probability
    return out


async def explain_close_probability(
    session: AsyncSession, actor: Actor, element_id: uuid.UUID, *, now: datetime | None = None
) -> CloseProbabilityRead:
    """Compute one element's close probability now, explain it feature by feature, and write it on the element's
    timeline (`close_probability`)."""
    actor.ensure_can_write()
    element = await element_service.load_element_row(session, actor, element_id, action="update")
    if element.deleted_at is not None:
        raise NotFound(f"Element {element_id} not found")
    now = now or datetime.now(UTC)
    found = await _close_probabilities(session, actor, [element], now, explain=True)
    if not found:
        raise Conflict("The element's entity type has no active learned scoring model to estimate it with")
    read = found[0]
    data = read.model_dump(mode="json", exclude={"element_id", "explanation", "computed_at"})
    add_entry(
        session, actor, "close_probability", element_id=element.id, data=data | {"explanation": _top(read.explanation)}
    )
    await session.flush()
    return read


# --- scheduled retraining --------------------------------------------------------------------------------------

# A retrained version replaces the active one unless its hold-out ROC AUC is worse by more than this.
AUC_TOLERANCE = 0.01


async def retrain_active_models(
    engine: AsyncEngine,
    *,
    workspace_id: uuid.UUID | None = None,
    model_ids: list[uuid.UUID] | None = None,
    activate: bool = True,
) -> list[dict[str, Any]]:
    """Retrain every active learned model (or those of `model_ids`): each gets a new version, which becomes the
    active one when it trained and its hold-out ROC AUC is not clearly worse."""
    sessionmaker = make_sessionmaker(engine)
    started: list[tuple[ScoringModel, uuid.UUID]] = []
    async with unit_of_work(sessionmaker) as session:
        statement = select(ScoringModel).where(ScoringModel.is_active.is_(True), ScoringModel.kind == "learned")
        if workspace_id is not None:
            statement = statement.where(ScoringModel.workspace_id == workspace_id)
        if model_ids is not None:
            statement = statement.where(ScoringModel.id.in_(model_ids))
        for row in list(await session.scalars(statement)):
            queued = await request_training(session, system_actor(row.workspace_id), row.id)
            started.append((row, queued.id))
    await background.drain()
    report = []
    for old, new_id in started:
        actor = system_actor(old.workspace_id)
        async with unit_of_work(sessionmaker) as session:
            new = await _get(session, actor, new_id)
            old_auc = (old.metrics or {}).get("roc_auc") or 0.0
            new_auc = (new.metrics or {}).get("roc_auc")
            better = new.status == "trained" and new_auc is not None and new_auc >= old_auc - AUC_TOLERANCE
            if activate and better:
                await activate_model(session, actor, new.id)
            report.append(
                {
                    "model": old.name,
                    "workspace_id": str(old.workspace_id),
                    "from_version": old.version,
                    "to_version": new.version,
                    "status": new.status,
                    "roc_auc": [old_auc, new_auc],
                    "activated": bool(activate and better),
                    "error": new.error,
                }
            )
    await background.drain()
    return report


async def models_due_for_retraining(session: AsyncSession, now: datetime | None = None) -> list[uuid.UUID]:
    """Active learned models whose `training.retrain_every_hours` has passed since their newest version's training
    started (a failed retrain counts, so a failing model is retried once per period, not on every tick) and that have no
    training run going on."""
    now = now or datetime.now(UTC)
    active = list(
        await session.scalars(
            select(ScoringModel).where(
                ScoringModel.is_active.is_(True),
                ScoringModel.kind == "learned",
                ScoringModel.config["training"]["retrain_every_hours"].is_not(None),
            )
        )
    )
    due = []
    for row in active:
        hours = (row.config.get("training") or {}).get("retrain_every_hours")
        if not hours:
            continue
        # When the newest version's training started (a draft trained late counts from then, not its creation).
        newest = await session.scalar(
            select(func.max(func.coalesce(ScoringModel.training_started_at, ScoringModel.created_at))).where(
                ScoringModel.workspace_id == row.workspace_id,
                ScoringModel.entity_type_id == row.entity_type_id,
                ScoringModel.name == row.name,
            )
        )
        training = await session.scalar(
            select(func.count()).where(
                ScoringModel.workspace_id == row.workspace_id,
                ScoringModel.entity_type_id == row.entity_type_id,
                ScoringModel.name == row.name,
                ScoringModel.status == "training",
                ScoringModel.training_started_at > now - TRAINING_LEASE,
            )
        )
        if not training and newest is not None and newest <= now - timedelta(hours=float(hours)):
            due.append(row.id)
    return due


async def retrain_due_models(engine: AsyncEngine, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """The worker's scheduled retraining: retrain (and activate when no worse) the models that ask for it."""
    async with unit_of_work(make_sessionmaker(engine)) as session:
        due = await models_due_for_retraining(session, now)
    if not due:
        return []
    return await retrain_active_models(engine, model_ids=due)
