import uuid

from pydantic import BaseModel, Field


class CounterValues(BaseModel):
    new_elements: int = Field(description="Assigned to me, in the first stage of their pipeline, not deleted")
    overdue_elements: int = Field(description="Assigned to me, not deleted, longer in their stage than its time limit")
    overdue_tasks: int = Field(description="Open tasks assigned to me whose due time has passed")


class TypeCounters(CounterValues):
    entity_type_id: uuid.UUID
    entity_type: str = Field(description="The entity type's code")
    title: str


class MyCounters(BaseModel):
    user_id: uuid.UUID
    types: list[TypeCounters] = Field(description="Every entity type I may read, in the order of their codes")
    other_overdue_tasks: int = Field(
        description="Overdue tasks of mine about no element, or about an element of a type I may not read"
    )
    total: CounterValues = Field(description="The sums over `types`, `other_overdue_tasks` included")


class CounterDrift(BaseModel):
    """A person's counters of one type that the repair found wrong: what was stored and what it is now."""

    user_id: uuid.UUID
    entity_type_id: uuid.UUID | None = Field(description="null: tasks about no element")
    stored: CounterValues
    recounted: CounterValues


class RecountResult(BaseModel):
    user_id: uuid.UUID | None = Field(description="The one person recounted, or null for the whole workspace")
    drift: list[CounterDrift] = Field(description="The counters that were wrong (at most 100 are listed)")
    drift_count: int
