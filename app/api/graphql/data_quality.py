"""Data quality in GraphQL (`dataQualityReport`, `mergeElement`): thin resolvers over app/dataquality."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, TypeAlias

import strawberry
from strawberry.scalars import JSON

from app.api.graphql.context import Info
from app.api.graphql.errors import ErrorTypes, mutate, parse
from app.api.graphql.types import Element, check_first
from app.dataquality import service
from app.dataquality.schemas import MAX_EXAMPLES, MAX_GROUPS, MergeRequest, QualityReport, RuleBreak
from app.dataquality.schemas import MergeResult as MergeResultRead

UNSET: Any = strawberry.UNSET


@strawberry.type
class FieldFill:
    field: str = strawberry.field(description="A custom field's code or a system field's name")
    system: bool
    type: str
    required: bool
    filled: int = strawberry.field(description="Elements with a value (blank text and empty lists count as empty)")
    fill_rate: float


@strawberry.type
class BreakExample:
    element_id: uuid.UUID
    value: JSON | None = strawberry.field(description="The stored value, as the API shows it")
    message: str = strawberry.field(description="What a write of this value would be answered today")


@strawberry.type(description="Stored values of one field that one of today's rules refuses")
class FieldRuleBreak:
    field: str
    rule: str = strawberry.field(description="required, min, max, max_length, option or pattern")
    detail: str
    count: int
    examples: list[BreakExample]
    complete: bool = strawberry.field(description="false: a pattern checked on some distinct values only")

    @classmethod
    def from_read(cls, read: RuleBreak) -> FieldRuleBreak:
        return cls(
            field=read.field,
            rule=read.rule,
            detail=read.detail,
            count=read.count,
            examples=[BreakExample(**e.model_dump()) for e in read.examples],
            complete=read.complete,
        )


@strawberry.type
class DuplicateGroup:
    reason: str = strawberry.field(description="email, phone, title or similar_title")
    key: str | None
    size: int
    element_ids: list[uuid.UUID] = strawberry.field(description="Oldest first, the first 20")


@strawberry.type
class DuplicateCount:
    reason: str
    groups: int


@strawberry.type
class DataQualityLimits:
    examples_per_rule: int
    groups_per_reason: int
    ids_per_group: int
    duplicates_window: int
    pattern_values_checked: int
    similar_titles_window: int | None
    similar_titles_threshold: float


@strawberry.type(description="Fill rates, rule breaks and likely duplicates of the elements of a type you may read")
class DataQualityReport:
    entity_type: str
    total: int
    fields: list[FieldFill]
    rule_breaks: list[FieldRuleBreak]
    duplicates: list[DuplicateGroup]
    duplicate_counts: list[DuplicateCount]
    duplicates_complete: bool
    limits: DataQualityLimits
    generated_at: datetime

    @classmethod
    def from_read(cls, read: QualityReport) -> DataQualityReport:
        return cls(
            entity_type=read.entity_type,
            total=read.total,
            fields=[FieldFill(**f.model_dump()) for f in read.fields],
            rule_breaks=[FieldRuleBreak.from_read(b) for b in read.rule_breaks],
            duplicates=[DuplicateGroup(**d.model_dump()) for d in read.duplicates],
            duplicate_counts=[DuplicateCount(**c.model_dump()) for c in read.duplicate_counts],
            duplicates_complete=read.duplicates_complete,
            limits=DataQualityLimits(**read.limits.model_dump()),
            generated_at=read.generated_at,
        )


@strawberry.input
class MergeFieldChoice:
    field: str = strawberry.field(description="A custom field code or a system field (title, amount, …)")
    from_id: uuid.UUID = strawberry.field(description="The element (survivor or merged) whose value it takes")


@strawberry.input
class MergeElementInput:
    merged_ids: list[uuid.UUID]
    fields: list[MergeFieldChoice] | None = UNSET
    fill_empty: bool | None = UNSET
    version: int | None = UNSET


@strawberry.type
class TakenValue:
    field: str
    from_id: uuid.UUID
    value: JSON | None


@strawberry.type
class MergeElementResult:
    survivor: Element
    merged_ids: list[uuid.UUID]
    taken: list[TakenValue]
    links_moved: int
    links_dropped: int
    tasks_moved: int
    comments_moved: int
    recycle_bin: bool

    @classmethod
    def from_read(cls, read: MergeResultRead) -> MergeElementResult:
        return cls(
            survivor=Element.from_read(read.survivor),
            merged_ids=read.merged_ids,
            taken=[TakenValue(**t.model_dump()) for t in read.taken],
            links_moved=read.links_moved,
            links_dropped=read.links_dropped,
            tasks_moved=read.tasks_moved,
            comments_moved=read.comments_moved,
            recycle_bin=read.recycle_bin,
        )


MergeElementPayload: TypeAlias = Annotated[MergeElementResult | ErrorTypes, strawberry.union("MergeElementPayload")]


def _request(input: MergeElementInput) -> dict[str, Any]:
    data: dict[str, Any] = {"merged_ids": input.merged_ids}
    if input.fields:
        data["fields"] = {choice.field: choice.from_id for choice in input.fields}
    for name in ("fill_empty", "version"):
        value = getattr(input, name)
        if value is not UNSET and value is not None:
            data[name] = value
    return data


@strawberry.type
class DataQualityQuery:
    @strawberry.field(
        description="Fill rates, values today's field rules refuse and likely duplicates of one type's elements (the "
        "ones you may read; hidden fields left out)"
    )
    async def data_quality_report(
        self, info: Info, entity_type: str, examples: int = 5, groups: int = 20
    ) -> DataQualityReport:
        check_first(examples, name="examples", maximum=MAX_EXAMPLES)
        check_first(groups, name="groups", maximum=MAX_GROUPS)
        read = await service.report(
            info.context.session, info.context.who, entity_type, examples=examples, groups=groups
        )
        return DataQualityReport.from_read(read)


@strawberry.type
class DataQualityMutation:
    @strawberry.mutation(
        description="Merge duplicates into an element, all or nothing: it takes their values (chosen per field, or "
        "its empty ones filled), links, tasks and comments; they go to the recycle bin"
    )
    async def merge_element(self, info: Info, element_id: uuid.UUID, input: MergeElementInput) -> MergeElementPayload:
        async def run() -> MergeElementResult:
            data = parse(MergeRequest, _request(input))
            result = await service.merge(info.context.session, info.context.who, element_id, data)
            return MergeElementResult.from_read(result)

        return await mutate(info, run)
