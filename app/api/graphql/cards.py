"""The card a layout resolves to, as GraphQL types: on `EntityType.layout(pipelineId)` and on every element's `card`
(generic and typed), so a frontend renders any type's card without code per type."""

from __future__ import annotations

import uuid

import strawberry
from strawberry.scalars import JSON

from app.layouts.schemas import CardRead, ElementCardRead


@strawberry.type(description="A field on a card")
class CardField:
    code: str = strawberry.field(description="A custom field's code, or a system field's name in the element's JSON")
    title: str
    type: str = strawberry.field(
        description="A custom field's type, or for a system field: string, pipeline, stage, user, money, date, "
        "datetime, integer"
    )
    system: bool


@strawberry.type
class CardSection:
    code: str
    title: str
    fields: list[CardField]


@strawberry.type(description="A type's card as you see it: its sections in order, each with its fields in order")
class Card:
    entity_type: str
    pipeline_id: uuid.UUID | None
    layout_id: uuid.UUID | None = strawberry.field(description="null: no layout applies, the card is generated")
    layout_name: str
    sections: list[CardSection]

    @classmethod
    def from_read(cls, read: CardRead) -> Card:
        return cls(
            entity_type=read.entity_type,
            pipeline_id=read.pipeline_id,
            layout_id=read.layout_id,
            layout_name=read.layout_name,
            sections=[
                CardSection(code=s.code, title=s.title, fields=[CardField(**f.model_dump()) for f in s.fields])
                for s in read.sections
            ],
        )


@strawberry.type(description="A field on an element's card, with the element's value")
class ElementCardField:
    code: str
    title: str
    type: str
    system: bool
    value: JSON | None = strawberry.field(description="The value as in the element's JSON (`values` or a system field)")


@strawberry.type
class ElementCardSection:
    code: str
    title: str
    fields: list[ElementCardField]


@strawberry.type(description="An element's card: its type's layout for its pipeline and your roles, with its values")
class ElementCard:
    element_id: uuid.UUID
    entity_type: str
    pipeline_id: uuid.UUID | None
    layout_id: uuid.UUID | None
    layout_name: str
    sections: list[ElementCardSection]

    @classmethod
    def from_read(cls, read: ElementCardRead) -> ElementCard:
        return cls(
            element_id=read.element_id,
            entity_type=read.entity_type,
            pipeline_id=read.pipeline_id,
            layout_id=read.layout_id,
            layout_name=read.layout_name,
            sections=[
                ElementCardSection(
                    code=s.code,
                    title=s.title,
                    fields=[ElementCardField(**f.model_dump()) for f in s.fields],
                )
                for s in read.sections
            ],
        )
