"""Best time to call in GraphQL: `bestCallTime(id, …)`, the same answer as `GET /elements/{id}/best-call-time`."""

from __future__ import annotations

import uuid

import strawberry
from strawberry.experimental.pydantic import type as pydantic_type
from strawberry.scalars import JSON

from app.api.graphql.context import Info
from app.calltime import schemas as s
from app.calltime import service
from app.errors import FieldError, Invalid


@pydantic_type(model=s.CallLevelEvidence, all_fields=True)
class CallLevelEvidence:
    pass


@pydantic_type(model=s.CallSlotExplanation, all_fields=True)
class CallSlotExplanation:
    pass


@pydantic_type(model=s.CallSlot, all_fields=True)
class CallSlot:
    pass


@pydantic_type(model=s.CallHistorySize, all_fields=True)
class CallHistorySize:
    pass


@pydantic_type(model=s.BestCallTimeRead, name="BestCallTime")
class BestCallTime:
    element_id: strawberry.auto
    timezone: strawberry.auto
    timezone_source: str
    assignee_id: strawberry.auto
    segment_fields: strawberry.auto
    segment_values: JSON
    calls: strawberry.auto
    slots: strawberry.auto
    computed_at: strawberry.auto


@strawberry.type
class CallTimeQuery:
    @strawberry.field(
        description="The next hours to call an element's contact, best first, explained (REST: GET "
        "/elements/{id}/best-call-time); `segment`: field codes that define similar contacts"
    )
    async def best_call_time(
        self, info: Info, id: uuid.UUID, slots: int = 5, days: int = 7, segment: list[str] | None = None
    ) -> BestCallTime:
        errors = []
        if not 1 <= slots <= s.MAX_SLOTS:
            errors.append(FieldError("slots", f"between 1 and {s.MAX_SLOTS}"))
        if not 1 <= days <= s.MAX_DAYS:
            errors.append(FieldError("days", f"between 1 and {s.MAX_DAYS}"))
        if errors:
            raise Invalid("The arguments are not valid", errors=errors)
        read = await service.best_call_time(
            info.context.session, info.context.who, id, slots=slots, days=days, segment=list(segment or [])
        )
        return BestCallTime.from_pydantic(read)
