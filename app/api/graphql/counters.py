"""A person's counters in GraphQL (`myCounters`) and the admins' repair (`recountCounters`), over app/counters."""

from __future__ import annotations

import uuid
from typing import Annotated, TypeAlias

import strawberry

from app.api.graphql.context import Info
from app.api.graphql.errors import ErrorTypes, mutate
from app.counters import service
from app.counters.schemas import CounterDrift as CounterDriftRead
from app.counters.schemas import CounterValues as CounterValuesRead
from app.counters.schemas import MyCounters as MyCountersRead
from app.counters.schemas import RecountResult as RecountResultRead


@strawberry.type
class CounterValues:
    new_elements: int = strawberry.field(description="Assigned to me, in the first stage of their pipeline")
    overdue_elements: int = strawberry.field(description="Assigned to me, longer in their stage than its time limit")
    overdue_tasks: int = strawberry.field(description="Open tasks assigned to me whose due time has passed")

    @classmethod
    def from_read(cls, read: CounterValuesRead) -> CounterValues:
        return cls(
            new_elements=read.new_elements, overdue_elements=read.overdue_elements, overdue_tasks=read.overdue_tasks
        )


@strawberry.type
class TypeCounters(CounterValues):
    entity_type_id: uuid.UUID
    entity_type: str = strawberry.field(description="The entity type's code")
    title: str


@strawberry.type(description="The acting person's counters, kept current by the engine (reading them scans nothing)")
class MyCounters:
    user_id: uuid.UUID
    types: list[TypeCounters] = strawberry.field(description="Every entity type I may read, by code")
    other_overdue_tasks: int = strawberry.field(
        description="Overdue tasks of mine about no element, or about an element of a type I may not read"
    )
    total: CounterValues

    @classmethod
    def from_read(cls, read: MyCountersRead) -> MyCounters:
        return cls(
            user_id=read.user_id,
            types=[TypeCounters(**t.model_dump()) for t in read.types],
            other_overdue_tasks=read.other_overdue_tasks,
            total=CounterValues.from_read(read.total),
        )


@strawberry.type(description="One person's counters of one type that the repair found wrong")
class CounterDrift:
    user_id: uuid.UUID
    entity_type_id: uuid.UUID | None = strawberry.field(description="null: tasks about no element")
    stored: CounterValues
    recounted: CounterValues

    @classmethod
    def from_read(cls, read: CounterDriftRead) -> CounterDrift:
        return cls(
            user_id=read.user_id,
            entity_type_id=read.entity_type_id,
            stored=CounterValues.from_read(read.stored),
            recounted=CounterValues.from_read(read.recounted),
        )


@strawberry.type
class RecountResult:
    user_id: uuid.UUID | None
    drift: list[CounterDrift] = strawberry.field(description="The counters that were wrong (at most 100)")
    drift_count: int

    @classmethod
    def from_read(cls, read: RecountResultRead) -> RecountResult:
        return cls(
            user_id=read.user_id, drift=[CounterDrift.from_read(d) for d in read.drift], drift_count=read.drift_count
        )


RecountResultResult: TypeAlias = Annotated[RecountResult | ErrorTypes, strawberry.union("RecountResultResult")]


@strawberry.type
class CountersQuery:
    @strawberry.field(
        description="My counters per entity type: new elements, elements past their stage's time limit, overdue "
        "tasks. A person's only: an API key gets a Forbidden error"
    )
    async def my_counters(self, info: Info) -> MyCounters:
        return MyCounters.from_read(await service.my_counters(info.context.session, info.context.who))


@strawberry.type
class CountersMutation:
    @strawberry.mutation(
        description="Admins: rewrite the workspace's counters (or one user's) from the data; lists what was wrong"
    )
    async def recount_counters(self, info: Info, user_id: uuid.UUID | None = None) -> RecountResultResult:
        async def run() -> RecountResult:
            read = await service.recount(info.context.session, info.context.who, user_id=user_id)
            return RecountResult.from_read(read)

        return await mutate(info, run)
