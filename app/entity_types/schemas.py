import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.entity_types.fields import FIELD_TYPES
from app.kit.types import SortPosition

CODE_PATTERN = r"^[a-z][a-z0-9_]{1,62}$"
FieldType = Literal[
    "string",
    "text",
    "integer",
    "decimal",
    "money",
    "boolean",
    "date",
    "datetime",
    "enum",
    "email",
    "phone",
    "url",
    "user",
    "reference",
    "file",
]
assert set(FieldType.__args__) == set(FIELD_TYPES)  # type: ignore[attr-defined]  # noqa: S101
IndexState = Literal["none", "building", "ready", "failed"]
MIME_PATTERN = re.compile(r"^(\*/\*|[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/(\*|[a-z0-9][a-z0-9!#$&^_.+-]{0,126}))$")
MAX_MIME_TYPES = 50


def _mime_pattern(value: str) -> str:
    lowered = value.strip().lower()
    if not MIME_PATTERN.match(lowered):
        raise ValueError("must be a MIME type (`application/pdf`), a family (`image/*`) or `*/*`")
    return lowered


MimeTypePattern = Annotated[str, Field(max_length=200, examples=["image/*"]), AfterValidator(_mime_pattern)]
FILE_LIMITS_HELP = "File fields: the largest file a value may name, in bytes (uploads are capped by FILES_MAX_BYTES)"
MIME_HELP = "File fields: the MIME types a value's files may have (`image/*` for a family); empty or absent: any"


class EntityTypeSettings(BaseModel):
    pipelines_enabled: bool = False
    stages_enabled: bool = True
    automation_enabled: bool = True
    recycle_bin_enabled: bool = True
    observers_enabled: bool = False
    begin_close_dates_enabled: bool = False
    client_enabled: bool = False
    source_enabled: bool = False
    products_enabled: bool = False
    # The seed's "access on pipeline create": roles get a new pipeline as they have the type; off, it starts closed.
    open_new_pipelines: bool = True


class EntityTypeSettingsPatch(BaseModel):
    """Feature flags to change; the ones left out keep their value (or the preset's)."""

    model_config = ConfigDict(extra="forbid")

    pipelines_enabled: bool | None = None
    stages_enabled: bool | None = None
    automation_enabled: bool | None = None
    recycle_bin_enabled: bool | None = None
    observers_enabled: bool | None = None
    begin_close_dates_enabled: bool | None = None
    client_enabled: bool | None = None
    source_enabled: bool | None = None
    products_enabled: bool | None = None
    open_new_pipelines: bool | None = None


class EntityTypeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=CODE_PATTERN, examples=["dishwasher"])
    title: str = Field(min_length=1, max_length=200)
    preset: Literal["blank", "list", "full"] = "blank"
    settings: EntityTypeSettingsPatch | None = None


class EntityTypeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    settings: EntityTypeSettingsPatch | None = None


class EntityTypeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    title: str
    settings: EntityTypeSettings
    created_at: datetime
    updated_at: datetime


class EntityTypeList(BaseModel):
    items: list[EntityTypeRead]


class FieldOptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, max_length=100)
    label: str | None = Field(default=None, max_length=200)


class FieldOptionRead(BaseModel):
    value: str
    label: str


class FieldCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=CODE_PATTERN, examples=["budget"])
    label: str | None = Field(default=None, max_length=200)
    type: FieldType
    required: bool = False
    multiple: bool = False
    default: Any = None
    options: list[FieldOptionIn] | None = Field(default=None, max_length=500)
    min: int | float | None = None
    max: int | float | None = None
    max_length: int | None = Field(default=None, ge=1, le=100_000)
    pattern: str | None = Field(default=None, max_length=500)
    target_type: str | None = Field(default=None, description="Entity type (code or id) a reference points to")
    sort: SortPosition | None = None
    indexed: bool = Field(
        default=False, description="Text fields: index the values for contains/icontains (other types always are)"
    )
    max_size_bytes: int | None = Field(default=None, ge=1, le=10**12, description=FILE_LIMITS_HELP)
    allowed_mime_types: list[MimeTypePattern] | None = Field(
        default=None, max_length=MAX_MIME_TYPES, description=MIME_HELP
    )


class FieldUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, min_length=1, max_length=200)
    type: FieldType | None = None
    required: bool | None = None
    multiple: bool | None = None
    default: Any = None
    options: list[FieldOptionIn] | None = Field(default=None, max_length=500)
    min: int | float | None = None
    max: int | float | None = None
    max_length: int | None = Field(default=None, ge=1, le=100_000)
    pattern: str | None = Field(default=None, max_length=500)
    target_type: str | None = None
    sort: SortPosition | None = None
    indexed: bool | None = None
    max_size_bytes: int | None = Field(default=None, ge=1, le=10**12, description=FILE_LIMITS_HELP)
    allowed_mime_types: list[MimeTypePattern] | None = Field(
        default=None, max_length=MAX_MIME_TYPES, description=MIME_HELP
    )


class FieldRead(BaseModel):
    id: uuid.UUID
    code: str
    label: str
    type: FieldType
    required: bool
    multiple: bool
    default: Any = None
    options: list[FieldOptionRead] | None = None
    min: int | float | None = None
    max: int | float | None = None
    max_length: int | None = None
    pattern: str | None = None
    target_type: str | None = None
    sort: int
    indexed: bool = False
    index_state: IndexState = Field(
        default="none", description="The field's read-model index: none, building (concurrently), ready or failed"
    )
    max_size_bytes: int | None = None
    allowed_mime_types: list[str] | None = None


class FieldList(BaseModel):
    items: list[FieldRead]
