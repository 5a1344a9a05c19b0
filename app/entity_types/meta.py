"""A type's metadata in one object: the type, its fields (with options) and its pipelines and stages.

Element services, the query compiler and the adapters read this instead of querying per element.
"""

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.entity_types.fields import FieldKind, FieldSpec, kind_of
from app.entity_types.models import EntityType, Field, FieldOption
from app.entity_types.schemas import EntityTypeSettings
from app.errors import NotFound
from app.pipelines.models import Pipeline, Stage
from app.scoring.models import ScoringModel


@dataclass
class FieldMeta:
    row: Field
    options: list[FieldOption]
    target_type_code: str | None = None
    index_state: str = "none"

    # Cached: a TypeMeta is a read-only snapshot, and these run once per value on the element hot paths.
    @cached_property
    def kind(self) -> FieldKind:
        return kind_of(self.row.type)

    # Plain copies of the row's columns the per-value loops read: an ORM attribute costs a descriptor call each time.
    @cached_property
    def field_id(self) -> uuid.UUID:
        return self.row.id

    @cached_property
    def multiple(self) -> bool:
        return bool(self.row.multiple)

    @cached_property
    def spec(self) -> FieldSpec:
        return FieldSpec(
            code=self.row.code,
            type=self.row.type,
            validation=self.row.validation,
            options=frozenset(option.value for option in self.options),
        )


@dataclass
class TypeMeta:
    entity_type: EntityType
    fields: dict[str, FieldMeta] = field(default_factory=dict)
    pipelines: dict[uuid.UUID, Pipeline] = field(default_factory=dict)
    stages: dict[uuid.UUID, Stage] = field(default_factory=dict)
    # The type's active scoring model (activation bumps the metadata version, so cached metas stay right).
    active_scoring_model_id: uuid.UUID | None = None
    # Statements compiled for this snapshot of the type (app.readmodel.compiler): they die with it.
    compiled: OrderedDict[Any, Any] = field(default_factory=OrderedDict, repr=False, compare=False)
    # Fields a reader may not see: left out of `fields` (so they cannot be filtered or sorted on) and of `values`.
    hidden: frozenset[str] = frozenset()

    @property
    def id(self) -> uuid.UUID:
        return self.entity_type.id

    def without(self, hidden: frozenset[str]) -> "TypeMeta":
        """This snapshot as seen by someone who may not see `hidden` (cached with the snapshot)."""
        if not hidden:
            return self
        key = ("hidden", hidden)
        view = self.compiled.get(key)
        if view is None:
            view = replace(
                self,
                fields={code: f for code, f in self.fields.items() if code not in hidden},
                compiled=OrderedDict(),
                hidden=hidden | self.hidden,
            )
            self.compiled[key] = view
        return view

    @property
    def code(self) -> str:
        return self.entity_type.code

    @cached_property
    def settings(self) -> EntityTypeSettings:
        return EntityTypeSettings.model_validate(self.entity_type.settings)

    @property
    def fields_by_id(self) -> dict[uuid.UUID, FieldMeta]:
        return {meta.row.id: meta for meta in self.fields.values()}

    def default_pipeline(self) -> Pipeline | None:
        return next((p for p in self.pipelines.values() if p.is_default), None)

    def stages_of(self, pipeline_id: uuid.UUID) -> list[Stage]:
        """A pipeline's stages in board order (a new list: callers may change it)."""
        return list(self._stage_order.get(pipeline_id, ()))

    @cached_property
    def _stage_order(self) -> dict[uuid.UUID, tuple[Stage, ...]]:
        ordered = sorted(self.stages.values(), key=lambda s: (s.sort, s.code))
        return {pipeline: tuple(s for s in ordered if s.pipeline_id == pipeline) for pipeline in self.pipelines}


def _id_or_none(ref: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(ref)
    except ValueError:
        return None


async def get_entity_type(session: AsyncSession, workspace_id: uuid.UUID, ref: str) -> EntityType:
    """Find a type by its id or its code, within the workspace."""
    type_id = _id_or_none(ref)
    match = EntityType.code == ref if type_id is None else or_(EntityType.id == type_id, EntityType.code == ref)
    entity_type = await session.scalar(select(EntityType).where(EntityType.workspace_id == workspace_id, match))
    if entity_type is None:
        raise NotFound(f"Entity type {ref!r} not found")
    return entity_type


async def load_type_meta(session: AsyncSession, entity_type: EntityType) -> TypeMeta:
    fields = list(
        await session.scalars(
            select(Field).where(Field.entity_type_id == entity_type.id).order_by(Field.sort, Field.created_at)
        )
    )
    options: dict[uuid.UUID, list[FieldOption]] = {}
    target_codes: dict[uuid.UUID, str] = {}
    if fields:
        field_ids = [f.id for f in fields]
        for option in await session.scalars(
            select(FieldOption).where(FieldOption.field_id.in_(field_ids)).order_by(FieldOption.sort)
        ):
            options.setdefault(option.field_id, []).append(option)
        target_ids = {f.target_type_id for f in fields if f.target_type_id}
        if target_ids:
            rows = await session.execute(select(EntityType.id, EntityType.code).where(EntityType.id.in_(target_ids)))
            target_codes = {row.id: row.code for row in rows}
    index_states = await read_model_index_states(session, entity_type.id)
    meta = TypeMeta(entity_type=entity_type)
    for f in fields:
        meta.fields[f.code] = FieldMeta(
            row=f,
            options=options.get(f.id, []),
            target_type_code=target_codes.get(f.target_type_id),  # type: ignore[arg-type]
            index_state=index_states.get(f.id, "none"),
        )
    pipelines = list(
        await session.scalars(
            select(Pipeline)
            .where(Pipeline.entity_type_id == entity_type.id)
            .order_by(Pipeline.sort, Pipeline.created_at)
        )
    )
    meta.pipelines = {p.id: p for p in pipelines}
    if pipelines:
        stages = await session.scalars(select(Stage).where(Stage.pipeline_id.in_(list(meta.pipelines))))
        meta.stages = {s.id: s for s in stages}
    meta.active_scoring_model_id = await session.scalar(
        select(ScoringModel.id).where(ScoringModel.entity_type_id == entity_type.id, ScoringModel.is_active.is_(True))
    )
    return meta


async def read_model_index_states(session: AsyncSession, entity_type_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = await session.execute(
        text("SELECT field_id, index_state FROM read_model_fields WHERE entity_type_id = :id"), {"id": entity_type_id}
    )
    return {row.field_id: row.index_state for row in rows}


async def get_type_meta(session: AsyncSession, workspace_id: uuid.UUID, ref: str) -> TypeMeta:
    return await load_type_meta(session, await get_entity_type(session, workspace_id, ref))


async def get_type_meta_by_id(session: AsyncSession, workspace_id: uuid.UUID, type_id: uuid.UUID) -> TypeMeta:
    return await get_type_meta(session, workspace_id, str(type_id))
