"""Activities and the element's timeline feed in GraphQL: thin resolvers over the same services as REST."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, TypeAlias

import strawberry
from strawberry.scalars import JSON

from app.activities import service as activity_service
from app.activities.models import ActivityDirection as DirectionEnum
from app.activities.models import ActivityKind as KindEnum
from app.activities.models import ActivityStatus as StatusEnum
from app.activities.models import CallOutcome as OutcomeEnum
from app.activities.schemas import MAX_PAGE, ActivityComplete, ActivityCreate, ActivityRead, ActivityUpdate
from app.api.graphql.context import Info
from app.api.graphql.errors import ErrorTypes, mutate, parse, plain
from app.api.graphql.types import Deleted, DeleteResult, PageInfo, TimelineEntry, User, check_first, load_user
from app.timeline.schemas import TimelineEntryRead, TimelinePage

UNSET: Any = strawberry.UNSET
ActivityKind = strawberry.enum(KindEnum, name="ActivityKind")
ActivityDirection = strawberry.enum(DirectionEnum, name="ActivityDirection")
ActivityStatus = strawberry.enum(StatusEnum, name="ActivityStatus")
CallOutcome = strawberry.enum(OutcomeEnum, name="CallOutcome")


@strawberry.type(description="Someone taking part: a user of the workspace (`userId`), or an outside contact")
class ActivityParticipant:
    user_id: uuid.UUID | None
    name: str | None
    phone: str | None
    email: str | None

    @strawberry.field
    async def user(self, info: Info) -> User | None:
        return await load_user(info, self.user_id)


@strawberry.type(description="A call, meeting, e-mail or message bound to one or more elements")
class Activity:
    id: uuid.UUID
    kind: ActivityKind  # type: ignore[valid-type]
    direction: ActivityDirection | None  # type: ignore[valid-type]
    subject: str
    description: str | None
    starts_at: datetime
    ends_at: datetime | None
    duration_seconds: int | None = strawberry.field(description="From startsAt and endsAt when both are known")
    status: ActivityStatus  # type: ignore[valid-type]
    completed_at: datetime | None
    outcome: CallOutcome | None = strawberry.field(description="A completed call's")  # type: ignore[valid-type]
    responsible_user_id: uuid.UUID | None
    participants: list[ActivityParticipant]
    payload: JSON
    element_ids: list[uuid.UUID] = strawberry.field(description="The elements it is bound to (those you may read)")
    created_by: uuid.UUID | None
    run_id: uuid.UUID | None = strawberry.field(description="The automation run that logged it, if one did")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_read(cls, read: ActivityRead) -> Activity:
        data = read.model_dump(exclude={"participants", "payload"})
        participants = [ActivityParticipant(**p.model_dump()) for p in read.participants]
        return cls(**data, participants=participants, payload=JSON(read.payload))

    @strawberry.field(description="The user responsible for it")
    async def responsible(self, info: Info) -> User | None:
        return await load_user(info, self.responsible_user_id)


@strawberry.type(description="A page of activities, newest start first; pass `pageInfo.endCursor` as `after`")
class ActivityConnection:
    nodes: list[Activity]
    page_info: PageInfo


@strawberry.input(description="A user of the workspace (`userId`), or an outside contact (name, phone, e-mail)")
class ActivityParticipantInput:
    user_id: uuid.UUID | None = UNSET
    name: str | None = UNSET
    phone: str | None = UNSET
    email: str | None = UNSET


@strawberry.input(description="`status` is completed unless planned is given; an outcome is a completed call's")
class ActivityCreateInput:
    kind: ActivityKind  # type: ignore[valid-type]
    element_ids: list[uuid.UUID]
    direction: ActivityDirection | None = UNSET  # type: ignore[valid-type]
    subject: str | None = UNSET
    description: str | None = UNSET
    starts_at: datetime | None = UNSET
    ends_at: datetime | None = UNSET
    duration_seconds: int | None = UNSET
    status: ActivityStatus | None = UNSET  # type: ignore[valid-type]
    outcome: CallOutcome | None = UNSET  # type: ignore[valid-type]
    responsible_user_id: uuid.UUID | None = UNSET
    participants: list[ActivityParticipantInput] | None = UNSET
    payload: JSON | None = UNSET


@strawberry.input(description="Only the fields given change; `elementIds` replaces the list")
class ActivityUpdateInput:
    kind: ActivityKind | None = UNSET  # type: ignore[valid-type]
    element_ids: list[uuid.UUID] | None = UNSET
    direction: ActivityDirection | None = UNSET  # type: ignore[valid-type]
    subject: str | None = UNSET
    description: str | None = UNSET
    starts_at: datetime | None = UNSET
    ends_at: datetime | None = UNSET
    duration_seconds: int | None = UNSET
    outcome: CallOutcome | None = UNSET  # type: ignore[valid-type]
    responsible_user_id: uuid.UUID | None = UNSET
    participants: list[ActivityParticipantInput] | None = UNSET
    payload: JSON | None = UNSET


@strawberry.input
class ActivityCompleteInput:
    outcome: CallOutcome | None = UNSET  # type: ignore[valid-type]
    ends_at: datetime | None = UNSET
    duration_seconds: int | None = UNSET


ActivityResult: TypeAlias = Annotated[Activity | ErrorTypes, strawberry.union("ActivityResult")]


def _create_data(input: ActivityCreateInput) -> dict[str, Any]:
    """Nulls mean "not given" where the REST model has a default."""
    data: dict[str, Any] = plain(input)
    return {k: v for k, v in data.items() if v is not None or k not in ("subject", "status", "participants", "payload")}


# --- the timeline feed -----------------------------------------------------------------------------------------------


@strawberry.type(description="One item of an element's feed: a timeline entry or an activity")
class TimelineItem:
    type: str = strawberry.field(description="`entry` or `activity`")
    kind: str = strawberry.field(description="The entry's kind (`moved`, `comment`, …) or the activity's (`call`, …)")
    at: datetime = strawberry.field(description="The entry's time, or the activity's start")
    entry: TimelineEntry | None
    activity: Activity | None


@strawberry.type(description="A page of an element's feed, newest first; pass `pageInfo.endCursor` as `after`")
class TimelineConnection:
    nodes: list[TimelineItem]
    page_info: PageInfo


def timeline_connection(page: TimelinePage, after: str | None) -> TimelineConnection:
    nodes = [
        TimelineItem(
            type=item.type,
            kind=item.kind,
            at=item.at,
            entry=_entry(item.entry) if item.entry else None,
            activity=Activity.from_read(item.activity) if item.activity else None,
        )
        for item in page.items
    ]
    return TimelineConnection(nodes=nodes, page_info=_page_info(page.next_cursor, after))


def _entry(read: TimelineEntryRead) -> TimelineEntry:
    return TimelineEntry(
        id=read.id, kind=read.kind, actor_id=read.actor_id, data=JSON(read.data), created_at=read.created_at
    )


def _page_info(next_cursor: str | None, after: str | None) -> PageInfo:
    return PageInfo(
        has_next_page=next_cursor is not None,
        has_previous_page=after is not None,
        start_cursor=None,
        end_cursor=next_cursor,
    )


# --- the root fields -------------------------------------------------------------------------------------------------


@strawberry.type
class ActivitiesQuery:
    @strawberry.field(description="Activities you may read, newest start first, a page at a time")
    async def activities(
        self,
        info: Info,
        element_id: uuid.UUID | None = None,
        kinds: list[ActivityKind] | None = None,  # type: ignore[valid-type]
        responsible_id: uuid.UUID | None = None,
        status: ActivityStatus | None = None,  # type: ignore[valid-type]
        since: Annotated[datetime | None, strawberry.argument(name="from", description="Start, inclusive")] = None,
        until: Annotated[datetime | None, strawberry.argument(name="to", description="Start, exclusive")] = None,
        first: int = 50,
        after: str | None = None,
    ) -> ActivityConnection:
        page = await activity_service.list_activities(
            info.context.session,
            info.context.who,
            element_id=element_id,
            kinds=kinds,
            responsible_id=responsible_id,
            status=status,
            since=since,
            until=until,
            limit=check_first(first, maximum=MAX_PAGE),
            cursor=after,
        )
        return ActivityConnection(
            nodes=[Activity.from_read(a) for a in page.items], page_info=_page_info(page.next_cursor, after)
        )

    @strawberry.field
    async def activity(self, info: Info, id: uuid.UUID) -> Activity:
        return Activity.from_read(await activity_service.get_activity(info.context.session, info.context.who, id))


@strawberry.type
class ActivitiesMutation:
    @strawberry.mutation(description="Log a call, meeting, e-mail or message on one or more elements")
    async def log_activity(self, info: Info, input: ActivityCreateInput) -> ActivityResult:
        async def run() -> Activity:
            data = parse(ActivityCreate, _create_data(input))
            read = await activity_service.create_activity(info.context.session, info.context.who, data)
            return Activity.from_read(read)

        return await mutate(info, run)

    @strawberry.mutation
    async def update_activity(self, info: Info, id: uuid.UUID, input: ActivityUpdateInput) -> ActivityResult:
        async def run() -> Activity:
            data = parse(ActivityUpdate, plain(input))
            read = await activity_service.update_activity(info.context.session, info.context.who, id, data)
            return Activity.from_read(read)

        return await mutate(info, run)

    @strawberry.mutation(description="Mark a planned activity completed, with a call's outcome")
    async def complete_activity(
        self, info: Info, id: uuid.UUID, input: ActivityCompleteInput | None = None
    ) -> ActivityResult:
        async def run() -> Activity:
            data = parse(ActivityComplete, plain(input) if input is not None else {})
            read = await activity_service.complete_activity(info.context.session, info.context.who, id, data)
            return Activity.from_read(read)

        return await mutate(info, run)

    @strawberry.mutation
    async def delete_activity(self, info: Info, id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await activity_service.delete_activity(info.context.session, info.context.who, id)
            return Deleted(ref=str(id))

        return await mutate(info, run)
