"""Request triage in GraphQL (`triageConfig`, `setTriageConfig`, `trainTriage`, `triageElement`): thin resolvers
over app/triage, as the REST endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, TypeAlias

import strawberry
from strawberry.scalars import JSON

from app.api.graphql.context import Info
from app.api.graphql.errors import ErrorTypes, mutate, parse
from app.triage import service
from app.triage.schemas import (
    TriageConfigRead,
    TriageConfigWrite,
    TriageElementRequest,
    TriageExample,
    TriageLabel,
    TriageResultRead,
    TriageTrainRequest,
)


@strawberry.type(description="An entity type's triage: the fields it reads and writes, and its trained model")
class TriageConfig:
    entity_type: str
    text_fields: list[str]
    category_field: str
    urgency_field: str
    status: str = strawberry.field(description="untrained, trained or failed")
    encoder: str | None = strawberry.field(description="embeddings (all-MiniLM-L6-v2) or tfidf, once trained")
    embeddings_available: bool
    metrics: JSON | None = strawberry.field(description="Hold-out accuracy and macro-F1 per label, timings, steps")
    error: str | None
    trained_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_read(cls, read: TriageConfigRead) -> TriageConfig:
        return cls(
            entity_type=read.entity_type,
            text_fields=read.text_fields,
            category_field=read.category_field,
            urgency_field=read.urgency_field,
            status=read.status,
            encoder=read.encoder,
            embeddings_available=read.embeddings_available,
            metrics=JSON(read.metrics.model_dump(mode="json")) if read.metrics else None,
            error=read.error,
            trained_at=read.trained_at,
            updated_at=read.updated_at,
        )


@strawberry.type(description="A term of the text and how much it weighs for the chosen value (TF-IDF models)")
class TriageTermWeight:
    term: str
    weight: float


@strawberry.type
class TriageLabelResult:
    field: str
    value: str
    probability: float
    probabilities: JSON = strawberry.field(description="Every value's probability")
    terms: list[TriageTermWeight]

    @classmethod
    def from_read(cls, read: TriageLabel) -> TriageLabelResult:
        return cls(
            field=read.field,
            value=read.value,
            probability=read.probability,
            probabilities=JSON(read.probabilities),
            terms=[TriageTermWeight(term=t.term, weight=t.weight) for t in read.terms],
        )


@strawberry.type(description="A request like this one (that you may read)")
class TriageNeighbour:
    element_id: uuid.UUID
    title: str
    similarity: float
    category: str | None
    urgency: str | None

    @classmethod
    def from_read(cls, read: TriageExample) -> TriageNeighbour:
        return cls(**read.model_dump())


@strawberry.type(description="A triage decision, explained; it is on the element's timeline")
class TriageOutcome:
    element_id: uuid.UUID
    encoder: str
    category: TriageLabelResult
    urgency: TriageLabelResult
    nearest_examples: list[TriageNeighbour]
    similar_solved: list[TriageNeighbour]
    applied: bool
    text_truncated: bool

    @classmethod
    def from_read(cls, read: TriageResultRead) -> TriageOutcome:
        return cls(
            element_id=read.element_id,
            encoder=read.encoder,
            category=TriageLabelResult.from_read(read.category),
            urgency=TriageLabelResult.from_read(read.urgency),
            nearest_examples=[TriageNeighbour.from_read(e) for e in read.nearest_examples],
            similar_solved=[TriageNeighbour.from_read(e) for e in read.similar_solved],
            applied=read.applied,
            text_truncated=read.text_truncated,
        )


@strawberry.input
class TriageConfigInput:
    text_fields: list[str]
    category_field: str
    urgency_field: str


TriageConfigPayload: TypeAlias = Annotated[TriageConfig | ErrorTypes, strawberry.union("TriageConfigPayload")]
TriageOutcomePayload: TypeAlias = Annotated[TriageOutcome | ErrorTypes, strawberry.union("TriageOutcomePayload")]


@strawberry.type
class TriageQuery:
    @strawberry.field(description="An entity type's triage configuration and model metrics")
    async def triage_config(self, info: Info, entity_type: str) -> TriageConfig:
        return TriageConfig.from_read(await service.get_config(info.context.session, info.context.who, entity_type))


@strawberry.type
class TriageMutation:
    @strawberry.mutation(description="Set the text fields and the category and urgency enum fields of a type's triage")
    async def set_triage_config(self, info: Info, entity_type: str, input: TriageConfigInput) -> TriageConfigPayload:
        async def call() -> TriageConfig:
            data = parse(TriageConfigWrite, {k: getattr(input, k) for k in TriageConfigWrite.model_fields})
            read = await service.put_config(info.context.session, info.context.who, entity_type, data)
            return TriageConfig.from_read(read)

        return await mutate(info, call)

    @strawberry.mutation(
        description="Learn a type's triage from its labelled elements (encoder: auto, embeddings, tfidf)"
    )
    async def train_triage(
        self, info: Info, entity_type: str, encoder: str = "auto", max_examples: int | None = None
    ) -> TriageConfigPayload:
        async def call() -> TriageConfig:
            body: dict[str, Any] = {"encoder": encoder}
            if max_examples is not None:
                body["max_examples"] = max_examples
            data = parse(TriageTrainRequest, body)
            return TriageConfig.from_read(
                await service.train(info.context.session, info.context.who, entity_type, data)
            )

        return await mutate(info, call)

    @strawberry.mutation(
        description="Classify an element's request: category and urgency, explained, with similar solved requests; "
        "written on its timeline (`apply`: the fields are set too)"
    )
    async def triage_element(
        self, info: Info, element_id: uuid.UUID, apply: bool = False, similar: int = 5
    ) -> TriageOutcomePayload:
        async def call() -> TriageOutcome:
            data = parse(TriageElementRequest, {"apply": apply, "similar": similar})
            read = await service.triage_element(info.context.session, info.context.who, element_id, data)
            return TriageOutcome.from_read(read)

        return await mutate(info, call)
