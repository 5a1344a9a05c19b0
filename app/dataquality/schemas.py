import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.elements.schemas import ElementRead

MAX_EXAMPLES = 20
MAX_GROUPS = 100
MAX_MERGED = 20
MAX_FIELD_CHOICES = 300

RuleName = Literal["required", "min", "max", "max_length", "option", "pattern"]
DuplicateReason = Literal["email", "phone", "title", "similar_title"]


class FieldFill(BaseModel):
    field: str = Field(description="A custom field's code or a system field's name")
    system: bool
    type: str = Field(description="The field's type (system fields: the type of their column)")
    required: bool
    filled: int = Field(description="Elements with a value (blank text, an empty list and null count as empty)")
    fill_rate: float = Field(description="filled / total, 0 when the type has no elements")


class BreakExample(BaseModel):
    element_id: uuid.UUID
    value: Any = Field(description="The stored value, as the API shows it")
    message: str = Field(description="What a write of this value would be answered today")


class RuleBreak(BaseModel):
    field: str
    rule: RuleName
    detail: str = Field(description="The rule as it is today, e.g. `min 0` or `options: a, b`")
    count: int = Field(description="Elements whose stored value breaks the rule")
    examples: list[BreakExample] = Field(description="The oldest few, at most `limits.examples_per_rule`")
    complete: bool = Field(
        default=True,
        description="false: a pattern checked on the first `limits.pattern_values_checked` distinct values only, "
        "so `count` is a lower bound",
    )


class DuplicateGroup(BaseModel):
    reason: DuplicateReason
    key: str | None = Field(description="The normalised e-mail, phone or title they share (null: similar titles)")
    size: int = Field(description="Elements in the group")
    element_ids: list[uuid.UUID] = Field(description="Oldest first, at most `limits.ids_per_group`")


class DuplicateCount(BaseModel):
    reason: DuplicateReason
    groups: int = Field(description="Every group found for this reason (the list shows the largest ones)")


class ReportLimits(BaseModel):
    examples_per_rule: int
    groups_per_reason: int
    ids_per_group: int
    duplicates_window: int = Field(description="Equal keys are looked for among this many newest elements")
    pattern_values_checked: int = Field(description="Distinct values per field a pattern is checked on, at most")
    similar_titles_window: int | None = Field(
        description="Similar titles (trigram similarity) are looked for among this many newest elements; null when "
        "the server has no pg_trgm (only equal normalised titles are found then)"
    )
    similar_titles_threshold: float


class QualityReport(BaseModel):
    entity_type: str
    total: int = Field(description="Live elements of the type you may read: every number below is about them")
    fields: list[FieldFill]
    rule_breaks: list[RuleBreak] = Field(description="Stored values today's field rules refuse, per field and rule")
    duplicates: list[DuplicateGroup] = Field(description="Likely duplicates, largest groups first per reason")
    duplicate_counts: list[DuplicateCount]
    duplicates_complete: bool = Field(
        description="false: the type has more elements than `limits.duplicates_window`; older ones were not compared"
    )
    limits: ReportLimits
    generated_at: datetime


class MergeRequest(BaseModel):
    """Merge duplicates into one survivor (the element of the path): its values win, its empty fields are filled
    from the merged elements in their order, unless `fields` names the element a field is taken from."""

    model_config = ConfigDict(extra="forbid")

    merged_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=MAX_MERGED, description="The elements merged into the survivor, then deleted"
    )
    fields: dict[str, uuid.UUID] = Field(
        default_factory=dict,
        max_length=MAX_FIELD_CHOICES,
        description="A custom field code or system field (title, assigned_to, amount, currency, source, begin_date, "
        "close_date) -> the element (the survivor or a merged one) whose value it takes, empty or not",
    )
    fill_empty: bool = Field(default=True, description="Fill the survivor's empty fields from the merged elements")
    version: int | None = Field(default=None, description="The survivor's expected version; a stale one gets 412")

    @model_validator(mode="after")
    def _distinct(self) -> "MergeRequest":
        if len(set(self.merged_ids)) != len(self.merged_ids):
            raise ValueError("merged_ids holds an element twice")
        return self


class TakenValue(BaseModel):
    field: str
    from_id: uuid.UUID = Field(description="The merged element the value came from")
    value: Any


class MergeResult(BaseModel):
    survivor: ElementRead
    merged_ids: list[uuid.UUID]
    taken: list[TakenValue] = Field(description="The survivor's fields that changed, and where from")
    links_moved: int = Field(description="Links of the merged elements now the survivor's")
    links_dropped: int = Field(description="Links that would have been the survivor's twice, or to itself")
    tasks_moved: int
    comments_moved: int
    recycle_bin: bool = Field(description="true: the merged elements are in the recycle bin; false: deleted")
