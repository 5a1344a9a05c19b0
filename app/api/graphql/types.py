"""The generic GraphQL types: entity types, fields, pipelines, stages, elements (with their relations), boards."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Self, TypeAlias, cast

import strawberry
from strawberry.scalars import JSON

from app.api.graphql.cards import Card, ElementCard
from app.api.graphql.context import Info
from app.api.graphql.errors import ConflictError, ErrorTypes, ForbiddenError, NotFoundError, ValidationError
from app.api.graphql.scalars import BigInt
from app.elements.board import Board as BoardRead
from app.elements.schemas import MAX_PAGE, ElementPage, ElementRead
from app.entity_types.models import EntityType as EntityTypeRow
from app.entity_types.schemas import EntityTypeSettings as SettingsModel
from app.entity_types.schemas import FieldRead
from app.errors import FieldError, Invalid, NotFound
from app.layouts import service as layout_service
from app.pipelines.models import Stage as StageRow
from app.pipelines.models import StageSemantic as SemanticEnum
from app.pipelines.schemas import TIME_LIMIT_DESCRIPTION, PipelineRead, StageRead
from app.relations.schemas import LinkRead, RelationRead
from app.timeline.models import TimelineEntry as TimelineRow
from app.timeline.schemas import TimelinePage
from app.users.models import UserTier as UserTierEnum
from app.users.schemas import UserRead

if TYPE_CHECKING:
    from app.api.graphql.activities import TimelineConnection

StageSemantic = strawberry.enum(SemanticEnum, name="StageSemantic")
UserTier = strawberry.enum(UserTierEnum, name="UserTier")
MAX_LINKED = 100


def check_first(first: int, *, name: str = "first", maximum: int = MAX_PAGE) -> int:
    if not 1 <= first <= maximum:
        raise Invalid(f"`{name}` must be between 1 and {maximum}", errors=[FieldError(name, f"1 to {maximum}")])
    return first


@strawberry.type
class EntityTypeSettings:
    pipelines_enabled: bool
    stages_enabled: bool
    automation_enabled: bool
    recycle_bin_enabled: bool
    observers_enabled: bool
    begin_close_dates_enabled: bool
    client_enabled: bool
    source_enabled: bool
    products_enabled: bool
    open_new_pipelines: bool


@strawberry.type
class FieldOption:
    value: str
    label: str


@strawberry.type
class Field:
    id: uuid.UUID
    code: str
    label: str
    type: str
    required: bool
    multiple: bool
    default: JSON | None
    options: list[FieldOption] | None
    min: float | None
    max: float | None
    max_length: int | None
    pattern: str | None
    target_type: str | None
    sort: int
    indexed: bool
    index_state: str = strawberry.field(description="The read-model index: none, building, ready or failed")
    max_size_bytes: BigInt | None = strawberry.field(default=None, description="File fields: the largest file")
    allowed_mime_types: list[str] | None = strawberry.field(
        default=None, description="File fields: the MIME types allowed (`image/*` for a family); null: any"
    )

    @classmethod
    def from_read(cls, read: FieldRead) -> Field:
        data = read.model_dump(exclude={"options"})
        options = [FieldOption(value=o.value, label=o.label) for o in read.options] if read.options else None
        return cls(**data, options=options)


@strawberry.type
class Stage:
    id: uuid.UUID
    pipeline_id: uuid.UUID
    code: str
    title: str
    semantic: StageSemantic  # type: ignore[valid-type]
    color: str | None
    sort: int
    time_limit_minutes: int | None = strawberry.field(default=None, description=TIME_LIMIT_DESCRIPTION)

    @classmethod
    def from_read(cls, read: StageRead | StageRow) -> Stage:
        if isinstance(read, StageRow):
            read = StageRead.model_validate(read)
        return cls(**read.model_dump())


@strawberry.type
class Pipeline:
    id: uuid.UUID
    entity_type: str
    title: str
    is_default: bool
    sort: int
    created_at: datetime
    stages: list[Stage]

    @classmethod
    def from_read(cls, read: PipelineRead) -> Pipeline:
        data = read.model_dump(exclude={"stages"})
        return cls(**data, stages=[Stage.from_read(s) for s in read.stages])


@strawberry.type
class EntityType:
    id: uuid.UUID
    code: str
    title: str
    settings: EntityTypeSettings
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: EntityTypeRow) -> EntityType:
        settings = EntityTypeSettings(**SettingsModel.model_validate(row.settings).model_dump())
        return cls(
            id=row.id,
            code=row.code,
            title=row.title,
            settings=settings,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field
    async def fields(self, info: Info) -> list[Field]:
        return [Field.from_read(f) for f in await info.context.loaders.fields_of_type.load(self.id) or []]

    @strawberry.field
    async def pipelines(self, info: Info) -> list[Pipeline]:
        return [Pipeline.from_read(p) for p in await info.context.loaders.pipelines_of_type.load(self.id) or []]

    @strawberry.field(
        description="The card you get for elements of the pipeline (none: the type's card for no pipeline): the most "
        "specific layout (pipeline and role, pipeline, role, the type's) or a generated one"
    )
    async def layout(self, info: Info, pipeline_id: uuid.UUID | None = None) -> Card:
        source = await info.context.loaders.card_source.load(self.code)
        if source is None:
            raise NotFound(f"Entity type {self.code!r} not found")
        return Card.from_read(layout_service.card_for(source, info.context.who, pipeline_id))


@strawberry.type(description="A user of the workspace: someone elements and tasks are assigned to")
class User:
    id: uuid.UUID
    name: str
    email: str
    tier: UserTier  # type: ignore[valid-type]
    capacity: int = strawberry.field(description="How many open elements the user can hold")
    timezone: str
    active: bool
    department_id: uuid.UUID | None
    role_ids: list[uuid.UUID]
    has_password: bool
    load: int = strawberry.field(description="Open elements (stage semantic `process`) assigned to the user")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_read(cls, read: UserRead) -> User:
        return cls(**read.model_dump())


async def load_user(info: Info, user_id: uuid.UUID | None) -> User | None:
    """A user through the request's users DataLoader (one query batch for a whole page)."""
    if user_id is None:
        return None
    read = await info.context.loaders.user.load(user_id)
    return User.from_read(read) if read else None


@strawberry.type
class TimelineEntry:
    id: int
    kind: str
    actor_id: uuid.UUID | None
    data: JSON
    created_at: datetime

    @classmethod
    def from_row(cls, row: TimelineRow) -> TimelineEntry:
        return cls(id=row.id, kind=row.kind, actor_id=row.actor_id, data=JSON(row.data), created_at=row.created_at)


@strawberry.type
class Element:
    """One element with its system fields; custom values are in `values` (the typed types expose them as fields)."""

    id: uuid.UUID
    entity_type: str
    pipeline_id: uuid.UUID | None
    stage_id: uuid.UUID | None
    stage_code: str | None
    title: str
    assigned_to: uuid.UUID | None = strawberry.field(name="assignedToId", description="The assignee's user id")
    amount: float | None
    currency: str | None
    source: str | None
    begin_date: date | None
    close_date: date | None
    score: int | None = strawberry.field(description="1–100 from the type's active scoring model (`scoreElement`)")
    values: JSON
    version: int
    created_at: datetime
    updated_at: datetime
    moved_at: datetime | None
    deleted_at: datetime | None

    @classmethod
    def from_read(cls, read: ElementRead) -> Self:
        return cls(**read.model_dump())

    @strawberry.field(name="assignedTo", description="The user the element is assigned to")
    async def assignee(self, info: Info) -> User | None:
        return await load_user(info, self.assigned_to)

    @strawberry.field(description="One custom value by field code")
    def value(self, code: str) -> JSON | None:
        values: dict[str, Any] = self.values  # type: ignore[assignment]
        return values.get(code)

    @strawberry.field
    def stage(self, info: Info) -> Stage | None:
        if self.stage_id is None:
            return None
        known: Stage | None = info.context.known_stages.get(self.stage_id)
        if known is not None:
            return known
        # graphql-core awaits what a resolver returns: only elements of unknown types pay for the DataLoader.
        return cast(Stage, self._load_stage(info))

    async def _load_stage(self, info: Info) -> Stage | None:
        read = await info.context.loaders.stage.load(self.stage_id)  # type: ignore[arg-type]
        return Stage.from_read(read) if read else None

    @strawberry.field
    async def pipeline(self, info: Info) -> Pipeline | None:
        if self.pipeline_id is None:
            return None
        read = await info.context.loaders.pipeline.load(self.pipeline_id)
        return Pipeline.from_read(read) if read else None

    @strawberry.field(description="The element's card: its type's layout for its pipeline and your roles, with values")
    async def card(self, info: Info) -> ElementCard:
        source = await info.context.loaders.card_source.load(self.entity_type)
        if source is None:
            raise NotFound(f"Element {self.id} not found")
        read = ElementRead.model_validate(self, from_attributes=True)
        return ElementCard.from_read(layout_service.element_card(source, info.context.who, read))

    @strawberry.field(description="The element's timeline: created, updated, moved…")
    async def history(self, info: Info, first: int = 100) -> list[TimelineEntry]:
        entries = await info.context.loaders.history.load((self.id, check_first(first)))
        return [TimelineEntry.from_row(e) for e in entries or []]

    @strawberry.field(
        description="The element's feed, newest first, a page at a time: its timeline entries (created, moved, "
        "comments, automation runs…) and its activities (calls, meetings, e-mails, messages); `kinds` keeps only "
        "those kinds, e.g. `call` or `moved`"
    )
    async def timeline(
        self, info: Info, kinds: list[str] | None = None, first: int = 50, after: str | None = None
    ) -> Annotated[TimelineConnection, strawberry.lazy("app.api.graphql.activities")]:
        from app.api.graphql.activities import timeline_connection  # it builds on these types

        key = (self.id, tuple(kinds) if kinds is not None else None, check_first(first), after)
        page = await info.context.loaders.feed.load(key)
        return timeline_connection(page or TimelinePage(items=[]), after)

    @strawberry.field(description="Linked child elements, optionally of one type")
    async def children(self, info: Info, type: str | None = None, first: int = MAX_LINKED) -> list[Element]:
        items = await info.context.loaders.links.load((self.id, "children", type, check_first(first)))
        return [Element.from_read(e) for e in items or []]

    @strawberry.field(description="Linked parent elements, optionally of one type")
    async def parents(self, info: Info, type: str | None = None, first: int = MAX_LINKED) -> list[Element]:
        items = await info.context.loaders.links.load((self.id, "parents", type, check_first(first)))
        return [Element.from_read(e) for e in items or []]


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class ElementEdge:
    node: Element
    cursor: str = strawberry.field(description="Pass as `after` to list what follows this edge")


@strawberry.type
class ElementConnection:
    edges: list[ElementEdge]
    page_info: PageInfo
    total_count: int | None = strawberry.field(description="Counted only when selected")


def remember_stages(info: Info, page: ElementPage) -> None:
    """The page's type's stages, for `Element.stage`."""
    known = info.context.known_stages
    for stage_id, stage in page.stages.items():
        if stage_id not in known:
            known[stage_id] = Stage.from_read(stage)


def connection(page: ElementPage, after: str | None, *, node: Any = Element, edge: Any = None, cls: Any = None) -> Any:
    """A Relay connection over one page of the element service (keyset cursors: each edge has its own)."""
    edges = [
        (edge or ElementEdge)(node=node.from_read(item), cursor=cursor)
        for item, cursor in zip(page.items, page.cursors, strict=True)
    ]
    info = PageInfo(
        has_next_page=page.next_cursor is not None,
        has_previous_page=after is not None,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )
    return (cls or ElementConnection)(edges=edges, page_info=info, total_count=page.total)


def wants_total(info: Info) -> bool:
    return any(
        sub.name == "totalCount"
        for selected in info.selected_fields
        for sub in getattr(selected, "selections", [])
        if hasattr(sub, "name")
    )


@strawberry.type
class BoardColumn:
    stage: Stage
    count: int
    amount_sum: float
    elements: list[Element]


@strawberry.type
class Board:
    pipeline_id: uuid.UUID
    entity_type: str
    stages: list[BoardColumn]

    @classmethod
    def from_read(cls, read: BoardRead) -> Board:
        return cls(
            pipeline_id=read.pipeline_id,
            entity_type=read.entity_type,
            stages=[
                BoardColumn(
                    stage=Stage.from_read(c.stage),
                    count=c.count,
                    amount_sum=c.amount_sum,
                    elements=[Element.from_read(e) for e in c.elements],
                )
                for c in read.stages
            ],
        )


@strawberry.type
class Relation:
    id: uuid.UUID
    parent_type: str
    child_type: str
    created_at: datetime

    @classmethod
    def from_read(cls, read: RelationRead) -> Relation:
        return cls(**read.model_dump())


@strawberry.type
class Link:
    parent_id: uuid.UUID
    child_id: uuid.UUID
    relation_id: uuid.UUID
    created_at: datetime

    @classmethod
    def from_read(cls, read: LinkRead) -> Link:
        return cls(**read.model_dump())


@strawberry.type
class Deleted:
    ref: str = strawberry.field(description="The id (or code) of what was deleted")


@strawberry.type
class StageList:
    items: list[Stage]


@strawberry.type
class ElementList:
    items: list[Element]


def result(name: str, *types: Any) -> Any:
    """A mutation result union: the value, or one of the error types."""
    members = (*types, ValidationError, NotFoundError, ConflictError, ForbiddenError)
    union: Any = members[0]
    for member in members[1:]:
        union = union | member
    return Annotated[union, strawberry.union(name)]


EntityTypeResult: TypeAlias = Annotated[EntityType | ErrorTypes, strawberry.union("EntityTypeResult")]
FieldResult: TypeAlias = Annotated[Field | ErrorTypes, strawberry.union("FieldResult")]
PipelineResult: TypeAlias = Annotated[Pipeline | ErrorTypes, strawberry.union("PipelineResult")]
StageResult: TypeAlias = Annotated[Stage | ErrorTypes, strawberry.union("StageResult")]
StageListResult: TypeAlias = Annotated[StageList | ErrorTypes, strawberry.union("StageListResult")]
ElementResult: TypeAlias = Annotated[Element | ErrorTypes, strawberry.union("ElementResult")]
ElementListResult: TypeAlias = Annotated[ElementList | ErrorTypes, strawberry.union("ElementListResult")]
RelationResult: TypeAlias = Annotated[Relation | ErrorTypes, strawberry.union("RelationResult")]
LinkResult: TypeAlias = Annotated[Link | ErrorTypes, strawberry.union("LinkResult")]
DeleteResult: TypeAlias = Annotated[Deleted | ErrorTypes, strawberry.union("DeleteResult")]
