"""The generic schema: every REST capability, over the same services; the resolvers only map in and out."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app.api.graphql import inputs
from app.api.graphql.activities import ActivitiesMutation, ActivitiesQuery
from app.api.graphql.analytics import AnalyticsMutation, AnalyticsQuery
from app.api.graphql.auth import AuthMutation, AuthQuery
from app.api.graphql.automation import AutomationMutation, AutomationQuery
from app.api.graphql.calendar import CalendarMutation, CalendarQuery
from app.api.graphql.calltime import CallTimeQuery
from app.api.graphql.context import Info
from app.api.graphql.counters import CountersMutation, CountersQuery
from app.api.graphql.data_quality import DataQualityMutation, DataQualityQuery
from app.api.graphql.errors import mutate, parse, plain
from app.api.graphql.events import element_events
from app.api.graphql.files import FilesQuery
from app.api.graphql.layouts import LayoutsMutation, LayoutsQuery
from app.api.graphql.org import OrgMutation, OrgQuery
from app.api.graphql.people import PeopleMutation, PeopleQuery
from app.api.graphql.roles import RolesMutation, RolesQuery
from app.api.graphql.triage import TriageMutation, TriageQuery
from app.api.graphql.types import (
    Board,
    Deleted,
    DeleteResult,
    Element,
    ElementConnection,
    ElementList,
    ElementListResult,
    ElementResult,
    EntityType,
    EntityTypeResult,
    Field,
    FieldResult,
    Link,
    LinkResult,
    Pipeline,
    PipelineResult,
    Relation,
    RelationResult,
    Stage,
    StageList,
    StageListResult,
    StageResult,
    check_first,
    connection,
    remember_stages,
    wants_total,
)
from app.elements import board as board_service
from app.elements import service as element_service
from app.elements.board import MAX_PER_STAGE
from app.elements.schemas import ElementBatch, ElementCreate, ElementMove, ElementSearch, ElementUpdate
from app.entity_types import service as entity_type_service
from app.entity_types.schemas import EntityTypeCreate, EntityTypeUpdate, FieldCreate, FieldUpdate
from app.errors import NotFound
from app.pipelines import service as pipeline_service
from app.pipelines.schemas import PipelineCreate, PipelineUpdate, StageCreate, StageOrder, StageUpdate
from app.relations import service as relation_service
from app.relations.schemas import RelationCreate

FILTER_HELP = 'The JSON filter language: {"and": [{"field": "budget", "op": "gte", "value": 1000}, …]}'


async def list_page(
    info: Info,
    type_ref: str,
    *,
    filter: Any,
    sort: str | None,
    first: int,
    after: str | None,
    deleted: bool = False,
) -> Any:
    check_first(first)
    search = parse(
        ElementSearch,
        {
            "filter": filter,
            "sort": sort,
            "limit": first,
            "cursor": after,
            "with_total": wants_total(info),
            "deleted": deleted,
        },
    )
    page = await element_service.list_elements(info.context.session, info.context.who, type_ref, search)
    remember_stages(info, page)
    return page


def _bounds(data: dict[str, Any]) -> dict[str, Any]:
    """GraphQL's Float turns `min: 1` into 1.0; keep whole bounds whole, as REST gets them."""
    for name in ("min", "max"):
        value = data.get(name)
        if isinstance(value, float) and value.is_integer():
            data[name] = int(value)
    return data


@strawberry.type
class Query(  # theirs
    AutomationQuery,
    PeopleQuery,
    OrgQuery,
    CountersQuery,
    AuthQuery,
    RolesQuery,
    LayoutsQuery,
    CalendarQuery,
    ActivitiesQuery,
    FilesQuery,
    DataQualityQuery,
    AnalyticsQuery,
    CallTimeQuery,
    TriageQuery,
):
    @strawberry.field
    async def entity_types(self, info: Info) -> list[EntityType]:
        rows = await entity_type_service.list_entity_types(info.context.session, info.context.who)
        return [EntityType.from_row(r) for r in rows]

    @strawberry.field(description="An entity type by code or id")
    async def entity_type(self, info: Info, code: str) -> EntityType:
        return EntityType.from_row(
            await entity_type_service.get_entity_type_by_ref(info.context.session, info.context.who, code)
        )

    @strawberry.field
    async def pipeline(self, info: Info, id: uuid.UUID) -> Pipeline:
        return Pipeline.from_read(await pipeline_service.get_pipeline(info.context.session, info.context.who, id))

    @strawberry.field(description="A pipeline's kanban: each stage with its count, amount sum and first elements")
    async def board(self, info: Info, pipeline_id: uuid.UUID, per_stage: int = 20, filter: JSON | None = None) -> Board:
        check_first(per_stage, name="perStage", maximum=MAX_PER_STAGE)
        read = await board_service.get_board(
            info.context.session, info.context.who, pipeline_id, per_stage=per_stage, filter_raw=filter
        )
        return Board.from_read(read)

    @strawberry.field(description=f"Elements of one type, a page at a time. {FILTER_HELP}")
    async def elements(
        self,
        info: Info,
        type: str,
        filter: JSON | None = None,
        sort: str | None = None,
        first: int = 50,
        after: str | None = None,
        deleted: bool = False,
    ) -> ElementConnection:
        page = await list_page(info, type, filter=filter, sort=sort, first=first, after=after, deleted=deleted)
        result: ElementConnection = connection(page, after)
        return result

    @strawberry.field
    async def element(self, info: Info, id: uuid.UUID) -> Element:
        return Element.from_read(await element_service.get_element(info.context.session, info.context.who, id))

    @strawberry.field
    async def relations(self, info: Info) -> list[Relation]:
        items = await relation_service.list_relations(info.context.session, info.context.who)
        return [Relation.from_read(r) for r in items]


@strawberry.type
class Mutation(
    AutomationMutation,
    PeopleMutation,
    OrgMutation,
    CountersMutation,
    AuthMutation,
    RolesMutation,
    LayoutsMutation,
    CalendarMutation,
    ActivitiesMutation,
    DataQualityMutation,
    AnalyticsMutation,
    TriageMutation,
):
    # --- entity types and fields ---

    @strawberry.mutation
    async def create_entity_type(self, info: Info, input: inputs.EntityTypeCreateInput) -> EntityTypeResult:
        async def run() -> EntityType:
            data = parse(EntityTypeCreate, plain(input))
            row = await entity_type_service.create_entity_type(info.context.session, info.context.who, data)
            return EntityType.from_row(row)

        return await mutate(info, run)

    @strawberry.mutation
    async def update_entity_type(self, info: Info, type: str, input: inputs.EntityTypeUpdateInput) -> EntityTypeResult:
        async def run() -> EntityType:
            data = parse(EntityTypeUpdate, plain(input))
            row = await entity_type_service.update_entity_type(info.context.session, info.context.who, type, data)
            return EntityType.from_row(row)

        return await mutate(info, run)

    @strawberry.mutation
    async def delete_entity_type(self, info: Info, type: str, force: bool = False) -> DeleteResult:
        async def run() -> Deleted:
            await entity_type_service.delete_entity_type(info.context.session, info.context.who, type, force=force)
            return Deleted(ref=type)

        return await mutate(info, run)

    @strawberry.mutation
    async def create_field(self, info: Info, type: str, input: inputs.FieldCreateInput) -> FieldResult:
        async def run() -> Field:
            data = parse(FieldCreate, _bounds(plain(input)))
            return Field.from_read(
                await entity_type_service.create_field(info.context.session, info.context.who, type, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def update_field(self, info: Info, type: str, code: str, input: inputs.FieldUpdateInput) -> FieldResult:
        async def run() -> Field:
            data = parse(FieldUpdate, _bounds(plain(input)))
            return Field.from_read(
                await entity_type_service.update_field(info.context.session, info.context.who, type, code, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def delete_field(self, info: Info, type: str, code: str) -> DeleteResult:
        async def run() -> Deleted:
            await entity_type_service.delete_field(info.context.session, info.context.who, type, code)
            return Deleted(ref=code)

        return await mutate(info, run)

    # --- pipelines and stages ---

    @strawberry.mutation
    async def create_pipeline(self, info: Info, type: str, input: inputs.PipelineCreateInput) -> PipelineResult:
        async def run() -> Pipeline:
            data = parse(PipelineCreate, plain(input))
            return Pipeline.from_read(
                await pipeline_service.create_pipeline(info.context.session, info.context.who, type, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def update_pipeline(self, info: Info, id: uuid.UUID, input: inputs.PipelineUpdateInput) -> PipelineResult:
        async def run() -> Pipeline:
            data = parse(PipelineUpdate, plain(input))
            return Pipeline.from_read(
                await pipeline_service.update_pipeline(info.context.session, info.context.who, id, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def delete_pipeline(self, info: Info, id: uuid.UUID, move_to: uuid.UUID | None = None) -> DeleteResult:
        async def run() -> Deleted:
            await pipeline_service.delete_pipeline(info.context.session, info.context.who, id, move_to=move_to)
            return Deleted(ref=str(id))

        return await mutate(info, run)

    @strawberry.mutation
    async def create_stage(self, info: Info, pipeline_id: uuid.UUID, input: inputs.StageCreateInput) -> StageResult:
        async def run() -> Stage:
            data = parse(StageCreate, plain(input))
            return Stage.from_read(
                await pipeline_service.create_stage(info.context.session, info.context.who, pipeline_id, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def update_stage(self, info: Info, id: uuid.UUID, input: inputs.StageUpdateInput) -> StageResult:
        async def run() -> Stage:
            data = parse(StageUpdate, plain(input))
            return Stage.from_read(
                await pipeline_service.update_stage(info.context.session, info.context.who, id, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def delete_stage(self, info: Info, id: uuid.UUID, move_to: uuid.UUID | None = None) -> DeleteResult:
        async def run() -> Deleted:
            await pipeline_service.delete_stage(info.context.session, info.context.who, id, move_to=move_to)
            return Deleted(ref=str(id))

        return await mutate(info, run)

    @strawberry.mutation(description="Put the pipeline's stages in this order (every stage id exactly once)")
    async def reorder_stages(self, info: Info, pipeline_id: uuid.UUID, stage_ids: list[uuid.UUID]) -> StageListResult:
        async def run() -> StageList:
            data = parse(StageOrder, {"stage_ids": stage_ids})
            stages = await pipeline_service.reorder_stages(info.context.session, info.context.who, pipeline_id, data)
            return StageList(items=[Stage.from_read(s) for s in stages])

        return await mutate(info, run)

    # --- elements ---

    @strawberry.mutation
    async def create_element(self, info: Info, type: str, input: inputs.ElementCreateInput) -> ElementResult:
        async def run() -> Element:
            data = parse(ElementCreate, plain(input))
            return Element.from_read(
                await element_service.create_element(info.context.session, info.context.who, type, data)
            )

        return await mutate(info, run)

    @strawberry.mutation(description="Change the fields given; `values` is merged. A stale `version` is a Conflict")
    async def update_element(
        self, info: Info, id: uuid.UUID, input: inputs.ElementUpdateInput, version: int | None = None
    ) -> ElementResult:
        async def run() -> Element:
            data = parse(ElementUpdate, {**plain(input), "version": version})
            return Element.from_read(
                await element_service.update_element(info.context.session, info.context.who, id, data)
            )

        return await mutate(info, run)

    @strawberry.mutation(description="Move to a stage (by id or code), optionally of another pipeline")
    async def move_element(
        self,
        info: Info,
        id: uuid.UUID,
        stage_id: uuid.UUID | None = None,
        stage_code: str | None = None,
        pipeline_id: uuid.UUID | None = None,
        version: int | None = None,
    ) -> ElementResult:
        async def run() -> Element:
            data = parse(
                ElementMove,
                {"stage_id": stage_id, "stage_code": stage_code, "pipeline_id": pipeline_id, "version": version},
            )
            return Element.from_read(
                await element_service.move_element(info.context.session, info.context.who, id, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def delete_element(self, info: Info, id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await element_service.delete_element(info.context.session, info.context.who, id)
            return Deleted(ref=str(id))

        return await mutate(info, run)

    @strawberry.mutation
    async def restore_element(self, info: Info, id: uuid.UUID) -> ElementResult:
        async def run() -> Element:
            return Element.from_read(await element_service.restore_element(info.context.session, info.context.who, id))

        return await mutate(info, run)

    @strawberry.mutation(description="Up to 1000 creates or updates of one type, all or nothing")
    async def batch_elements(self, info: Info, type: str, items: list[inputs.BatchItemInput]) -> ElementListResult:
        async def run() -> ElementList:
            data = parse(ElementBatch, {"items": plain(items)})
            created = await element_service.batch(info.context.session, info.context.who, type, data)
            return ElementList(items=[Element.from_read(e) for e in created])

        return await mutate(info, run)

    # --- relations and links ---

    @strawberry.mutation
    async def create_relation(self, info: Info, parent_type: str, child_type: str) -> RelationResult:
        async def run() -> Relation:
            data = parse(RelationCreate, {"parent_type": parent_type, "child_type": child_type})
            return Relation.from_read(
                await relation_service.create_relation(info.context.session, info.context.who, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def delete_relation(self, info: Info, id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await relation_service.delete_relation(info.context.session, info.context.who, id)
            return Deleted(ref=str(id))

        return await mutate(info, run)

    @strawberry.mutation
    async def link_elements(self, info: Info, parent_id: uuid.UUID, child_id: uuid.UUID) -> LinkResult:
        async def run() -> Link:
            return Link.from_read(
                await relation_service.link(info.context.session, info.context.who, parent_id, child_id)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def unlink_elements(self, info: Info, parent_id: uuid.UUID, child_id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await relation_service.unlink(info.context.session, info.context.who, parent_id, child_id)
            return Deleted(ref=str(child_id))

        return await mutate(info, run)


@strawberry.type
class ElementEvent:
    event_id: uuid.UUID
    event_type: str = strawberry.field(description="element.created, element.updated, element.moved, element.deleted…")
    element_id: uuid.UUID | None
    entity_type: str | None
    payload: JSON
    created_at: datetime

    @strawberry.field(
        description="The element as it is now, null once deleted for good (its own fields only: no nested relations)"
    )
    async def element(self, info: Info) -> Element | None:
        if self.element_id is None:
            return None
        async with info.context.sessionmaker() as session:
            try:
                read = await element_service.get_element(session, info.context.who, self.element_id)
            except NotFound:
                return None
        return Element.from_read(read)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Element events of the workspace, optionally of one type or pipeline")
    async def element_events(
        self, info: Info, type: str | None = None, pipeline_id: uuid.UUID | None = None
    ) -> AsyncGenerator[ElementEvent, None]:
        async for message in element_events(info.context, type_ref=type, pipeline_id=pipeline_id):
            yield ElementEvent(
                event_id=uuid.UUID(message["event_id"]),
                event_type=message["event_type"],
                element_id=uuid.UUID(message["element_id"]) if message["element_id"] else None,
                entity_type=message["payload"].get("entity_type"),
                payload=JSON(message["payload"]),
                created_at=datetime.fromisoformat(message["created_at"]),
            )
