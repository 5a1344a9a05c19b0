"""Card layouts in GraphQL: thin resolvers over the service REST uses. The cards they resolve to are on
`EntityType.layout(pipelineId)` and on every element's `card` (app.api.graphql.cards)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, TypeAlias

import strawberry

from app.api.graphql.context import Info
from app.api.graphql.errors import ErrorTypes, mutate, parse, plain
from app.api.graphql.types import Deleted, DeleteResult
from app.layouts import service as layout_service
from app.layouts.schemas import LayoutCreate, LayoutRead, LayoutUpdate

UNSET: Any = strawberry.UNSET


@strawberry.type
class CardLayoutSection:
    code: str
    title: str
    fields: list[str] = strawberry.field(description="Field codes in card order (custom and system fields)")
    default: bool = strawberry.field(description="Fields placed nowhere show here (else in the first section)")


@strawberry.type(description="How a type's card is laid out, for the type or one pipeline and/or one role")
class CardLayout:
    id: uuid.UUID
    entity_type: str
    name: str
    pipeline_id: uuid.UUID | None
    role_id: uuid.UUID | None
    sections: list[CardLayoutSection] = strawberry.field(description="As saved, without the fields deleted since")
    hidden: list[str] = strawberry.field(description="Fields kept off the card (they stay in the API)")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_read(cls, read: LayoutRead) -> CardLayout:
        data = read.model_dump(exclude={"sections"})
        return cls(**data, sections=[CardLayoutSection(**s.model_dump()) for s in read.sections])


@strawberry.input
class CardLayoutSectionInput:
    code: str
    title: str
    fields: list[str] = strawberry.field(default_factory=list)
    default: bool = False


@strawberry.input
class CardLayoutInput:
    name: str
    sections: list[CardLayoutSectionInput]
    pipeline_id: uuid.UUID | None = strawberry.field(default=UNSET, description="Only for elements of this pipeline")
    role_id: uuid.UUID | None = strawberry.field(default=UNSET, description="Only for holders of this role")
    hidden: list[str] | None = strawberry.field(default=UNSET, description="Fields kept off the card")


@strawberry.input(description="What to change; lists given replace the stored ones, a null pipeline or role widens")
class CardLayoutPatch:
    name: str | None = UNSET
    pipeline_id: uuid.UUID | None = UNSET
    role_id: uuid.UUID | None = UNSET
    sections: list[CardLayoutSectionInput] | None = UNSET
    hidden: list[str] | None = UNSET


CardLayoutResult: TypeAlias = Annotated[CardLayout | ErrorTypes, strawberry.union("CardLayoutResult")]


@strawberry.type
class LayoutsQuery:
    @strawberry.field(description="The card layouts of a type (code or id), oldest first")
    async def card_layouts(self, info: Info, type: str) -> list[CardLayout]:
        rows = await layout_service.list_layouts(info.context.session, info.context.who, type)
        return [CardLayout.from_read(r) for r in rows]

    @strawberry.field
    async def card_layout(self, info: Info, type: str, id: uuid.UUID) -> CardLayout:
        return CardLayout.from_read(await layout_service.get_layout(info.context.session, info.context.who, type, id))


@strawberry.type
class LayoutsMutation:
    @strawberry.mutation(description="One layout per type, pipeline and role; unknown or repeated fields are refused")
    async def create_card_layout(self, info: Info, type: str, input: CardLayoutInput) -> CardLayoutResult:
        async def run() -> CardLayout:
            data = parse(LayoutCreate, plain(input))
            return CardLayout.from_read(
                await layout_service.create_layout(info.context.session, info.context.who, type, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def update_card_layout(
        self, info: Info, type: str, id: uuid.UUID, input: CardLayoutPatch
    ) -> CardLayoutResult:
        async def run() -> CardLayout:
            data = parse(LayoutUpdate, plain(input))
            return CardLayout.from_read(
                await layout_service.update_layout(info.context.session, info.context.who, type, id, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def delete_card_layout(self, info: Info, type: str, id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await layout_service.delete_layout(info.context.session, info.context.who, type, id)
            return Deleted(ref=str(id))

        return await mutate(info, run)
