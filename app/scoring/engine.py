"""Applying a scoring model to elements: the compiled-model cache and the automatic scoring of writes.

A model version never changes once trained, so compiled models are cached per process by id; finding the active
model of a type is one indexed lookup per write.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.entity_types.meta import TypeMeta
from app.scoring import factors as factor_scoring
from app.scoring import history, learned
from app.scoring.models import ScoringModel
from app.scoring.schemas import Contribution, Factor, ScoreResult

# System fields a model may read, besides custom fields.
SYSTEM_FEATURES = ("title", "source", "amount", "currency")
_CACHE_LIMIT = 512


@dataclass(frozen=True)
class Compiled:
    id: uuid.UUID
    version: int
    kind: str
    factors: list[Factor] | None
    params: dict[str, Any] | None
    # The learned model ready to evaluate (coefficients or the padded forest), built once per version.
    predictor: learned.Predictor | None = None
    # The history features it reads (stage, days in stage…): computed per element when scoring.
    history: frozenset[str] = frozenset()


_cache: dict[uuid.UUID, Compiled] = {}


def compile_model(row: ScoringModel) -> Compiled:
    cached = _cache.get(row.id)
    if cached is not None:
        return cached
    compiled = Compiled(
        id=row.id,
        version=row.version,
        kind=row.kind,
        factors=factor_scoring.FACTORS.validate_python(row.config["factors"]) if row.kind == "factors" else None,
        params=row.params if row.kind == "learned" else None,
        predictor=learned.compile_params(row.params) if row.kind == "learned" and row.params else None,
        history=frozenset((row.params or {}).get("history_features") or ()),
    )
    if row.status == "trained":
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[row.id] = compiled
    return compiled


class Scorable(Protocol):
    """What scoring reads and writes of an element: an ORM row, or the plain row of a batch insert."""

    score: int | None

    @property
    def values(self) -> dict[str, Any]: ...
    @property
    def title(self) -> str | None: ...
    @property
    def source(self) -> str | None: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def amount(self) -> Any: ...


def element_row(element: Scorable) -> dict[str, Any]:
    """What a model sees of an element: its custom values and a few system fields."""
    row = dict(element.values)
    row.update(
        title=element.title or None,
        source=element.source,
        currency=element.currency,
        amount=float(element.amount) if element.amount is not None else None,
    )
    return row


async def model_rows(
    session: AsyncSession, meta: TypeMeta, model: Compiled, elements: Sequence[Any], *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """What the model reads of each element: its row, and the history features it uses at `now`."""
    rows = [element_row(e) for e in elements]
    if not model.history:
        return rows
    extra = await history.current_features(session, meta, elements, model.history, now=now)
    return [row | more for row, more in zip(rows, extra, strict=True)]


def score_row(model: Compiled, row: dict[str, Any]) -> ScoreResult:
    if model.kind == "factors":
        assert model.factors is not None  # noqa: S101
        score, explanation = factor_scoring.score(model.factors, row.get)
        return ScoreResult(score=score, model_id=model.id, version=model.version, explanation=explanation)
    assert model.predictor is not None  # noqa: S101
    probability, baseline, parts = model.predictor.explain(row)
    return ScoreResult(
        score=learned.probability_to_score(probability),
        model_id=model.id,
        version=model.version,
        probability=round(probability, 6),
        baseline=round(baseline, 6),
        explanation=[Contribution(feature=f, value=v, contribution=round(c, 6)) for f, v, c in parts],
    )


def score_rows(model: Compiled, rows: list[dict[str, Any]]) -> list[int]:
    """Scores only, vectorised for learned models (a batch of a thousand is one matrix product)."""
    if model.predictor is not None:
        return [learned.probability_to_score(float(p)) for p in model.predictor.proba(rows)]
    return [score_row(model, row).score for row in rows]


async def load_model(session: AsyncSession, model_id: uuid.UUID) -> Compiled | None:
    cached = _cache.get(model_id)
    if cached is not None:
        return cached
    row = await session.get(ScoringModel, model_id)
    return compile_model(row) if row is not None else None


async def autoscore(
    session: AsyncSession, meta: TypeMeta, elements: Sequence[Scorable], *, moved: bool = False
) -> None:
    """Score new or changed elements in place with the type's active model (no model: nothing to do). The type
    metadata names the active model and the compiled model is cached: no query once warm (a model that reads the
    stage history asks for the elements' moves). `moved`: after a stage move, which only such a model sees."""
    if not elements or meta.active_scoring_model_id is None:
        return
    model = await load_model(session, meta.active_scoring_model_id)
    if model is None or (moved and not model.history):
        return
    for element, score in zip(
        elements, score_rows(model, await model_rows(session, meta, model, elements)), strict=True
    ):
        element.score = score
