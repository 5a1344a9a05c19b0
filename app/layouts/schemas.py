import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.elements.schemas import ElementRead

MAX_SECTIONS = 50
MAX_SECTION_FIELDS = 500
MAX_HIDDEN = 500
MAX_LAYOUTS_PER_TYPE = 1000

LayoutName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
SectionTitle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
SectionCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
FieldCode = Annotated[str, StringConstraints(min_length=1, max_length=63)]

SystemFieldType = Literal["string", "pipeline", "stage", "user", "money", "date", "datetime", "integer"]


class SystemField(BaseModel):
    title: str
    type: SystemFieldType
    # The type's feature flag the field depends on (it is left out of the card while the flag is off).
    flag: str | None = None


# The element's system fields a card can show, keyed by their name in the element's JSON (ElementRead), in the order
# of a generated card: the head before the custom fields, the tail (timestamps) after them.
SYSTEM_HEAD: dict[str, SystemField] = {
    "title": SystemField(title="Title", type="string"),
    "pipeline_id": SystemField(title="Pipeline", type="pipeline", flag="pipelines_enabled"),
    "stage_id": SystemField(title="Stage", type="stage", flag="stages_enabled"),
    "assigned_to": SystemField(title="Responsible", type="user"),
    "amount": SystemField(title="Amount", type="money"),
    "currency": SystemField(title="Currency", type="string"),
    "source": SystemField(title="Source", type="string", flag="source_enabled"),
    "begin_date": SystemField(title="Begin date", type="date", flag="begin_close_dates_enabled"),
    "close_date": SystemField(title="Close date", type="date", flag="begin_close_dates_enabled"),
    "score": SystemField(title="Score", type="integer"),
}
SYSTEM_TAIL: dict[str, SystemField] = {
    "created_at": SystemField(title="Created", type="datetime"),
    "updated_at": SystemField(title="Updated", type="datetime"),
    "moved_at": SystemField(title="Moved", type="datetime"),
}
SYSTEM_FIELDS: dict[str, SystemField] = {**SYSTEM_HEAD, **SYSTEM_TAIL}
# A card field is one of the element's fields: a rename in the element schema must not leave the cards behind.
assert set(SYSTEM_FIELDS) <= set(ElementRead.model_fields)  # noqa: S101


class LayoutSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: SectionCode = Field(examples=["main"])
    title: SectionTitle = Field(examples=["Main"])
    fields: list[FieldCode] = Field(
        default_factory=list,
        max_length=MAX_SECTION_FIELDS,
        description="Field codes in card order: the type's custom fields and the system fields (`title`, `stage_id`, "
        "`pipeline_id`, `assigned_to`, `amount`, `currency`, `source`, `begin_date`, `close_date`, `score`, "
        "`created_at`, `updated_at`, `moved_at`)",
        examples=[["title", "stage_id", "amount"]],
    )
    default: bool = Field(
        default=False,
        description="Fields placed nowhere (e.g. added after the layout was saved) show here; without one marked, "
        "in the first section",
    )


class LayoutCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: LayoutName = Field(examples=["Sales card"])
    pipeline_id: uuid.UUID | None = Field(default=None, description="Only for elements of this pipeline")
    role_id: uuid.UUID | None = Field(default=None, description="Only for people (and keys) holding this role")
    sections: list[LayoutSection] = Field(min_length=1, max_length=MAX_SECTIONS)
    hidden: list[FieldCode] = Field(
        default_factory=list,
        max_length=MAX_HIDDEN,
        description="Fields kept off the card (they stay in the API: a layout is presentation only)",
    )


class LayoutUpdate(BaseModel):
    """What to change; lists given replace the stored ones, an explicit null pipeline or role widens the scope."""

    model_config = ConfigDict(extra="forbid")

    name: LayoutName | None = None
    pipeline_id: uuid.UUID | None = None
    role_id: uuid.UUID | None = None
    sections: list[LayoutSection] | None = Field(default=None, min_length=1, max_length=MAX_SECTIONS)
    hidden: list[FieldCode] | None = Field(default=None, max_length=MAX_HIDDEN)


class LayoutSectionRead(BaseModel):
    code: str
    title: str
    fields: list[str]
    default: bool


class LayoutRead(BaseModel):
    id: uuid.UUID
    entity_type: str
    name: str
    pipeline_id: uuid.UUID | None
    role_id: uuid.UUID | None
    sections: list[LayoutSectionRead] = Field(description="As saved, without the fields deleted since")
    hidden: list[str]
    created_at: datetime
    updated_at: datetime


class LayoutList(BaseModel):
    items: list[LayoutRead]


class CardField(BaseModel):
    code: str
    title: str = Field(description="The custom field's label, or the system field's name")
    type: str = Field(
        description="A custom field's type, or for a system field: string, pipeline, stage, user, money, date, "
        "datetime, integer"
    )
    system: bool


class CardSection(BaseModel):
    code: str
    title: str
    fields: list[CardField]


class CardRead(BaseModel):
    """A type's card as the caller sees it: the most specific layout (pipeline and role, pipeline, role, the type's)
    or a generated one, with the fields added since in its default section and without the deleted, the hidden ones
    and those the caller's roles hide. A section left without fields is left out."""

    entity_type: str
    pipeline_id: uuid.UUID | None
    layout_id: uuid.UUID | None = Field(description="The layout used; null: none applies, the card is generated")
    layout_name: str
    sections: list[CardSection]


class ElementCardField(CardField):
    value: Any = Field(default=None, description="The element's value, as in the element's JSON")


class ElementCardSection(BaseModel):
    code: str
    title: str
    fields: list[ElementCardField]


class ElementCardRead(BaseModel):
    """One element's card: its type's card for the element's pipeline and the caller's roles, with its values."""

    element_id: uuid.UUID
    entity_type: str
    pipeline_id: uuid.UUID | None
    layout_id: uuid.UUID | None
    layout_name: str
    sections: list[ElementCardSection]
