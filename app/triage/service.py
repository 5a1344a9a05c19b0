"""Request triage: per entity type, a text is classified into a category and an urgency learned from the type's past
labelled elements; the decision is explained, written on the element's timeline, optionally applied, and comes with
the most similar solved requests the caller may read.

Encoding runs off the event loop (asyncio.to_thread); a compiled model is cached per process by (id, trained_at).
"""

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Text, case, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.visibility import ensure_sees_type, readable_elements
from app.auth.actor import Actor
from app.elements import service as element_service
from app.elements.meta_cache import cached_type_meta
from app.elements.models import Element
from app.elements.schemas import ElementUpdate
from app.entity_types.meta import TypeMeta, get_type_meta
from app.errors import Conflict, ErrorCollector, Forbidden, NotFound
from app.pipelines.models import Stage, StageSemantic
from app.timeline.service import add_entry
from app.triage import embeddings
from app.triage import model as triage_model
from app.triage.models import TriageModel, TriageVector
from app.triage.schemas import (
    TriageConfigRead,
    TriageConfigWrite,
    TriageElementRequest,
    TriageExample,
    TriageLabel,
    TriageMetrics,
    TriageResultRead,
    TriageTerm,
    TriageTrainRequest,
)

logger = logging.getLogger(__name__)

TEXT_FIELD_TYPES = frozenset({"string", "text"})
NEAREST = 3  # labelled examples that explain an embedding's decision
_CACHE_LIMIT = 64
_compiled: dict[tuple[uuid.UUID, datetime | None], triage_model.Compiled] = {}


def _read(row: TriageModel, meta: TypeMeta) -> TriageConfigRead:
    return TriageConfigRead(
        entity_type=meta.code,
        text_fields=row.text_fields,
        category_field=row.category_field,
        urgency_field=row.urgency_field,
        status=row.status,
        encoder=row.encoder,
        embeddings_available=embeddings.available(),
        metrics=TriageMetrics.model_validate(row.metrics) if row.metrics else None,
        error=row.error,
        trained_at=row.trained_at,
        updated_at=row.updated_at,
    )


async def _meta(session: AsyncSession, actor: Actor, type_ref: str) -> TypeMeta:
    meta = await get_type_meta(session, actor.workspace_id, type_ref)
    ensure_sees_type(actor, meta.id, meta.code, f"Entity type {type_ref!r} not found")
    return meta


async def _row(session: AsyncSession, actor: Actor, meta: TypeMeta, *, lock: bool = False) -> TriageModel | None:
    statement = select(TriageModel).where(
        TriageModel.workspace_id == actor.workspace_id, TriageModel.entity_type_id == meta.id
    )
    return await session.scalar(statement.with_for_update() if lock else statement)


def _enum_field(meta: TypeMeta, code: str, name: str, errors: ErrorCollector) -> None:
    field = meta.fields.get(code)
    if field is None:
        errors.add(name, f"unknown field {code!r} on entity type {meta.code!r}")
    elif field.row.type != "enum":
        errors.add(name, f"{code!r} is a {field.row.type} field; the {name.removesuffix('_field')} needs an enum field")
    elif field.row.multiple:
        errors.add(name, f"{code!r} holds several values; the triage field holds one")
    elif len(field.options) < 2:
        errors.add(name, f"{code!r} has fewer than two options")


def _check_config(meta: TypeMeta, data: TriageConfigWrite) -> None:
    errors = ErrorCollector()
    if len(set(data.text_fields)) != len(data.text_fields):
        errors.add("text_fields", "lists a field twice")
    for index, code in enumerate(data.text_fields):
        if code == "title":
            continue
        field = meta.fields.get(code)
        if field is None:
            errors.add(f"text_fields[{index}]", f"unknown field {code!r} on entity type {meta.code!r}")
        elif field.row.type not in TEXT_FIELD_TYPES:
            errors.add(f"text_fields[{index}]", f"{code!r} is a {field.row.type} field, not a string or text field")
    _enum_field(meta, data.category_field, "category_field", errors)
    _enum_field(meta, data.urgency_field, "urgency_field", errors)
    if data.category_field == data.urgency_field:
        errors.add("urgency_field", "the category and the urgency need two fields")
    errors.raise_if_any("The triage configuration is not valid")


async def get_config(session: AsyncSession, actor: Actor, type_ref: str) -> TriageConfigRead:
    meta = await _meta(session, actor, type_ref)
    row = await _row(session, actor, meta)
    if row is None:
        raise NotFound(f"Entity type {meta.code!r} has no triage configuration")
    return _read(row, meta)


async def put_config(session: AsyncSession, actor: Actor, type_ref: str, data: TriageConfigWrite) -> TriageConfigRead:
    """Set the fields triage reads and writes; a change of fields drops the trained model (it read other fields)."""
    actor.ensure_can_write()
    meta = await _meta(session, actor, type_ref)
    _check_config(meta, data)
    row = await _row(session, actor, meta, lock=True)
    now = datetime.now(UTC)
    if row is None:
        row = TriageModel(workspace_id=actor.workspace_id, entity_type_id=meta.id, status="untrained", created_at=now)
        session.add(row)
    changed = (row.text_fields, row.category_field, row.urgency_field) != (
        data.text_fields,
        data.category_field,
        data.urgency_field,
    )
    row.text_fields, row.category_field, row.urgency_field = data.text_fields, data.category_field, data.urgency_field
    row.updated_at = now
    if changed and row.status != "untrained":
        row.status, row.encoder, row.params, row.metrics, row.error, row.trained_at = (
            "untrained",
            None,
            None,
            None,
            None,
            None,
        )
        await session.execute(delete(TriageVector).where(TriageVector.model_id == row.id))
    await session.flush()
    add_entry(
        session, actor, "triage.configured", element_id=None, data={"entity_type": meta.code, **data.model_dump()}
    )
    return _read(row, meta)


def _text_columns(row: TriageModel) -> list[Any]:
    """Each text field, cut in SQL to what triage reads (a 100,000-character text is not carried over)."""
    columns = []
    for code in row.text_fields:
        source = Element.title if code == "title" else Element.values[code].astext
        columns.append(func.left(func.cast(source, Text), triage_model.MAX_TEXT + 1))
    return columns


def _join(parts: list[str | None]) -> str:
    return "\n".join(p for p in parts if p and p.strip())


async def _examples(
    session: AsyncSession, actor: Actor, meta: TypeMeta, row: TriageModel, limit: int
) -> tuple[list[uuid.UUID], list[str], list[str], list[str]]:
    """The newest live elements with both labels set (to current options) and some text."""
    category = Element.values[row.category_field].astext
    urgency = Element.values[row.urgency_field].astext
    result = await session.execute(
        select(Element.id, category, urgency, *_text_columns(row))
        .where(
            Element.workspace_id == actor.workspace_id,
            Element.entity_type_id == meta.id,
            Element.deleted_at.is_(None),
            category.in_([o.value for o in meta.fields[row.category_field].options]),
            urgency.in_([o.value for o in meta.fields[row.urgency_field].options]),
        )
        .order_by(Element.created_at.desc(), Element.id.desc())
        .limit(limit)
    )
    ids, texts, categories, urgencies = [], [], [], []
    for element_id, cat, urg, *parts in result.all():
        text = _join(parts)
        if text:
            ids.append(element_id)
            texts.append(text)
            categories.append(cat)
            urgencies.append(urg)
    return ids, texts, categories, urgencies


async def train(
    session: AsyncSession, actor: Actor, type_ref: str, data: TriageTrainRequest | None = None
) -> TriageConfigRead:
    """Learn from the type's labelled elements (bounded: the newest `max_examples`, texts cut to 2,000 characters),
    store the model as JSON with its hold-out metrics, and the labelled elements' vectors for similarity."""
    actor.ensure_can_write()
    options = data or TriageTrainRequest()
    meta = await _meta(session, actor, type_ref)
    row = await _row(session, actor, meta, lock=True)
    if row is None:
        raise NotFound(f"Entity type {meta.code!r} has no triage configuration: PUT it first")
    _check_config(meta, TriageConfigWrite(**{k: getattr(row, k) for k in TriageConfigWrite.model_fields}))
    try:
        encoder = triage_model.pick_encoder(options.encoder)
    except triage_model.TrainingError as exc:
        raise Conflict(f"Cannot train: {exc}") from exc
    started = time.perf_counter()
    ids, texts, categories, urgencies = await _examples(session, actor, meta, row, options.max_examples)
    progress = [f"read {len(ids)} labelled elements in {time.perf_counter() - started:.2f} s"]

    def report(message: str) -> None:
        progress.append(message)
        logger.info("triage training of %s: %s", meta.code, message)

    try:
        trained = await asyncio.to_thread(
            triage_model.train, texts, categories, urgencies, encoder=encoder, progress=report
        )
    except triage_model.TrainingError as exc:
        raise Conflict(f"Cannot train triage for {meta.code!r}: {exc}") from exc
    started = time.perf_counter()
    await session.execute(delete(TriageVector).where(TriageVector.model_id == row.id))
    rows = [
        {
            "element_id": element_id,
            "workspace_id": actor.workspace_id,
            "model_id": row.id,
            "vector": [round(float(v), 6) for v in vector],
            "category": cat,
            "urgency": urg,
        }
        for element_id, vector, cat, urg in zip(ids, trained.vectors, categories, urgencies, strict=True)
    ]
    for start in range(0, len(rows), 1000):
        await session.execute(insert(TriageVector), rows[start : start + 1000])
    progress.append(f"stored {len(rows)} vectors in {time.perf_counter() - started:.2f} s")
    now = datetime.now(UTC)
    row.status, row.encoder, row.params, row.error = "trained", encoder, trained.params, None
    row.metrics = {**trained.metrics, "progress": progress}
    row.trained_at = row.updated_at = now
    await session.flush()
    summary = {k: trained.metrics[k] for k in ("examples", "encoder")}
    summary.update({label: trained.metrics[label]["accuracy"] for label in triage_model.LABELS})
    add_entry(session, actor, "triage.trained", element_id=None, data={"entity_type": meta.code, **summary})
    return _read(row, meta)


def _compiled_model(row: TriageModel) -> triage_model.Compiled:
    key = (row.id, row.trained_at)
    compiled = _compiled.get(key)
    if compiled is None:
        if len(_compiled) >= _CACHE_LIMIT:
            _compiled.clear()
        compiled = _compiled[key] = triage_model.Compiled.from_params(row.params or {})
    return compiled


async def _neighbours(
    session: AsyncSession,
    actor: Actor,
    meta: TypeMeta,
    row: TriageModel,
    element_id: uuid.UUID,
    vector: np.ndarray,
    *,
    similar: int,
    nearest: int,
) -> tuple[list[TriageExample], list[TriageExample]]:
    """The nearest labelled examples and the most similar solved requests, among the elements the actor may read."""
    solved = or_(Stage.semantic == StageSemantic.success, Element.close_date.is_not(None))
    result = await session.execute(
        select(
            TriageVector.element_id,
            TriageVector.vector,
            TriageVector.category,
            TriageVector.urgency,
            Element.title,
            Element.values[row.category_field].astext,
            case((solved, True), else_=False),
        )
        .join(Element, Element.id == TriageVector.element_id)
        .outerjoin(Stage, Stage.id == Element.stage_id)
        .where(
            TriageVector.workspace_id == actor.workspace_id,
            TriageVector.model_id == row.id,
            Element.workspace_id == actor.workspace_id,
            Element.deleted_at.is_(None),
            Element.id != element_id,
            readable_elements(actor, [meta]),
        )
    )
    found = result.all()
    if not found:
        return [], []
    matrix = np.asarray([r[1] for r in found], dtype=np.float32)
    scores = matrix @ vector
    order = np.argsort(-scores)
    explain = [
        TriageExample(
            element_id=found[i][0],
            title=found[i][4],
            similarity=round(float(scores[i]), 4),
            category=found[i][2],
            urgency=found[i][3],
        )
        for i in order[:nearest]
    ]
    solved_rows = [i for i in order if found[i][6]][:similar]
    suggestions = [
        TriageExample(
            element_id=found[i][0], title=found[i][4], similarity=round(float(scores[i]), 4), category=found[i][5]
        )
        for i in solved_rows
    ]
    return explain, suggestions


def _label(field: str, prediction: triage_model.Prediction) -> TriageLabel:
    return TriageLabel(
        field=field,
        value=prediction.label,
        probability=prediction.probability,
        probabilities=prediction.probabilities,
        terms=[TriageTerm(**t) for t in prediction.terms],
    )


async def triage_element(
    session: AsyncSession, actor: Actor, element_id: uuid.UUID, data: TriageElementRequest | None = None
) -> TriageResultRead:
    """Classify the element's text; explain, suggest similar solved requests, write it on the timeline, and set the
    fields when `apply`."""
    options = data or TriageElementRequest()
    # It writes on the element's timeline (and sets fields with `apply`): the element's update permission decides.
    element = await element_service.load_element_row(session, actor, element_id, action="update")
    meta = await cached_type_meta(session, actor.workspace_id, element.entity_type_id)
    row = await session.scalar(
        select(TriageModel).where(TriageModel.workspace_id == actor.workspace_id, TriageModel.entity_type_id == meta.id)
    )
    if row is None or row.status != "trained" or not row.params:
        raise Conflict(f"Entity type {meta.code!r} has no trained triage model: configure and train it first")
    hidden = sorted(actor.on(meta).hidden & {*row.text_fields, row.category_field, row.urgency_field})
    if hidden:  # its answer (and the similar requests' categories) would show them
        raise Forbidden(f"Your role may not see the fields triage reads: {', '.join(hidden)}")
    if row.encoder == "embeddings" and not embeddings.available():
        raise Conflict(
            "The triage model uses embeddings, which this server lacks: install the `triage` extra or retrain"
        )
    parts = [element.title if code == "title" else element.values.get(code) for code in row.text_fields]
    full = _join([p if isinstance(p, str) else None for p in parts])
    text = triage_model.clip(full)
    compiled = _compiled_model(row)
    predictions, vector = await asyncio.to_thread(triage_model.predict, compiled, text)
    explain, similar = await _neighbours(
        session,
        actor,
        meta,
        row,
        element.id,
        vector,
        similar=options.similar,
        nearest=NEAREST if compiled.encoder.name == "embeddings" else 0,
    )
    result = TriageResultRead(
        element_id=element.id,
        encoder=compiled.encoder.name,
        category=_label(row.category_field, predictions["category"]),
        urgency=_label(row.urgency_field, predictions["urgency"]),
        nearest_examples=explain,
        similar_solved=similar,
        applied=options.apply,
        text_truncated=len(full) > len(text),
    )
    if options.apply:
        values = {row.category_field: result.category.value, row.urgency_field: result.urgency.value}
        await element_service.update_element(session, actor, element.id, ElementUpdate(values=values))
    add_entry(session, actor, "triaged", element_id=element.id, data=result.timeline())
    return result
