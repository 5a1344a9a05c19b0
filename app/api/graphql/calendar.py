"""The calendar in GraphQL: events, a user's merged calendar and their working hours, over app/calendar's service."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Annotated, Any, TypeAlias

import strawberry

from app.api.graphql.automation import TaskStatus
from app.api.graphql.context import Info
from app.api.graphql.errors import ErrorTypes, mutate, parse, plain
from app.api.graphql.types import Deleted, DeleteResult, User, load_user
from app.calendar import service
from app.calendar.models import EventKind
from app.calendar.schemas import CalendarItem as CalendarItemRead
from app.calendar.schemas import EventCreate, EventRead, EventUpdate, ScheduleRead, WeekSchedule
from app.calendar.schemas import UserCalendar as UserCalendarRead
from app.calendar.schemas import WorkingInterval as WorkingIntervalRead

UNSET: Any = strawberry.UNSET
CalendarEventKind = strawberry.enum(EventKind, name="CalendarEventKind")
From = Annotated[datetime, strawberry.argument(name="from", description="Inclusive")]
To = Annotated[datetime, strawberry.argument(name="to", description="Exclusive; at most 366 days after `from`")]


@strawberry.enum(name="CalendarItemKind")
class CalendarItemKind(enum.StrEnum):
    event = "event"
    task = "task"


@strawberry.type(description="A meeting, call or deadline in a user's calendar")
class CalendarEvent:
    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    description: str | None
    location: str | None
    kind: CalendarEventKind  # type: ignore[valid-type]
    all_day: bool
    starts_at: datetime = strawberry.field(description="UTC; an all-day event: local midnight of `startDate`")
    ends_at: datetime = strawberry.field(description="UTC; an all-day event: local midnight after `endDate`")
    local_starts_at: datetime = strawberry.field(description="In the event's time zone")
    local_ends_at: datetime
    start_date: date | None
    end_date: date | None = strawberry.field(description="Inclusive")
    timezone: str
    element_id: uuid.UUID | None
    attendee_ids: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_read(cls, read: EventRead) -> CalendarEvent:
        return cls(**read.model_dump())

    @strawberry.field
    async def owner(self, info: Info) -> User | None:
        return await load_user(info, self.owner_id)


@strawberry.type
class CalendarEventPage:
    items: list[CalendarEvent]
    next_cursor: str | None


@strawberry.type(description="An event, or a task due, in a user's calendar")
class CalendarItem:
    kind: CalendarItemKind
    id: uuid.UUID
    title: str
    starts_at: datetime = strawberry.field(description="UTC; a task's due time")
    ends_at: datetime
    local_starts_at: datetime = strawberry.field(description="In the calendar user's time zone")
    local_ends_at: datetime
    all_day: bool
    start_date: date | None
    end_date: date | None = strawberry.field(description="Inclusive")
    timezone: str
    event_kind: CalendarEventKind | None  # type: ignore[valid-type]
    task_status: TaskStatus | None  # type: ignore[valid-type]
    owner_id: uuid.UUID | None
    element_id: uuid.UUID | None

    @classmethod
    def from_read(cls, read: CalendarItemRead) -> CalendarItem:
        return cls(**{**read.model_dump(), "kind": CalendarItemKind(read.kind)})


@strawberry.type
class WorkingInterval:
    starts_at: datetime
    ends_at: datetime
    local_starts_at: datetime
    local_ends_at: datetime

    @classmethod
    def from_read(cls, read: WorkingIntervalRead) -> WorkingInterval:
        return cls(**read.model_dump())


@strawberry.type(description="A user's events and due tasks in a range, by start, with their working hours")
class UserCalendar:
    user_id: uuid.UUID
    timezone: str
    starts_at: datetime
    ends_at: datetime
    items: list[CalendarItem]
    truncated: bool
    working_hours: list[WorkingInterval]

    @classmethod
    def from_read(cls, read: UserCalendarRead) -> UserCalendar:
        return cls(
            user_id=read.user_id,
            timezone=read.timezone,
            starts_at=read.starts_at,
            ends_at=read.ends_at,
            items=[CalendarItem.from_read(i) for i in read.items],
            truncated=read.truncated,
            working_hours=[WorkingInterval.from_read(w) for w in read.working_hours],
        )


@strawberry.type(description='Working hours per weekday in the user\'s time zone: [["09:00", "13:00"], …]')
class WeekHours:
    mon: list[list[str]]
    tue: list[list[str]]
    wed: list[list[str]]
    thu: list[list[str]]
    fri: list[list[str]]
    sat: list[list[str]]
    sun: list[list[str]]


@strawberry.type
class UserSchedule:
    user_id: uuid.UUID
    timezone: str
    is_default: bool
    schedule: WeekHours

    @classmethod
    def from_read(cls, read: ScheduleRead) -> UserSchedule:
        return cls(
            user_id=read.user_id,
            timezone=read.timezone,
            is_default=read.is_default,
            schedule=WeekHours(**read.schedule.model_dump()),
        )


@strawberry.input(description="A day left out is a day off")
class WeekHoursInput:
    mon: list[list[str]] | None = UNSET
    tue: list[list[str]] | None = UNSET
    wed: list[list[str]] | None = UNSET
    thu: list[list[str]] | None = UNSET
    fri: list[list[str]] | None = UNSET
    sat: list[list[str]] | None = UNSET
    sun: list[list[str]] | None = UNSET


@strawberry.input(description="Timed (`startsAt`, `endsAt`) or all-day (`startDate`, optionally `endDate`)")
class CalendarEventCreateInput:
    title: str
    description: str | None = UNSET
    location: str | None = UNSET
    kind: CalendarEventKind = EventKind.meeting  # type: ignore[valid-type]
    owner_id: uuid.UUID | None = UNSET
    starts_at: datetime | None = UNSET
    ends_at: datetime | None = UNSET
    start_date: date | None = UNSET
    end_date: date | None = UNSET
    timezone: str | None = UNSET
    element_id: uuid.UUID | None = UNSET
    attendee_ids: list[uuid.UUID] | None = UNSET


@strawberry.input
class CalendarEventUpdateInput:
    title: str | None = UNSET
    description: str | None = UNSET
    location: str | None = UNSET
    kind: CalendarEventKind | None = UNSET  # type: ignore[valid-type]
    owner_id: uuid.UUID | None = UNSET
    starts_at: datetime | None = UNSET
    ends_at: datetime | None = UNSET
    start_date: date | None = UNSET
    end_date: date | None = UNSET
    timezone: str | None = UNSET
    element_id: uuid.UUID | None = UNSET
    attendee_ids: list[uuid.UUID] | None = UNSET


CalendarEventResult: TypeAlias = Annotated[CalendarEvent | ErrorTypes, strawberry.union("CalendarEventResult")]
UserScheduleResult: TypeAlias = Annotated[UserSchedule | ErrorTypes, strawberry.union("UserScheduleResult")]


def _no_nulls(data: dict[str, Any]) -> dict[str, Any]:
    """A day given as null is a day off, like one left out."""
    return {day: hours for day, hours in data.items() if hours is not None}


@strawberry.type
class CalendarQuery:
    @strawberry.field(
        description="A user's events (owned or attended) and due tasks in [from, to), by start, in UTC and their "
        "time zone, with their working hours. A time without an offset is in the user's time zone"
    )
    async def calendar(self, info: Info, user_id: uuid.UUID, since: From, until: To) -> UserCalendar:
        read = await service.user_calendar(
            info.context.session, info.context.who, user_id, starts_at=since, ends_at=until
        )
        return UserCalendar.from_read(read)

    @strawberry.field(description="The events you may see, by start; optionally a user's, an element's, in a range")
    async def calendar_events(
        self,
        info: Info,
        user_id: uuid.UUID | None = None,
        element_id: uuid.UUID | None = None,
        since: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        until: Annotated[datetime | None, strawberry.argument(name="to")] = None,
        first: int = 100,
        after: str | None = None,
    ) -> CalendarEventPage:
        page = await service.list_events(
            info.context.session,
            info.context.who,
            user_id=user_id,
            element_id=element_id,
            starts_at=since,
            ends_at=until,
            limit=first,
            cursor=after,
        )
        return CalendarEventPage(items=[CalendarEvent.from_read(e) for e in page.items], next_cursor=page.next_cursor)

    @strawberry.field
    async def calendar_event(self, info: Info, id: uuid.UUID) -> CalendarEvent:
        return CalendarEvent.from_read(await service.get_event(info.context.session, info.context.who, id))

    @strawberry.field(description="A user's weekly working hours (the default when none were set)")
    async def user_schedule(self, info: Info, user_id: uuid.UUID) -> UserSchedule:
        return UserSchedule.from_read(await service.get_schedule(info.context.session, info.context.who, user_id))


@strawberry.type
class CalendarMutation:
    @strawberry.mutation
    async def create_calendar_event(self, info: Info, input: CalendarEventCreateInput) -> CalendarEventResult:
        async def run() -> CalendarEvent:
            data = parse(EventCreate, plain(input))
            return CalendarEvent.from_read(await service.create_event(info.context.session, info.context.who, data))

        return await mutate(info, run)

    @strawberry.mutation
    async def update_calendar_event(
        self, info: Info, id: uuid.UUID, input: CalendarEventUpdateInput
    ) -> CalendarEventResult:
        async def run() -> CalendarEvent:
            data = parse(EventUpdate, plain(input))
            read = await service.update_event(info.context.session, info.context.who, id, data)
            return CalendarEvent.from_read(read)

        return await mutate(info, run)

    @strawberry.mutation
    async def delete_calendar_event(self, info: Info, id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await service.delete_event(info.context.session, info.context.who, id)
            return Deleted(ref=str(id))

        return await mutate(info, run)

    @strawberry.mutation(description="Replace a user's working hours; null goes back to the default week")
    async def set_user_schedule(
        self, info: Info, user_id: uuid.UUID, input: WeekHoursInput | None = None
    ) -> UserScheduleResult:
        async def run() -> UserSchedule:
            schedule = parse(WeekSchedule, _no_nulls(plain(input))) if input is not None else None
            read = await service.set_schedule(info.context.session, info.context.who, user_id, schedule)
            return UserSchedule.from_read(read)

        return await mutate(info, run)
